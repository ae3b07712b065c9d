/**
 * run-streams.test.ts again with warm starts from a pool: a daemon keeps pre-booted busybox micro-VMs
 * (BOSON_WARM_MODE=pool), every `boson run` of the suite is its client, and the streams and signals must behave as
 * in the embedded runs (issue: warm starts give what cold starts do; the run suites pass in both modes). The test
 * of a killed `boson run` is the embedded runtime's alone: through a daemon the container outlives its client. The
 * suite's host checks at the end that starts did take warm VMs.
 */
import { WARM_SUITE_ENV } from './helpers.ts';

process.env[WARM_SUITE_ENV] = 'pool';
await import('./run-streams.test.ts');

/**
 * run-basics.test.ts again with warm starts cloned from template snapshots (BOSON_WARM_MODE=template): every
 * `boson run` of the suite is a client of a daemon whose starts of busybox clone a template, and the suite's results
 * must be the cold suite's. The suite's host checks at the end that starts did clone.
 */
import { WARM_SUITE_ENV } from './helpers.ts';

process.env[WARM_SUITE_ENV] = 'template';
await import('./run-basics.test.ts');

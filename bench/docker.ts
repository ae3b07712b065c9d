/**
 * The Docker API's own overhead, measured in one process against baselines on the same host:
 *   1. `docker run --rm busybox true` through Boson's Docker API, against `boson run --rm busybox true` (foreground)
 *      and against the same container driven through the daemon's own REST API (create, start, wait, rm): the
 *      Docker layer's share of a cold start must stay under 5 %.
 *   2. `docker ps -a` with 50 created containers answers in < 50 ms (the API call, timed with curl-like raw HTTP,
 *      and the whole CLI invocation for reference).
 * Usage: npx tsx bench/docker.ts [rounds]
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { openImageStore } from '../src/main/index.ts';
import { MachineClient } from '../src/machine/index.ts';

const rounds = Number(process.argv[2] ?? 5);
const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');
const stateDir = await mkdtemp('/var/tmp/boson-bench-docker-');
await openImageStore(stateDir).importPath(path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci'));
const runDir = path.join(stateDir, 'run');
const env = {
  ...process.env,
  BOSON_STATE_DIR: stateDir,
  BOSON_RUN_DIR: runDir,
  BOSON_QUIET: '1',
  DOCKER_HOST: `unix://${runDir}/docker.sock`,
  DOCKER_CONFIG: path.join(stateDir, 'docker-config'),
};

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`)),
    );
  });
}

function get(p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get({ socketPath: `${runDir}/docker.sock`, path: p }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      })
      .on('error', reject);
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const daemon = spawn(BOSON, ['up'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve) => daemon.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve()));
try {
  const client = new MachineClient(path.join(runDir, 'boson.sock'));
  const viaRest = async (): Promise<number> => {
    const t0 = performance.now();
    const { id } = await client.request<{ id: string }>('POST', '/v1/containers', { image: 'busybox', process: { args: ['true'] } });
    const wait = client.request('POST', `/v1/containers/${id}/wait?condition=next-exit`);
    await client.request('POST', `/v1/containers/${id}/start`);
    await wait;
    await client.request('DELETE', `/v1/containers/${id}`);
    return performance.now() - t0;
  };
  // Warm-up: root disk built, page cache warm.
  await run(BOSON, ['run', '--rm', 'busybox', 'true']);
  await run('docker', ['run', '--rm', 'busybox', 'true']);
  const times = { docker: [] as number[], boson: [] as number[], rest: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    times.docker.push(await run('docker', ['run', '--rm', 'busybox', 'true']));
    times.boson.push(await run(BOSON, ['run', '--rm', 'busybox', 'true']));
    times.rest.push(await viaRest());
  }
  const d = median(times.docker);
  const b = median(times.boson);
  const r = median(times.rest);
  console.log(
    `cold start, median of ${rounds}: docker run --rm ${d.toFixed(0)} ms | boson run --rm ${b.toFixed(0)} ms | daemon REST create+start+wait+rm ${r.toFixed(0)} ms`,
  );
  console.log(
    `docker vs boson run: ${(((d - b) / b) * 100).toFixed(1)} %   docker vs the same path through the REST API: ${(((d - r) / r) * 100).toFixed(1)} %`,
  );

  for (let i = 0; i < 50; i++)
    await client.request('POST', '/v1/containers', { image: 'busybox', process: { args: ['true'] }, name: `bench${i}` });
  await get('/v1.47/containers/json?all=1');
  const api: number[] = [];
  const cli: number[] = [];
  for (let i = 0; i < 10; i++) {
    api.push(await get('/v1.47/containers/json?all=1'));
    cli.push(await run('docker', ['ps', '-a']));
  }
  console.log(
    `docker ps -a with 50 containers: API ${median(api).toFixed(1)} ms (median of 10, target < 50 ms), whole docker CLI invocation ${median(cli).toFixed(0)} ms`,
  );
  for (let i = 0; i < 50; i++) await client.request('DELETE', `/v1/containers/bench${i}`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  await rm(stateDir, { recursive: true, force: true });
}

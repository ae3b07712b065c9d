/**
 * Time to first answer of real applications (the redis and nginx images of scripts/build-app-images.sh): from the
 * start of `docker run -d -p 127.0.0.1:P:PORT IMAGE` (the stock docker CLI through `boson up`, image already
 * pulled) to the first successful request with the app's own client from the host (redis-cli PING, HTTP GET /).
 * Baselines in the same process, interleaved so that machine noise hits all alike:
 *   - runc: the same image unpacked by umoci (same root filesystem, same Cmd and User) in a network namespace of
 *     ours, asked by the same client inside that namespace (ip netns exec);
 *   - busybox: `docker run --rm busybox true` through the same daemon (Boson's own cold start, as bench/cold-start.ts).
 * Prints p50/p95 per series and the ratios.
 *
 *   npx tsx bench/apps.ts [--runs N] [--json]
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTestHost, testDaemon, freePort } from '../test/helpers.ts';
import { APPS, APP_LAYOUT, dockerIn, firstAnswer, requireAppLayout, startAppRegistry, type App } from '../test/apps-fixture.ts';
import { DEBIAN_DOCKER_PATH } from '../test/docker-clis.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 5) || 5;
const asJson = args.includes('--json');

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

await requireAppLayout();
const host = await makeTestHost();
const daemon = testDaemon(() => host);
const work = await mkdtemp('/var/tmp/boson-bench-apps-');
const netns = `boson-bench-apps-${process.pid}`;
const registry = await startAppRegistry();
const env: NodeJS.ProcessEnv = {
  ...process.env,
  DOCKER_HOST: `unix://${host.env.BOSON_RUN_DIR}/docker.sock`,
  DOCKER_CONFIG: path.join(work, 'docker-config'),
};
const docker = async (...a: string[]): Promise<string> => {
  const r = await dockerIn(DEBIAN_DOCKER_PATH, env, a);
  if (r.code !== 0) throw new Error(`docker ${a.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.toString();
};
const ref = (a: App): string => `${registry.host}/apps/${a.name}:latest`;

/** One Boson run of `a`: ms from docker run to the first answer; the container is removed after. */
async function bosonOnce(a: App, i: number): Promise<number> {
  const name = `bench-${a.name}-${i}`;
  const port = await freePort();
  const t0 = performance.now();
  await docker('run', '-d', '--name', name, '-p', `127.0.0.1:${port}:${a.port}`, ref(a));
  const { at } = await firstAnswer(() => a.probe(port), 120_000);
  await docker('rm', '-f', name);
  return at - t0;
}

/** The same request as App.probe, made inside our network namespace (runc's containers live there). */
async function probeInNetns(a: App): Promise<string> {
  if (a.name === 'redis') {
    const { stdout } = await run('ip', ['netns', 'exec', netns, 'redis-cli', '-h', '127.0.0.1', '-p', '6379', 'PING'], { timeout: 2000 });
    if (stdout.trim() !== 'PONG') throw new Error(stdout);
    return stdout.trim();
  }
  const script = `fetch('http://127.0.0.1:${a.port}/', { signal: AbortSignal.timeout(1000) }).then(async (r) => { if (r.status !== 200) process.exit(1); process.stdout.write(await r.text()); }, () => process.exit(1))`;
  const { stdout } = await run('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { timeout: 3000 });
  return stdout;
}

/** umoci unpack of `a` into a runc bundle that joins our network namespace. */
async function runcBundle(a: App): Promise<string> {
  const bundle = path.join(work, `bundle-${a.name}`);
  execFileSync('umoci', ['unpack', '--image', `${APP_LAYOUT}:${a.name}`, bundle], { stdio: 'ignore' });
  const configPath = path.join(bundle, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as {
    process: { terminal: boolean; capabilities?: Record<string, string[]> };
    linux: { namespaces: { type: string; path?: string }[] };
  };
  config.process.terminal = false;
  // Docker's default capabilities (umoci gives fewer: nginx could not chown its temporary directories).
  const caps = [
    'CHOWN',
    'DAC_OVERRIDE',
    'FSETID',
    'FOWNER',
    'MKNOD',
    'NET_RAW',
    'SETGID',
    'SETUID',
    'SETFCAP',
    'SETPCAP',
    'NET_BIND_SERVICE',
    'SYS_CHROOT',
    'KILL',
    'AUDIT_WRITE',
  ].map((c) => `CAP_${c}`);
  config.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
  config.linux.namespaces = config.linux.namespaces.map((n) =>
    n.type === 'network' ? { type: 'network', path: `/run/netns/${netns}` } : n,
  );
  await writeFile(configPath, JSON.stringify(config));
  return bundle;
}

/** One runc run of `a`'s bundle: ms from `runc run -d` to the first answer (in the namespace); deleted after. */
async function runcOnce(a: App, bundle: string, i: number): Promise<number> {
  const id = `boson-bench-apps-${process.pid}-${a.name}-${i}`;
  const t0 = performance.now();
  // Detached: runc returns once the container started (its stdio must not be our pipes, or they stay open).
  await new Promise<void>((resolve, reject) => {
    const child = spawn('runc', ['run', '-d', '--bundle', bundle, id], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run ${id} exited ${code}`))));
  });
  started.add(id);
  const { at } = await firstAnswer(() => probeInNetns(a), 60_000);
  execFileSync('runc', ['delete', '-f', id], { stdio: 'ignore' });
  started.delete(id);
  return at - t0;
}

/** `docker run --rm busybox true` through the daemon. */
async function busyboxOnce(): Promise<number> {
  const t0 = performance.now();
  await docker('run', '--rm', 'busybox', 'true');
  return performance.now() - t0;
}

/** runc containers started and not yet deleted (deleted in the clean-up when a run fails). */
const started = new Set<string>();
const series = new Map<string, number[]>();
const add = (k: string, v: number): void => void series.set(k, [...(series.get(k) ?? []), v]);
try {
  await daemon.start();
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  const bundles = new Map<string, string>();
  for (const a of APPS) {
    await docker('pull', '-q', ref(a));
    bundles.set(a.name, await runcBundle(a));
  }
  await busyboxOnce(); // warm: the demo image's root disk
  for (let i = 0; i < runs; i++) {
    for (const a of APPS) {
      add(`boson ${a.name}`, await bosonOnce(a, i));
      add(`runc ${a.name}`, await runcOnce(a, bundles.get(a.name)!, i));
    }
    add('boson busybox true', await busyboxOnce());
  }
} finally {
  await docker('rm', '-f', ...APPS.flatMap((a) => Array.from({ length: runs }, (_, i) => `bench-${a.name}-${i}`))).catch(() => undefined);
  for (const id of started) execFileSync('runc', ['delete', '-f', id], { stdio: 'ignore' });
  await daemon.stop();
  await host.cleanup();
  await registry.stop();
  try {
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  } catch {
    // never created
  }
  await rm(work, { recursive: true, force: true });
}

const p50 = (k: string): number => percentile(series.get(k)!, 50);
const rows = [...series.keys()].map((k) => ({
  series: k,
  p50: Math.round(p50(k)),
  p95: Math.round(percentile(series.get(k)!, 95)),
  runs: series.get(k)!.length,
}));
const ratios = APPS.map((a) => ({
  app: a.name,
  vsRunc: +(p50(`boson ${a.name}`) / p50(`runc ${a.name}`)).toFixed(2),
  vsBusybox: +(p50(`boson ${a.name}`) / p50('boson busybox true')).toFixed(2),
}));
if (asJson) {
  process.stdout.write(`${JSON.stringify({ runs, rows, ratios })}\n`);
} else {
  process.stdout.write(`time from run to the first answer of the app's own client, ${runs} runs (ms)\n`);
  for (const r of rows)
    process.stdout.write(`  ${r.series.padEnd(20)} p50 ${String(r.p50).padStart(6)}   p95 ${String(r.p95).padStart(6)}\n`);
  for (const r of ratios) process.stdout.write(`  ${r.app}: Boson ${r.vsRunc}x runc; ${r.vsBusybox}x Boson's own busybox run\n`);
}

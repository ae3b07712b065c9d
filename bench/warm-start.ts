/**
 * Warm start against cold start and runc, in one run, interleaved so that machine noise hits all alike:
 *   - runc:  `runc run` of `true` on the same busybox root filesystem;
 *   - cold:  `boson run --rm busybox true` through a daemon without a warm pool;
 *   - warm:  the same through a daemon with BOSON_WARM_IMAGES=busybox, once its pool has a VM ready.
 * Each series is timed to the first byte of output (`echo hi`) and to the end of the command (`true`). Then
 * `--streak N` warm starts in a row (no waiting for the pool between them) count failures and how many were warm.
 *
 *   npx tsx bench/warm-start.ts [--runs N] [--streak N] [--json]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { MachineClient } from '../src/machine/client/index.ts';
import { probeAccelerator } from '../src/vmm/index.ts';
import { loadConfig } from '../src/main/index.ts';
import { BUSYBOX_LAYOUT, makeTestHost, testDaemon, waitFor, type TestHost } from '../test/helpers.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || dflt : dflt);
const runs = opt('--runs', 10);
const streak = opt('--streak', 50);
const asJson = args.includes('--json');
const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');

interface WarmView {
  hits: number;
  misses: number;
  fallbacks: number;
  shapes: Array<{ journal: boolean; nic: boolean; ready: number; booting: number }>;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** `boson run --rm busybox ARGS`: ms to the first byte of stdout (null if none) and to the end. */
function bosonOnce(host: TestHost, cmd: string[]): Promise<{ first: number | null; total: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | null = null;
    const child = spawn(BOSON, ['run', '--rm', 'busybox', ...cmd], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.on('data', () => (first ??= performance.now() - t0));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const total = performance.now() - t0;
      if (code !== 0) reject(new Error(`boson run ${cmd.join(' ')} failed (${code}): ${err}`));
      else resolve({ first, total });
    });
  });
}

/** `runc run` of `cmd` on the busybox rootfs: ms to the first byte of stdout and to the end. */
function runcOnce(bundle: string, i: number, cmd: string[]): Promise<{ first: number | null; total: number }> {
  return new Promise((resolve, reject) => {
    const spec = JSON.parse(execFileSync('cat', [path.join(bundle, 'config.json')]).toString());
    spec.process.args = cmd;
    execFileSync('tee', [path.join(bundle, 'config.json')], { input: JSON.stringify(spec), stdio: ['pipe', 'ignore', 'ignore'] });
    const t0 = performance.now();
    let first: number | null = null;
    const child = spawn('runc', ['run', '--bundle', bundle, `boson-warm-bench-${process.pid}-${i}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', () => (first ??= performance.now() - t0));
    child.on('close', (code) =>
      code === 0 ? resolve({ first, total: performance.now() - t0 }) : reject(new Error(`runc failed (${code})`)),
    );
  });
}

async function makeRuncBundle(dir: string): Promise<string> {
  const bundle = path.join(dir, 'runc-bundle');
  const rootfs = path.join(bundle, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  const index = JSON.parse(await readFile(path.join(BUSYBOX_LAYOUT, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string): string => path.join(BUSYBOX_LAYOUT, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ digest: string }> };
  for (const layer of manifest.layers) execFileSync('tar', ['-xzf', blob(layer.digest), '-C', rootfs]);
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.root.readonly = true;
  await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

async function warmView(host: TestHost): Promise<WarmView> {
  return new MachineClient(path.join(host.env.BOSON_RUN_DIR!, 'boson.sock')).request<WarmView>('GET', '/v1/warm');
}

/**
 * Waits until the warm daemon's pool is full and idle (no VM booting), so that its refills never run beside a
 * measured start of any series.
 */
async function poolReady(host: TestHost): Promise<void> {
  await waitFor(
    async () => {
      const w = await warmView(host);
      return w.shapes.length > 0 && w.shapes.every((s) => s.ready >= 2 && s.booting === 0);
    },
    180_000,
    'a full warm pool',
  );
}

async function main(): Promise<void> {
  const coldHost = await makeTestHost();
  const warmHost = await makeTestHost();
  warmHost.env = { ...warmHost.env, BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_PER_SHAPE: '2', BOSON_WARM_MEMORY_MIB: '1024' };
  const coldDaemon = testDaemon(() => coldHost);
  const warmDaemon = testDaemon(() => warmHost);
  try {
    const accel = await probeAccelerator(loadConfig().accel);
    const bundle = await makeRuncBundle(coldHost.stateDir);
    await coldDaemon.start();
    await warmDaemon.start();
    await bosonOnce(coldHost, ['true']); // builds the root disk
    await bosonOnce(warmHost, ['true']);
    const series = {
      runc: { first: [] as number[], total: [] as number[] },
      cold: { first: [] as number[], total: [] as number[] },
      warm: { first: [] as number[], total: [] as number[] },
    };
    let warmMisses = 0;
    const failed = { cold: 0, warm: 0 };
    for (let i = 0; i < runs; i++) {
      for (const [cmd, key] of [
        [['echo', 'hi'], 'first'],
        [['true'], 'total'],
      ] as const) {
        await poolReady(warmHost);
        const r = await runcOnce(bundle, i, [...cmd]);
        series.runc[key].push(key === 'first' ? r.first! : r.total);
        await poolReady(warmHost);
        try {
          const c = await bosonOnce(coldHost, [...cmd]);
          series.cold[key].push(key === 'first' ? c.first! : c.total);
        } catch (err) {
          failed.cold++;
          console.error(`cold: ${String(err)}`);
        }
        await poolReady(warmHost);
        const before = (await warmView(warmHost)).hits;
        try {
          const w = await bosonOnce(warmHost, [...cmd]);
          series.warm[key].push(key === 'first' ? w.first! : w.total);
        } catch (err) {
          failed.warm++;
          console.error(`warm: ${String(err)}`);
        }
        if ((await warmView(warmHost)).hits === before) warmMisses++;
      }
    }
    // A streak of warm starts back to back: the pool refills in the background meanwhile.
    let failures = 0;
    const streakStart = await warmView(warmHost);
    const streakTimes: number[] = [];
    for (let i = 0; i < streak; i++) {
      try {
        streakTimes.push((await bosonOnce(warmHost, ['true'])).total);
      } catch (err) {
        failures++;
        console.error(String(err));
      }
    }
    const streakEnd = await warmView(warmHost);
    const stat = (v: number[]): { p50: number; p95: number } => ({
      p50: Math.round(percentile(v, 50)),
      p95: Math.round(percentile(v, 95)),
    });
    const result = {
      accelerator: accel.accel,
      runs,
      runc: { first: stat(series.runc.first), total: stat(series.runc.total) },
      cold: { first: stat(series.cold.first), total: stat(series.cold.total) },
      warm: { first: stat(series.warm.first), total: stat(series.warm.total), notWarm: warmMisses },
      failed,
      ratios: {
        warmOverRuncTotal: +(percentile(series.warm.total, 50) / percentile(series.runc.total, 50)).toFixed(2),
        warmOverColdTotal: +(percentile(series.warm.total, 50) / percentile(series.cold.total, 50)).toFixed(2),
        warmOverColdFirst: +(percentile(series.warm.first, 50) / percentile(series.cold.first, 50)).toFixed(2),
      },
      streak: {
        starts: streak,
        failures,
        warm: streakEnd.hits - streakStart.hits,
        fallbacks: streakEnd.fallbacks - streakStart.fallbacks,
        p50: Math.round(percentile(streakTimes, 50)),
      },
      loadAverage: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
    };
    if (asJson) console.log(JSON.stringify(result, null, 2));
    else {
      const row = (name: string, s: { first: { p50: number; p95: number }; total: { p50: number; p95: number } }): string =>
        `${name.padEnd(34)} first output p50 ${String(s.first.p50).padStart(5)} ms (p95 ${s.first.p95})   end p50 ${String(s.total.p50).padStart(5)} ms (p95 ${s.total.p95})`;
      console.log(`accelerator: ${result.accelerator}, ${runs} interleaved rounds, load average ${result.loadAverage}`);
      console.log(row('runc run (same rootfs)', result.runc));
      console.log(row('boson run --rm, cold (daemon)', result.cold));
      console.log(row('boson run --rm, warm (pool ready)', result.warm));
      console.log(`warm runs that were not warm: ${warmMisses}; failed runs: cold ${failed.cold}, warm ${failed.warm}`);
      console.log(
        `warm / runc (end): ${result.ratios.warmOverRuncTotal}x (goal <= 10x)   warm / cold (end): ${result.ratios.warmOverColdTotal}x (goal <= 0.25x)   warm / cold (first output): ${result.ratios.warmOverColdFirst}x`,
      );
      console.log(
        `streak: ${streak} warm starts in a row, ${failures} failures, ${result.streak.warm} took a warm VM, ${result.streak.fallbacks} fell back to cold, p50 ${result.streak.p50} ms`,
      );
    }
  } finally {
    await warmDaemon.stop();
    await coldDaemon.stop();
    await warmHost.cleanup();
    await coldHost.cleanup();
  }
}

await main();

/**
 * Warm start against cold start and runc, in one run, interleaved so that machine noise hits all alike:
 *   - runc:      `runc run` of `true` on the same busybox root filesystem;
 *   - cold:      `boson run --rm busybox true` through a daemon without warm start;
 *   - pool:      the same through a daemon with BOSON_WARM_IMAGES=busybox (BOSON_WARM_MODE=pool), its pool full;
 *   - template:  the same through a daemon with BOSON_WARM_MODE=template, its template ready.
 * `--mode pool|template|both` picks the warm daemons (default both). Each series is timed to the first byte of output
 * (`echo hi`) and to the end of the command (`true`); before every sample the warm daemons are ready and idle (no
 * VM or template being booted). Then a streak of `--streak N` starts in a row per warm daemon counts failures and how
 * many starts were warm: back to back (no waiting: a pool runs dry, a template does not), or with `--streak-wait`
 * waiting for the daemon to be ready before each start (and saying so).
 *
 *   npx tsx bench/warm-start.ts [--runs N] [--streak N] [--streak-wait] [--mode pool|template|both] [--json]
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
const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 10;
const streak = args.includes('--streak') ? Number(args[args.indexOf('--streak') + 1]) : 50;
const streakWait = args.includes('--streak-wait');
const modeArg = args.includes('--mode') ? args[args.indexOf('--mode') + 1]! : 'both';
const modes = (modeArg === 'both' ? ['pool', 'template'] : [modeArg]) as Array<'pool' | 'template'>;
const asJson = args.includes('--json');
const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');

interface WarmView {
  mode?: string;
  hits: number;
  misses: number;
  fallbacks: number;
  shapes: Array<{ journal: boolean; nic: boolean; ready: number; booting: number }>;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
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
 * Waits until a warm daemon is ready and idle: its pool full (2 per shape) or its template built, nothing booting, so
 * that its refills never run beside a measured start of any series.
 */
async function warmReady(host: TestHost, mode: 'pool' | 'template'): Promise<void> {
  const need = mode === 'pool' ? 2 : 1;
  await waitFor(
    async () => {
      const w = await warmView(host);
      return w.shapes.length > 0 && w.shapes.every((s) => s.ready >= need && s.booting === 0);
    },
    180_000,
    `a ready warm ${mode}`,
  );
}

type Series = { first: number[]; total: number[] };

async function main(): Promise<void> {
  const coldHost = await makeTestHost();
  const warmHosts = new Map<'pool' | 'template', TestHost>();
  for (const mode of modes) {
    const h = await makeTestHost();
    h.env = { ...h.env, BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_PER_SHAPE: '2', BOSON_WARM_MEMORY_MIB: '1024', BOSON_WARM_MODE: mode };
    warmHosts.set(mode, h);
  }
  const daemons = [coldHost, ...warmHosts.values()].map((h) => testDaemon(() => h));
  try {
    const accel = await probeAccelerator(loadConfig().accel);
    const bundle = await makeRuncBundle(coldHost.stateDir);
    for (const d of daemons) await d.start();
    for (const h of [coldHost, ...warmHosts.values()]) await bosonOnce(h, ['true']); // builds the root disk
    const allReady = async (): Promise<void> => {
      for (const [mode, h] of warmHosts) await warmReady(h, mode);
    };
    const series: Record<string, Series> = { runc: { first: [], total: [] }, cold: { first: [], total: [] } };
    for (const mode of modes) series[mode] = { first: [], total: [] };
    const notWarm: Record<string, number> = {};
    const failed: Record<string, number> = { cold: 0 };
    for (const mode of modes) ((notWarm[mode] = 0), (failed[mode] = 0));
    for (let i = 0; i < runs; i++) {
      for (const [cmd, key] of [
        [['echo', 'hi'], 'first'],
        [['true'], 'total'],
      ] as const) {
        await allReady();
        const r = await runcOnce(bundle, i, [...cmd]);
        series.runc![key].push(key === 'first' ? r.first! : r.total);
        await allReady();
        try {
          const c = await bosonOnce(coldHost, [...cmd]);
          series.cold![key].push(key === 'first' ? c.first! : c.total);
        } catch (err) {
          failed.cold!++;
          console.error(`cold: ${String(err)}`);
        }
        for (const [mode, h] of warmHosts) {
          await allReady();
          const before = (await warmView(h)).hits;
          try {
            const w = await bosonOnce(h, [...cmd]);
            series[mode]![key].push(key === 'first' ? w.first! : w.total);
          } catch (err) {
            failed[mode]!++;
            console.error(`${mode}: ${String(err)}`);
          }
          if ((await warmView(h)).hits === before) notWarm[mode]!++;
        }
      }
    }
    // Streaks: `streak` starts in a row per warm daemon, back to back unless --streak-wait.
    const streaks: Record<string, { starts: number; failures: number; warm: number; fallbacks: number; waited: boolean; p50: number }> = {};
    for (const [mode, h] of warmHosts) {
      if (streak <= 0) break;
      await allReady();
      let failures = 0;
      const start = await warmView(h);
      const times: number[] = [];
      for (let i = 0; i < streak; i++) {
        if (streakWait) await warmReady(h, mode);
        try {
          times.push((await bosonOnce(h, ['true'])).total);
        } catch (err) {
          failures++;
          console.error(`${mode} streak start ${i}: ${String(err)}`);
        }
      }
      const end = await warmView(h);
      streaks[mode] = {
        starts: streak,
        failures,
        warm: end.hits - start.hits,
        fallbacks: end.fallbacks - start.fallbacks,
        waited: streakWait,
        p50: Math.round(percentile(times, 50)),
      };
    }
    const stat = (v: number[]): { p50: number; p95: number } => ({
      p50: Math.round(percentile(v, 50)),
      p95: Math.round(percentile(v, 95)),
    });
    const p50 = (name: string, key: 'first' | 'total'): number => percentile(series[name]![key], 50);
    const ratio = (a: number, b: number): number => +(a / b).toFixed(2);
    const result = {
      accelerator: accel.accel,
      runs,
      series: Object.fromEntries(
        Object.entries(series).map(([name, s]) => [name, { first: stat(s.first), total: stat(s.total), notWarm: notWarm[name] }]),
      ),
      failed,
      ratios: Object.fromEntries(
        modes.map((m) => [
          m,
          {
            overRuncTotal: ratio(p50(m, 'total'), p50('runc', 'total')),
            overColdTotal: ratio(p50(m, 'total'), p50('cold', 'total')),
            overColdFirst: ratio(p50(m, 'first'), p50('cold', 'first')),
          },
        ]),
      ),
      streaks,
      loadAverage: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
    };
    if (asJson) console.log(JSON.stringify(result, null, 2));
    else {
      console.log(`accelerator: ${result.accelerator}, ${runs} interleaved rounds, load average at the end ${result.loadAverage}`);
      const label: Record<string, string> = {
        runc: 'runc run (same rootfs)',
        cold: 'boson run --rm, cold (daemon)',
        pool: 'boson run --rm, warm pool (full)',
        template: 'boson run --rm, template clone',
      };
      for (const [name, s] of Object.entries(result.series))
        if (runs > 0)
          console.log(
            `${label[name]!.padEnd(34)} first output p50 ${String(s.first.p50).padStart(5)} ms (p95 ${s.first.p95})   end p50 ${String(s.total.p50).padStart(5)} ms (p95 ${s.total.p95})${s.notWarm !== undefined ? `   not warm: ${s.notWarm}` : ''}`,
          );
      console.log(
        `failed runs: ${Object.entries(failed)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
      if (runs > 0)
        for (const [m, r] of Object.entries(result.ratios))
          console.log(
            `${m}: / runc (end) ${r.overRuncTotal}x (goal <= 10x)   / cold (end) ${r.overColdTotal}x (goal <= 0.25x)   / cold (first output) ${r.overColdFirst}x`,
          );
      for (const [m, st] of Object.entries(streaks))
        console.log(
          `${m} streak: ${st.starts} starts in a row${st.waited ? ' (waiting for the daemon to be ready before each)' : ' (back to back)'}, ${st.failures} failures, ${st.warm} warm, ${st.fallbacks} fell back to cold, p50 ${st.p50} ms`,
        );
    }
  } finally {
    for (const d of daemons) await d.stop();
    for (const h of [coldHost, ...warmHosts.values()]) await h.cleanup();
  }
}

await main();

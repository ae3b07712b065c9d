/**
 * Cold start of `boson run --rm busybox true`, beside two baselines measured in the same process, interleaved so
 * that machine noise hits all three alike:
 *   - floor: raw QEMU booting the same kernel and initramfs until boson-init's HELLO (no CLI, no disks, no process);
 *   - runc:  the same busybox root filesystem run by runc (a shared-kernel container).
 * Prints p50/p95 of each, the ratios, and boot failures out of N. Optional series, in the same loop:
 *   - --daemon: the same `boson run` through a running daemon (one upgraded request; the container joins the
 *     daemon's default network, as docker run's does) and with --network none;
 *   - --jail: the same run with the VMM jail off (BOSON_VMM_JAIL=off), for the jail's cost;
 *   - --baseline DIR: another checkout's bin/boson (e.g. a worktree of the commit before a change), on a state
 *     directory of its own that its own CLI set up, so that a change is measured before and after in one run.
 *
 *   npx tsx bench/cold-start.ts [--runs N] [--json] [--daemon] [--jail] [--baseline DIR]
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { prepareBootBundle, FrameDecoder, FrameType } from '../src/guest/index.ts';
import { launchMicroVm, probeAccelerator } from '../src/vmm/index.ts';
import { guestKernelOptions, loadConfig, openImageStore, qemuOptions } from '../src/main/index.ts';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 20) || 20;
const asJson = args.includes('--json');
const withDaemon = args.includes('--daemon');
const withJailOff = args.includes('--jail');
const baselineDir = args.includes('--baseline') ? path.resolve(args[args.indexOf('--baseline') + 1] ?? '') : undefined;
const BOOT_TIMEOUT_MS = 15_000;
const layout = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Raw QEMU to HELLO; returns ms, or null for a boot that hung past the timeout. */
async function floorOnce(kernel: string, initramfs: string, acpi: boolean): Promise<number | null> {
  const t0 = performance.now();
  const vm = await launchMicroVm({ kernel, initramfs, acpi, memoryMiB: 256, cpus: 1, disks: [] }, qemuOptions(loadConfig()));
  const decoder = new FrameDecoder();
  const hello = new Promise<number>((resolve) => {
    vm.channel.on('data', (chunk: Buffer) => {
      if (decoder.push(chunk).some((f) => f.type === FrameType.HELLO)) resolve(performance.now() - t0);
    });
  });
  const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), BOOT_TIMEOUT_MS).unref());
  const result = await Promise.race([hello, timeout]);
  await vm.kill();
  return result;
}

/** `boson run --rm busybox true` (with `extra` flags), wall time; also how many boot attempts it needed. */
function bosonOnce(
  env: NodeJS.ProcessEnv,
  bin = path.join(PACKAGE_ROOT, 'bin', 'boson'),
  extra: string[] = [],
): Promise<{ ms: number; attempts: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(bin, ['run', '--rm', ...extra, 'busybox', 'true'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`boson run failed (${code}): ${err}`));
      const attempts = 1 + (err.match(/retrying \(attempt/g) ?? []).length;
      resolve({ ms, attempts });
    });
  });
}

function runcOnce(bundle: string, i: number): number {
  const t0 = performance.now();
  execFileSync('runc', ['run', '--bundle', bundle, `boson-bench-${process.pid}-${i}`], { stdio: 'ignore' });
  return performance.now() - t0;
}

async function makeRuncBundle(dir: string): Promise<string> {
  const bundle = path.join(dir, 'runc-bundle');
  const rootfs = path.join(bundle, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string): string => path.join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: Array<{ digest: string }> };
  for (const layer of manifest.layers) execFileSync('tar', ['-xzf', blob(layer.digest), '-C', rootfs]);
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['true'];
  spec.root.readonly = true;
  await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

async function main(): Promise<void> {
  const dir = await mkdtemp('/var/tmp/boson-bench-');
  try {
    const env = { ...process.env, BOSON_STATE_DIR: path.join(dir, 'state'), BOSON_QUIET: '1' };
    await openImageStore(env.BOSON_STATE_DIR).importPath(layout);
    const config = loadConfig();
    const bundle = await prepareBootBundle({ guestDir: config.paths.guestDir, ...guestKernelOptions(config) });
    const runcBundle = await makeRuncBundle(dir);
    const accel = await probeAccelerator(config.accel);
    await bosonOnce(env); // warm-up: builds the root disk and caches
    const extra = new Map<string, { run: () => Promise<{ ms: number; attempts: number }>; values: number[] }>();
    let daemon: ReturnType<typeof spawn> | undefined;
    if (withDaemon) {
      const denv = { ...env, BOSON_STATE_DIR: path.join(dir, 'dstate'), BOSON_RUN_DIR: path.join(dir, 'drun') };
      await openImageStore(denv.BOSON_STATE_DIR).importPath(layout);
      daemon = spawn(path.join(PACKAGE_ROOT, 'bin', 'boson'), ['up'], { env: denv, stdio: 'ignore' });
      for (let i = 0; i < 100 && !existsSync(path.join(denv.BOSON_RUN_DIR, 'boson.sock')); i++)
        await new Promise((r) => setTimeout(r, 100));
      await bosonOnce(denv);
      extra.set('boson run, through the daemon', { run: () => bosonOnce(denv), values: [] });
      extra.set('  the same, --network none', { run: () => bosonOnce(denv, undefined, ['--network', 'none']), values: [] });
    }
    if (withJailOff) extra.set('boson run, VMM jail off', { run: () => bosonOnce({ ...env, BOSON_VMM_JAIL: 'off' }), values: [] });
    if (baselineDir) {
      const benv = { ...env, BOSON_STATE_DIR: path.join(dir, 'bstate'), BOSON_RUN_DIR: path.join(dir, 'brun') };
      const bin = path.join(baselineDir, 'bin', 'boson');
      execFileSync(bin, ['image', 'import', layout], { env: benv, stdio: 'ignore' });
      await bosonOnce(benv, bin);
      extra.set(`baseline: ${path.basename(baselineDir)}`, { run: () => bosonOnce(benv, bin), values: [] });
    }
    const floor: number[] = [];
    const boson: number[] = [];
    const runc: number[] = [];
    let floorHangs = 0;
    let bosonRetries = 0;
    for (let i = 0; i < runs; i++) {
      const f = await floorOnce(bundle.kernelPath, bundle.initramfsPath, bundle.acpi);
      if (f === null) floorHangs++;
      else floor.push(f);
      const b = await bosonOnce(env);
      boson.push(b.ms);
      bosonRetries += b.attempts - 1;
      runc.push(runcOnce(runcBundle, i));
      for (const series of extra.values()) series.values.push((await series.run()).ms);
      if (!asJson && process.stderr.isTTY) process.stderr.write(`\r${i + 1}/${runs}`);
    }
    if (!asJson && process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
    const stat = (v: number[]): { p50: number; p95: number; n: number } => ({
      p50: Math.round(percentile(v, 50)),
      p95: Math.round(percentile(v, 95)),
      n: v.length,
    });
    const result = {
      accelerator: accel.accel,
      runs,
      floor: stat(floor),
      boson: stat(boson),
      runc: stat(runc),
      ratios: {
        bosonOverFloorP50: +(percentile(boson, 50) / percentile(floor, 50)).toFixed(3),
        bosonOverFloorP95: +(percentile(boson, 95) / percentile(floor, 95)).toFixed(3),
        bosonOverRuncP50: +(percentile(boson, 50) / percentile(runc, 50)).toFixed(1),
      },
      bootFailures: { floorHangs, bosonHungBootsRetried: bosonRetries, outOf: runs },
      series: Object.fromEntries(
        [...extra].map(([name, s]) => [
          name.trim(),
          { ...stat(s.values), overBoson: +(percentile(s.values, 50) / percentile(boson, 50)).toFixed(3) },
        ]),
      ),
      goal: 'boson p50 within 1.25x of the floor; 0 hangs',
    };
    daemon?.kill('SIGTERM');
    if (asJson) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return;
    }
    const row = (name: string, s: { p50: number; p95: number; n: number }): string =>
      `${name.padEnd(34)} ${String(s.p50).padStart(6)} ms ${String(s.p95).padStart(7)} ms ${String(s.n).padStart(4)}`;
    console.log(`cold start, ${runs} runs each, accelerator ${accel.accel}`);
    console.log(`${''.padEnd(34)} ${'p50'.padStart(9)} ${'p95'.padStart(10)} ${'n'.padStart(4)}`);
    console.log(row('floor: QEMU to HELLO', result.floor));
    console.log(row('boson run --rm busybox true', result.boson));
    console.log(row('runc run (same rootfs)', result.runc));
    for (const [name, series] of extra)
      console.log(`${row(name, stat(series.values))}   ${(percentile(series.values, 50) / percentile(boson, 50)).toFixed(3)}x boson's p50`);
    console.log(`boson / floor: p50 ${result.ratios.bosonOverFloorP50}x, p95 ${result.ratios.bosonOverFloorP95}x (goal ≤ 1.25x)`);
    console.log(`boson / runc:  p50 ${result.ratios.bosonOverRuncP50}x`);
    console.log(`boot failures: floor hung ${floorHangs}/${runs}; boson boots retried after a hang ${bosonRetries}/${runs}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * The VM tax: the same workloads in runc (Debian's runc: a shared-kernel container) and in Boson (a micro-VM per
 * container), on one root filesystem (the `bench` image of scripts/build-app-images.sh: Debian 12 with fio and
 * iperf3), in one process and interleaved, so that machine noise hits both alike. Writes docs/vm-tax.md and its
 * charts (docs/vm-tax/*.svg) and prints the table. Figures:
 *   - start to first output, cold (`boson run --rm IMAGE echo` through a daemon vs `runc run`), for busybox and the
 *     bench image; warm when the runtime offers a warm start (`boson run --warm`, or a daemon started with the
 *     settings given by --warm-env), else "n/a (not built)";
 *   - exec round trip of `true` into a running container (`boson exec`, and the same over the API without the CLI's
 *     start, vs `runc exec`);
 *   - a CPU-bound loop, fork/exec of /bin/true, small files (create, write, unlink), timed by the host's clock (an
 *     exec's wall time minus that of an exec of `true` just before; the guest's own clock is only compared);
 *   - sequential write and read with fio on the container's writable layer and on a volume;
 *   - TCP throughput host→container and container→host with iperf3 (server in the container, client on the host);
 *   - memory per idle container (QEMU's PSS split into guest RAM and VMM overhead; runc's processes' PSS and its
 *     memory cgroup) and containers per GiB.
 * The accelerator is whatever the runtime detects (`boson info --json`); the report says which, and that TCG
 * figures are emulation. Everything it starts is removed at the end, also after a failure.
 *
 *   npx tsx bench/tax.ts [--quick] [--runs N] [--containers N] [--out DIR] [--json FILE] [--warm-env KEY=VALUE]...
 *   npx tsx bench/tax.ts --render FILE [--out DIR]      (the report again from a result saved with --json)
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { MachineClient, StreamDemuxer } from '../src/machine/client/index.ts';
import { SETTINGS } from '../src/main/index.ts';
import { BOSON, BUSYBOX_LAYOUT, makeTestHost, qemuPidsUsing, testDaemon, type TestHost } from '../test/helpers.ts';
import { writeCharts } from './tax/charts.ts';
import { renderReport, summarise } from './tax/report.ts';
import type { TaxFigure, TaxMemory, TaxMeta, TaxResult } from './tax/result.ts';
import { RuncLab } from './tax/runc.ts';
import { sig } from './tax/stats.ts';
import * as w from './tax/workloads.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const quick = args.includes('--quick');
const runs = Number(opt('--runs') ?? (quick ? 3 : 10)) || 3;
const heavyRuns = Math.max(2, Math.ceil(runs / 3)); // fio and iperf3 runs: long ones, fewer of them
const timedRuns = Math.max(3, Math.ceil(runs / 2)); // CPU and syscall loops: seconds each under TCG
const idleContainers = Number(opt('--containers') ?? (quick ? 3 : 8)) || 3;
const outDir = path.resolve(opt('--out') ?? path.join(PACKAGE_ROOT, 'docs'));
const jsonOut = opt('--json');
const renderFrom = opt('--render');
const warmEnv = args.flatMap((a, i) => (a === '--warm-env' && args[i + 1] ? [args[i + 1]!] : []));
const sizes = quick ? w.QUICK_SIZES : w.FULL_SIZES;
const APP_LAYOUT = path.join(PACKAGE_ROOT, 'build', 'app-images', 'oci');
const BENCH_REF = 'localhost/tax-bench:latest';
const say = (s: string): void => void process.stderr.write(`tax: ${s}\n`);

/** Writes the report and charts of `result` under outDir. */
async function publish(result: TaxResult): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'vm-tax.md'), renderReport(result));
  const charts = await writeCharts(result, outDir);
  say(`wrote ${path.join(outDir, 'vm-tax.md')} and ${charts.length} charts`);
}

/** The table on stdout. */
function printTable(result: TaxResult): void {
  console.log(`VM tax, accelerator ${result.meta.accelerator.name}; Boson / runc over paired runs (min / median / max)`);
  for (const s of summarise(result)) {
    const name = `${s.figure.title} (${s.figure.unit})`.padEnd(58);
    if (!s.ratio) console.log(`${name} ${s.figure.notMeasured ?? 'n/a'}`);
    else
      console.log(
        `${name} runc ${sig(s.runc!.median).padStart(8)}  Boson ${sig(s.boson!.median).padStart(8)}  ratio ${sig(s.ratio.min)} / ${sig(s.ratio.median)} / ${sig(s.ratio.max)}`,
      );
  }
  for (const warning of result.warnings) console.log(`warning: ${warning}`);
}

if (renderFrom) {
  const result = JSON.parse(await readFile(renderFrom, 'utf8')) as TaxResult;
  await publish(result);
  printTable(result);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------
// The machine

async function loadSample(stateDirs: string[]): Promise<{ loadavg1: number; otherQemus: number }> {
  const all = await qemuPidsUsing('/');
  const ours = new Set((await Promise.all(stateDirs.map((d) => qemuPidsUsing(d)))).flat());
  return { loadavg1: +os.loadavg()[0]!.toFixed(2), otherQemus: all.filter((p) => !ours.has(p)).length };
}

async function firstLine(cmd: string, a: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(cmd, a);
    return (stdout || stderr).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

async function gatherMeta(host: TestHost, start: { loadavg1: number; otherQemus: number }): Promise<TaxMeta> {
  const { stdout } = await run(BOSON, ['info', '--json'], { env: host.env });
  const info = JSON.parse(stdout) as {
    version: string;
    accelerator: { name: string; reason: string };
    guest: { kernelRelease: string | null };
    qemu: { version: string | null };
  };
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8');
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `npx tsx bench/tax.ts ${args.join(' ')}`.trim(),
    quick,
    accelerator: info.accelerator,
    machine: {
      cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
      cores: os.cpus().length,
      memoryGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
      hostKernel: os.release(),
      os: /^PRETTY_NAME="?([^"\n]*)/m.exec(osRelease)?.[1] ?? os.type(),
      virtualised: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo),
    },
    versions: {
      qemu: info.qemu.version ?? 'unknown',
      guestKernel: info.guest.kernelRelease ?? 'unknown',
      runc: await firstLine('runc', ['--version']),
      fio: imageToolVersion('fio'),
      iperf3: imageToolVersion('iperf3'),
      node: process.version,
      boson: info.version,
    },
    vmShape: { memoryMiB: 256, cpus: 1 },
    load: { start, end: start },
  };
}

/** The Debian version of a package in the bench image (its dpkg status), e.g. "fio 3.33-3 (Debian)". */
function imageToolVersion(pkg: string): string {
  return `${pkg} ${benchPackages.get(pkg) ?? 'unknown'} (Debian)`;
}
const benchPackages = new Map<string, string>();

// ---------------------------------------------------------------------------------------------------------------
// Boson

/** `boson args` against the bench's daemon; stdout and wall ms. Throws for a non-zero status. */
async function boson(host: TestHost, a: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  const { stdout } = await run(BOSON, a, { env: { ...host.env, ...env }, maxBuffer: 16 << 20, timeout: 600_000 });
  return { stdout, ms: performance.now() - t0 };
}

/** `boson run --rm IMAGE argv` (foreground, through the daemon): ms from spawn to the first stdout byte. */
function bosonFirstOutput(host: TestHost, runArgs: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | undefined;
    let err = '';
    const child = spawn(BOSON, ['run', '--rm', ...runArgs], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', () => (first ??= performance.now() - t0));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || first === undefined) reject(new Error(`boson run ${runArgs.join(' ')} exited ${code}: ${err}`));
      else resolve(first);
    });
  });
}

/** One exec as `boson exec` makes it, without the CLI: one upgraded request, the status at the end of its stream. */
async function apiExec(c: MachineClient, id: string, argv: string[]): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const stream = await c.upgrade(`/v1/containers/${id}/exec`, { argv });
  let exitCode: number | null = null;
  let stdout = '';
  const demux = new StreamDemuxer(
    (d) => (stdout += d.toString()),
    () => undefined,
    (s) => (exitCode = s.exitCode),
  );
  stream.on('data', (d: Buffer) => demux.push(d));
  await new Promise((r) => stream.on('close', r));
  if (exitCode !== 0) throw new Error(`exec ${argv.join(' ')} ended with ${exitCode}`);
  return { ms: performance.now() - t0, stdout };
}

async function pssOf(pid: number): Promise<{ pssKb: number; pssShmemKb: number }> {
  return w.parseSmapsRollup(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8'));
}

/**
 * The flags that make `boson run` start cold when warm starts may be the default (`--no-warm` or `--cold`, if the
 * runtime has them), so that the cold figures stay cold.
 */
async function coldFlags(host: TestHost): Promise<string[]> {
  const help = (await boson(host, ['run', '--help'])).stdout;
  return /--no-warm\b/.test(help) ? ['--no-warm'] : /--cold\b/.test(help) ? ['--cold'] : [];
}

/** How this runtime offers a warm start, if it does: a `--warm` flag of `boson run`, or settings for a daemon. */
async function detectWarm(host: TestHost): Promise<{ flag: boolean; env: Record<string, string> } | { reason: string }> {
  const help = (await boson(host, ['run', '--help'])).stdout;
  if (/(^|\s)--warm\b/m.test(help)) return { flag: true, env: {} };
  if (warmEnv.length > 0)
    return { flag: false, env: Object.fromEntries(warmEnv.map((kv) => [kv.split('=')[0]!, kv.split('=').slice(1).join('=')])) };
  const settings = SETTINGS.filter((s) => /WARM|POOL|TEMPLATE/.test(s.env) && s.env !== 'BOSON_NET_POOL').map((s) => s.env);
  if (settings.length > 0) return { reason: `n/a (the runtime has ${settings.join(', ')}: pass --warm-env KEY=VALUE to measure it)` };
  return { reason: 'n/a (not built)' };
}

// ---------------------------------------------------------------------------------------------------------------
// The run

await access(path.join(APP_LAYOUT, 'index.json')).catch(() => {
  throw new Error(`the bench image is missing at ${APP_LAYOUT}: run scripts/setup.sh (scripts/build-app-images.sh)`);
});
for (const tool of ['runc', 'umoci', 'skopeo', 'iperf3']) {
  await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
    throw new Error(`${tool} is missing: run scripts/setup.sh`);
  });
}

const tag = String(process.pid);
const work = await mkdtemp('/var/tmp/boson-tax-');
const lab = new RuncLab(path.join(work, 'runc'), tag);
const host = await makeTestHost();
const daemon = testDaemon(() => host);
let warmHost: TestHost | undefined;
const warmDaemon = testDaemon(() => warmHost!);
const iperfClients = new Set<ReturnType<typeof spawn>>();
const warnings: string[] = [];
let result: TaxResult | undefined;
try {
  const octet = Number(/^10\.(\d+)\./.exec(host.env.BOSON_NET_SUBNET!)![1]);
  const loadStart = await loadSample([host.stateDir]);
  say(`importing the bench image; unpacking it for runc`);
  await run('skopeo', ['copy', '--quiet', `oci:${APP_LAYOUT}:bench`, `oci:${path.join(work, 'bench-oci')}:${BENCH_REF}`]);
  await run(BOSON, ['image', 'import', path.join(work, 'bench-oci')], { env: host.env });
  await mkdir(path.join(work, 'runc'), { recursive: true });
  const benchRootfs = await lab.unpack(`${APP_LAYOUT}:bench`, 'bench');
  const busyboxRootfs = await lab.unpack(`${BUSYBOX_LAYOUT}:localhost/busybox:latest`, 'busybox');
  const status = await readFile(path.join(benchRootfs, 'var/lib/dpkg/status'), 'utf8');
  for (const block of status.split('\n\n')) {
    const name = /^Package: (.*)$/m.exec(block)?.[1];
    const version = /^Version: (.*)$/m.exec(block)?.[1];
    if (name && version) benchPackages.set(name, version);
  }
  const meta = await gatherMeta(host, loadStart);
  say(
    `accelerator ${meta.accelerator.name}; ${runs} runs (${timedRuns} for the loops, ${heavyRuns} for fio and iperf3), ${idleContainers} idle containers`,
  );

  await daemon.start();
  const client = new MachineClient(path.join(host.env.BOSON_RUN_DIR!, 'boson.sock'));
  // Warm-up (not counted): root disks of both images, the daemon's first run.
  await bosonFirstOutput(host, ['busybox', 'echo', 'warm-up']);
  await bosonFirstOutput(host, [BENCH_REF, 'echo', 'warm-up']);

  // The long-running containers: iperf3's server as the main process, a volume at /vol, exec'd into for the rest.
  const bosonMain = (
    await boson(host, ['run', '-d', '--name', `tax-main-${tag}`, '-v', `tax-vol-${tag}:/vol`, BENCH_REF, 'iperf3', '-s'])
  ).stdout.trim();
  const volDir = path.join(work, 'runc-volume');
  await mkdir(volDir);
  const runcNet = await lab.network(`10.${octet}.100.1`, `10.${octet}.100.2`);
  const runcMain = await lab.bundle('main', {
    args: ['iperf3', '-s'],
    rootfs: await lab.overlay(benchRootfs, 'main'),
    writable: true,
    netns: runcNet,
    binds: [[volDir, '/vol']],
  });
  await lab.runDetached(runcMain);
  const bosonInfo = await client.request<{ endpoint: { address: string } | null }>('GET', `/v1/containers/${bosonMain}`);
  const bosonIp = bosonInfo.endpoint?.address;
  if (!bosonIp) throw new Error('the Boson container has no address on its network');
  const runcIp = `10.${octet}.100.2`;

  const figures: TaxFigure[] = [];
  const figure = (f: Omit<TaxFigure, 'boson' | 'runc'>): TaxFigure => {
    const full: TaxFigure = { ...f, boson: [], runc: [] };
    figures.push(full);
    return full;
  };
  /**
   * Runs one paired sample; which runtime goes first alternates with the run number. A sample that fails marks its
   * figure as not measured (with the error, and a warning) and the run goes on with the other figures.
   */
  const pair = async (f: TaxFigure, i: number, b: () => Promise<number>, r: () => Promise<number>): Promise<void> => {
    if (f.notMeasured) return;
    const side = async (who: 'Boson' | 'runc', fn: () => Promise<number>): Promise<number> => {
      try {
        return await fn();
      } catch (err) {
        throw new Error(`${who}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    try {
      if (i % 2 === 0) {
        const bv = await side('Boson', b);
        const rv = await side('runc', r);
        f.boson!.push(bv);
        f.runc!.push(rv);
      } else {
        const rv = await side('runc', r);
        const bv = await side('Boson', b);
        f.boson!.push(bv);
        f.runc!.push(rv);
      }
    } catch (err) {
      f.boson = null;
      f.runc = null;
      f.notMeasured = `failed in this run (${(err as Error).message})`;
      warnings.push(`${f.title}: run ${i + 1} failed, so the figure is left out: ${(err as Error).message}`);
      say(`warning: ${f.title}: ${(err as Error).message}`);
    }
  };

  // -- start to first output
  const warm = await detectWarm(host);
  const cold = await coldFlags(host);
  const startFigures: Array<[TaxFigure, string, string]> = [
    [
      figure({
        id: 'start-busybox',
        group: 'start',
        title: 'start to first output, cold (busybox)',
        unit: 'ms',
        better: 'lower',
        method:
          'wall time from spawning `boson run --rm busybox echo hi` (through the daemon, on its default network) to the first byte on its stdout, vs `runc run` of the same argv on the busybox root filesystem (read-only root, its own network namespace); the image is already local, its root disk built by a warm-up run.',
      }),
      'busybox',
      busyboxRootfs,
    ],
    [
      figure({
        id: 'start-bench',
        group: 'start',
        title: 'start to first output, cold (Debian bench image)',
        unit: 'ms',
        better: 'lower',
        method: 'the same with the bench image (Debian 12 essential, fio, iperf3) and its coreutils `echo`.',
      }),
      BENCH_REF,
      benchRootfs,
    ],
  ];
  const warmFigure = figure({
    id: 'start-warm',
    group: 'start',
    title: 'start to first output, warm (busybox)',
    unit: 'ms',
    better: 'lower',
    method:
      "the busybox start above with the runtime's warm start (a micro-VM already booted to boson-init, from a template or a pool), against the same runc run.",
  });
  let warmRun: (() => Promise<number>) | undefined;
  if ('reason' in warm) {
    warmFigure.boson = null;
    warmFigure.runc = null;
    warmFigure.notMeasured = warm.reason;
  } else if (warm.flag) {
    warmRun = () => bosonFirstOutput(host, ['--warm', 'busybox', 'echo', 'hi']);
  } else {
    warmHost = await makeTestHost();
    warmHost.env = { ...warmHost.env, ...warm.env };
    await warmDaemon.start();
    const wh = warmHost;
    warmRun = () => bosonFirstOutput(wh, ['busybox', 'echo', 'hi']);
  }
  if (warmRun) for (let i = 0; i < 3; i++) await warmRun(); // fills the pool or template; not counted
  say('start to first output');
  for (let i = 0; i < runs; i++) {
    for (const [f, image, rootfs] of startFigures)
      await pair(
        f,
        i,
        () => bosonFirstOutput(host, [...cold, image, 'echo', 'hi']),
        async () => (await lab.runForeground(await lab.bundle('start', { args: ['echo', 'hi'], rootfs }))).firstOutputMs,
      );
    if (warmRun)
      await pair(
        warmFigure,
        i,
        warmRun,
        async () => (await lab.runForeground(await lab.bundle('start', { args: ['echo', 'hi'], rootfs: busyboxRootfs }))).firstOutputMs,
      );
  }

  // -- exec round trip
  say('exec round trip');
  const execCli = figure({
    id: 'exec-cli',
    group: 'exec',
    title: 'exec round trip of true (boson exec CLI vs runc exec)',
    unit: 'ms',
    better: 'lower',
    method:
      'wall time of `boson exec C true` (the CLI, one upgraded request to the daemon, a process started by boson-init) vs `runc exec C true`, into the running bench container.',
  });
  const execApi = figure({
    id: 'exec-api',
    group: 'exec',
    title: 'exec round trip of true (Boson API, no CLI start, vs runc exec)',
    unit: 'ms',
    better: 'lower',
    method:
      "the same exec made in the bench's process over the daemon's API (the one upgraded request `boson exec` makes, without starting Node for the CLI), vs the same `runc exec`.",
  });
  for (let i = 0; i < runs * 2; i++) {
    await pair(
      execCli,
      i,
      async () => (await boson(host, ['exec', bosonMain, 'true'])).ms,
      async () => (await lab.exec(runcMain.id, ['true'])).ms,
    );
    await pair(
      execApi,
      i,
      async () => (await apiExec(client, bosonMain, ['true'])).ms,
      async () => (await lab.exec(runcMain.id, ['true'])).ms,
    );
  }

  // -- CPU, syscalls, small files
  // Timed by the host's clock: under TCG on a loaded host the guest's clock was seen to run up to 1.7x fast, so the
  // container's own reading (printed by the workload) is only compared, and a disagreement reported once.
  const skew: Array<{ who: string; inside: number; wall: number }> = [];
  const timedFigure = async (f: TaxFigure, argv: string[], n: number): Promise<void> => {
    const measure = async (exec: (a: string[]) => Promise<{ ms: number; stdout: string }>, who: string): Promise<number> => {
      const floor = (await exec(['true'])).ms;
      const { ms, stdout } = await exec(argv);
      const wall = Math.max(0, ms - floor);
      const inside = w.parseElapsedUs(stdout) / 1000;
      if (Math.abs(inside - wall) > wall * 0.1 + 20) skew.push({ who, inside, wall });
      return wall;
    };
    for (let i = 0; i < n; i++)
      await pair(
        f,
        i,
        () => measure((a) => apiExec(client, bosonMain, a), 'Boson'),
        () => measure((a) => lab.exec(runcMain.id, a), 'runc'),
      );
  };
  say('CPU loop, fork/exec, small files');
  const byHost =
    " Timed by the host's clock: the wall time of the exec minus that of an exec of `true` made just before through the same path (Boson: one request to the daemon's API; runc: `runc exec`), so neither start-up is counted. The container's own clock (`date +%s%N` around the loop) is read too and only compared.";
  await timedFigure(
    figure({
      id: 'cpu-loop',
      group: 'cpu',
      title: `CPU-bound loop (${sizes.cpuLoop.toLocaleString('en')} shell iterations)`,
      unit: 'ms',
      better: 'lower',
      method: `dash counting to ${sizes.cpuLoop} with its own arithmetic (no system calls in the loop).` + byHost,
    }),
    w.cpuLoop(sizes.cpuLoop),
    timedRuns,
  );
  await timedFigure(
    figure({
      id: 'fork-exec',
      group: 'syscall',
      title: `fork/exec of /bin/true ×${sizes.forkExec}`,
      unit: 'ms',
      better: 'lower',
      method:
        `dash forking and executing /bin/true ${sizes.forkExec} times in a loop (process creation, exec, page faults, exit, wait).` +
        byHost,
    }),
    w.forkExecLoop(sizes.forkExec),
    timedRuns,
  );
  await timedFigure(
    figure({
      id: 'small-files',
      group: 'syscall',
      title: `small files: create+write ×${sizes.smallFiles}, then unlink`,
      unit: 'ms',
      better: 'lower',
      method:
        `dash creating and writing ${sizes.smallFiles} five-byte files (open, write, close each) in /var/tmp on the container's writable layer (overlayfs in both: over the scratch disk's ext4 in the guest, over the host's filesystem for runc), then one \`rm -r\` unlinking them.` +
        byHost,
    }),
    w.smallFiles(sizes.smallFiles),
    timedRuns,
  );

  for (const who of ['Boson', 'runc']) {
    const mine = skew.filter((k) => k.who === who);
    if (mine.length === 0) continue;
    const worst = mine.reduce((a, b) => (Math.abs(b.inside / b.wall - 1) > Math.abs(a.inside / a.wall - 1) ? b : a));
    warnings.push(
      `${who}'s own clock disagreed with the host's by more than 10 % in ${mine.length} of the CPU/syscall samples (worst: ${sig(worst.inside)} ms by the container's clock, ${sig(worst.wall)} ms by the host's); the figures use the host's clock.`,
    );
  }

  // -- sequential disk I/O with fio
  say('fio');
  const fioMethod = (where: string): string =>
    `fio in the container, one job, psync, 1 MiB blocks, a ${sizes.fioMiB} MiB file on ${where}; the write ends with an fsync, the read follows after fio dropped the file from the (guest's or host's) page cache. In Boson the disk is a file on the host behind QEMU (cache=writeback), so a read that misses the guest's cache may still be served from the host's page cache.`;
  for (const [where, dir, desc] of [
    [
      'writable layer',
      '/var/tmp',
      "the container's writable layer (Boson: overlayfs on the scratch disk, ext4 on virtio-blk; runc: overlayfs on the host's ext4)",
    ],
    ['volume', '/vol', 'a volume (Boson: a named volume, its own ext4 disk on virtio-blk; runc: a bind-mounted host directory on ext4)'],
  ] as const) {
    const writeF = figure({
      id: `fio-write-${where.split(' ')[0]}`,
      group: 'disk',
      title: `sequential write, ${where} (fio)`,
      unit: 'MiB/s',
      better: 'higher',
      method: fioMethod(desc),
    });
    const readF = figure({
      id: `fio-read-${where.split(' ')[0]}`,
      group: 'disk',
      title: `sequential read, ${where} (fio)`,
      unit: 'MiB/s',
      better: 'higher',
      method: 'the read of the same file, as above.',
    });
    for (let i = 0; i < heavyRuns; i++) {
      for (const [f, rw] of [
        [writeF, 'write'],
        [readF, 'read'],
      ] as const) {
        await pair(
          f,
          i,
          async () => w.parseFioMiBps((await boson(host, ['exec', bosonMain, ...w.fio(dir, rw, sizes.fioMiB)])).stdout, rw),
          async () => w.parseFioMiBps((await lab.exec(runcMain.id, w.fio(dir, rw, sizes.fioMiB))).stdout, rw),
        );
      }
    }
  }

  // -- network throughput with iperf3
  say('iperf3');
  const iperfOnce = (ip: string, reverse: boolean): Promise<number> =>
    new Promise((resolve, reject) => {
      const a = ['-c', ip, '-t', String(sizes.iperfSeconds), '-J', ...(reverse ? ['-R'] : [])];
      const child = spawn('iperf3', a, { stdio: ['ignore', 'pipe', 'pipe'] });
      iperfClients.add(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), (sizes.iperfSeconds + 30) * 1000);
      child.on('close', () => {
        clearTimeout(timer);
        iperfClients.delete(child);
        try {
          resolve(w.parseIperfMbps(out));
        } catch (err) {
          reject(err);
        }
      });
    });
  /** iperf3 to `ip`; a refused or failed connection is tried twice more (and said in a warning) before it fails. */
  const iperf = async (ip: string, reverse: boolean, who: string): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await iperfOnce(ip, reverse);
      } catch (err) {
        if (attempt === 3) throw err;
        warnings.push(`iperf3 to ${who} (${ip}) failed once and was tried again: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
  };
  for (const reverse of [false, true]) {
    const f = figure({
      id: reverse ? 'net-from' : 'net-to',
      group: 'network',
      title: reverse ? 'TCP throughput container → host (iperf3 -R)' : 'TCP throughput host → container (iperf3)',
      unit: 'Mbit/s',
      better: 'higher',
      method: `iperf3 (one TCP stream, ${sizes.iperfSeconds} s) from the host to \`iperf3 -s\` in the container${reverse ? ', reversed (-R: the container sends)' : ''}; Boson's container on the daemon's bridge (tap + virtio-net), runc's in a network namespace joined by a veth pair. Received throughput.`,
    });
    for (let i = 0; i < heavyRuns; i++)
      await pair(
        f,
        i,
        () => iperf(bosonIp, reverse, 'Boson'),
        () => iperf(runcIp, reverse, 'runc'),
      );
  }

  // -- memory per idle container
  say(`memory: ${idleContainers} idle containers of each`);
  const memory = await measureMemory().catch((err: Error) => {
    warnings.push(`memory per idle container: failed in this run, left out: ${err.message.split('\n')[0]}`);
    say(`warning: memory: ${err.message}`);
    return null;
  });
  if (memory)
    figures.push({
      id: 'memory-idle',
      group: 'memory',
      title: 'memory per idle container (PSS)',
      unit: 'MiB',
      better: 'lower',
      method:
        "PSS of each idle container (`sleep`): Boson's QEMU process (guest RAM resident + VMM overhead, see the memory section), runc's container processes; paired container by container.",
      boson: memory.boson.pssMiB,
      runc: memory.runc.pssMiB,
    });

  /** N idle containers of each runtime at once: their PSS (and runc's cgroup usage); all removed after. */
  async function measureMemory(): Promise<TaxMemory> {
    const idleIds: string[] = [];
    let bosonPss: Array<{ pssKb: number; pssShmemKb: number }> = [];
    try {
      for (let i = 0; i < idleContainers; i++)
        idleIds.push((await boson(host, ['run', '-d', '--name', `tax-idle-${tag}-${i}`, BENCH_REF, 'sleep', '1000000'])).stdout.trim());
      await new Promise((r) => setTimeout(r, quick ? 3000 : 8000)); // the guests settle; free page reporting returns boot's pages
      bosonPss = await Promise.all(
        idleIds.map(async (id) => {
          const c = await client.request<{ vmPid: number | null }>('GET', `/v1/containers/${id}`);
          if (!c.vmPid) throw new Error(`idle container ${id} has no QEMU`);
          return pssOf(c.vmPid);
        }),
      );
    } finally {
      for (const id of idleIds) await boson(host, ['rm', '-f', id]).catch(() => undefined);
    }
    const runcIdle: string[] = [];
    const runcPss: number[] = [];
    const runcCgroup: number[] = [];
    try {
      for (let i = 0; i < idleContainers; i++) {
        const b = await lab.bundle(`idle${i}`, { args: ['sleep', '1000000'], rootfs: benchRootfs });
        await lab.runDetached(b);
        runcIdle.push(b.id);
      }
      await new Promise((r) => setTimeout(r, 2000));
      for (const id of runcIdle) {
        const pids = await lab.pids(id);
        const kb = (await Promise.all(pids.map((p) => pssOf(p)))).reduce((a, p) => a + p.pssKb, 0);
        runcPss.push(kb / 1024);
        runcCgroup.push((await lab.cgroupMemoryBytes(id)) / 1024 ** 2);
      }
    } finally {
      for (const id of runcIdle) await lab.delete(id);
    }
    return {
      containers: idleContainers,
      boson: {
        pssMiB: bosonPss.map((p) => p.pssKb / 1024),
        guestRamMiB: bosonPss.map((p) => p.pssShmemKb / 1024),
        vmmMiB: bosonPss.map((p) => (p.pssKb - p.pssShmemKb) / 1024),
      },
      runc: { pssMiB: runcPss, cgroupMiB: runcCgroup },
    };
  }

  meta.load.end = await loadSample([host.stateDir, ...(warmHost ? [warmHost.stateDir] : [])]);
  result = { meta, figures, memory, warnings };
  await boson(host, ['rm', '-f', bosonMain]);
} finally {
  for (const child of iperfClients) child.kill('SIGKILL');
  await daemon.stop().catch(() => undefined);
  await warmDaemon.stop().catch(() => undefined);
  await host.cleanup();
  await warmHost?.cleanup();
  await lab.cleanup();
  try {
    execFileSync('rm', ['-rf', work]);
  } catch {
    // removed already
  }
}

if (!result) throw new Error('no result');
if (jsonOut) {
  await mkdir(path.dirname(path.resolve(jsonOut)), { recursive: true });
  await writeFile(jsonOut, JSON.stringify(result, null, 2) + '\n');
}
await publish(result);
printTable(result);

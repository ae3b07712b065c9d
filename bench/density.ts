/**
 * Density and overhead of daemon-managed micro-VMs (issue 4's benchmark), against a private daemon:
 *   - start N idle busybox micro-VMs; time to start them all;
 *   - host memory per micro-VM: PSS of each QEMU process (smaps_rollup), split into the guest's RAM (the memfd
 *     that backs it, QEMU's only shared memory) and the VMM's own memory (everything else: binary and libraries,
 *     heap, TCG's translation cache, the kernel image QEMU keeps for fw_cfg), beside the guest's own use (its
 *     MemTotal - MemAvailable, read with exec). VMM overhead = PSS - guest RAM, as Firecracker counts it;
 *   - `exec true` round trip p50/p95 as `boson exec` makes it (one upgraded request, the status in-band), and as
 *     the Docker API makes it (create, then start), beside the boot-free floor: a byte written to a running `cat`
 *     exec's stdin and read back from its stdout, over the same virtio-serial channel;
 *   - time to stop them all.
 * `--mode template` runs the same against a daemon with BOSON_WARM_MODE=template: every container is a clone of one
 * template (its RAM file mapped copy-on-write), so the pages the clones did not write are shared and PSS splits them;
 * the template's files on /dev/shm are reported beside (their pages no clone maps count for no process). `--mode both`
 * measures cold, then template, in one run and prints the ratio of PSS per container. `--memory MiB` (default 128).
 *
 *   npx tsx bench/density.ts [--vms N] [--mode cold|template|both] [--memory MiB] [--json]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { MemoryStateStore, PACKAGE_ROOT } from '../src/common/index.ts';
import { openImageStore } from '../src/main/index.ts';
import { MachineClient, NetworkManager, StreamDemuxer } from '../src/machine/index.ts';

const args = process.argv.slice(2);
const vms = Number(args[args.indexOf('--vms') + 1] ?? 50) || 50;
const asJson = args.includes('--json');
const modeArg = args.includes('--mode') ? args[args.indexOf('--mode') + 1]! : 'cold';
const modes = (modeArg === 'both' ? ['cold', 'template'] : [modeArg]) as Array<'cold' | 'template'>;
const memoryMiB = Number(args.includes('--memory') ? args[args.indexOf('--memory') + 1] : 128) || 128;
const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');

const pct = (v: number[], p: number): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)]!;

/** PSS of a QEMU process in KiB: all of it, and the part that is guest RAM (shared memory). */
async function pssKb(pid: number): Promise<{ total: number; guestRam: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { total: field('Pss'), guestRam: field('Pss_Shmem') };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** One exec as `boson exec` makes it: a single upgraded request, the exit status at the end of its stream. */
async function execOnce(c: MachineClient, id: string, cmd: string[]): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const stream = await c.upgrade(`/v1/containers/${id}/exec`, { argv: cmd });
  let out = '';
  let exitCode: number | null = null;
  const demux = new StreamDemuxer(
    (d) => (out += d.toString()),
    () => undefined,
    (s) => (exitCode = s.exitCode),
  );
  stream.on('data', (d: Buffer) => demux.push(d));
  await new Promise((r) => stream.on('close', r));
  if (exitCode !== 0) throw new Error(`exec ${cmd.join(' ')} ended with ${exitCode}`);
  return { ms: performance.now() - t0, out };
}

/** One exec the way the Docker API makes it: create, then start (two requests). */
async function execTwoRequests(c: MachineClient, id: string, cmd: string[]): Promise<number> {
  const t0 = performance.now();
  const { id: execId } = await c.request<{ id: string }>('POST', `/v1/containers/${id}/execs`, { argv: cmd });
  const stream = await c.upgrade(`/v1/execs/${execId}/start`);
  stream.on('data', () => undefined);
  await new Promise((r) => stream.on('close', r));
  return performance.now() - t0;
}

/** Round trips of one byte through a running `cat` exec: the channel's own latency, no process start. */
async function channelFloor(c: MachineClient, id: string, n: number): Promise<number[]> {
  const { id: execId } = await c.request<{ id: string }>('POST', `/v1/containers/${id}/execs`, { argv: ['cat'], stdin: true });
  const stream = await c.upgrade(`/v1/execs/${execId}/start`);
  const times: number[] = [];
  let waiting: (() => void) | undefined;
  const demux = new StreamDemuxer(
    () => waiting?.(),
    () => undefined,
  );
  stream.on('data', (d: Buffer) => demux.push(d));
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      waiting = resolve;
      stream.write('x');
    });
    times.push(performance.now() - t0);
  }
  stream.end();
  return times;
}

/** The template's RAM and state files of a template-mode daemon, MiB allocated (what they hold of the host's memory). */
async function templateFilesMiB(runDir: string): Promise<number> {
  const { readdir, stat } = await import('node:fs/promises');
  const { templateDirOf } = await import('../src/machine/warm-templates.ts');
  let bytes = 0;
  const root = templateDirOf(runDir);
  for (const t of await readdir(root).catch(() => [] as string[]))
    for (const f of await readdir(path.join(root, t)).catch(() => [] as string[]))
      bytes += ((await stat(path.join(root, t, f)).catch(() => null))?.blocks ?? 0) * 512;
  return bytes / 1024 / 1024;
}

async function main(): Promise<void> {
  const results: Array<Record<string, unknown>> = [];
  for (const mode of modes) results.push(await measure(mode));
  if (results.length === 2) {
    const [cold, tmpl] = results as [{ qemuPssMiBPerVm: number }, { qemuPssMiBPerVm: number; templateFilesMiB: number }];
    const withFiles = tmpl.qemuPssMiBPerVm + tmpl.templateFilesMiB / vms;
    const ratio = {
      pssTemplateOverCold: +(tmpl.qemuPssMiBPerVm / cold.qemuPssMiBPerVm).toFixed(2),
      withTemplateFilesOverCold: +(withFiles / cold.qemuPssMiBPerVm).toFixed(2),
      goal: "a templated clone's PSS <= 0.5x a cold-booted VM's, at 50 idle containers",
    };
    if (asJson) process.stdout.write(JSON.stringify(ratio, null, 2) + '\n');
    else
      console.log(
        `template clone / cold PSS per container: ${ratio.pssTemplateOverCold}x (${ratio.withTemplateFilesOverCold}x counting the template's files, shared by all, per container)`,
      );
  }
}

async function measure(mode: 'cold' | 'template'): Promise<Record<string, unknown>> {
  const dir = await mkdtemp('/var/tmp/boson-density-');
  // Its own network names and subnets, so that it never touches a real daemon's, and removes them at the end.
  const net = { BOSON_NET_PREFIX: 'bbench', BOSON_NET_SUBNET: '10.252.0.0/24', BOSON_NET_POOL: '10.252.128.0/17' };
  const env = {
    ...process.env,
    BOSON_STATE_DIR: path.join(dir, 'state'),
    BOSON_RUN_DIR: path.join(dir, 'run'),
    BOSON_QUIET: '1',
    ...net,
    ...(mode === 'template' ? { BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_MODE: 'template', BOSON_WARM_MEMORY_MIB: '1024' } : {}),
  };
  await openImageStore(env.BOSON_STATE_DIR).importPath(path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci'));
  const daemon = spawn(BOSON, ['up'], { env, stdio: 'ignore' });
  const c = new MachineClient(path.join(env.BOSON_RUN_DIR, 'boson.sock'));
  for (let i = 0; i < 100; i++) {
    try {
      await c.request('GET', '/healthz');
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    if (mode === 'template') {
      // A start of this size makes the daemon keep a template of it; the measured starts clone it once it is ready.
      const { id } = await c.request<{ id: string }>('POST', '/v1/containers', {
        image: 'busybox',
        process: { args: ['true'] },
        resources: { memoryMiB },
      });
      await c.request('POST', `/v1/containers/${id}/start`);
      await c.request('DELETE', `/v1/containers/${id}?force=1`);
      for (let i = 0; ; i++) {
        const w = await c.request<{ shapes: Array<{ memoryMiB: number; ready: number }> }>('GET', '/v1/warm');
        if (w.shapes.some((s) => s.memoryMiB === memoryMiB && s.ready > 0)) break;
        if (i > 600) throw new Error('no template was built');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const hitsBefore = (await c.request<{ hits: number }>('GET', '/v1/warm')).hits;
    const ids: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < vms; i++) {
      const { id } = await c.request<{ id: string }>('POST', '/v1/containers', {
        image: 'busybox',
        process: { args: ['sleep', '100000'] },
        resources: { memoryMiB },
      });
      ids.push(id);
    }
    // Start two at a time (the machine has two cores).
    for (let i = 0; i < ids.length; i += 2)
      await Promise.all(ids.slice(i, i + 2).map((id) => c.request('POST', `/v1/containers/${id}/start`)));
    const startAllMs = performance.now() - t0;
    // Let the guests settle: free page reporting hands back what boot freed within a few seconds.
    await new Promise((r) => setTimeout(r, 5000));
    const records = await Promise.all(ids.map((id) => c.request<{ vmPid: number }>('GET', `/v1/containers/${id}`)));
    const pss = await Promise.all(records.map((r) => pssKb(r.vmPid)));
    const clones = (await c.request<{ hits: number }>('GET', '/v1/warm')).hits - hitsBefore;
    const filesMiB = mode === 'template' ? await templateFilesMiB(env.BOSON_RUN_DIR) : 0;
    const sample = ids.slice(0, Math.min(5, ids.length));
    const guestUsedKb: number[] = [];
    for (const id of sample) {
      const { out } = await execOnce(c, id, ['sh', '-c', "awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print t-a}' /proc/meminfo"]);
      guestUsedKb.push(Number(out.trim()));
    }
    const execTimes: number[] = [];
    const twoRequestTimes: number[] = [];
    // Interleaved, each form first in turn: the first exec into an idle guest pays for waking it.
    for (let i = 0; i < 60; i++) {
      const id = ids[Math.floor(i / 2) % sample.length]!;
      if (i % 2 === 0) {
        execTimes.push((await execOnce(c, id, ['true'])).ms);
        twoRequestTimes.push(await execTwoRequests(c, id, ['true']));
      } else {
        twoRequestTimes.push(await execTwoRequests(c, id, ['true']));
        execTimes.push((await execOnce(c, id, ['true'])).ms);
      }
    }
    const floor = await channelFloor(c, ids[0]!, 30);
    const t1 = performance.now();
    await Promise.all(ids.map((id) => c.request('POST', `/v1/containers/${id}/stop?t=0`)));
    const stopAllMs = performance.now() - t1;
    await Promise.all(ids.map((id) => c.request('DELETE', `/v1/containers/${id}?force=1`)));
    const pssMiB = mean(pss.map((p) => p.total)) / 1024;
    const guestRamMiB = mean(pss.map((p) => p.guestRam)) / 1024;
    const guestUsedMiB = mean(guestUsedKb) / 1024;
    const result = {
      mode,
      vms,
      clones,
      templateFilesMiB: +filesMiB.toFixed(1),
      loadAverage: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
      startAllMs: Math.round(startAllMs),
      stopAllMs: Math.round(stopAllMs),
      qemuPssMiBPerVm: +pssMiB.toFixed(1),
      guestRamResidentMiBPerVm: +guestRamMiB.toFixed(1),
      guestUsedMiBPerVm: +guestUsedMiB.toFixed(1),
      vmmOverheadMiBPerVm: +(pssMiB - guestRamMiB).toFixed(1),
      beyondGuestUseMiBPerVm: +(pssMiB - guestUsedMiB).toFixed(1),
      exec: { p50: +pct(execTimes, 50).toFixed(1), p95: +pct(execTimes, 95).toFixed(1) },
      execTwoRequests: { p50: +pct(twoRequestTimes, 50).toFixed(1), p95: +pct(twoRequestTimes, 95).toFixed(1) },
      channelFloor: { p50: +pct(floor, 50).toFixed(2), p95: +pct(floor, 95).toFixed(2) },
      execOverFloorP50: +(pct(execTimes, 50) / pct(floor, 50)).toFixed(2),
      goals: 'VMM overhead <= 20 MiB per micro-VM; stopping 50 < 5 s; exec within 1.5x of the floor',
    };
    if (asJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      console.log(
        `${mode}: ${vms} idle busybox micro-VMs (${memoryMiB} MiB each)${mode === 'template' ? `, ${clones} of them clones of a template whose files hold ${result.templateFilesMiB} MiB` : ''}; load average ${result.loadAverage}`,
      );
      console.log(`start all: ${result.startAllMs} ms; stop all: ${result.stopAllMs} ms`);
      console.log(
        `QEMU PSS per VM: ${result.qemuPssMiBPerVm} MiB = guest RAM resident ${result.guestRamResidentMiBPerVm} MiB + VMM overhead ${result.vmmOverheadMiBPerVm} MiB${mode === 'template' ? " (a clone's guest pages it wrote count as anonymous memory, so the split is approximate)" : ''}`,
      );
      console.log(
        `the guest's own use (MemTotal - MemAvailable): ${result.guestUsedMiBPerVm} MiB; host memory beyond it: ${result.beyondGuestUseMiBPerVm} MiB`,
      );
      console.log(
        `exec round trip p50 ${result.exec.p50} ms, p95 ${result.exec.p95} ms; channel floor p50 ${result.channelFloor.p50} ms, p95 ${result.channelFloor.p95} ms; ratio ${result.execOverFloorP50}x`,
      );
      console.log(
        `exec as the Docker API makes it (create + start): p50 ${result.execTwoRequests.p50} ms, p95 ${result.execTwoRequests.p95} ms`,
      );
    }
    return result;
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    // The daemon leaves VMs running by design: make sure none of this run's is left.
    const { execFileSync } = await import('node:child_process');
    try {
      execFileSync('pkill', ['-9', '-f', dir]);
    } catch {
      // none left
    }
    await new NetworkManager(new MemoryStateStore(), {
      stateDir: env.BOSON_STATE_DIR,
      prefix: net.BOSON_NET_PREFIX,
      defaultSubnet: net.BOSON_NET_SUBNET,
      subnetPool: net.BOSON_NET_POOL,
    })
      .teardown()
      .catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

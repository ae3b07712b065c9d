/**
 * Shared pieces of the integration suites: a private Boson state directory with the demo image imported, running
 * the real `bin/boson`, and leak checks (QEMU processes, files) scoped to one state directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, access, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MemoryStateStore, PACKAGE_ROOT } from '../src/common/index.ts';
import type { WarmPoolView } from '../src/machine/port/index.ts';
import { MachineClient, NetworkManager, PodNetworks, openStateStore } from '../src/machine/index.ts';
import { openImageStore } from '../src/main/index.ts';

/** The demo image's OCI layout, built by the setup command. */
export const BUSYBOX_LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
/** The boson command under test. */
export const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');

/** A private state directory for one suite. */
export interface TestHost {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Removes the state directory (after checking nothing is left running in it). */
  cleanup(): Promise<void>;
}

/** Creates a state directory under `parent` (/var/tmp) with localhost/busybox:latest imported. */
export async function makeTestHost(parent = '/var/tmp'): Promise<TestHost> {
  await access(path.join(BUSYBOX_LAYOUT, 'index.json')).catch(() => {
    throw new Error(`demo image missing at ${BUSYBOX_LAYOUT}: run the setup command first`);
  });
  const stateDir = await mkdtemp(path.join(parent, 'boson-test-'));
  await openImageStore(stateDir).importPath(BUSYBOX_LAYOUT);
  // Host-wide names and subnets of its own, so that suites running side by side (and a real daemon) never collide.
  // 10.130-239.x belongs to these hosts; a real daemon uses 10.88-127.x; suites with fixed subnets use 10.240-255.x.
  const octet = await claimOctet();
  const net = { BOSON_NET_PREFIX: `bt${octet}`, BOSON_NET_SUBNET: `10.${octet}.0.0/24`, BOSON_NET_POOL: `10.${octet}.128.0/17` };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BOSON_STATE_DIR: stateDir,
    BOSON_RUN_DIR: path.join(stateDir, 'run'),
    BOSON_QUIET: '1',
    ...net,
    // CNI pod networks of its own: a private configuration directory (Boson writes its default list there), a
    // bridge <prefix>-cni0 and a subnet of this host's octet.
    BOSON_CNI_CONF_DIR: path.join(stateDir, 'cni', 'net.d'),
    BOSON_CNI_SUBNET: `10.${octet}.64.0/24`,
  };
  delete env.BOSON_DEBUG;
  delete env.BOSON_TIMINGS;
  return {
    stateDir,
    env,
    cleanup: async () => {
      for (const pid of await qemuPidsUsing(stateDir)) process.kill(pid, 'SIGKILL');
      await waitFor(async () => (await qemuPidsUsing(stateDir)).length === 0, 10_000, 'the killed QEMUs to be gone').catch(() => undefined);
      // The cgroups of this host's VMs (named by the first 16 hex digits of their container ids), once empty.
      const ids = await readdir(path.join(stateDir, 'containers')).catch(() => [] as string[]);
      for (const controller of ['memory', 'pids', 'cpu', '']) {
        for (const id of ids) await rmdir(path.join('/sys/fs/cgroup', controller, 'boson', id.slice(0, 16))).catch(() => undefined);
      }
      // Bridges, taps and firewall rules that a daemon of this host left for its running containers.
      await new NetworkManager(new MemoryStateStore(), {
        stateDir,
        prefix: net.BOSON_NET_PREFIX,
        defaultSubnet: net.BOSON_NET_SUBNET,
        subnetPool: net.BOSON_NET_POOL,
      })
        .teardown()
        .catch(() => undefined);
      // Pod networks a failed suite may have left (a passing one leaves none): CNI DEL of each, then any namespace
      // and the CNI bridge of this host's prefix.
      await removeCniLeftovers(stateDir, net.BOSON_NET_PREFIX);
      // Mounts a killed daemon left under the host (a pod's shared directory), deepest first.
      const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
        .split('\n')
        .map((l) => l.split(' ')[4] ?? '')
        .filter((m) => m.startsWith(`${stateDir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts)
        await new Promise((resolve) => spawn('umount', ['-l', m], { stdio: 'ignore' }).on('close', resolve).on('error', resolve));
      await rm(stateDir, { recursive: true, force: true });
      await rm(path.join(OCTET_CLAIMS, String(octet)), { force: true });
    },
  };
}

/** Where test hosts claim their second octet (one file each, holding the claiming pid). */
const OCTET_CLAIMS = '/run/boson-test-octets';

/** The pod network namespaces (`<prefix>-pod-*`) and CNI bridge (`<prefix>-cni0`) of a test host's prefix. */
export async function cniLeftovers(prefix: string): Promise<{ netns: string[]; bridge: boolean }> {
  const netns = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(`${prefix}-pod-`));
  const bridge = await access(`/sys/class/net/${prefix}-cni0`).then(
    () => true,
    () => false,
  );
  return { netns, bridge };
}

async function removeCniLeftovers(stateDir: string, prefix: string): Promise<void> {
  const store = await access(path.join(stateDir, 'machine.db')).then(
    () => openStateStore(stateDir),
    () => null,
  );
  if (store) {
    const pods = new PodNetworks({
      cni: { confDir: '/nonexistent', binDirs: ['/usr/lib/cni', '/opt/cni/bin'], defaults: { bridge: '', subnet: '', dataDir: '' } },
      prefix,
    });
    for (const { value } of store.list<Parameters<PodNetworks['tearDown']>[0]>('pod-network'))
      await pods.tearDown(value).catch(() => undefined);
    store.close();
  }
  const { netns, bridge } = await cniLeftovers(prefix);
  const ip = (args: string[]): Promise<void> =>
    new Promise((resolve) =>
      spawn('ip', args, { stdio: 'ignore' })
        .on('close', () => resolve())
        .on('error', () => resolve()),
    );
  for (const n of netns) await ip(['netns', 'delete', n]);
  if (bridge) await ip(['link', 'delete', `${prefix}-cni0`]);
}

/**
 * Claims a second octet in 10.130-239 for one test host, exclusively across every test process on this machine
 * (two suites, or two hosts of one suite, never share a subnet or a bridge prefix): the first free one from a
 * pid-dependent start, taking over a claim whose process is gone.
 */
async function claimOctet(): Promise<number> {
  await mkdir(OCTET_CLAIMS, { recursive: true });
  for (let i = 0; i < 110; i++) {
    const octet = 130 + ((process.pid + i) % 110);
    const file = path.join(OCTET_CLAIMS, String(octet));
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      return octet;
    } catch {
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      let alive = false;
      try {
        process.kill(owner, 0);
        alive = owner > 0;
      } catch {
        // gone: the claim is stale
      }
      if (alive) continue;
      await rm(file, { force: true });
      try {
        await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
        return octet;
      } catch {
        // another process took it meanwhile
      }
    }
  }
  throw new Error('no free test subnet in 10.130-239.x');
}

/** What a finished `boson` process produced. */
export interface BosonResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * A host of directories only (state, run and config; no image, no network): what a controller needs. `extra` is
 * added to its environment; BOSON_CONTROLLER_ETCD* settings from outside are dropped unless `extra` names them.
 */
export async function makeBareHost(prefix: string, extra: NodeJS.ProcessEnv = {}): Promise<TestHost> {
  const root = await mkdtemp(path.join('/var/tmp', prefix));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BOSON_STATE_DIR: path.join(root, 'state'),
    BOSON_RUN_DIR: path.join(root, 'run'),
    BOSON_CONFIG_DIR: path.join(root, 'config'),
    BOSON_QUIET: '1',
    ...extra,
  };
  delete env.BOSON_DEBUG;
  for (const k of Object.keys(env)) if (k.startsWith('BOSON_CONTROLLER_ETCD') && !(k in extra)) delete env[k];
  return { stateDir: path.join(root, 'state'), env, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Starts `bin/boson args` with the host's environment (plus `extraEnv`); the caller collects the output. */
export function startBoson(host: TestHost, args: string[], extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(BOSON, args, { env: { ...host.env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs `bin/boson args` to completion, feeding `input` on stdin (then EOF). Fails the test after `timeoutMs`. */
export async function runBoson(
  host: TestHost,
  args: string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<BosonResult> {
  await warmBeforeRun(host, args);
  const child = startBoson(host, args, options.env);
  return collect(child, options.input, options.timeoutMs ?? 60_000, args);
}

/**
 * In a warm suite, a `boson run` waits until the daemon has a warm VM ready for its kind of start (`--rm` or kept),
 * so that the suite's starts are warm ones rather than whatever the pool had refilled by then (a start of another
 * shape, e.g. `-m 384m`, still boots cold).
 */
async function warmBeforeRun(host: TestHost, args: string[]): Promise<void> {
  if (!process.env[WARM_SUITE_ENV] || args[0] !== 'run') return;
  const kept = !args.includes('--rm');
  await waitFor(
    async () => (await warmView(host)).shapes.some((s) => s.nic && s.journal === kept && s.ready >= 1),
    120_000,
    `a warm VM for boson ${args.join(' ')}`,
  ).catch(() => undefined);
}

/** Collects a started process's output until it exits. */
export function collect(
  child: ChildProcess,
  input: Buffer | string | undefined,
  timeoutMs: number,
  what: string[] = [],
): Promise<BosonResult> {
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin!.on('error', () => undefined);
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`boson ${what.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** PIDs of QEMU processes whose command line mentions `dir` (their disks live there). */
export async function qemuPidsUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (cmdline[0]?.includes('qemu-system') && cmdline.some((a) => a.includes(dir))) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * The QEMUs of `dir` that a daemon's warm pool did not boot (their command lines name the pool's `vms/w-*`
 * directories, even once a start has taken them): in a warm suite, the containers booted cold.
 */
export async function coldQemuPidsUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const pid of await qemuPidsUsing(dir)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline && !cmdline.includes(`${path.sep}vms${path.sep}w-`)) pids.push(pid);
  }
  return pids;
}

/**
 * Asserts that `release` (a container's `uname -r`) is Boson's guest kernel, not the host's: its release names
 * boson and differs from the host's.
 */
export function assertGuestRelease(release: string): void {
  assert.match(release, /boson/, `uname -r in the container: ${JSON.stringify(release)}`);
  assert.notEqual(release, os.release(), 'the guest kernel, not the host kernel');
}

/** Asserts that `pid` is a running QEMU of this host's state directory whose command line names container `id`. */
export async function assertQemuOwns(stateDir: string, pid: number | null, id: string): Promise<void> {
  assert.ok(pid !== null && (await qemuPidsUsing(stateDir)).includes(pid), `QEMU ${pid} runs for this host`);
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  assert.ok(
    cmdline.some((a) => a.includes(id)),
    `QEMU ${pid} belongs to container ${id}`,
  );
}

/** Waits until `predicate` is true, polling every 50 ms; throws after `timeoutMs`. */
export async function waitFor(predicate: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Names of container directories left in a state directory. */
export async function containerDirs(stateDir: string): Promise<string[]> {
  return (await readdir(path.join(stateDir, 'containers')).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}$/.test(n));
}

/**
 * Gives a suite one private host: created before its tests, checked for leaked QEMU processes and removed after.
 * Returns a getter, since the host exists only once the suite starts.
 */
export function useTestHost(): () => TestHost {
  let host: TestHost | undefined;
  const warmMode = process.env[WARM_SUITE_ENV];
  let daemon: TestDaemon | undefined;
  before(async () => {
    host = await makeTestHost();
    if (warmMode) {
      // The suite again in a warm mode: every `boson run` is a client of a daemon whose starts take warm VMs.
      host.env = { ...host.env, BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_MODE: warmMode, BOSON_WARM_PER_SHAPE: '2' };
      daemon = testDaemon(() => host!);
      await daemon.start();
      await waitFor(async () => (await warmView(host!)).shapes.some((s) => s.nic && s.ready >= 1), 180_000, `warm ${warmMode} VMs`);
    }
  });
  after(async () => {
    if (!host) return;
    const warm = daemon ? await warmView(host).catch((err: Error) => err.message) : undefined;
    await daemon?.stop();
    // Counted first, asserted after the clean-up: a failing check must not leave the QEMUs and the directory behind.
    const left = await qemuPidsUsing(host.stateDir);
    await host.cleanup();
    assert.deepEqual(left, [], 'no QEMU left running');
    if (warm !== undefined) {
      // Not a cold suite in disguise: the daemon's starts took warm VMs.
      assert.ok(typeof warm !== 'string' && warm.hits > 0, `the suite ran warm (${warmMode}): ${JSON.stringify(warm)}`);
      console.log(`warm ${warmMode}: ${warm.hits} warm starts, ${warm.misses} cold (no warm VM of the shape), ${warm.fallbacks} fallbacks`);
    }
  });
  return () => host!;
}

/**
 * Set (to `pool` or `template`) by a suite's warm wrapper (test/*-warm-*.test.ts) before it imports the suite: the
 * suite's useTestHost then runs a daemon with that warm mode for busybox, so every `boson run` of the suite is a
 * daemon start that takes a warm VM where the shape matches (the issue's "the run suites pass in both modes").
 */
export const WARM_SUITE_ENV = 'BOSON_TEST_WARM_MODE';

/** The warm view of `host`'s daemon (GET /v1/warm). */
export function warmView(host: TestHost): Promise<WarmPoolView> {
  return new MachineClient(path.join(host.stateDir, 'run', 'boson.sock')).request<WarmPoolView>('GET', '/v1/warm');
}

/** True when this suite runs in a warm mode (its `boson run`s go through a warm daemon, not embedded). */
export function warmSuite(): string | undefined {
  return process.env[WARM_SUITE_ENV];
}

/** Starts `boson args` and resolves once its stdout contains `marker`; the result promise is returned with it. */
export async function startUntil(
  host: TestHost,
  args: string[],
  marker: string,
  timeoutMs = 30_000,
): Promise<{ child: ChildProcess; result: Promise<BosonResult> }> {
  await warmBeforeRun(host, args);
  const child = startBoson(host, args);
  const result = collect(child, undefined, 120_000, args);
  let seen = '';
  child.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
  await waitFor(() => seen.includes(marker), timeoutMs, `"${marker}" from boson ${args.join(' ')}`);
  return { child, result };
}

/** A `boson up` started by a test, with its own state and run directories. */
export interface TestDaemon {
  /** The daemon process (null once stopped or killed). */
  pid(): number | null;
  /** Starts (again) a daemon on the same directories; resolves when /healthz answers. */
  start(): Promise<void>;
  /** SIGTERM: the daemon detaches from its VMs, which keep running. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill9(): Promise<void>;
}

/** A daemon on a test host's directories (started and stopped by the caller). */
export function testDaemon(getHost: () => TestHost): TestDaemon {
  let child: ChildProcess | null = null;
  /** Ends the daemon process with `signal` and waits for it to be gone. */
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await gone;
  };
  const daemon: TestDaemon = {
    pid: () => child?.pid ?? null,
    start: async () => {
      const host = getHost();
      const proc = spawn(BOSON, ['up'], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out.includes('listening') || proc.exitCode !== null, 30_000, 'the daemon to listen');
      if (proc.exitCode !== null) throw new Error(`boson up exited ${proc.exitCode}: ${out}`);
    },
    stop: () => end('SIGTERM'),
    kill9: () => end('SIGKILL'),
  };
  return daemon;
}

/**
 * Gives a suite a private host with a running daemon. After the suite: the daemon stops, every micro-VM of the
 * host is killed and counted (a test that leaves containers running fails the suite), and the host is removed.
 */
export function useDaemonHost(): { host: () => TestHost; daemon: TestDaemon } {
  let host: TestHost | undefined;
  const getHost = (): TestHost => host!;
  const daemon = testDaemon(getHost);
  before(async () => {
    host = await makeTestHost();
    await daemon.start();
  });
  after(async () => {
    if (!host) return;
    await daemon.stop();
    const left = await qemuPidsUsing(host.stateDir);
    await host.cleanup();
    assert.deepEqual(left, [], 'the suite removed every container it ran');
  });
  return { host: getHost, daemon };
}

/**
 * A TCP port on 127.0.0.1 that is free right now (the kernel picks it). It is released before the caller binds it,
 * so another process may take it in between: use withFreePort, which retries then.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs `use(port)` with a port that was free a moment ago; when `taken(result)` says another process bound it in
 * between (EADDRINUSE, PORT_IN_USE), runs it again with a fresh port, 5 times at most.
 */
export async function withFreePort<T>(
  use: (port: number) => Promise<T>,
  taken: (result: T) => boolean,
): Promise<{ port: number; result: T }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const result = await use(port);
    if (!taken(result) || attempt === 5) return { port, result };
  }
}

/**
 * Launching and supervising one QEMU microvm process, in one of two modes.
 *
 * **Attached** (no `runtimeDir`; `boson run`): QEMU runs under `setpriv --pdeathsig KILL`, so it dies with the
 * Boson process that started it, whatever way that process ends (Ctrl-C, a crash, kill -9). Its control channel
 * and QMP are socketpairs inherited as fds 3 and 4, and disks may be inherited open files (an unlinked scratch
 * disk): a dead run leaves no socket or file behind.
 *
 * **Detached** (`runtimeDir` given; the daemon): QEMU runs in its own session with named control and QMP sockets,
 * console and QEMU logs and a pid file in the runtime directory, so that it outlives the daemon, and a restarted
 * daemon re-attaches to it with attachMicroVm().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { BosonError, isBosonError, pidAlive } from '../common/index.ts';
import {
  buildQemuArgv,
  type PreJailLayout,
  CONSOLE_CHARDEV,
  CONSOLE_RING_BYTES,
  FIRST_DISK_FD,
  RUNTIME_FILES,
  virtiofsSocket,
} from './argv.ts';
import { probeAccelerator, hostTscKhz } from './accel.ts';
import { findQemu } from './qemu-binary.ts';
import { QmpClient } from './qmp.ts';
import { loadState, saveState, type MigrationResult } from './migration.ts';
import type { MicroVmConfig, Vm, Vmm, VmExit } from './types.ts';
import { cgroupMode, confine, release, releaseIfEmpty, type VmCgroup } from './cgroup.ts';
import { PREJAIL_SCRIPT, groupName, prepareJail, userIds } from './prejail.ts';
import { virtiofsdGuard, virtiofsdOptions } from './virtiofsd.ts';
import {
  checkGuard,
  DEFAULT_PASST,
  DEFAULT_PASST_GUARD,
  findPasst,
  guardLoaded,
  outboundInterface,
  passtPidFile,
  passtWords,
  startPasst,
  type StartedPasst,
  type UserNic,
} from './passt.ts';

const CONSOLE_KEEP = 64 * 1024;

const isRoot = (): boolean => (process.geteuid?.() ?? 0) === 0;
const EXIT_POLL_MS = 250;

/** A running micro-VM. */
export class MicroVm implements Vm {
  /** The byte stream to boson-init (virtio-serial port boson.ctl). */
  readonly channel: Duplex;
  /** Resolves when the QEMU process has exited (never rejects). */
  readonly exited: Promise<VmExit>;
  readonly pid: number;
  /** The runtime directory of a detached VM (moved by relocate()). */
  runtimeDir: string | undefined;
  private readonly qmp: QmpClient;
  private consoleText = '';
  /** What a piped (non-detached) QEMU printed, read from the moment it was spawned. */
  private readonly piped: PipedOutput | undefined;
  private exitInfo: VmExit | undefined;
  private readonly killProcess: () => void;
  /** Its cgroup directories (released when it ends). */
  private cgroup: VmCgroup | null;
  /** Host processes that live exactly as long as QEMU (its passt): one ending stops the VM; the VM ending stops them. */
  private readonly companions: Companion[];

  /** @internal use launchMicroVm or attachMicroVm */
  constructor(parts: {
    pid: number;
    channel: Duplex;
    qmp: Duplex;
    proc?: ChildProcess;
    piped?: PipedOutput;
    runtimeDir?: string;
    debug: boolean;
    cgroup?: VmCgroup | null;
    companions?: Companion[];
  }) {
    this.pid = parts.pid;
    this.runtimeDir = parts.runtimeDir;
    this.cgroup = parts.cgroup ?? null;
    this.companions = parts.companions ?? [];
    this.channel = parts.channel;
    this.qmp = new QmpClient(parts.qmp);
    // A closed peer must never crash Boson; the exit promise reports what happened.
    for (const s of [this.channel, parts.qmp]) s.on('error', () => undefined);
    const proc = parts.proc;
    this.piped = parts.piped;
    this.killProcess = () => {
      if (proc) proc.kill('SIGKILL');
      else {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    this.exited = new Promise((resolve) => {
      const done = (exit: VmExit): void => {
        if (this.exitInfo) return;
        this.exitInfo = exit;
        parts.qmp.destroy();
        // Its passt quits by itself once QEMU's end of their socket closes; one that has not is stopped here.
        this.stopCompanions();
        // Its cgroup goes with it (a daemon that re-attached found it in the runtime directory; relocate() may
        // have renamed it).
        if (this.cgroup)
          void release(this.cgroup)
            .catch(() => undefined)
            .finally(() => resolve(exit));
        else resolve(exit);
      };
      if (proc) {
        // It may have ended already, while it was being confined (its 'exit' event then came before this listener).
        // What it printed is read before its end is reported (the pipes can still hold its last words).
        const ended = (code: number | null, signal: NodeJS.Signals | null): void => {
          const pipes = parts.piped ? [proc.stdout, proc.stderr] : [];
          void Promise.all(pipes.map((p) => p && drained(p, 1000))).then(() => done({ code, signal }));
        };
        if (proc.exitCode !== null || proc.signalCode !== null) ended(proc.exitCode, proc.signalCode);
        else proc.once('exit', ended);
      } else {
        // Not our child (re-attached after a daemon restart): watch the pid.
        const timer = setInterval(() => {
          if (!processAlive(this.pid, parts.runtimeDir)) {
            clearInterval(timer);
            done({ code: null, signal: null });
          }
        }, EXIT_POLL_MS);
        timer.unref();
      }
    });
    this.watchCompanions();
  }

  /** Stops the VM when one of its companions ends first (a VM whose passt is gone has lost its network). */
  private watchCompanions(): void {
    if (this.companions.length === 0) return;
    const ended = (c: Companion): void => {
      if (this.hasExited || c.ended) return;
      c.ended = true;
      // A passt ends by itself when QEMU closes their socket, i.e. also when the VM is ending anyway: QEMU is given
      // a moment to go by itself before it is stopped.
      setTimeout(() => {
        if (this.hasExited) return;
        const note = `boson: ${c.name} (pid ${c.pid}) ended while its micro-VM ran; stopping the micro-VM\n`;
        if (this.runtimeDir !== undefined) {
          try {
            appendFileSync(path.join(this.runtimeDir, RUNTIME_FILES.qemuLog), note);
          } catch {
            // the directory is gone: the VM is being removed anyway
          }
        }
        this.killProcess();
      }, COMPANION_GRACE_MS).unref();
    };
    for (const c of this.companions) {
      if (!c.proc) continue;
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) ended(c);
      else c.proc.once('exit', () => ended(c));
    }
    const polled = this.companions.filter((c) => !c.proc);
    if (polled.length === 0) return;
    const timer = setInterval(() => {
      if (this.hasExited) return clearInterval(timer);
      for (const c of polled) if (!processAlive(c.pid, this.runtimeDir)) ended(c);
    }, EXIT_POLL_MS);
    timer.unref();
  }

  /** Kills the companions that are still running (after QEMU ended). */
  private stopCompanions(): void {
    for (const c of this.companions) {
      if (c.ended) continue;
      c.ended = true;
      if (c.proc) {
        if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      } else if (processAlive(c.pid, this.runtimeDir)) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
  }

  /** True once QEMU has exited. */
  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /**
   * The last lines the guest kernel printed on its serial console. A detached VM's console is a ring in QEMU
   * (CONSOLE_CHARDEV): what is read from it is kept here (reading empties the ring), so once QEMU is gone this is
   * what the last read found.
   */
  async consoleTail(lines = 12): Promise<string> {
    if (this.runtimeDir !== undefined && !this.hasExited) {
      const read = this.qmp.ready.then(() =>
        this.qmp.execute('ringbuf-read', { device: CONSOLE_CHARDEV, size: CONSOLE_RING_BYTES, format: 'utf8' }),
      );
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 2000)));
      const got = await Promise.race([read.catch(() => null), timeout]);
      clearTimeout(timer);
      if (typeof got === 'string') this.consoleText = keepTail(this.consoleText + got);
      // A VM started before the ring (its console is a file in the runtime directory).
      else if (got === null) this.consoleText = readTailSync(path.join(this.runtimeDir, RUNTIME_FILES.console)) || this.consoleText;
    }
    return (this.piped?.console ?? this.consoleText).replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** What QEMU itself printed on stderr. */
  get qemuStderr(): string {
    if (this.runtimeDir !== undefined) return readTailSync(path.join(this.runtimeDir, RUNTIME_FILES.qemuLog)).trim();
    return (this.piped?.stderr ?? '').trim();
  }

  /** Asks QEMU to quit through QMP (disks flushed); falls back to kill() after `graceMs`. */
  async shutdown(graceMs = 2000): Promise<VmExit> {
    if (this.hasExited) return this.exitInfo!;
    this.qmp.ready.then(() => this.qmp.execute('quit')).catch(() => undefined);
    const timer = setTimeout(() => this.killProcess(), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Kills QEMU at once (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<VmExit> {
    if (!this.hasExited) this.killProcess();
    // A re-attached VM's end is seen by a polling timer that does not hold the event loop (unref): held here, or a
    // process with nothing else to wait for (a daemon settling VMs at start-up) would end with the await unsettled.
    const hold = setInterval(() => undefined, 1000);
    try {
      return await this.exited;
    } finally {
      clearInterval(hold);
    }
  }

  /** Closes this process's connections to the VM without stopping it (a detached VM keeps running). */
  detach(): void {
    this.channel.destroy();
    this.qmp.close();
  }

  /**
   * Calls `handler` each time QEMU pauses the VM because a disk write found the host's filesystem full. The VM
   * keeps the write and waits (disks are opened with werror=enospc), so nothing the guest wrote is lost; resume()
   * retries it once there is space.
   */
  onHostDiskFull(handler: () => void): void {
    this.qmp.onEvent((event, data) => {
      const d = (data ?? {}) as { nospace?: boolean; action?: string };
      if (event === 'BLOCK_IO_ERROR' && d.nospace === true && d.action === 'stop') handler();
    });
  }

  /** True if QEMU holds the VM paused on a disk error (a full host disk, see onHostDiskFull). */
  async pausedOnDiskError(): Promise<boolean> {
    return (await this.status()) === 'io-error';
  }

  /** Pauses the guest's vCPUs (QMP stop): a warm VM waiting for its container costs no CPU meanwhile. */
  async pause(): Promise<void> {
    await this.qmp.ready;
    await this.qmp.execute('stop');
  }

  /**
   * Moves a detached VM's runtime directory to `dir` (a rename on one filesystem: QEMU's listening sockets, its
   * chroot and open files go with it) and notes where it started (ORIGIN_FILE), because QEMU's command line keeps
   * naming the old path: re-attaching checks the process against either. Its cgroup is renamed to `cgroupName`
   * when given. For a VM booted ahead of its container.
   */
  async relocate(dir: string, cgroupName?: string): Promise<void> {
    const from = this.runtimeDir;
    if (from === undefined) throw new BosonError('INTERNAL', 'only a detached micro-VM has a runtime directory to move');
    if (from === dir) return;
    const origin = await readFile(path.join(from, ORIGIN_FILE), 'utf8').catch(() => from);
    await rm(dir, { recursive: true, force: true });
    await rename(from, dir);
    this.runtimeDir = dir;
    await writeFile(path.join(dir, ORIGIN_FILE), origin);
    // Its cgroup is renamed too (cgroup directories can be renamed within their parent), so that a container's
    // cgroup is named after it whichever VM it got.
    if (cgroupName !== undefined && this.cgroup) {
      const dirs: string[] = [];
      for (const d of this.cgroup.dirs) {
        const to = path.join(path.dirname(d), cgroupName);
        await rename(d, to).then(
          () => dirs.push(to),
          () => dirs.push(d),
        );
      }
      this.cgroup = { dirs };
      await writeFile(path.join(dir, CGROUP_FILE), JSON.stringify(this.cgroup));
    }
  }

  /** Resumes a VM that QEMU paused on a disk error; the failed write is retried (and pauses it again if it fails again). */
  async resume(): Promise<void> {
    await this.qmp.ready;
    await this.qmp.execute('cont');
  }

  /** Pauses the VM (QMP stop: once it returns no vCPU runs, so no device of the guest is written to). */
  async suspend(): Promise<void> {
    await this.qmp.ready;
    await this.qmp.execute('stop');
  }

  /**
   * Stops the VM and streams its whole state into `file` (migration.ts); QEMU flushes the disks when the migration
   * completes. The VM stays stopped (the caller ends it, or resume()s it when the save failed).
   */
  async saveState(file: string): Promise<MigrationResult> {
    if (this.runtimeDir === undefined) throw new BosonError('INTERNAL', 'only a detached micro-VM can be saved');
    await this.qmp.ready;
    await this.qmp.execute('stop');
    // All of it: a template's clone was filled with x-ignore-shared on, which its QEMU keeps; the stream would carry
    // it, and a plain VM refuses a stream that says so ("Capability x-ignore-shared is off, but received capability
    // is on"). A clone's RAM is private, so it was never skipped.
    await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: false }] });
    return saveState(this.qmp, this.pid, this.runtimeDir, file);
  }

  /** Loads a state saveState() wrote into this VM, launched with `incoming`; it stays paused until resume(). */
  async loadState(file: string): Promise<MigrationResult> {
    if (this.runtimeDir === undefined) throw new BosonError('INTERNAL', 'only a detached micro-VM can be restored');
    await this.qmp.ready;
    return loadState(this.qmp, this.pid, this.runtimeDir, file);
  }

  /**
   * Saves a paused template VM's device state to `file`; its RAM stays in its shared RAM file (x-ignore-shared). The
   * stream goes over a socket in the runtime directory (migration.ts). The VM stays paused.
   */
  async saveTemplate(file: string): Promise<void> {
    if (this.runtimeDir === undefined) throw new BosonError('INTERNAL', 'only a detached micro-VM can be a template');
    await this.qmp.ready;
    await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    await saveState(this.qmp, this.pid, this.runtimeDir, file, { timeoutMs: 30_000 });
  }

  /**
   * Loads a template's device state from `file` into this VM (launched `incoming`, its RAM the template's file mapped
   * privately) and continues it.
   */
  async restoreClone(file: string): Promise<void> {
    if (this.runtimeDir === undefined) throw new BosonError('INTERNAL', 'only a detached micro-VM can be a clone');
    await this.qmp.ready;
    await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    await loadState(this.qmp, this.pid, this.runtimeDir, file, { timeoutMs: 30_000 });
    // QEMU takes the disks' locks when a loaded VM continues; a first `cont` has been seen to fail with 'Failed to
    // get shared "write" lock' now and then and a later one to work (suspend's resume retries likewise).
    for (let attempt = 1; ; attempt++) {
      try {
        await this.qmp.execute('cont');
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  /** QEMU's view of the VM's run state (e.g. "running", "shutdown"). */
  async status(): Promise<string> {
    await this.qmp.ready;
    const ret = (await this.qmp.execute('query-status')) as { status?: string };
    return ret.status ?? 'unknown';
  }
}

/** How long QEMU may outlive its passt before it is stopped (it is usually ending already). */
const COMPANION_GRACE_MS = 1000;

/** A host process bound to one VM's life (its passt): ours (`proc`) or found again by its pid file. */
interface Companion {
  pid: number;
  name: string;
  proc?: ChildProcess;
  ended?: boolean;
}

/** The last CONSOLE_KEEP characters of `text`. */
function keepTail(text: string): string {
  return text.length > CONSOLE_KEEP ? text.slice(-CONSOLE_KEEP) : text;
}

/** The last CONSOLE_KEEP bytes of a file, or "" if it cannot be read. */
function readTailSync(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const { size } = fstatSync(fd);
      const buf = Buffer.alloc(Math.min(size, CONSOLE_KEEP));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/**
 * In a relocated VM's runtime directory: the directory QEMU was started in (its command line names that one). The
 * orphan sweep of the machine layer reads it too.
 */
export const ORIGIN_FILE = 'origin';

/**
 * True if `pid` is alive and, when `runtimeDir` is given, is the QEMU of that directory (not a reused pid): its
 * command line names the directory, or the one it was started in (ORIGIN_FILE, for a relocated VM).
 */
function processAlive(pid: number, runtimeDir: string | undefined): boolean {
  if (!pidAlive(pid)) return false;
  if (runtimeDir === undefined) return true;
  try {
    // Synchronous on purpose: tiny /proc and tmpfs reads inside a timer.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes(runtimeDir)) return true;
    let origin = '';
    try {
      origin = readFileSync(path.join(runtimeDir, ORIGIN_FILE), 'utf8').trim();
    } catch {
      return false;
    }
    return origin !== '' && cmdline.includes(origin);
  } catch {
    return false;
  }
}

async function connectUnix(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const sock = net.connect(socketPath);
        sock.once('connect', () => {
          sock.off('error', reject);
          resolve(sock);
        });
        sock.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Where a detached VM's cgroup directories are noted, so that whoever sees it end removes them. */
const CGROUP_FILE = 'cgroup.json';

/**
 * Moves a just-started QEMU into its cgroup (before the guest runs: QEMU is still setting up). A VM that cannot be
 * confined as asked is not left running unconfined: it is killed and the error says why.
 */
async function confineOrKill(config: MicroVmConfig, proc: ChildProcess): Promise<VmCgroup | null> {
  const want = config.jail?.cgroup;
  if (!want) return null;
  try {
    return await confine(cgroupMode(want.parent), want.name, proc.pid!, want);
  } catch (cause) {
    proc.kill('SIGKILL');
    throw new BosonError('TOOL_FAILED', `cannot put QEMU into its cgroup: ${(cause as Error).message}`, { cause });
  }
}

/** How this host runs QEMU: the settings the composition root reads (BOSON_QEMU, BOSON_ACCEL, ...) and hands down. */
export interface QemuOptions {
  /** The QEMU binary (BOSON_QEMU); default qemu-system-x86_64 on PATH. */
  qemu?: string;
  /** 'kvm' or 'tcg' forces the accelerator (BOSON_ACCEL); default probed. */
  accel?: string;
  /** TCG's translation cache per VM, MiB (BOSON_TCG_TB_MIB); default 16. */
  tcgTbMiB?: number;
  /** The virtiofsd that serves bind mounts (BOSON_VIRTIOFSD); default /usr/lib/qemu/virtiofsd. */
  virtiofsd?: string;
  /** The seccomp wrapper every virtiofsd runs under (virtiofsd.ts); default build/host/virtiofsd-guard. */
  virtiofsdGuard?: string;
  /** The passt that gives rootless VMs their network (BOSON_PASST); default /usr/bin/passt. */
  passt?: string;
  /** The loopback guard preloaded into passt (passt-guard.c, built by setup into build/host/passt-guard.so). */
  passtGuard?: string;
}

/** How long a started passt has to show that its loopback guard is loaded. */
const GUARD_WAIT_MS = 5000;

/** Starts QEMU for `config`. The VM runs until the guest powers off or shutdown()/kill() is called. */
export async function launchMicroVm(config: MicroVmConfig, options: QemuOptions = {}): Promise<MicroVm> {
  const qemu = await findQemu(options.qemu);
  const accel = await probeAccelerator(options.accel);
  const tsc = accel.accel === 'tcg' ? await hostTscKhz() : undefined;
  // User-mode NICs get a passt each (never slirp): a missing passt is an error, not a fall-back.
  const userNics = (config.nics ?? []).flatMap((nic, i) => (nic.kind === 'user' ? [{ i, nic }] : []));
  const passtBin = userNics.length > 0 ? findPasst(options.passt ?? DEFAULT_PASST) : '';
  const guard = userNics.length > 0 ? checkGuard(options.passtGuard ?? DEFAULT_PASST_GUARD) : '';
  const outboundIf = userNics.length > 0 ? outboundInterface() : '';
  const diskFds = new Map<number, number>();
  const extraFds: number[] = [];
  config.disks.forEach((disk, i) => {
    if (disk.fd !== undefined) {
      diskFds.set(i, FIRST_DISK_FD + diskFds.size);
      extraFds.push(disk.fd);
    }
  });
  // A daemon's jailed QEMU (root, a user to drop to, a chroot, a QEMU under /usr) starts inside its pre-exec jail:
  // disks and the log become inherited descriptors from fd 3 on (prejail.ts).
  const ids = config.jail?.user ? userIds(config.jail.user) : null;
  const pre =
    config.runtimeDir !== undefined && ids && config.jail?.chroot && config.jail.sandbox && qemu.startsWith('/usr/') && isRoot()
      ? { ids, fds: [] as number[], layout: { diskFds: new Map<number, number>() } as PreJailLayout }
      : undefined;
  if (pre) {
    try {
      config.disks.forEach((disk, i) => {
        if (disk.path === undefined) return;
        // QEMU opens a disk read-only first (probing) and a writable one read-write then: the set holds both.
        pre.layout.diskFds.set(i, 3 + pre.fds.length);
        pre.fds.push(openSync(disk.path, 'r'));
        if (!disk.readOnly) pre.fds.push(openSync(disk.path, 'r+'));
      });
      if (config.logFile !== undefined) {
        pre.layout.logFd = 3 + pre.fds.length;
        pre.fds.push(openSync(config.logFile, 'a', 0o600));
      }
    } catch (err) {
      for (const fd of pre.fds) closeSync(fd);
      throw new BosonError('TOOL_FAILED', `cannot open the micro-VM's files: ${(err as Error).message}`, { cause: err });
    }
  }
  // A template's RAM file is made here, for the user QEMU runs as (it opens the file read-write, clones too).
  if (config.ram?.shared) {
    await writeFile(config.ram.path, '', { mode: 0o600 });
    if (pre) await chown(config.ram.path, pre.ids.uid, pre.ids.gid);
  }
  // QEMU's sockets to its passts follow its other inherited descriptors.
  const firstNicFd = config.runtimeDir === undefined ? FIRST_DISK_FD + extraFds.length : 3 + (pre?.fds.length ?? 0);
  const nicFds = new Map(userNics.map(({ i }, k) => [i, firstNicFd + k]));
  const argv = buildQemuArgv(config, accel.accel, tsc, diskFds, options.tcgTbMiB, pre?.layout, nicFds);
  // Started right before QEMU, in the same tick as its spawn (see startPasst); their ends are QEMU's from then on.
  const startPassts = (rt: string | undefined, logFd: number | undefined): StartedPasst[] => {
    const started: StartedPasst[] = [];
    try {
      for (const { nic } of userNics) started.push(startPasst(passtBin, guard, nic as UserNic, outboundIf, rt, logFd));
    } catch (err) {
      for (const p of started) p.proc.kill('SIGKILL');
      throw err;
    }
    return started;
  };
  const handOver = (passts: StartedPasst[]): void => {
    for (const p of passts) p.tap.destroy();
  };
  // A jailed QEMU gets a mount namespace of its own (unshare execs it: same pid). Slave, not private: the host's
  // unmounts reach it, so it never keeps a host filesystem busy (a private copy made rmdir of a mount point EBUSY).
  let command = config.jail && isRoot() ? ['unshare', '--mount', '--propagation', 'slave', '--', qemu, ...argv] : [qemu, ...argv];
  if (pre) {
    const tap = (config.nics ?? []).some((n) => n.kind === 'tap');
    const binds = await prepareJail(config.runtimeDir!, pre.ids, tap, config.ram !== undefined);
    command = [
      'unshare',
      '--mount',
      '--propagation',
      'slave',
      '--',
      'sh',
      '-c',
      PREJAIL_SCRIPT,
      'sh',
      config.runtimeDir!,
      config.kernel,
      config.initramfs,
      String(pre.ids.uid),
      String(pre.ids.gid),
      config.ram?.path ?? '',
      ...binds,
      '--',
      qemu,
      ...argv,
    ];
  }
  // A NIC whose tap lives in another network namespace (a pod's): QEMU runs in that namespace to open it.
  const netns = (config.nics ?? []).find((n) => n.kind === 'tap' && n.netns !== undefined);
  if (netns?.kind === 'tap') command = ['nsenter', `--net=${netns.netns}`, '--', ...command];
  const rt = config.runtimeDir;
  if (rt === undefined) {
    // An attached VM's passt dies with it too (their socket closes when QEMU dies with this process).
    const passts = startPassts(undefined, undefined);
    const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...command], {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', ...extraFds, ...passts.map((p) => p.tap)],
    });
    handOver(passts);
    // Read from now on: Node discards a child's unread output when it exits, and QEMU can exit at once.
    const piped = new PipedOutput(proc, config.debug ?? false);
    await spawned(proc).catch((err: unknown) => {
      for (const p of passts) p.proc.kill('SIGKILL');
      throw err;
    });
    for (const p of passts) p.proc.unref();
    const cgroup = await confineOrKill(config, proc);
    if (passts.length > 0 && !(await passtsGuarded(passts, async () => passts.map((p) => p.printed()).join('')))) {
      proc.kill('SIGKILL');
      for (const p of passts) p.proc.kill('SIGKILL');
      throw new BosonError(
        'PASST_FAILED',
        `passt, the micro-VM's network, did not start with its loopback guard: ${passtWords(passts.map((p) => p.printed()).join('')) || '(it printed nothing)'}`,
      );
    }
    return new MicroVm({
      pid: proc.pid!,
      channel: proc.stdio[3] as Duplex,
      qmp: proc.stdio[4] as Duplex,
      proc,
      piped,
      debug: config.debug ?? false,
      cgroup,
      companions: passts.map((p) => ({ pid: p.proc.pid!, name: 'passt', proc: p.proc })),
    });
  }
  if (extraFds.length > 0) throw new BosonError('INTERNAL', 'a detached micro-VM cannot take disks as file descriptors');
  const logFd = openSync(path.join(rt, RUNTIME_FILES.qemuLog), 'a');
  // A QEMU in its pre-exec jail connects to virtiofsd as the VMM user: the socket is its group's.
  const vmmGroup = pre && config.jail?.user ? groupName(pre.ids.gid) : undefined;
  const socketGroup = vmmGroup ? [`--socket-group=${vmmGroup}`] : [];
  let proc: ChildProcess;
  const daemons: ChildProcess[] = [];
  let passts: StartedPasst[] = [];
  try {
    // One virtiofsd per virtiofs share; each serves one QEMU and exits when that QEMU goes.
    for (const [i, share] of (config.shares ?? []).entries()) {
      if (share.transport !== 'virtiofs') continue;
      const sock = virtiofsSocket(rt, i);
      const virtiofsd = options.virtiofsd ?? '/usr/lib/qemu/virtiofsd';
      // Every virtiofsd runs under the guard (virtiofsd.ts): no set-ID file, no device node on the host.
      const guard = virtiofsdGuard(options.virtiofsdGuard);
      let d: ChildProcess;
      if (share.readOnly) {
        // Read-only for real, not only by the guest's mount flag: virtiofsd runs in a private mount namespace over
        // a read-only bind of the source, which exists only there and goes with it.
        const view = path.join(rt, `vfs${i}.ro`);
        await mkdir(view, { recursive: true });
        const script =
          's=$1 v=$2 g=$3 b=$4 k=$5; shift 5; mount --bind "$s" "$v" && mount -o remount,bind,ro "$v" && exec "$g" "$b" --socket-path="$k" "$@"';
        d = spawn(
          'unshare',
          [
            '--mount',
            '--propagation',
            'slave',
            'sh',
            '-c',
            script,
            'sh',
            share.path,
            view,
            guard,
            virtiofsd,
            sock,
            ...socketGroup,
            ...virtiofsdOptions(view),
          ],
          {
            stdio: ['ignore', logFd, logFd],
            detached: true,
          },
        );
      } else {
        d = spawn(guard, [virtiofsd, ...socketGroup, `--socket-path=${sock}`, ...virtiofsdOptions(share.path)], {
          stdio: ['ignore', logFd, logFd],
          detached: true,
        });
      }
      await spawned(d).catch((cause: unknown) => {
        throw new BosonError('TOOL_FAILED', `cannot start virtiofsd for ${share.path}: ${(cause as Error).message}`, { cause });
      });
      d.unref();
      daemons.push(d);
      await waitForFile(sock, 5000, `virtiofsd for ${share.path}`);
    }
    passts = startPassts(rt, logFd);
    proc = spawn(command[0]!, command.slice(1), {
      stdio: ['ignore', logFd, logFd, ...(pre?.fds ?? []), ...passts.map((p) => p.tap)],
      detached: true,
    });
    handOver(passts);
    await spawned(proc);
  } catch (err) {
    for (const d of daemons) d.kill('SIGKILL');
    for (const p of passts) p.proc.kill('SIGKILL');
    throw err;
  } finally {
    closeSync(logFd);
    for (const fd of pre?.fds ?? []) closeSync(fd);
  }
  proc.unref();
  // A passt that could not start (a port taken since it was checked, a bad option) says so within milliseconds.
  const passtEnded = (): boolean => passts.some((p) => p.proc.exitCode !== null || p.proc.signalCode !== null);
  const readLog = (): Promise<string> => readFile(path.join(rt, RUNTIME_FILES.qemuLog), 'utf8').catch(() => '');
  const passtFailure = async (why = 'did not start'): Promise<BosonError> => {
    for (const p of passts) p.proc.kill('SIGKILL');
    return new BosonError(
      'PASST_FAILED',
      `passt, the micro-VM's network, ${why}: ${passtWords(await readLog()) || '(it printed nothing)'}`,
    );
  };
  const guarded = (): Promise<boolean> => passtsGuarded(passts, readLog);
  for (const [k, p] of passts.entries()) {
    p.proc.unref();
    await writeFile(passtPidFile(rt, userNics[k]!.i), `${p.proc.pid}\n`);
  }
  const companions = passts.map((p) => ({ pid: p.proc.pid!, name: 'passt', proc: p.proc }));
  const cgroup = await confineOrKill(config, proc);
  if (cgroup) await writeFile(path.join(rt, CGROUP_FILE), JSON.stringify(cgroup));
  try {
    const [channel, qmp] = await Promise.all([
      connectUnix(path.join(rt, RUNTIME_FILES.control), 10_000),
      connectUnix(path.join(rt, RUNTIME_FILES.qmp), 10_000),
    ]);
    if (passtEnded() || !(await guarded())) {
      proc.kill('SIGKILL');
      channel.destroy();
      qmp.destroy();
      throw await passtFailure(passtEnded() ? 'did not start' : 'runs without its loopback guard (it was not loaded)');
    }
    return new MicroVm({ pid: proc.pid!, channel, qmp, proc, runtimeDir: rt, debug: config.debug ?? false, cgroup, companions });
  } catch (cause) {
    if (isBosonError(cause, 'PASST_FAILED')) throw cause;
    proc.kill('SIGKILL');
    if (passtEnded()) throw await passtFailure();
    for (const p of passts) p.proc.kill('SIGKILL');
    const why = (await readFile(path.join(rt, RUNTIME_FILES.qemuLog), 'utf8').catch(() => '')).trim();
    throw new BosonError('GUEST_CRASHED', `QEMU did not open its control socket: ${why || (cause as Error).message}`, { cause });
  }
}

/**
 * True once every started passt has shown that its loopback guard is loaded (in `printed`: the log or its stderr);
 * false if one ended or GUARD_WAIT_MS passed. A passt without its guard is never used.
 */
async function passtsGuarded(passts: StartedPasst[], printed: () => Promise<string>): Promise<boolean> {
  const ended = (): boolean => passts.some((p) => p.proc.exitCode !== null || p.proc.signalCode !== null);
  const end = Date.now() + GUARD_WAIT_MS;
  while (guardLoaded(await printed()) < passts.length) {
    if (Date.now() > end || ended()) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** The passts of a detached VM that its pid files name (each is checked to be that VM's before it is trusted). */
async function passtsOf(runtimeDir: string): Promise<Companion[]> {
  const found: Companion[] = [];
  for (const name of await readdir(runtimeDir).catch(() => [] as string[])) {
    if (!/^passt\d+\.pid$/.test(name)) continue;
    const pid = Number((await readFile(path.join(runtimeDir, name), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0) found.push({ pid, name: 'passt' });
  }
  return found;
}

/**
 * Re-attaches to a detached VM started earlier (by this or a previous daemon) from its runtime directory. Returns
 * null when its QEMU is no longer running.
 */
export async function attachMicroVm(runtimeDir: string): Promise<MicroVm | null> {
  let pid: number;
  try {
    pid = Number((await readFile(path.join(runtimeDir, RUNTIME_FILES.pid), 'utf8')).trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid, runtimeDir)) return null;
  try {
    const [channel, qmp] = await Promise.all([
      connectUnix(path.join(runtimeDir, RUNTIME_FILES.control), 2000),
      connectUnix(path.join(runtimeDir, RUNTIME_FILES.qmp), 2000),
    ]);
    const cgroup = JSON.parse(await readFile(path.join(runtimeDir, CGROUP_FILE), 'utf8').catch(() => 'null')) as VmCgroup | null;
    return new MicroVm({ pid, channel, qmp, runtimeDir, debug: false, cgroup, companions: await passtsOf(runtimeDir) });
  } catch {
    // Alive but not answering on its sockets: the caller treats it as lost and may kill it by pid.
    return null;
  }
}

/** Waits until `file` exists; TOOL_FAILED naming `what` after `timeoutMs`. */
async function waitForFile(file: string, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > end) throw new BosonError('TOOL_FAILED', `${what} did not open its socket ${file}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves once `proc` has started; QEMU_MISSING if it could not be executed. */
/** The tails of a piped QEMU's console (its stdout) and of its stderr, kept as they arrive. */
class PipedOutput {
  console = '';
  stderr = '';
  constructor(proc: ChildProcess, debug: boolean) {
    proc.stdout!.on('data', (d: Buffer) => {
      this.console = keepTail(this.console + d.toString('utf8'));
      if (debug) process.stderr.write(d);
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = keepTail(this.stderr + d.toString('utf8'));
    });
  }
}

/** Resolves once a readable stream has ended or closed, or after `ms` (a pipe a grandchild still holds). */
function drained(stream: Readable, ms: number): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    const finish = (): void => {
      clearTimeout(timer);
      resolve();
    };
    stream.once('end', finish);
    stream.once('close', finish);
  });
}

function spawned(proc: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    proc.once('spawn', resolve);
    proc.once('error', (cause) => reject(new BosonError('QEMU_MISSING', `cannot start QEMU: ${cause.message}`, { cause })));
  });
}

/** Options for bootWithWatchdog. */
export interface WatchdogOptions {
  /** How long one boot may take to signal "booted". */
  timeoutMs: number;
  /** How many boots to try before giving up. */
  attempts: number;
  /** Called before each retry, with the attempt number (2, 3, ...), the console tail of the failed boot and why it failed. */
  onRetry?: (attempt: number, consoleTail: string, reason: 'hung' | 'crashed') => void;
}

/**
 * Boots a micro-VM and waits for `booted(vm)` (which resolves when the guest has signalled it is up). A boot that
 * does not signal in time is killed and retried; after `attempts` hung boots, GUEST_BOOT_TIMEOUT with the last
 * console lines. A QEMU that exits before booting is GUEST_CRASHED with its stderr, not retried (a configuration
 * fault), unless the guest itself reset the machine (QEMU exit code 0 under -no-reboot: a guest kernel panic while
 * booting, seen rarely under heavy load); that boot is retried like a hung one, its console handed to onRetry.
 */
export async function bootWithWatchdog<T, V extends Vm = MicroVm>(
  config: MicroVmConfig,
  booted: (vm: V) => Promise<T>,
  options: WatchdogOptions,
  launch: (config: MicroVmConfig) => Promise<V> = launchMicroVm as unknown as (config: MicroVmConfig) => Promise<V>,
): Promise<{ vm: V; value: T; attempts: number }> {
  let lastTail = '';
  let lastReason: 'hung' | 'crashed' = 'hung';
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) options.onRetry?.(attempt, lastTail, lastReason);
    const vm = await launch(config);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      booted(vm).then(
        (value) => ({ kind: 'booted' as const, value }),
        (error: unknown) => ({ kind: 'failed' as const, error }),
      ),
      vm.exited.then((exit) => ({ kind: 'exited' as const, exit })),
      new Promise<{ kind: 'timeout' }>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), options.timeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome.kind === 'booted') return { vm, value: outcome.value, attempts: attempt };
    // QEMU closes its chardevs (the control channel) while it shuts down, before it exits: a channel that closed
    // is given a moment to end in QEMU's own exit status (0 for a guest that crashed, which is retried), instead
    // of one our kill would give it.
    const channelClosed = outcome.kind === 'failed' && isBosonError(outcome.error, 'GUEST_CRASHED');
    if (channelClosed) await Promise.race([vm.exited, new Promise((r) => setTimeout(r, CLOSED_CHANNEL_GRACE_MS))]);
    // A detached VM's console is read from QEMU, so before it is killed.
    const hungTail = outcome.kind === 'timeout' || (channelClosed && !vm.hasExited) ? await vm.consoleTail(200) : '';
    const killedHere = !vm.hasExited;
    await vm.kill();
    // A closed control channel before boot means QEMU itself went away: report what QEMU said instead.
    if (outcome.kind === 'failed' && !isBosonError(outcome.error, 'GUEST_CRASHED')) throw outcome.error;
    if (outcome.kind !== 'timeout') {
      const exit = await vm.exited;
      const tail = hungTail || (await vm.consoleTail(200));
      // Retried like a hang: a guest that reset itself (exit 0), and a channel that closed while QEMU still ran
      // (seen under heavy load; QEMU was killed here, so its status says nothing about the guest).
      if (((exit.code === 0 && exit.signal === null) || (channelClosed && killedHere)) && attempt < options.attempts) {
        lastTail = tail;
        lastReason = 'crashed';
        continue;
      }
      const how = exit.signal ? `QEMU killed by ${exit.signal}` : `QEMU exit code ${exit.code}`;
      const why = vm.qemuStderr || tail.split('\n').slice(-4).join('\n') || '(nothing printed)';
      throw new BosonError('GUEST_CRASHED', `micro-VM exited before booting (${how}): ${why}`, { details: { console: tail, exit } });
    }
    lastTail = hungTail;
    lastReason = 'hung';
  }
  throw new BosonError(
    'GUEST_BOOT_TIMEOUT',
    `micro-VM did not boot within ${options.timeoutMs} ms in ${options.attempts} attempts; last console lines:\n${lastTail || '(none)'}`,
    { details: { attempts: options.attempts, timeoutMs: options.timeoutMs, console: lastTail } },
  );
}

/** How long a VM whose control channel closed during boot is given to exit by itself before it is killed. */
const CLOSED_CHANNEL_GRACE_MS = 2000;

/** The QEMU microvm driver as a Vmm, run with `options` (what the composition root hands the runtime). */
export function qemuVmm(options: QemuOptions = {}): Vmm {
  return {
    accelerator: async () => (await probeAccelerator(options.accel)).accel,
    launch: (config) => launchMicroVm(config, options),
    attach: (runtimeDir) => attachMicroVm(runtimeDir),
    cleanup: async (runtimeDir) => {
      const cgroup = JSON.parse(await readFile(path.join(runtimeDir, CGROUP_FILE), 'utf8').catch(() => 'null')) as VmCgroup | null;
      if (cgroup) await release(cgroup).catch(() => undefined);
      // A passt still running for a VM that is gone (it quits with its QEMU; this is the net under that).
      for (const c of await passtsOf(runtimeDir)) {
        if (!processAlive(c.pid, runtimeDir)) continue;
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    },
    releaseCgroup: async (parent, name) => {
      await releaseIfEmpty(cgroupMode(parent), name);
    },
  };
}

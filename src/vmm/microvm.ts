/**
 * Launching and supervising one QEMU microvm process.
 *
 * QEMU runs under `setpriv --pdeathsig KILL`, so it dies with the Boson process that started it, whatever way that
 * process ends (Ctrl-C, a crash, kill -9). Its control channel and QMP are socketpairs inherited as fds 3 and 4, and
 * disks may be inherited open files (an unlinked scratch disk): a dead run leaves no socket or file behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { BosonError, isBosonError } from '../common/index.ts';
import { buildQemuArgv, FIRST_DISK_FD } from './argv.ts';
import { probeAccelerator, hostTscKhz, type AcceleratorChoice } from './accel.ts';
import { findQemu } from './qemu-binary.ts';
import { QmpClient } from './qmp.ts';
import type { MicroVmConfig, VmExit } from './types.ts';

const CONSOLE_KEEP = 64 * 1024;

/** A running micro-VM. */
export class MicroVm {
  /** The byte stream to boson-init (virtio-serial port boson.ctl). */
  readonly channel: Duplex;
  /** Resolves when the QEMU process has exited (never rejects). */
  readonly exited: Promise<VmExit>;
  readonly pid: number;
  readonly accel: AcceleratorChoice;
  private readonly qmp: QmpClient;
  private consoleText = '';
  private stderrText = '';
  private exitInfo: VmExit | undefined;

  /** @internal use launchMicroVm */
  constructor(private readonly proc: ChildProcess, accel: AcceleratorChoice, debug: boolean) {
    this.pid = proc.pid!;
    this.accel = accel;
    this.channel = proc.stdio[3] as Duplex;
    this.qmp = new QmpClient(proc.stdio[4] as Duplex);
    const keep = (text: string): string => (text.length > CONSOLE_KEEP ? text.slice(-CONSOLE_KEEP) : text);
    proc.stdout!.on('data', (d: Buffer) => {
      this.consoleText = keep(this.consoleText + d.toString('utf8'));
      if (debug) process.stderr.write(d);
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderrText = keep(this.stderrText + d.toString('utf8'));
    });
    // A closed peer must never crash Boson; the exit promise reports what happened.
    for (const s of [this.channel, proc.stdio[4] as Duplex]) s.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** True once QEMU has exited. */
  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The last lines the guest kernel printed on its serial console. */
  consoleTail(lines = 12): string {
    return this.consoleText.replace(/\r/g, '').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** What QEMU itself printed on stderr. */
  get qemuStderr(): string {
    return this.stderrText.trim();
  }

  /** Asks QEMU to quit through QMP (disks flushed); falls back to kill() after `graceMs`. */
  async shutdown(graceMs = 2000): Promise<VmExit> {
    if (this.hasExited) return this.exitInfo!;
    this.qmp.ready.then(() => this.qmp.execute('quit')).catch(() => undefined);
    const timer = setTimeout(() => this.kill(), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Kills QEMU at once (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<VmExit> {
    if (!this.hasExited) this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** QEMU's view of the VM's run state (e.g. "running", "shutdown"). */
  async status(): Promise<string> {
    await this.qmp.ready;
    const ret = (await this.qmp.execute('query-status')) as { status?: string };
    return ret.status ?? 'unknown';
  }
}

/** Starts QEMU for `config`. The VM runs until the guest powers off or shutdown()/kill() is called. */
export async function launchMicroVm(config: MicroVmConfig): Promise<MicroVm> {
  const qemu = await findQemu();
  const accel = await probeAccelerator();
  const tsc = accel.accel === 'tcg' ? await hostTscKhz() : undefined;
  const diskFds = new Map<number, number>();
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'];
  config.disks.forEach((disk, i) => {
    if (disk.fd !== undefined) {
      diskFds.set(i, FIRST_DISK_FD + diskFds.size);
      stdio.push(disk.fd);
    }
  });
  const argv = buildQemuArgv(config, accel.accel, tsc, diskFds);
  const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', qemu, ...argv], { stdio });
  await new Promise<void>((resolve, reject) => {
    proc.once('spawn', resolve);
    proc.once('error', (cause) => reject(new BosonError('QEMU_MISSING', `cannot start QEMU: ${cause.message}`, { cause })));
  });
  return new MicroVm(proc, accel, config.debug ?? false);
}

/** Options for bootWithWatchdog. */
export interface WatchdogOptions {
  /** How long one boot may take to signal "booted". */
  timeoutMs: number;
  /** How many boots to try before giving up. */
  attempts: number;
  /** Called before each retry, with the attempt number (2, 3, ...) and the console tail of the hung boot. */
  onRetry?: (attempt: number, consoleTail: string) => void;
}

/**
 * Boots a micro-VM and waits for `booted(vm)` (which resolves when the guest has signalled it is up). A boot that
 * does not signal in time is killed and retried; after `attempts` hung boots, GUEST_BOOT_TIMEOUT with the last
 * console lines. A QEMU that exits before booting is GUEST_CRASHED with its stderr (not retried: that is a
 * configuration fault, not a flaky boot).
 */
export async function bootWithWatchdog<T>(config: MicroVmConfig, booted: (vm: MicroVm) => Promise<T>, options: WatchdogOptions): Promise<{ vm: MicroVm; value: T; attempts: number }> {
  let lastTail = '';
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) options.onRetry?.(attempt, lastTail);
    const vm = await launchMicroVm(config);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      booted(vm).then((value) => ({ kind: 'booted' as const, value }), (error: unknown) => ({ kind: 'failed' as const, error })),
      vm.exited.then((exit) => ({ kind: 'exited' as const, exit })),
      new Promise<{ kind: 'timeout' }>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), options.timeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome.kind === 'booted') return { vm, value: outcome.value, attempts: attempt };
    await vm.kill();
    // A closed control channel before boot means QEMU itself went away: report what QEMU said instead.
    if (outcome.kind === 'failed' && !isBosonError(outcome.error, 'GUEST_CRASHED')) throw outcome.error;
    if (outcome.kind !== 'timeout') {
      const exit = await vm.exited;
      const why = vm.qemuStderr || vm.consoleTail() || `exit code ${exit.code ?? exit.signal}`;
      throw new BosonError('GUEST_CRASHED', `micro-VM exited before booting: ${why}`, { details: { console: vm.consoleTail() } });
    }
    lastTail = vm.consoleTail();
  }
  throw new BosonError(
    'GUEST_BOOT_TIMEOUT',
    `micro-VM did not boot within ${options.timeoutMs} ms in ${options.attempts} attempts; last console lines:\n${lastTail || '(none)'}`,
    { details: { attempts: options.attempts, timeoutMs: options.timeoutMs, console: lastTail } },
  );
}

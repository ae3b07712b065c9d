/**
 * Running one container in its own micro-VM, from image reference to exit status: resolve the image and its root
 * disk, claim a name, make the writable layer, boot the VM under a watchdog, hand boson-init the spec, stream the
 * process's I/O, and clean everything up however it ends.
 */
import os from 'node:os';
import path from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { BosonError, isBosonError, type BosonPaths } from '../common/index.ts';
import type { Hello } from '../guest/index.ts';
import { bootBundle } from './boot-bundle.ts';
import { bootWithWatchdog, probeAccelerator, type MicroVm, type DiskSpec } from '../vmm/index.ts';
import { DiskFullGuard } from './disk-full.ts';
import { ImageStore } from '../image/index.ts';
import { resolveProcessConfig, type ContainerRequest } from './container-config.ts';
import { ContainerRegistry, newContainerId, type ContainerRecord } from './containers.ts';
import { GuestSession, type ProcessExit, type SessionOutput } from './guest-session.ts';
import { randomContainerName } from './names.ts';
import { createEphemeralScratchDisk, createScratchDisk } from './scratch.ts';

/** A request to run a container. */
export interface RunRequest extends ContainerRequest {
  image: string;
  name?: string;
  autoRemove: boolean;
  tty: boolean;
  /** Keep stdin open (data comes through RunningContainer.writeStdin). */
  interactive: boolean;
  memoryMiB?: number;
  cpus?: number;
  winsize?: { rows: number; cols: number };
  /** Size of the writable layer's disk in bytes (sparse; default 8 GiB). */
  diskSizeBytes?: number;
}

/** Progress callbacks for long steps. */
export interface RunHooks {
  onStep?: (step: string) => void;
  onRetry?: (attempt: number, consoleTail: string) => void;
  /** Something the user should know that did not stop the run (e.g. a pull skipped an extended attribute). */
  onWarning?: (text: string) => void;
}

/** Where the time of a run went, in milliseconds since the run began. */
export interface RunTimings {
  /** Process uptime when the run began (Node start-up and loading the CLI). */
  startup: number;
  prepared: number;
  launched: number;
  booted: number;
  guestBootMs: number;
  attempts: number;
  /** When the guest reported the process's exit (set once it has). */
  exited?: number;
  /** When QEMU was gone (set once it is). */
  stopped?: number;
}

/** Default memory of a micro-VM, in MiB. */
export const DEFAULT_MEMORY_MIB = 256;

/** A container whose VM has booted and whose process has been started. */
export interface RunningContainer {
  record: ContainerRecord;
  session: GuestSession;
  vm: MicroVm;
  timings: RunTimings;
  /** Resolves with the exit once the VM is gone and the record is final; rejects with a typed error. */
  exit: Promise<ProcessExit>;
  /** Stops the container: SIGTERM, then after `graceMs` the VM is killed (exit 137). */
  stop(graceMs: number): Promise<void>;
}

function bootTimeoutMs(accel: 'kvm' | 'tcg'): number {
  const fromEnv = Number(process.env.BOSON_BOOT_TIMEOUT_MS);
  if (Number.isFinite(fromEnv) && fromEnv > 0) return fromEnv;
  return accel === 'kvm' ? 5000 : 15000;
}

/** Runs containers on this host. */
export class ContainerRunner {
  readonly registry: ContainerRegistry;
  readonly images: ImageStore;

  constructor(private readonly paths: BosonPaths) {
    this.registry = new ContainerRegistry(paths.stateDir);
    this.images = new ImageStore(paths.stateDir, { rootless: paths.rootless });
  }

  /** Boots the container and starts its process; output goes to `output` from the first byte. */
  async run(req: RunRequest, output: SessionOutput, hooks: RunHooks = {}): Promise<RunningContainer> {
    const t0 = performance.now();
    const since = (): number => Math.round(performance.now() - t0);
    await this.registry.init();
    await this.registry.sweep();
    const image = await this.images.resolveOrPull(req.image, {
      onStep: hooks.onStep,
      onProgress: (e) => {
        if (e.phase === 'warning' && e.detail) hooks.onWarning?.(e.detail);
      },
    });
    const id = newContainerId();
    const config = resolveProcessConfig(image.config, req, process.env, id.slice(0, 12));
    const record: ContainerRecord = {
      id, name: req.name ?? '', image: req.image, imageId: image.id, created: new Date().toISOString(),
      config: { ...config, tty: req.tty, openStdin: req.interactive, labels: {} },
      resources: { memoryMiB: req.memoryMiB ?? DEFAULT_MEMORY_MIB, cpus: req.cpus ?? 1 },
      autoRemove: req.autoRemove, restartPolicy: { name: 'no', maximumRetryCount: 0 }, restartCount: 0, managed: false,
      state: 'created', ownerPid: process.pid, vmPid: null, exitCode: null, startedAt: null, finishedAt: null, error: null,
      stoppedByUser: false, mounts: [], network: 'none', ports: [], endpoint: null,
    };
    await this.claim(record, req.name !== undefined);

    let scratch: FileHandle | undefined;
    let vm: MicroVm | undefined;
    try {
      hooks.onStep?.('preparing root disk');
      // The root disk, the boot bundle and the writable layer do not depend on each other: prepare them together.
      const scratchPath = path.join(this.registry.containerDir(id), 'scratch.ext4');
      const makeScratch = req.autoRemove
        ? createEphemeralScratchDisk(scratchPath, req.diskSizeBytes).then((handle) => (scratch = handle))
        : createScratchDisk(scratchPath, req.diskSizeBytes);
      const [rootDisk, bundle] = await Promise.all([
        this.images.rootDisk(image),
        bootBundle(this.paths),
        makeScratch,
      ]).catch(async (err: unknown) => {
        await makeScratch.catch(() => undefined);
        throw err;
      });
      const disks: DiskSpec[] = [
        { serial: 'boson-root', path: rootDisk.path, readOnly: true },
        scratch ? { serial: 'boson-scratch', fd: scratch.fd, readOnly: false } : { serial: 'boson-scratch', path: scratchPath, readOnly: false },
      ];
      const prepared = since();
      hooks.onStep?.('booting micro-VM');
      const accel = await probeAccelerator();
      let session!: GuestSession;
      let launched = 0;
      const boot = await bootWithWatchdog(
        { kernel: bundle.kernelPath, initramfs: bundle.initramfsPath, acpi: bundle.acpi, memoryMiB: record.resources.memoryMiB, cpus: record.resources.cpus, disks, debug: Boolean(process.env.BOSON_DEBUG) },
        (bootingVm): Promise<Hello> => {
          launched = since();
          session = new GuestSession(bootingVm.channel);
          return session.waitForHello();
        },
        { timeoutMs: bootTimeoutMs(accel.accel), attempts: 3, onRetry: hooks.onRetry },
      );
      vm = boot.vm;
      // A full host disk pauses the VM (see DiskFullGuard): say so, and resume it once there is room.
      const diskFull = new DiskFullGuard(this.paths.stateDir, (_id, paused) => hooks.onWarning?.(paused
        ? `the micro-VM is paused: the disk holding ${this.paths.stateDir} is full; it resumes by itself once there is room`
        : 'the micro-VM resumed: the disk has room again'));
      diskFull.watch(id, vm);
      const timings: RunTimings = { startup: Math.round(t0), prepared, launched, booted: since(), guestBootMs: Number(boot.value.boottimeNs / 1_000_000n), attempts: boot.attempts };
      // The guest waits for its SPEC: send it first, then do the bookkeeping.
      session.start(
        {
          argv: config.argv, env: config.env, cwd: config.cwd, user: config.user, hostname: config.hostname,
          tty: req.tty, stdin: req.interactive, winsize: req.winsize, rootDisk: 'boson-root', rootFstype: rootDisk.fstype,
          scratchDisk: 'boson-scratch',
        },
        output,
      );
      // The scratch file is now held open by QEMU; our copy of the descriptor is no longer needed.
      await scratch?.close();
      scratch = undefined;
      record.state = 'running';
      record.vmPid = vm.pid;
      record.startedAt = new Date().toISOString();
      await this.registry.save(record);
      const running = vm;
      const exit = this.finish(record, session, running, timings, since);
      void exit.finally(() => diskFull.close()).catch(() => undefined);
      return {
        record, session, vm: running, timings, exit,
        stop: async (graceMs: number): Promise<void> => {
          session.signal(15);
          const timer = setTimeout(() => {
            session.markStopped({ status: 137, signal: 9 });
            void running.kill();
          }, graceMs);
          await exit.catch(() => undefined);
          clearTimeout(timer);
        },
      };
    } catch (err) {
      await vm?.kill();
      await scratch?.close().catch(() => undefined);
      await this.settle(record, null, err);
      throw err;
    }
  }

  /** Claims a name for `record`: the asked-for one, or a random one (retrying on collisions). */
  private async claim(record: ContainerRecord, explicit: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (!explicit) record.name = attempt < 5 ? randomContainerName() : `${randomContainerName()}_${record.id.slice(0, 6)}`;
      try {
        await this.registry.create(record);
        return;
      } catch (err) {
        if (explicit || !isBosonError(err, 'CONTAINER_NAME_IN_USE') || attempt > 8) throw err;
      }
    }
  }

  private async finish(record: ContainerRecord, session: GuestSession, vm: MicroVm, timings: RunTimings, since: () => number): Promise<ProcessExit> {
    let result: ProcessExit | undefined;
    let failure: unknown;
    try {
      result = await session.done;
    } catch (err) {
      failure = err;
    }
    timings.exited = since();
    // boson-init sends EXIT after sync(): nothing is left to flush, so end QEMU now rather than wait for the
    // guest's power-off (QMP quit, SIGKILL if QEMU does not go within a second).
    await vm.shutdown(1000);
    timings.stopped = since();
    await this.settle(record, result?.status ?? null, failure);
    if (failure !== undefined) throw failure;
    return result!;
  }

  private async settle(record: ContainerRecord, exitCode: number | null, failure: unknown): Promise<void> {
    if (record.autoRemove) {
      await this.registry.remove(record);
      return;
    }
    record.state = 'exited';
    record.ownerPid = null;
    record.vmPid = null;
    record.finishedAt = new Date().toISOString();
    record.exitCode = exitCode ?? (isBosonError(failure) ? exitCodeFor(failure) : 125);
    record.error = failure === undefined ? null : (failure as Error).message;
    await this.registry.save(record).catch(() => undefined);
  }
}

function exitCodeFor(err: BosonError): number {
  if (err.code === 'COMMAND_NOT_FOUND') return 127;
  if (err.code === 'COMMAND_NOT_EXECUTABLE') return 126;
  return 125;
}

/** Number of CPUs on this host (the upper bound for --cpus). */
export function hostCpuCount(): number {
  return os.availableParallelism();
}


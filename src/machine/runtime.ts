/**
 * The one container runtime of a host: it implements the machine port's container calls (create, start, stop,
 * kill, restart, rm, wait, logs, attach, exec, run, stats, rename) over micro-VMs, for the daemon and, when no
 * daemon runs, embedded in the CLI process. There is one lifecycle; how a host runs it differs only by options:
 *   - a daemon (`detached: true`) boots VMs that outlive it and re-attaches to them when it starts again;
 *   - an embedded runtime (`detached: false`, `boson run` without a daemon) boots VMs bound to its process, which
 *     die with it; the next runtime to open the state settles what a killed process left (sweep).
 *
 * State has one owner: the record in the state store says what a container is; the live map holds what this
 * process is connected to. Operations on one container are serialised (a per-container lock); different
 * containers proceed in parallel. Exits are observed from boson-init's EXIT frame, from QEMU's end, or (for a VM
 * that died while no daemon ran) from the EXIT record in the container's log file.
 */
import type { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync, watch as watchFile } from 'node:fs';
import { mkdir, readdir, rm, stat, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, isBosonError, silentLogger, toBosonError, type BosonPaths, type Logger, type StateStore } from '../common/index.ts';
import { encodeSpec, encodeExec, FrameType, GuestErrorReason, decodeExit, decodeError, decodeStarted, type Frame } from '../guest/index.ts';
import { bootWithWatchdog, type MicroVmConfig, type Vm, type VmJail, type Vmm } from '../vmm/index.ts';
import type { BootBundle } from '../guest/index.ts';
import type { ImageStore } from '../image/index.ts';
import { DEFAULT_MEMORY_MIB, mergeEnv, parseSignal, resolveProcessConfig } from './container-config.ts';
import { ContainerRegistry, isAlive, newContainerId, type ContainerRecord, type MachineEvent } from './containers.ts';
import { ControlChannel, guestError as guestErrorOf } from './control-channel.ts';
import { FOLLOW_BATCH_BYTES, filterLines, followLog, lastExit, readLog, waitForLogExit } from './logs.ts';
import { LogRotator, RotationFeed, logFileSet } from './log-rotation.ts';
import { randomContainerName } from './names.ts';
import { createScratchDisk, DEFAULT_SCRATCH_BYTES } from './scratch.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import type { VolumeManager } from './volumes/index.ts';
import type { ImageService } from './images.ts';
import { volumeUsersAmong, type VolumeService } from './volume-service.ts';
import { joins, type NetworkService } from './network-service.ts';
import type { EventService } from './event-service.ts';
import { checkHostCapacity } from './capacity.ts';
import { checkBindSource, defaultBindPolicy, type BindPolicy } from './bind-policy.ts';
import { DiskFullGuard } from './disk-full.ts';
import { WarmPool, type ClaimedVm, type WarmPoolStats, type WarmShape } from './warm-pool.ts';
import { WarmTemplates, type Template } from './warm-templates.ts';
import { DEFAULT_NETWORK, publishAllPorts, type Endpoint, type NetworkManager, type NetworkRecord } from './network/index.ts';
import type { DiskSpec, ShareSpec } from '../vmm/index.ts';
import type {
  Attachment,
  Container,
  ContainerSpec,
  ContainerUpdate,
  NetworkConnectOptions,
  ContainerStats,
  ExecInstance,
  ExecSession,
  ExecSpec,
  LogLine,
  LogOptions,
  LogQuery,
  Machine,
  MachineContainers,
  MountSpec,
  PodMachine,
  RequestContext,
  RunOptions,
  RunSession,
  StreamSink,
  SuspendResult,
  WaitCondition,
  WaitResult,
} from './port/index.ts';
import { containerView } from './view.ts';
import { HelperVms } from './helper-vms.ts';
import type { PodNic, PodNetworks } from './pod-network.ts';
import { PodService, POD_SHARE_TARGET } from './pods.ts';

/** True while `pid` exists and is not a zombie. */
function pidRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A suspended container's saved VM, and its shape (memory, vCPUs) noted beside it, in the container's directory. */
export const SUSPEND_STATE_FILE = 'suspend.state';
const SUSPEND_INFO_FILE = 'suspend.json';
/** How long a suspend waits for the guest's sync. */
const SYNC_TIMEOUT_MS = 5000;

/** An exec instance: a further process in a running container. */
export interface ExecRecord {
  id: string;
  containerId: string;
  argv: string[];
  env: string[];
  cwd: string | undefined;
  user: string | undefined;
  tty: boolean;
  stdin: boolean;
  running: boolean;
  exitCode: number | null;
  pid: number | null;
  session: number;
  /** Runs in a helper micro-VM of the container's disks when the container is not running (ExecSpec.offline). */
  offline?: boolean;
  /** The root it runs in, inside the container's root (a pod's container), whether it is read-only, its binds. */
  root?: ExecRoot;
}

/** Where an exec runs when not in the container's root: a directory in it (a pod's container; see EXEC_ROOT). */
export interface ExecRoot {
  path: string;
  readOnly?: boolean;
  mounts?: Array<{ source: string; target: string; readOnly: boolean }>;
  /** The guest cgroup (relative to its cgroup root) the process joins before it runs. */
  cgroup?: string;
  /** Supplementary group ids added to the user's. */
  groups?: number[];
  /** The capability bounding set (bit N: capability N); all when absent. */
  capabilities?: bigint;
  /** Sets no_new_privs before the exec. */
  noNewPrivileges?: boolean;
}

/** One process's live connection to a running VM. */
interface Live {
  vm: Vm;
  ctl: ControlChannel;
  logFile: string;
  execs: Map<number, { exec: ExecRecord; sink?: StreamSink; done: (code: number) => void }>;
  nextSession: number;
  finished: boolean;
  /** Stops the checks that rotate its log (when it has max-size). */
  stopRotation?: () => void;
}

/** How a host runs its runtime (filled by the composition root from the configuration). */
export interface RuntimeOptions {
  paths: BosonPaths;
  /** True for a daemon: VMs outlive this process and are re-attached at init. */
  detached: boolean;
  /** Boot watchdog per attempt, ms (default 15 s under TCG, 5 s under KVM). */
  bootTimeoutMs?: number;
  /** The virtiofsd binary for bind mounts. */
  virtiofsd: string;
  /** Guest console and init diagnostics on stderr. */
  debug?: boolean;
  /** Where the runtime reports what nobody awaits (a watcher's failure); silent when absent. */
  log?: Logger;
  /** Which host directories may be bind-mounted (default: anywhere but protected paths and Boson's own). */
  bindPolicy?: BindPolicy;
  /** How each QEMU is confined (see VmJail); none when absent. */
  jail?: JailPolicy;
  /** The log rotation of containers created without their own (`--log-opt`); none when absent. */
  logDefaults?: LogOptions;
  /**
   * Warm start (a daemon's): keep pre-booted micro-VMs (mode pool, WarmPool) or template snapshots (mode template,
   * WarmTemplates) of these images within this budget.
   */
  warm?: { images: string[]; perShape: number; memoryBudgetMiB: number; mode?: 'pool' | 'template'; cloneTbMiB?: number };
  /** How pods get their network (CNI, pod-network.ts); absent: pods join the machine's default network. */
  podNetworks?: PodNetworks;
}

/**
 * The host's confinement policy for its QEMUs. A daemon's VMs get all of it. An embedded runtime's VMs keep the
 * caller's user: the kernel clears the parent-death signal when a process changes its uid, and a QEMU that outlives
 * a killed `boson run` would be worse than one that keeps root under seccomp, a chroot and a cgroup.
 */
export interface JailPolicy {
  /** The unprivileged user QEMU switches to (daemon-hosted VMs). */
  user?: string;
  sandbox: boolean;
  /** Chroot QEMU (root only): into the VM's runtime directory, or `emptyDir` for an embedded runtime's VMs. */
  chroot: boolean;
  emptyDir: string;
  /** The cgroup group VMs are put under (e.g. "boson"); none when absent. */
  cgroupParent?: string;
}

/** Memory a VM's cgroup allows beyond its guest RAM: QEMU itself, its TCG translation cache, I/O buffers. */
const VMM_MEMORY_ALLOWANCE_MIB = 192;

/** What the runtime is built from (the composition root makes them). */
export interface RuntimeParts {
  registry: ContainerRegistry;
  images: ImageStore;
  /** The image half of the port over `images` (what the REST API, the Docker personality and the CLI use). */
  imageService: ImageService;
  volumes: VolumeManager;
  /** The volume half of the port over `volumes`. */
  volumeService: VolumeService;
  /** The host's networks; null where containers get none (an embedded runtime). */
  networks: NetworkManager | null;
  /** The network half of the port over `networks` (refusing every call where there are none). */
  networkService: NetworkService;
  /** The event log and bus: the runtime publishes every lifecycle event on it. */
  eventService: EventService;
  /** The VMM driver (QEMU's; a fake in fast tests). */
  vmm: Vmm;
  /** The guest kernel and initramfs to boot (prepared and cached by the guest layer). */
  bootBundle: () => Promise<BootBundle>;
  /** The state store the parts share, when the runtime owns it: closed by close(), after the parts. */
  store?: StateStore;
}

/** The runtime's observed durations, for /metrics. */
export interface RuntimeMetrics {
  boots: number[];
  stops: number[];
  failures: number;
}

/** The endpoint of a pod VM whose NIC CNI made (no Boson network: nothing to connect or disconnect). */
function podEndpoint(containerId: string, nic: PodNic, hostname: string): Endpoint {
  return {
    containerId,
    network: `cni:${nic.network}`,
    nic: { kind: 'tap', ifname: nic.tap, mac: nic.mac, netns: nic.netnsPath },
    mac: nic.mac,
    address: nic.address,
    prefixLen: nic.prefixLen,
    gateway: nic.gateway,
    dns: nic.dns,
    dnsSearch: nic.dnsSearch,
    hosts: [`${nic.address}\t${hostname}`],
    ports: [],
  };
}

/** The container runtime of this host (see the module comment). */
export class MachineRuntime implements MachineContainers {
  readonly registry: ContainerRegistry;
  readonly images: ImageStore;
  /** The machine's images, as the port has them. */
  readonly imageService: ImageService;
  readonly volumes: VolumeManager;
  /** The machine's volumes, networks and events, as the port has them. */
  readonly volumeService: VolumeService;
  readonly networkService: NetworkService;
  readonly eventService: EventService;
  private readonly nets: NetworkManager | null;
  private readonly store: StateStore | undefined;
  /** Emits 'event' with a MachineEvent for every lifecycle change (the event service's bus). */
  readonly events: EventEmitter;
  private readonly live = new Map<string, Live>();
  private readonly logFeeds = new Map<string, RotationFeed>();
  /** Volume name -> the container whose start or run holds it (checked and claimed in one step in mountPlan). */
  private readonly volumeClaims = new Map<string, string>();
  /**
   * Writable layers still being made for containers that `run` created (made while the start's other steps run): the
   * size asked for, and the mkfs. scratchReady() waits for it.
   */
  private readonly scratchWork = new Map<string, { bytes: number; made: Promise<void> }>();
  private readonly lock = new KeyedMutex();
  private readonly waiters = new Map<string, Array<{ condition: WaitCondition; resolve: (r: WaitResult) => void }>>();
  private readonly execs = new Map<string, ExecRecord>();
  /** Helper micro-VMs of containers that are not running, for their files (offline execs; see helper-vms.ts). */
  private readonly helperVms = new HelperVms<Live>({
    idleMs: 3000,
    background: (work, what) => this.background(work, what),
  });
  private closing = false;
  private podService: PodService | undefined;
  private readonly diskFull: DiskFullGuard;
  /** Pre-booted micro-VMs (a daemon's; keeps nothing unless warm start is configured in pool mode); null otherwise. */
  private readonly warm: WarmPool | null;
  /** Template snapshots (a daemon with warm start in template mode); null otherwise. */
  private readonly templates: WarmTemplates | null;
  private readonly paths: BosonPaths;
  private readonly log: Logger;
  private readonly vmm: Vmm;
  private readonly bootBundle: () => Promise<BootBundle>;
  /** Observed durations, for /metrics. */
  readonly metrics: RuntimeMetrics = { boots: [], stops: [], failures: 0 };

  constructor(
    private readonly options: RuntimeOptions,
    parts: RuntimeParts,
  ) {
    this.paths = options.paths;
    this.log = options.log ?? silentLogger;
    this.registry = parts.registry;
    this.images = parts.images;
    this.imageService = parts.imageService;
    this.volumes = parts.volumes;
    this.volumeService = parts.volumeService;
    this.networkService = parts.networkService;
    this.eventService = parts.eventService;
    this.events = parts.eventService.bus;
    this.nets = parts.networks;
    this.vmm = parts.vmm;
    this.bootBundle = parts.bootBundle;
    this.store = parts.store;
    // Root only: a rootless VM's network (QEMU user networking with its port forwards) is fixed at boot.
    const warmImages = this.paths.rootless ? [] : (options.warm?.images ?? []);
    const templateMode = options.warm?.mode === 'template';
    const warmParts = {
      vmm: this.vmm,
      bootBundle: this.bootBundle,
      image: async (ref: string) => {
        const image = await this.images.resolve(ref).catch(() => null);
        return image ? { imageId: image.id, rootDisk: await this.images.rootDisk(image) } : null;
      },
      taps:
        this.nets && !this.paths.rootless ? { spare: () => this.networks.spareTap(), drop: (t: string) => this.networks.dropTap(t) } : null,
      jail: (name: string, memoryMiB: number, cpus: number, dir: string) => this.jailOf(name, memoryMiB, cpus, dir),
      log: this.log,
    };
    this.templates =
      options.detached && templateMode
        ? new WarmTemplates(
            {
              images: warmImages,
              memoryBudgetMiB: options.warm?.memoryBudgetMiB ?? 0,
              defaultMemoryMiB: DEFAULT_MEMORY_MIB,
              bootTimeoutMs: options.bootTimeoutMs ?? 15000,
              stateDir: this.paths.stateDir,
              runDir: this.paths.runDir,
              debug: options.debug,
              cloneTbMiB: options.warm?.cloneTbMiB,
            },
            warmParts,
          )
        : null;
    // The pool exists in every daemon (its init() removes what an earlier daemon's pool or template build left).
    this.warm = options.detached
      ? new WarmPool(
          {
            images: templateMode ? [] : warmImages,
            perShape: options.warm?.perShape ?? 0,
            memoryBudgetMiB: options.warm?.memoryBudgetMiB ?? 0,
            defaultMemoryMiB: DEFAULT_MEMORY_MIB,
            bootTimeoutMs: options.bootTimeoutMs ?? 15000,
            stateDir: this.paths.stateDir,
            runDir: this.paths.runDir,
            debug: options.debug,
          },
          warmParts,
        )
      : null;
    this.diskFull = new DiskFullGuard(this.paths.stateDir, (id, paused) => {
      try {
        this.emit(this.registry.get(id), paused ? 'pause' : 'unpause', paused ? { reason: 'host disk full' } : {});
      } catch {
        // The container is gone meanwhile: nothing to tell.
      }
    });
  }

  /** This machine as the port has it: the runtime's containers and its services' images, volumes, networks, events. */
  get machine(): Machine {
    return {
      containers: this,
      images: this.imageService,
      volumes: this.volumeService,
      networks: this.networkService,
      events: this.eventService,
    };
  }

  /** This machine with its pods (what the CRI personality serves): the machine, and pod sandboxes as micro-VMs. */
  get podMachine(): PodMachine {
    return { ...this.machine, pods: this.pods() };
  }

  private pods(): PodService {
    this.podService ??= new PodService(this, {
      stateDir: this.paths.stateDir,
      store: this.store,
      log: this.log.child({ component: 'pods' }),
      ...(this.options.podNetworks && !this.paths.rootless ? { networks: this.options.podNetworks } : {}),
    });
    return this.podService;
  }

  /** The host's networks; ROOTLESS_UNSUPPORTED-style refusal where this runtime has none. */
  get networks(): NetworkManager {
    if (!this.nets)
      throw new BosonError('INVALID_ARGUMENT', 'networks, volumes and published ports are set up by the daemon: start it with boson up');
    return this.nets;
  }

  /**
   * Opens state and settles what earlier processes left: records of containers whose embedded host was killed;
   * and, for a daemon, re-attaches to (or settles) every container that was running when the last daemon stopped.
   */
  async init(): Promise<void> {
    await this.registry.init();
    await this.sweep();
    if (this.options.jail?.chroot) await mkdir(this.options.jail.emptyDir, { recursive: true, mode: 0o711 });
    if (!this.options.detached) return;
    await mkdir(path.join(this.paths.runDir, 'vms'), { recursive: true });
    await this.nets?.init();
    for (const record of await this.registry.list()) {
      await this.settleSuspendFiles(record);
      if (!record.managed || (record.state !== 'running' && record.state !== 'restarting')) continue;
      const vm = await this.vmm.attach(this.runtimeDir(record.id));
      if (vm && (await this.settleInterrupted(record, vm))) continue;
      if (vm) {
        const ctl = new ControlChannel(vm.channel);
        const status = await vm.status().catch(() => '');
        if (status === 'postmigrate') {
          // Saved whole by a daemon killed before it had the state file: QEMU 7.2 can neither continue such a VM (its
          // disks' locks are gone) nor save it again, so it ends here; the guest had synced its disks first.
          await vm.kill();
          await this.vmm.cleanup(this.runtimeDir(record.id));
          await this.exited(record.id, 137, 'the daemon was killed while it suspended the container, before its state was saved');
          continue;
        }
        // Paused by a daemon killed while it rotated the log or suspended the container (before QEMU had sent its
        // state); a disk-full pause is io-error, not paused.
        if (status === 'paused') await vm.resume().catch(() => undefined);
        this.watch(record.id, { vm, ctl, logFile: this.logFile(record.id), execs: new Map(), nextSession: 1, finished: false });
        // Paused on a full disk while no daemon ran: no event will say so.
        if (await vm.pausedOnDiskError().catch(() => false)) this.diskFull.mark(record.id, vm);
      } else if (await this.settleInterrupted(record, null)) {
        continue;
      } else {
        await this.vmm.cleanup(this.runtimeDir(record.id));
        const exit = await lastExit(this.logFile(record.id));
        await this.exited(
          record.id,
          exit?.status ?? 137,
          exit ? null : 'the micro-VM ended while no daemon was running, without an exit status',
        );
      }
    }
    // A suspended container keeps its endpoint: its saved guest has that address and MAC.
    const suspended = (await this.registry.list()).filter((r) => r.state === 'suspended').map((r) => r.id);
    await this.nets?.reconcile(new Set([...this.liveIds(), ...suspended]));
    // Pod networks a killed daemon left half made or half undone.
    await this.pods().reconcileNetworks(async (id) => this.live.has(id));
    await this.warm?.init();
    await this.templates?.init();
  }

  /**
   * What a daemon killed during a suspend or a resume left in a container's directory: a partial state file always
   * goes; a complete one too when the container is neither suspended nor running (running: settleInterrupted).
   */
  private async settleSuspendFiles(record: ContainerRecord): Promise<void> {
    const dir = this.registry.containerDir(record.id);
    await rm(path.join(dir, `${SUSPEND_STATE_FILE}.partial`), { force: true });
    if (record.state === 'suspended' || record.state === 'running' || record.state === 'restarting') return;
    await rm(this.stateFile(record.id), { force: true });
    await rm(path.join(dir, SUSPEND_INFO_FILE), { force: true });
  }

  /**
   * A running container whose directory holds a whole saved state: a daemon was killed in a suspend (after the
   * save; its QEMU is gone, or stopped in `postmigrate`) or in a resume (its new QEMU already runs). The first is
   * suspended now, its QEMU ended; for the second the state file goes. True when it is now suspended.
   */
  private async settleInterrupted(record: ContainerRecord, vm: Vm | null): Promise<boolean> {
    if (!(await this.savedComplete(record.id))) return false;
    if (vm && (await vm.status().catch(() => '')) === 'running') {
      await rm(this.stateFile(record.id), { force: true });
      await rm(path.join(this.registry.containerDir(record.id), SUSPEND_INFO_FILE), { force: true });
      return false;
    }
    await vm?.kill();
    await this.vmm.cleanup(this.runtimeDir(record.id));
    record.state = 'suspended';
    record.vmPid = null;
    record.suspendedAt = new Date().toISOString();
    await this.registry.save(record);
    return true;
  }

  /** True when a container's directory holds a whole saved state (the state, then its shape, are written last). */
  private async savedComplete(id: string): Promise<boolean> {
    const dir = this.registry.containerDir(id);
    return (
      (await stat(path.join(dir, SUSPEND_INFO_FILE)).catch(() => null)) !== null &&
      (await stat(this.stateFile(id)).catch(() => null)) !== null
    );
  }

  /** Starts filling the warm pool, if one is configured (the daemon, once it has swept orphaned VMs). */
  startWarmPool(): void {
    this.warm?.start();
    this.templates?.start();
  }

  /** The warm pool's counts and shapes (`boson info`, /metrics); null where there is no pool (no daemon). */
  warmStats(): WarmPoolStats | null {
    return this.templates?.stats() ?? this.warm?.stats() ?? null;
  }

  /**
   * Settles containers run by an embedded runtime whose process is gone (kill -9 of `boson run`): its VM died with
   * it, so the container exited (137, or the status its log recorded); an auto-remove one is removed.
   */
  private async sweep(): Promise<void> {
    for (const r of await this.registry.list()) {
      if (
        r.managed ||
        (r.state !== 'running' && r.state !== 'created') ||
        r.ownerPid === null ||
        r.ownerPid === process.pid ||
        isAlive(r.ownerPid)
      )
        continue;
      // Its VM died with that process, and nobody released its cgroup.
      await this.releaseCgroupOf(r.id);
      if (r.autoRemove) {
        await this.registry.remove(r);
        continue;
      }
      const exit = await lastExit(this.logFile(r.id)).catch(() => undefined);
      this.settle(r, exit?.status ?? 137, exit ? null : 'the boson process running this container was killed');
      r.ownerPid = null;
      await this.registry.save(r);
    }
  }

  /** Removes a container's VM cgroup if it is left and empty (its VM ended with no one to release it). */
  private async releaseCgroupOf(id: string): Promise<void> {
    const parent = this.options.jail?.cgroupParent;
    if (parent) await this.vmm.releaseCgroup(parent, id.slice(0, 16)).catch(() => undefined);
  }

  /**
   * A daemon's clean-up after the orphan sweep (orphans.ts killed the QEMUs no running container owns: e.g. one a
   * killed daemon was starting): the VM directories of containers not running here, once no QEMU uses them any
   * more, are released (cgroup) and removed; so is any empty cgroup of a container of this host that is not live.
   */
  async cleanupStaleVms(): Promise<void> {
    if (!this.options.detached) return;
    const live = [...this.live.keys()].map((id) => id.slice(0, 16));
    const vms = path.join(this.paths.runDir, 'vms');
    for (const dir of await readdir(vms).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{16}$/.test(dir) || live.includes(dir)) continue;
      const runtimeDir = path.join(vms, dir);
      // A QEMU just killed takes a moment to go; one still there after that is left alone.
      const pid = Number((await readFile(path.join(runtimeDir, 'qemu.pid'), 'utf8').catch(() => '')).trim());
      for (let i = 0; i < 100 && pid > 0 && pidRunning(pid); i++) await new Promise((r) => setTimeout(r, 20));
      if (pid > 0 && pidRunning(pid)) continue;
      await this.vmm.cleanup(runtimeDir).catch(() => undefined);
      await rm(runtimeDir, { recursive: true, force: true });
    }
    for (const r of await this.registry.list()) if (!this.live.has(r.id)) await this.releaseCgroupOf(r.id);
  }

  /** Detaches from every VM, leaving them running (daemon shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    this.diskFull.close();
    await this.warm?.close();
    await this.templates?.close();
    await this.helperVms.endAll();
    for (const live of this.live.values()) {
      live.finished = true;
      live.ctl.close();
      live.vm.detach();
    }
    this.live.clear();
    await this.nets?.close();
    this.registry.close();
    this.volumes.close();
    this.store?.close();
  }

  /**
   * A VM's runtime directory. Short (16 hex digits of the id) because the UNIX sockets in it must have paths
   * under 108 bytes; a run directory too long even for that is refused with a clear error.
   */
  private runtimeDir(id: string): string {
    const dir = path.join(this.paths.runDir, 'vms', id.slice(0, 16));
    if (Buffer.byteLength(path.join(dir, 'ctl.sock')) >= 108) {
      throw new BosonError(
        'INVALID_ARGUMENT',
        `the run directory ${this.paths.runDir} is too long for UNIX socket paths (108 bytes at most): set BOSON_RUN_DIR to a shorter path`,
      );
    }
    return dir;
  }

  private logFile(id: string): string {
    return path.join(this.registry.containerDir(id), 'container.log');
  }

  /** The rotations of a container's log that its followers in this process subscribe to. */
  private logFeed(id: string): RotationFeed {
    let feed = this.logFeeds.get(id);
    if (!feed) {
      feed = new RotationFeed(this.registry.get(id).log?.maxFiles ?? 1);
      this.logFeeds.set(id, feed);
    }
    return feed;
  }

  /**
   * Rotates a live container's log when it passes its max-size (log-rotation.ts): checked on each change of the
   * file and every 250 ms. Only a daemon rotates; an embedded runtime's log grows until a daemon sees it.
   */
  private startRotation(id: string, live: Live): void {
    const limits = this.registry.get(id).log;
    if (!this.options.detached || limits?.maxSizeBytes === undefined) return;
    const rotator = new LogRotator(
      live.logFile,
      { maxSizeBytes: limits.maxSizeBytes, maxFiles: limits.maxFiles ?? 1 },
      { suspend: () => live.vm.suspend(), resume: () => live.vm.resume() },
      this.logFeed(id),
    );
    const check = (): void => {
      if (live.finished || this.diskFull.reason(id) !== undefined) return;
      rotator.check().catch((err: unknown) => {
        if (!live.finished) this.log.warn({ container: id, error: toBosonError(err).message }, 'cannot rotate the container log');
      });
    };
    const timer = setInterval(check, 250);
    timer.unref();
    let watcher: ReturnType<typeof watchFile> | undefined;
    try {
      watcher = watchFile(live.logFile, check);
      watcher.on('error', () => undefined);
    } catch {
      // No inotify for it: the timer alone.
    }
    live.stopRotation = () => {
      clearInterval(timer);
      watcher?.close();
    };
  }

  private emit(record: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const event = this.registry.recordEvent('container', action, record.id, { name: record.name, image: record.image, ...extra });
    this.eventService.publish(event);
  }

  /** Events since `afterSeq` (and within the times given). */
  pastEvents(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[] {
    return this.registry.events(afterSeq, sinceNs, untilNs);
  }

  /** Creates a container (not started): everything is checked before anything is made. */
  async create(_ctx: RequestContext, spec: ContainerSpec): Promise<Container> {
    return containerView(await this.createRecord(spec));
  }

  /**
   * Creates the micro-VM of a pod (src/machine/pods.ts) as a container of this runtime, with the pod's directory
   * `share` shared into it at `/.boson/pod` (a Boson path, which the bind policy refuses to users' binds).
   */
  async createPodVm(spec: ContainerSpec, share: string, nic?: PodNic): Promise<Container> {
    return containerView(
      await this.createRecord(
        nic ? { ...spec, network: 'none' } : spec,
        [{ type: 'bind', source: share, destination: POD_SHARE_TARGET, readOnly: false }],
        nic,
      ),
    );
  }

  /** The accelerator this host's micro-VMs run with (kvm or tcg). */
  async accelerator(): Promise<string> {
    return this.vmm.accelerator();
  }

  /**
   * Creates a container's record, its volumes and its writable layer. `deferScratch` (run, which starts it at once):
   * the writable layer is made while the start does its other steps, and the start waits for it (scratchReady).
   */
  private async createRecord(
    spec: ContainerSpec,
    internalMounts: MountSpec[] = [],
    podNic?: PodNic,
    deferScratch = false,
  ): Promise<ContainerRecord> {
    const image = await this.images.resolve(spec.image);
    const id = newContainerId();
    const proc = spec.process ?? {};
    const config = resolveProcessConfig(image.config, proc, id.slice(0, 12));
    const restartPolicy = spec.restartPolicy ?? { name: 'no', maximumRetryCount: 0 };
    const autoRemove = spec.autoRemove ?? false;
    if (autoRemove && restartPolicy.name !== 'no') throw new BosonError('INVALID_ARGUMENT', 'conflicting options: --restart and --rm');
    if (spec.name !== undefined) validateName(spec.name);
    const log = spec.log ?? this.options.logDefaults;
    if ((log?.maxFiles ?? 1) > 1 && log?.maxSizeBytes === undefined)
      throw new BosonError('INVALID_ARGUMENT', 'max-file can only be set together with max-size');
    const mounts = this.plannedMounts(spec.mounts ?? [], image.config.volumes);
    if (mounts.some((m) => m.type === 'bind')) {
      // virtiofsd (QEMU's C one) needs root for its sandbox, and a rootless one would show the user's files as root's.
      if (this.paths.rootless)
        throw new BosonError(
          'ROOTLESS_UNSUPPORTED',
          'bind mounts (-v /host/path:/path) need a daemon running as root; in rootless mode use a volume (-v name:/path)',
        );
      if (!this.options.detached)
        throw new BosonError('INVALID_ARGUMENT', 'bind mounts are served by the daemon: start it with boson up (or use run -d)');
      // The policy after what this host cannot do at all (rootless, no daemon): that is the clearer answer.
      for (const m of mounts) {
        if (m.type === 'bind')
          m.source = await checkBindSource(
            m.source,
            this.options.bindPolicy ?? defaultBindPolicy([this.paths.stateDir, this.paths.runDir, this.paths.guestDir]),
          );
      }
      await this.shareTransport();
    }
    if (internalMounts.length > 0) {
      if (this.paths.rootless || !this.options.detached)
        throw new BosonError('ROOTLESS_UNSUPPORTED', 'pods are run by a daemon running as root (boson up)');
      await this.shareTransport();
      mounts.push(...internalMounts);
    }
    if (mounts.some((m) => m.type === 'volume') && !this.options.detached)
      throw new BosonError('INVALID_ARGUMENT', 'volumes are served by the daemon: start it with boson up (or use run -d)');
    const network = spec.network ?? (this.nets ? DEFAULT_NETWORK : 'none');
    const ports = [...(spec.ports ?? []), ...(spec.publishAll ? publishAllPorts(image.config.exposedPorts ?? []) : [])];
    if (network === 'none' && ports.length > 0)
      throw new BosonError('INVALID_ARGUMENT', 'published ports need a network (not --network none)');
    if (network !== 'none') {
      await this.networks.get(network);
      await this.networks.checkPublishable(ports);
      if (spec.ipv4Address !== undefined) this.networks.checkStaticAddress(network, spec.ipv4Address, id);
    } else if (spec.ipv4Address !== undefined)
      throw new BosonError('INVALID_ARGUMENT', 'a static IP address needs a network (not --network none)');
    const links = this.resolveLinks(spec.links ?? []);
    const record: ContainerRecord = {
      id,
      name: spec.name ?? randomContainerName(),
      image: spec.image,
      imageId: image.id,
      created: new Date().toISOString(),
      config: {
        ...config,
        tty: proc.tty ?? false,
        openStdin: proc.stdin ?? false,
        labels: { ...image.config.labels, ...(spec.labels ?? {}) },
      },
      resources: { memoryMiB: spec.resources?.memoryMiB ?? DEFAULT_MEMORY_MIB, cpus: spec.resources?.cpus ?? 1 },
      autoRemove,
      restartPolicy,
      ...(log?.maxSizeBytes !== undefined ? { log: { maxSizeBytes: log.maxSizeBytes, maxFiles: log.maxFiles ?? 1 } } : {}),
      restartCount: 0,
      managed: this.options.detached,
      state: 'created',
      ownerPid: this.options.detached ? null : process.pid,
      vmPid: null,
      exitCode: null,
      startedAt: null,
      finishedAt: null,
      error: null,
      stoppedByUser: false,
      mounts,
      network,
      ports,
      endpoint: null,
      ...(spec.aliases && spec.aliases.length > 0 ? { aliases: [...spec.aliases] } : {}),
      ...(spec.ipv4Address !== undefined ? { ipv4Address: spec.ipv4Address } : {}),
      ...(links.length > 0 ? { links } : {}),
      ...(spec.dns !== undefined ? { dns: spec.dns } : {}),
      ...(podNic ? { podNic } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.registry.create(record);
        break;
      } catch (err) {
        if (spec.name !== undefined || !isBosonError(err, 'CONTAINER_NAME_IN_USE') || attempt > 8) throw err;
        record.name = `${randomContainerName()}_${id.slice(0, 4 + attempt)}`;
      }
    }
    try {
      for (const m of record.mounts) {
        if (m.type === 'volume') m.name = (await this.volumes.create(m.name, { anonymous: m.anonymous ?? false })).name;
      }
      // A writable layer thrown away with its container needs no journal (it mounts faster, nothing must survive).
      const bytes = spec.resources?.diskBytes ?? DEFAULT_SCRATCH_BYTES;
      const made = createScratchDisk(this.scratchOf(id), bytes, !autoRemove);
      if (deferScratch) {
        made.catch(() => undefined);
        this.scratchWork.set(id, { bytes, made });
      } else await made;
      await this.registry.save(record);
    } catch (err) {
      await this.dropScratchWork(id);
      await this.registry.remove(record).catch(() => undefined);
      throw err;
    }
    this.emit(record, 'create');
    return record;
  }

  /** A container's writable layer (the overlay's upper disk), in its directory. */
  private scratchOf(id: string): string {
    return path.join(this.registry.containerDir(id), 'scratch.ext4');
  }

  /**
   * Before a container's directory goes: a writable layer still being made is finished (mkfs must not write into a
   * directory being removed), then forgotten.
   */
  private async dropScratchWork(id: string): Promise<void> {
    await this.scratchWork.get(id)?.made.catch(() => undefined);
    this.scratchWork.delete(id);
  }

  /**
   * Waits for the writable layer that createRecord is still making for container `id`, if any; makes it if it is
   * missing (its making failed, and this is a later start). TOOL_FAILED if mkfs fails.
   */
  private async scratchReady(record: ContainerRecord): Promise<void> {
    const work = this.scratchWork.get(record.id);
    this.scratchWork.delete(record.id);
    if (work) await work.made.catch(() => undefined);
    if (!(await stat(this.scratchOf(record.id)).catch(() => null)))
      await createScratchDisk(this.scratchOf(record.id), work?.bytes ?? DEFAULT_SCRATCH_BYTES, !record.autoRemove);
  }

  /** The mounts asked for, checked, plus anonymous volumes for the image's VOLUMEs not covered. */
  private plannedMounts(asked: MountSpec[], imageVolumes: string[]): MountSpec[] {
    const mounts: MountSpec[] = asked.map((m) => {
      const destination = checkMountPath(m.destination, 'the container path');
      if (m.type === 'bind') return { ...m, source: path.resolve(checkMountPath(m.source, 'a bind mount source')), destination };
      if (m.name !== '' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.name))
        throw new BosonError(
          'INVALID_ARGUMENT',
          `invalid volume name ${JSON.stringify(m.name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
        );
      return { ...m, destination, anonymous: m.name === '' };
    });
    const seen = new Set<string>();
    for (const m of mounts) {
      if (seen.has(m.destination)) throw new BosonError('INVALID_ARGUMENT', `duplicate mount point: ${m.destination}`);
      seen.add(m.destination);
    }
    for (const dest of imageVolumes) {
      if (!seen.has(path.posix.normalize(dest)))
        mounts.push({ type: 'volume', name: '', destination: path.posix.normalize(dest), readOnly: false, anonymous: true });
    }
    return mounts;
  }

  /**
   * How host directories reach this host's guests: virtiofs when the guest kernel has it and virtiofsd is
   * installed (QEMU's), else 9p when the kernel has that; INVALID_ARGUMENT naming what is missing otherwise.
   */
  private async shareTransport(): Promise<'virtiofs' | '9p'> {
    const bundle = await this.bootBundle();
    const has = (name: string): boolean => bundle.drivers.includes(name);
    const virtiofsd = this.options.virtiofsd;
    if (
      has('virtiofs') &&
      (await stat(virtiofsd).then(
        () => true,
        () => false,
      ))
    )
      return 'virtiofs';
    if (has('9p')) return '9p';
    throw new BosonError(
      'INVALID_ARGUMENT',
      `bind mounts need a guest kernel with virtiofs (and ${virtiofsd}) or 9p, and ${bundle.kernelRelease} has neither: use a volume (-v name:/path), or set BOSON_GUEST_KERNEL to such a kernel`,
    );
  }

  /** Containers that refer to a volume. */
  async volumeUsers(name: string): Promise<string[]> {
    return volumeUsersAmong(await this.registry.list(), name);
  }

  /**
   * Sets the network a created or exited container joins at its next start ('none': none), with the aliases, static
   * address and links of `options` (see applyNetwork; its published ports stay: they are published on the network it
   * joins next); CONTAINER_RUNNING while it runs. `check.from`: it must join that network now; `check.to`: it must
   * not already, unless `options` are given (they then replace its settings there).
   */
  async setContainerNetwork(
    ref: string,
    network: string,
    check: { from?: NetworkRecord; to?: NetworkRecord } = {},
    given?: NetworkConnectOptions,
  ): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, async () => {
      const record = this.registry.get(id);
      if (check.to && joins(record, check.to) && given === undefined && record.state !== 'running' && record.state !== 'restarting')
        throw new BosonError('ALREADY_CONNECTED', `container ${record.name} is already connected to network ${check.to.name}`);
      if (check.from && !joins(record, check.from))
        throw new BosonError('INVALID_ARGUMENT', `container ${record.name} is not connected to network ${check.from.name}`);
      await this.applyNetwork(record, network, given ?? {});
      await this.registry.save(record);
    });
  }

  /**
   * Changes in `record` (not saved) the network its next start joins, with `endpoint`'s aliases and static address
   * (which replace the old ones: they belonged to the old endpoint) and links (kept unless new ones are given);
   * everything is checked first, so a refusal changes nothing. CONTAINER_RUNNING while it runs: a micro-VM's one
   * network card is chosen when it boots.
   */
  private async applyNetwork(record: ContainerRecord, network: string, endpoint: NetworkConnectOptions): Promise<void> {
    if (record.state === 'running' || record.state === 'restarting') {
      throw new BosonError(
        'CONTAINER_RUNNING',
        `container ${record.name} is running: a Boson micro-VM has one network card, chosen when it boots, and a running one cannot have it hot-plugged or removed; stop the container, change its network, then start it`,
      );
    }
    if (network !== 'none') await this.networks.get(network);
    const address = endpoint.ipv4Address;
    if (address !== undefined) {
      if (network === 'none') throw new BosonError('INVALID_ARGUMENT', 'a static IP address needs a network (not --network none)');
      this.networks.checkStaticAddress(network, address, record.id);
    }
    const links = endpoint.links !== undefined && endpoint.links.length > 0 ? this.resolveLinks(endpoint.links) : undefined;
    record.network = network;
    if (links !== undefined) record.links = links;
    if (endpoint.aliases !== undefined && endpoint.aliases.length > 0) record.aliases = [...new Set(endpoint.aliases)];
    else delete record.aliases;
    if (address !== undefined) record.ipv4Address = address;
    else delete record.ipv4Address;
  }

  /** Every container record (running only unless `all`), newest first. */
  async records(all: boolean): Promise<ContainerRecord[]> {
    const records = (await this.registry.list()).map((r) => this.withPause(r));
    return all ? records : records.filter((r) => r.state === 'running' || r.state === 'restarting' || r.state === 'suspended');
  }

  /** One container's record. */
  record(ref: string): ContainerRecord {
    return this.withPause(this.registry.get(ref));
  }

  async list(_ctx: RequestContext, options: { all?: boolean } = {}): Promise<Container[]> {
    return (await this.records(options.all ?? false)).map(containerView);
  }

  async inspect(_ctx: RequestContext, ref: string): Promise<Container> {
    return containerView(this.record(ref));
  }

  /** The record with `pausedReason` when its VM is paused on a full disk (a live condition, never stored). */
  private withPause(record: ContainerRecord): ContainerRecord {
    const reason = this.diskFull.reason(record.id);
    return reason === undefined ? record : { ...record, pausedReason: reason };
  }

  /** Starts a created or exited container; a running one is left as it is. */
  async start(_ctx: RequestContext, ref: string): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.startLocked(id, false));
  }

  private async startLocked(
    id: string,
    isRestart: boolean,
    winsize?: { rows: number; cols: number },
    onNotice?: (text: string) => void,
  ): Promise<void> {
    const record = this.registry.get(id);
    if (record.state === 'running' && this.live.has(id)) return;
    if (record.state === 'suspended')
      throw new BosonError('CONTAINER_SUSPENDED', `container ${record.name} is suspended: resume it (boson resume), or stop it first`);
    this.checkOwned(record);
    // A helper VM serving a copy from its disks goes first: two VMs must never write one disk.
    await this.helperVms.end(id);
    const t0 = performance.now();
    // The root disk, the boot bundle and the runtime directory do not depend on each other.
    const runtimeDir = this.options.detached ? this.runtimeDir(id) : undefined;
    const [rootDisk, bundle] = await Promise.all([
      this.images.resolve(record.imageId).then((image) => this.images.rootDisk(image)),
      this.bootBundle(),
      runtimeDir ? rm(runtimeDir, { recursive: true, force: true }).then(() => mkdir(runtimeDir, { recursive: true })) : undefined,
    ]);
    const logFile = this.logFile(id);
    await checkHostCapacity(record.resources.memoryMiB, this.paths.stateDir);
    const { disks: extraDisks, shares, mounts } = await this.mountPlan(record);
    try {
      await this.bootAndStart(
        id,
        record,
        isRestart,
        t0,
        { runtimeDir, rootDisk, bundle, logFile, extraDisks, shares, mounts },
        winsize,
        onNotice,
      );
    } catch (err) {
      // The volumes this start claimed are free again unless the container runs.
      if (!this.live.has(id)) this.releaseVolumes(id);
      throw err;
    }
  }

  /** The second half of startLocked, once the volumes are claimed: network, boot, SPEC, STARTED. */
  private async bootAndStart(
    id: string,
    record: ContainerRecord,
    isRestart: boolean,
    t0: number,
    plan: {
      runtimeDir: string | undefined;
      rootDisk: { path: string; fstype: string };
      bundle: BootBundle;
      logFile: string;
      extraDisks: DiskSpec[];
      shares: ShareSpec[];
      mounts: Array<{ kind: 'disk' | '9p' | 'virtiofs'; source: string; target: string; fstype: string; readOnly: boolean }>;
    },
    winsize?: { rows: number; cols: number },
    onNotice?: (text: string) => void,
  ): Promise<void> {
    const { runtimeDir, rootDisk, bundle, logFile, extraDisks, shares, mounts } = plan;
    const scratch = this.scratchOf(id);
    // The size of the writable layer: being made (run), or made.
    const scratchBytes = this.scratchWork.get(id)?.bytes ?? (await stat(scratch).catch(() => null))?.size;
    // A warm VM fits a container without further disks or shares (their devices exist from boot).
    const warm =
      this.warm &&
      runtimeDir !== undefined &&
      extraDisks.length === 0 &&
      shares.length === 0 &&
      (await this.warm.fits({ logFile, scratchBytes }))
        ? this.warm.take(this.warmShape(record, rootDisk), bundle)
        : undefined;
    // Or a template to clone (template mode): the clone gets the container's own files, like a cold boot.
    const template: Template | undefined =
      this.templates && runtimeDir !== undefined && extraDisks.length === 0 && shares.length === 0 && this.templates.fits(scratchBytes)
        ? this.templates.take(this.warmShape(record, rootDisk), bundle)
        : undefined;
    let endpoint: Endpoint | null;
    try {
      endpoint = record.podNic
        ? podEndpoint(record.id, record.podNic, record.config.hostname)
        : await this.connectNetwork(record, warm?.tap);
    } catch (err) {
      if (warm) await this.warm!.release(warm, true);
      throw err;
    }
    const accel = await this.vmm.accelerator();
    // The micro-VM a cold boot launches (a template's clone is launched with the same, plus the template's RAM).
    const vmConfig = (): MicroVmConfig => ({
      kernel: bundle.kernelPath,
      initramfs: bundle.initramfsPath,
      acpi: bundle.acpi,
      memoryMiB: record.resources.memoryMiB,
      cpus: record.resources.cpus,
      disks: [
        { serial: 'boson-root', path: rootDisk.path, readOnly: true },
        { serial: 'boson-scratch', path: scratch, readOnly: false },
        ...extraDisks,
      ],
      shares,
      runtimeDir,
      logFile,
      nics: endpoint ? [endpoint.nic] : [],
      debug: this.options.debug,
      jail: this.jailFor(record, runtimeDir),
    });
    // What a clone that failed left: its runtime directory; and, for a first start, a writable layer it may have used.
    const afterBadClone = async (): Promise<void> => {
      if (runtimeDir) await rm(runtimeDir, { recursive: true, force: true }).then(() => mkdir(runtimeDir, { recursive: true }));
      if (record.startedAt === null) {
        await rm(scratch, { force: true });
        await createScratchDisk(scratch, undefined, !record.autoRemove);
      }
    };
    const coldBoot = async (): Promise<{ vm: Vm; ctl: ControlChannel }> => {
      let ctl!: ControlChannel;
      try {
        const boot = await bootWithWatchdog(
          vmConfig(),
          (booting: Vm) => {
            ctl = new ControlChannel(booting.channel);
            return ctl.waitForHello();
          },
          {
            timeoutMs: this.bootTimeout(accel),
            attempts: 3,
            onRetry: (attempt, consoleTail, reason) => {
              onNotice?.(`micro-VM boot ${reason}, retrying (attempt ${attempt})`);
              if (reason === 'crashed')
                this.log.warn({ container: id, attempt, console: consoleTail }, 'a micro-VM crashed while booting; retrying');
            },
          },
          (config) => this.vmm.launch(config),
        );
        return { vm: boot.vm, ctl };
      } catch (err) {
        this.metrics.failures++;
        // What the guest kernel said while it failed to boot, kept with the container (the runtime directory goes).
        const consoleText = toBosonError(err).details.console;
        if (typeof consoleText === 'string' && consoleText !== '')
          await writeFile(path.join(this.registry.containerDir(id), 'boot-failure.log'), consoleText).catch(() => undefined);
        // Info, not a warning: the caller gets the error itself (a CLI's embedded runtime prints warnings too).
        this.log.info({ container: id, error: toBosonError(err).message }, 'a micro-VM failed to boot');
        if (endpoint) await this.networks.disconnect(id).catch(() => undefined);
        this.settle(record, 125, toBosonError(err).message);
        await this.registry.save(record);
        throw err;
      }
    };
    // Encoded when sent, not before the boot: the guest sets its clock from clockNs (it stamps every log line).
    const spec = (): Buffer =>
      encodeSpec({
        argv: record.config.argv,
        env: record.config.env,
        cwd: record.config.cwd,
        user: record.config.user,
        hostname: record.config.hostname,
        tty: record.config.tty,
        stdin: record.config.openStdin,
        winsize,
        rootDisk: 'boson-root',
        rootFstype: rootDisk.fstype,
        scratchDisk: 'boson-scratch',
        logPort: true,
        ephemeral: record.autoRemove,
        clockNs: BigInt(Date.now()) * 1_000_000n,
        entropy: randomBytes(32),
        mounts,
        ...(endpoint
          ? {
              interfaces: [
                {
                  mac: endpoint.mac,
                  address: endpoint.address,
                  prefixLen: endpoint.prefixLen,
                  ...(endpoint.gateway !== '' ? { gateway: endpoint.gateway } : {}),
                  mtu: record.podNic?.mtu ?? 1500,
                },
              ],
              dns: endpoint.dns,
              dnsSearch: endpoint.dnsSearch,
              hosts: endpoint.hosts,
            }
          : {}),
        // DNS asked for by the container (a pod's DNSConfig) replaces the network's.
        ...(record.dns && record.dns.servers.length > 0 ? { dns: record.dns.servers } : {}),
        ...(record.dns && record.dns.searches.length > 0 ? { dnsSearch: record.dns.searches } : {}),
        ...(record.dns && record.dns.options.length > 0 ? { dnsOptions: record.dns.options } : {}),
      });
    const tNet = performance.now();
    try {
      await this.scratchReady(record);
    } catch (err) {
      // The warm VM's tap is the endpoint's now: disconnect deletes it.
      if (warm) await this.warm!.release(warm, false);
      if (endpoint) await this.networks.disconnect(id).catch(() => undefined);
      throw err;
    }
    let claimed: ClaimedVm | null =
      warm && runtimeDir ? await this.warm!.claim(warm, { runtimeDir, scratch, logFile, cgroupName: id.slice(0, 16) }) : null;
    let clone: { vm: Vm; ctl: ControlChannel; launchMs: number; restoreMs: number } | null = null;
    if (!claimed && template) {
      // A template that cannot be cloned is discarded (and built again) by clone(); the start boots cold.
      clone = await this.templates!.clone(template, vmConfig()).catch(async (err: unknown) => {
        this.log.warn({ container: id, error: toBosonError(err).message }, 'a template could not be cloned; booting cold');
        await afterBadClone();
        return null;
      });
    }
    let { vm, ctl } = claimed ?? clone ?? (await coldBoot());
    const tBoot = performance.now();
    try {
      try {
        // A warm VM that does not take its SPEC in a boot's time is a bad one: it is replaced by a cold boot.
        await this.startContainer(ctl, spec(), claimed || clone ? this.bootTimeout(accel) : undefined);
      } catch (err) {
        if ((!claimed && !clone) || !(isBosonError(err, 'GUEST_CRASHED') || isBosonError(err, 'GUEST_BOOT_TIMEOUT'))) throw err;
        this.log.warn({ container: id, error: toBosonError(err).message }, 'a warm micro-VM did not take its container; booting cold');
        if (claimed) {
          const bad = claimed;
          claimed = null;
          await bad.undo();
        } else {
          clone = null;
          this.templates!.failed(template!, toBosonError(err).message);
          await vm.kill();
          await afterBadClone();
        }
        ({ vm, ctl } = await coldBoot());
        await this.startContainer(ctl, spec());
      }
    } catch (err) {
      await vm.shutdown(1000);
      await claimed?.commit();
      if (endpoint) await this.networks.disconnect(id).catch(() => undefined);
      const e = toBosonError(err);
      this.settle(record, e.code === 'COMMAND_NOT_FOUND' ? 127 : e.code === 'COMMAND_NOT_EXECUTABLE' ? 126 : 125, e.message);
      await this.registry.save(record);
      throw err;
    }
    await claimed?.commit();
    this.log.debug(
      {
        container: id,
        warm: claimed !== null,
        clone: clone ? { launchMs: Math.round(clone.launchMs), restoreMs: Math.round(clone.restoreMs) } : null,
        prepareMs: tNet - t0,
        bootMs: tBoot - tNet,
        startMs: performance.now() - tBoot,
      },
      'container started',
    );
    const live: Live = { vm, ctl, logFile, execs: new Map(), nextSession: 1, finished: false };
    record.state = 'running';
    record.managed = this.options.detached;
    record.ownerPid = this.options.detached ? null : process.pid;
    record.vmPid = vm.pid;
    record.startedAt = new Date().toISOString();
    record.finishedAt = null;
    record.exitCode = null;
    record.error = null;
    record.stoppedByUser = false;
    record.endpoint = endpoint
      ? { network: endpoint.network, address: endpoint.address, gateway: endpoint.gateway, mac: endpoint.mac, ports: endpoint.ports }
      : null;
    if (isRestart) record.restartCount++;
    await this.registry.save(record);
    this.metrics.boots.push(performance.now() - t0);
    this.emit(record, 'start');
    this.watch(id, live);
  }

  /** The boot watchdog of one attempt. */
  private bootTimeout(accel: 'kvm' | 'tcg'): number {
    return this.options.bootTimeoutMs ?? (accel === 'kvm' ? 5000 : 15000);
  }

  /** The shape of warm VM a start of `record` can take. */
  private warmShape(record: ContainerRecord, rootDisk: { path: string; fstype: string }): WarmShape {
    return {
      image: record.image,
      imageId: record.imageId,
      rootDisk: { path: rootDisk.path, fstype: rootDisk.fstype },
      memoryMiB: record.resources.memoryMiB,
      cpus: record.resources.cpus,
      journal: !record.autoRemove,
      nic: (record.network ?? 'none') !== 'none',
    };
  }

  /**
   * Sends a booted VM its SPEC and waits for STARTED: the guest's ERROR (or an EXIT before STARTED) rejects with
   * what went wrong, a closed channel with GUEST_CRASHED, and `timeoutMs` passing with GUEST_BOOT_TIMEOUT.
   */
  private async startContainer(ctl: ControlChannel, spec: Buffer, timeoutMs?: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const startup = new Promise<void>((resolve, reject) => {
      let guestError: BosonError | undefined;
      ctl.onSession(0, (frame) => {
        if (frame.type === FrameType.STARTED) resolve();
        else if (frame.type === FrameType.ERROR) {
          guestError = guestErrorOf(frame);
        } else if (frame.type === FrameType.EXIT)
          reject(
            guestError ??
              new BosonError('CONTAINER_START_FAILED', `the container exited with ${decodeExit(frame).status} before it started`),
          );
      });
      ctl.onClose(() => reject(new BosonError('GUEST_CRASHED', 'the micro-VM ended before the container started')));
      if (timeoutMs !== undefined)
        timer = setTimeout(
          () => reject(new BosonError('GUEST_BOOT_TIMEOUT', `the micro-VM did not start the container within ${timeoutMs} ms`)),
          timeoutMs,
        );
    });
    ctl.send(FrameType.SPEC, spec);
    try {
      await startup;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Frees the volumes claimed by container `id`. */
  private releaseVolumes(id: string): void {
    for (const [name, holder] of this.volumeClaims) if (holder === id) this.volumeClaims.delete(name);
  }

  /** A container's name for messages (its short id once it is gone). */
  private nameOf(id: string): string {
    try {
      return this.registry.get(id).name;
    } catch {
      return id.slice(0, 12);
    }
  }

  /** The disks, 9p shares and guest mount records for a container's mounts; VOLUME_IN_USE if a running container has one of its volumes. */
  private async mountPlan(record: ContainerRecord): Promise<{
    disks: DiskSpec[];
    shares: ShareSpec[];
    mounts: Array<{ kind: 'disk' | '9p' | 'virtiofs'; source: string; target: string; fstype: string; readOnly: boolean }>;
  }> {
    const disks: DiskSpec[] = [];
    const shares: ShareSpec[] = [];
    const mounts: Array<{ kind: 'disk' | '9p' | 'virtiofs'; source: string; target: string; fstype: string; readOnly: boolean }> = [];
    // A suspended container holds its volumes too: its saved guest has them mounted.
    const running = (await this.registry.list()).filter((r) => r.id !== record.id && (this.live.has(r.id) || r.state === 'suspended'));
    // Checked and claimed with no await in between, so that two starts at once cannot both pass (released in
    // exited() or when the start fails).
    for (const m of record.mounts ?? []) {
      if (m.type !== 'volume') continue;
      const holder = running.find((r) => (r.mounts ?? []).some((o) => o.type === 'volume' && o.name === m.name));
      const claimant = this.volumeClaims.get(m.name);
      if (holder || (claimant !== undefined && claimant !== record.id)) {
        const who = holder?.name ?? this.nameOf(claimant!);
        throw new BosonError(
          'VOLUME_IN_USE',
          `volume ${m.name} is mounted by running container ${who}; a volume disk can be used by one running micro-VM at a time`,
        );
      }
    }
    for (const m of record.mounts ?? []) if (m.type === 'volume') this.volumeClaims.set(m.name, record.id);
    for (const [i, m] of (record.mounts ?? []).entries()) {
      if (m.type === 'volume') {
        const serial = `boson-vol${i}`;
        disks.push({ serial, path: this.volumes.diskPath(this.volumes.get(m.name).name), readOnly: m.readOnly });
        mounts.push({ kind: 'disk', source: serial, target: m.destination, fstype: 'ext4', readOnly: m.readOnly });
      } else {
        const tag = `boson-bind${i}`;
        const transport = await this.shareTransport();
        shares.push({ tag, path: m.source, readOnly: m.readOnly, transport });
        mounts.push({ kind: transport, source: tag, target: m.destination, fstype: transport, readOnly: m.readOnly });
      }
    }
    return { disks, shares, mounts };
  }

  /**
   * Legacy links as a record keeps them: each container named must exist (Docker's 400 "could not get container
   * for …" otherwise); a later link with the same alias replaces an earlier one.
   */
  private resolveLinks(links: Array<{ container: string; alias: string }>): NonNullable<ContainerRecord['links']> {
    const out = new Map<string, { container: string; name: string; alias: string }>();
    for (const l of links) {
      let target: ContainerRecord;
      try {
        target = this.registry.get(l.container);
      } catch (err) {
        if (!isBosonError(err, 'CONTAINER_NOT_FOUND')) throw err;
        throw new BosonError('INVALID_ARGUMENT', `could not get container for ${l.container}: No such container: ${l.container}`);
      }
      out.set(l.alias, { container: target.id, name: target.name, alias: l.alias });
    }
    return [...out.values()];
  }

  /**
   * The DNS names a container's links give it on `network`. On the default network the linked containers must run
   * there (Docker's legacy links); on a user network a link is only a name, answered while its container is there.
   */
  private async linkNames(
    record: ContainerRecord,
    network: string,
  ): Promise<Array<{ containerId: string; containerName: string; names: string[] }>> {
    const links = record.links ?? [];
    if (links.length === 0) return [];
    const builtin = (await this.networks.get(network)).builtin;
    const out: Array<{ containerId: string; containerName: string; names: string[] }> = [];
    const find = (ref: string): ContainerRecord | undefined => {
      try {
        return this.registry.get(ref);
      } catch {
        return undefined;
      }
    };
    for (const l of links) {
      // By id, else by name: a linked container removed and created again under its name (compose's recreate) is
      // linked again, as Docker links by name. On a user network a link is only a name, answered while its
      // container is there (Docker's too); on the default bridge a missing one is Docker's error.
      const target = find(l.container) ?? find(l.name);
      if (!target) {
        if (!builtin) continue;
        throw new BosonError(
          'INVALID_ARGUMENT',
          `could not get container for ${l.name}: No such container: ${l.name} (linked as ${l.alias})`,
        );
      }
      if (builtin) {
        if (!this.live.has(target.id))
          throw new BosonError(
            'CONTAINER_NOT_RUNNING',
            `Cannot link to a non running container: /${target.name} AS /${record.name}/${l.alias}`,
          );
        if (target.endpoint?.network !== (await this.networks.get(network)).id)
          throw new BosonError('INVALID_ARGUMENT', `Cannot link to /${target.name}, as it does not belong to the default network`);
      }
      out.push({ containerId: target.id, containerName: target.name, names: [...new Set([l.alias, target.name])] });
    }
    return out;
  }

  /** Joins the container's network (tap, address, published ports, DNS name); null for --network none. */
  private async connectNetwork(record: ContainerRecord, tap?: string): Promise<Endpoint | null> {
    if ((record.network ?? 'none') === 'none') return null;
    const links = await this.linkNames(record, record.network);
    await this.networks.disconnect(record.id).catch(() => undefined);
    return this.networks.connect({
      links,
      containerId: record.id,
      containerName: record.name,
      aliases: record.aliases ?? [],
      network: record.network,
      ports: record.ports ?? [],
      hostname: record.config.hostname,
      ...(record.ipv4Address !== undefined ? { address: record.ipv4Address } : {}),
      ...(tap !== undefined ? { tap } : {}),
    });
  }

  async update(_ctx: RequestContext, ref: string, change: ContainerUpdate): Promise<Container> {
    const { id } = this.registry.get(ref);
    return this.lock.run(id, async () => {
      const record = this.registry.get(id);
      if (change.restartPolicy !== undefined) {
        if (record.autoRemove && change.restartPolicy.name !== 'no')
          throw new BosonError('INVALID_ARGUMENT', 'conflicting options: --restart and --rm');
        record.restartPolicy = { ...change.restartPolicy };
      }
      await this.registry.save(record);
      return containerView(record);
    });
  }

  /** True for a --rm container (false for one that is gone already). */
  private autoRemoved(id: string): boolean {
    try {
      return this.registry.get(id).autoRemove;
    } catch {
      return false;
    }
  }

  /** Follows a live VM until its container exits. */
  private watch(id: string, live: Live): void {
    this.live.set(id, live);
    this.diskFull.watch(id, live.vm);
    this.startRotation(id, live);
    const finish = (status: number, error: string | null, logged = false): void => {
      if (live.finished) return;
      live.finished = true;
      live.stopRotation?.();
      for (const [, e] of live.execs) e.done(137);
      // Output still queued in QEMU's log port must reach the file before QEMU goes (see waitForLogExit).
      const flushed = logged ? waitForLogExit(live.logFile, 5000) : Promise.resolve(true);
      const t0 = performance.now();
      const marks: Record<string, number> = {};
      const mark = (name: string): void => void (marks[name] = Math.round(performance.now() - t0));
      this.background(
        flushed
          // A --rm container's VM has nothing left to keep (its writable layer goes): it is killed, not asked to quit.
          .then(() => (mark('logFlushedMs'), this.autoRemoved(id) ? live.vm.kill() : live.vm.shutdown(1000)))
          .then(() => (mark('vmGoneMs'), this.exited(id, status, error, mark)))
          .then(() => (mark('recordedMs'), this.log.debug({ container: id, ...marks }, 'container exit handled'))),
        `recording the exit of container ${id.slice(0, 12)}`,
      );
    };
    let guestError: string | null = null;
    live.ctl.onSession(0, (frame) => {
      if (frame.type === FrameType.ERROR) guestError = decodeError(frame).message;
      if (frame.type === FrameType.EXIT) finish(decodeExit(frame).status, guestError, true);
    });
    this.background(
      live.vm.exited.then(async () => {
        if (live.finished) return;
        const exit = await lastExit(live.logFile).catch(() => undefined);
        // Without an EXIT in the log, QEMU was killed or crashed: what it printed last tells which.
        const said = live.vm.qemuStderr.split('\n').at(-1)?.trim();
        finish(
          exit?.status ?? 137,
          exit ? null : `the micro-VM ended without an exit status (stopped from outside Boson, or QEMU failed${said ? `: ${said}` : ''})`,
        );
      }),
      `following the micro-VM of container ${id.slice(0, 12)}`,
    );
  }

  /** Records an exit (from whatever source), wakes waiters, and applies the restart policy. */
  private async exited(id: string, status: number, error: string | null, mark?: (step: string) => void): Promise<void> {
    this.live.delete(id);
    this.releaseVolumes(id);
    this.diskFull.forget(id);
    if (this.closing) return;
    // A container removed now (--rm) is disconnected while its record goes; any other before its exit is told.
    const disconnected = this.nets?.disconnect(id).catch(() => undefined);
    let record: ContainerRecord;
    try {
      record = this.registry.get(id);
    } catch {
      await disconnected;
      return;
    }
    if (!record.autoRemove) await disconnected;
    mark?.('disconnectedMs');
    this.settle(record, status, error);
    await this.registry.save(record);
    mark?.('savedMs');
    this.emit(record, 'die', { exitCode: String(status) });
    this.wake(id, 'exit', { statusCode: status, error });
    if (record.autoRemove) {
      await this.lock.run(id, () => this.removeLocked(id, true)).catch(() => undefined);
      await disconnected;
      mark?.('removedMs');
      return;
    }
    if (this.shouldRestart(record, status)) {
      const delay = Math.min(100 * 2 ** record.restartCount, 10_000);
      record.state = 'restarting';
      await this.registry.save(record);
      setTimeout(() => {
        void this.lock
          .run(id, async () => {
            const current = this.registry.get(id);
            if (current.state !== 'restarting' || current.stoppedByUser) return;
            await this.startLocked(id, true);
          })
          .catch(() => undefined);
      }, delay).unref();
    }
  }

  private shouldRestart(record: ContainerRecord, status: number): boolean {
    if (record.stoppedByUser) return false;
    switch (record.restartPolicy.name) {
      case 'always':
      case 'unless-stopped':
        return true;
      case 'on-failure':
        return (
          status !== 0 && (record.restartPolicy.maximumRetryCount === 0 || record.restartCount < record.restartPolicy.maximumRetryCount)
        );
      default:
        return false;
    }
  }

  private settle(record: ContainerRecord, status: number, error: string | null): void {
    record.state = 'exited';
    record.endpoint = null;
    record.vmPid = null;
    record.exitCode = status;
    record.finishedAt = new Date().toISOString();
    record.error = error;
  }

  private wake(id: string, what: 'exit' | 'removed', result: WaitResult): void {
    const list = this.waiters.get(id) ?? [];
    const keep = list.filter((w) => {
      if (what === 'removed' ? w.condition === 'removed' : w.condition !== 'removed') {
        w.resolve(result);
        return false;
      }
      return true;
    });
    if (keep.length > 0) this.waiters.set(id, keep);
    else this.waiters.delete(id);
  }

  /** Stops a container: SIGTERM, then after `timeoutSec` the VM is killed. */
  async stop(_ctx: RequestContext, ref: string, timeoutSec = 10): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.stopLocked(id, timeoutSec));
  }

  private async stopLocked(id: string, timeoutSec: number): Promise<void> {
    const record = this.registry.get(id);
    record.stoppedByUser = true;
    await this.registry.save(record);
    const live = this.live.get(id);
    if (!live && record.state === 'suspended') {
      await this.discardSuspended(record);
      this.emit(record, 'stop');
      if (record.autoRemove) await this.removeLocked(id, true);
      return;
    }
    if (!live) {
      if (record.state === 'restarting') {
        this.settle(record, record.exitCode ?? 0, record.error);
        await this.registry.save(record);
      }
      return;
    }
    const t0 = performance.now();
    const exited = this.waitFor(id, 'next-exit');
    live.ctl.sendSignal(15);
    const timer = setTimeout(() => void live.vm.kill(), Math.max(0, timeoutSec) * 1000);
    await exited;
    clearTimeout(timer);
    this.metrics.stops.push(performance.now() - t0);
    this.emit(this.registry.get(id), 'stop');
  }

  /** Restarts a container (stop, then start). */
  async restart(_ctx: RequestContext, ref: string, timeoutSec = 10): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, async () => {
      await this.stopLocked(id, timeoutSec);
      await this.startLocked(id, false);
      this.emit(this.registry.get(id), 'restart');
    });
  }

  /** Sends a signal to a running container's process. */
  async kill(_ctx: RequestContext, ref: string, signal = 'KILL'): Promise<void> {
    const signo = parseSignal(signal);
    const record = this.registry.get(ref);
    const live = this.live.get(record.id);
    if (!live && record.state === 'suspended')
      throw new BosonError('CONTAINER_SUSPENDED', `container ${record.name} is suspended: resume it first, or stop it`);
    if (!live) this.checkOwned(record);
    if (!live) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} is not running`);
    if (signo === 9) {
      record.stoppedByUser = true;
      await this.registry.save(record);
      // A paused guest cannot act on a signal: end its VM instead (exit 137, as SIGKILL would give).
      if (this.diskFull.reason(record.id) !== undefined) void live.vm.kill();
    }
    live.ctl.sendSignal(signo);
    this.emit(record, 'kill', { signal: String(signo) });
  }

  /** Removes a container; a running one only with `force` (it is killed first); its anonymous volumes with `volumes`. */
  async remove(_ctx: RequestContext, ref: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.removeLocked(id, options.force ?? false, options.volumes ?? false));
  }

  private async removeLocked(id: string, force: boolean, volumes = false): Promise<void> {
    let record: ContainerRecord;
    try {
      record = this.registry.get(id);
    } catch {
      return;
    }
    await this.helperVms.end(id, undefined, 0);
    const live = this.live.get(id);
    if (!live && record.state === 'suspended') {
      if (!force) throw new BosonError('CONTAINER_SUSPENDED', `container ${record.name} is suspended: stop it first or use --force`);
      record.stoppedByUser = true;
      await this.registry.save(record);
      await this.discardSuspended(record);
    }
    if (live) {
      if (!force) throw new BosonError('CONTAINER_RUNNING', `container ${record.name} is running: stop it first or use --force`);
      record.stoppedByUser = true;
      await this.registry.save(record);
      const exited = this.waitFor(id, 'next-exit');
      await live.vm.kill();
      await exited;
    }
    await this.dropScratchWork(id);
    // The record and its files, the network and the VM's runtime directory do not depend on each other.
    const runtimeDir = this.runtimeDir(id);
    const [removed] = await Promise.allSettled([
      this.registry.remove(record),
      this.nets?.disconnect(id).catch(() => undefined),
      (async () => {
        if (this.options.detached) await this.vmm.cleanup(runtimeDir);
        await rm(runtimeDir, { recursive: true, force: true });
      })(),
    ]);
    if (removed.status === 'rejected') throw removed.reason;
    this.logFeeds.delete(id);
    if (volumes || record.autoRemove) {
      for (const m of record.mounts ?? []) {
        if (m.type === 'volume' && m.anonymous) await this.volumes.remove(m.name, await this.volumeUsers(m.name)).catch(() => undefined);
      }
    }
    this.emit(record, 'destroy');
    // Everything kept for the container goes with it: its exec instances, and every waiter (each is answered).
    for (const [execId, exec] of this.execs) if (exec.containerId === id) this.execs.delete(execId);
    for (const w of this.waiters.get(id) ?? []) w.resolve({ statusCode: record.exitCode ?? 0, error: null });
    this.waiters.delete(id);
  }

  /** A container's saved state while it is suspended (mode 0600, in its own directory). */
  private stateFile(id: string): string {
    return path.join(this.registry.containerDir(id), SUSPEND_STATE_FILE);
  }

  /**
   * Saves a running container's micro-VM to its state file and ends its QEMU (see Machine.suspend). The guest syncs
   * its disks first (SYNC), so that a suspended container stopped without resuming keeps what it wrote; QEMU flushes
   * its own caches when the migration completes. Its network endpoint (address, tap, published ports) and its
   * volumes stay its own while it is suspended, since the saved guest still uses them.
   */
  async suspend(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    const { id } = this.registry.get(ref);
    return this.lock.run(id, () => this.suspendLocked(id));
  }

  private async suspendLocked(id: string): Promise<SuspendResult> {
    const t0 = performance.now();
    const record = this.registry.get(id);
    if (record.state === 'suspended') throw new BosonError('CONTAINER_SUSPENDED', `container ${record.name} is already suspended`);
    const live = this.live.get(id);
    if (!live || live.finished || record.state !== 'running')
      throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} is not running`);
    const refuse = (why: string): BosonError =>
      new BosonError('SUSPEND_UNSUPPORTED', `container ${record.name} cannot be suspended: ${why}`);
    if (!this.options.detached || !live.vm.saveState || this.runtimeDirOf(live) === undefined)
      throw refuse('only a daemon (boson up) suspends containers');
    if ((record.mounts ?? []).some((m) => m.type !== 'volume'))
      throw refuse('it has bind mounts, and QEMU cannot save a VM with a virtiofs or 9p share');
    if ([...live.execs.values()].some((e) => e.exec.running)) throw refuse('an exec is running in it');
    if (this.diskFull.reason(id) !== undefined) throw refuse("its VM is paused on the host's full disk");
    const synced = await live.ctl.syncGuest(SYNC_TIMEOUT_MS);
    if (!synced) this.log.info({ container: id }, 'the guest did not confirm its sync before the suspend (an older boson-init?)');
    if (live.finished) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} exited while it was being suspended`);
    // From here its QEMU's end is not the container's exit.
    live.finished = true;
    live.stopRotation?.();
    const file = this.stateFile(id);
    let saved: { bytes: number; ms: number };
    try {
      saved = await live.vm.saveState(file);
    } catch (err) {
      // A VM whose save failed before QEMU sent it all is paused and goes on. One QEMU has sent whole
      // (postmigrate) can neither continue (QEMU 7.2 cannot take its disks' locks back) nor be saved again: it is
      // ended, as is a VM that ended meanwhile, and the container has exited.
      if (
        !live.vm.hasExited &&
        (await live.vm.status().catch(() => '')) === 'paused' &&
        (await live.vm.resume().then(
          () => true,
          () => false,
        ))
      ) {
        live.finished = false;
        this.startRotation(id, live);
      } else {
        await live.vm.kill();
        void this.exited(id, 137, `the micro-VM was lost while it was being suspended: ${toBosonError(err).message}`);
      }
      throw err;
    }
    await writeFile(
      path.join(this.registry.containerDir(id), SUSPEND_INFO_FILE),
      JSON.stringify({ memoryMiB: record.resources.memoryMiB, cpus: record.resources.cpus, bytes: saved.bytes }),
      { mode: 0o600 },
    );
    live.ctl.close();
    await live.vm.shutdown(2000);
    this.live.delete(id);
    this.diskFull.forget(id);
    const runtimeDir = this.runtimeDirOf(live);
    if (runtimeDir) await rm(runtimeDir, { recursive: true, force: true }).catch(() => undefined);
    record.state = 'suspended';
    record.vmPid = null;
    record.suspendedAt = new Date().toISOString();
    await this.registry.save(record);
    this.emit(record, 'suspend');
    const ms = Math.round(performance.now() - t0);
    this.log.info({ container: id, stateBytes: saved.bytes, saveMs: Math.round(saved.ms), ms, synced }, 'container suspended');
    return { id, state: 'suspended', stateBytes: saved.bytes, ms };
  }

  /** The runtime directory of a live VM (where it is, even after a relocation). */
  private runtimeDirOf(live: Live): string | undefined {
    return (live.vm as { runtimeDir?: string }).runtimeDir;
  }

  /**
   * Starts a suspended container's micro-VM again from its saved state (see Machine.resume): the same devices (its
   * disks, volumes, tap and MAC), QEMU waiting for the state, then the guest's clock set to now, since it stood
   * still while the VM was saved. The state file goes once the VM runs.
   */
  async resume(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    const { id } = this.registry.get(ref);
    return this.lock.run(id, () => this.resumeLocked(id));
  }

  private async resumeLocked(id: string): Promise<SuspendResult> {
    const t0 = performance.now();
    const record = this.registry.get(id);
    if (record.state !== 'suspended')
      throw new BosonError('CONTAINER_NOT_SUSPENDED', `container ${record.name} is not suspended (it is ${record.state})`);
    this.checkOwned(record);
    const file = this.stateFile(id);
    const info = JSON.parse(await readFile(path.join(this.registry.containerDir(id), SUSPEND_INFO_FILE), 'utf8').catch(() => '{}')) as {
      memoryMiB?: number;
      cpus?: number;
    };
    const size = await stat(file).then(
      (s) => s.size,
      () => -1,
    );
    if (size < 0) throw new BosonError('SUSPEND_STATE_LOST', `the saved state of container ${record.name} is missing (${file})`);
    const runtimeDir = this.runtimeDir(id);
    const [rootDisk, bundle] = await Promise.all([
      this.images.resolve(record.imageId).then((image) => this.images.rootDisk(image)),
      this.bootBundle(),
      rm(runtimeDir, { recursive: true, force: true }).then(() => mkdir(runtimeDir, { recursive: true })),
    ]);
    const memoryMiB = info.memoryMiB ?? record.resources.memoryMiB;
    await checkHostCapacity(memoryMiB, this.paths.stateDir);
    const { disks: extraDisks, shares } = await this.mountPlan(record);
    let vm: Vm | undefined;
    try {
      // Its endpoint was kept while it was suspended; one lost (a network removed meanwhile) is made again with the
      // address and MAC the saved guest has configured.
      let endpoint: Endpoint | null = null;
      if ((record.network ?? 'none') !== 'none') {
        endpoint = (await this.networks.endpoints(id))[0] ?? null;
        if (!endpoint) {
          const links = await this.linkNames(record, record.network);
          endpoint = await this.networks.connect({
            links,
            containerId: record.id,
            containerName: record.name,
            aliases: record.aliases ?? [],
            network: record.network,
            ports: record.ports ?? [],
            hostname: record.config.hostname,
            ...(record.endpoint ? { address: record.endpoint.address, mac: record.endpoint.mac } : {}),
          });
        }
      }
      vm = await this.vmm.launch({
        kernel: bundle.kernelPath,
        initramfs: bundle.initramfsPath,
        acpi: bundle.acpi,
        memoryMiB,
        cpus: info.cpus ?? record.resources.cpus,
        disks: [
          { serial: 'boson-root', path: rootDisk.path, readOnly: true },
          { serial: 'boson-scratch', path: this.scratchOf(id), readOnly: false },
          ...extraDisks,
        ],
        shares,
        runtimeDir,
        logFile: this.logFile(id),
        nics: endpoint ? [endpoint.nic] : [],
        debug: this.options.debug,
        jail: this.jailFor(record, runtimeDir),
        incoming: true,
      });
      if (!vm.loadState) throw new BosonError('SUSPEND_UNSUPPORTED', 'this VMM cannot restore a saved micro-VM');
      const ctl = new ControlChannel(vm.channel);
      try {
        await vm.loadState(file);
      } catch (cause) {
        throw new BosonError(
          'SUSPEND_STATE_LOST',
          `the saved state of container ${record.name} did not load: ${toBosonError(cause).message}`,
          {
            cause,
          },
        );
      }
      // Recorded before the guest runs: a daemon killed from here on finds a paused VM with a whole state file,
      // which it ends and counts as suspended (settleInterrupted), or a running one, which it keeps.
      record.state = 'running';
      record.vmPid = vm.pid;
      delete record.suspendedAt;
      if (endpoint)
        record.endpoint = {
          network: endpoint.network,
          address: endpoint.address,
          gateway: endpoint.gateway,
          mac: endpoint.mac,
          ports: endpoint.ports,
        };
      await this.registry.save(record);
      // QEMU takes its disks' locks back when the loaded VM continues; its first try at the end of the load has
      // been seen to fail now and then (qemu.log: 'Failed to get shared "write" lock'), a later one not.
      for (let attempt = 1; ; attempt++) {
        try {
          await vm.resume();
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          this.log.info(
            { container: id, attempt, error: toBosonError(err).message },
            'the resumed micro-VM did not continue; trying again',
          );
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
      ctl.sendClock();
      this.watch(id, { vm, ctl, logFile: this.logFile(id), execs: new Map(), nextSession: 1, finished: false });
    } catch (err) {
      await vm?.kill();
      if (record.state === 'running') {
        record.state = 'suspended';
        record.vmPid = null;
        record.suspendedAt = new Date().toISOString();
        await this.registry.save(record);
      }
      // It stays suspended (its endpoint and volumes too): the caller may try again, or stop or remove it.
      if (vm) await this.vmm.cleanup(runtimeDir).catch(() => undefined);
      throw err;
    }
    await rm(file, { force: true });
    await rm(path.join(this.registry.containerDir(id), SUSPEND_INFO_FILE), { force: true });
    this.emit(record, 'resume');
    const ms = Math.round(performance.now() - t0);
    this.log.info({ container: id, stateBytes: size, ms }, 'container resumed');
    return { id, state: 'running', stateBytes: size, ms };
  }

  /**
   * Ends a suspended container without resuming it (stop, restart, rm -f): its saved state is deleted, its
   * endpoint and volumes freed, and it has exited with 137 (as if its VM had been killed; the disks hold what the
   * guest had synced when it was suspended).
   */
  private async discardSuspended(record: ContainerRecord): Promise<void> {
    await rm(this.stateFile(record.id), { force: true });
    await rm(path.join(this.registry.containerDir(record.id), SUSPEND_INFO_FILE), { force: true });
    delete record.suspendedAt;
    this.releaseVolumes(record.id);
    await this.nets?.disconnect(record.id).catch(() => undefined);
    this.settle(record, 137, null);
    await this.registry.save(record);
    this.emit(record, 'die', { exitCode: '137' });
    this.wake(record.id, 'exit', { statusCode: 137, error: null });
  }

  /** Renames a container. */
  async rename(_ctx: RequestContext, ref: string, newName: string): Promise<void> {
    const record = this.registry.get(ref);
    await this.lock.run(record.id, async () => {
      const current = this.registry.get(record.id);
      const old = current.name;
      await this.registry.rename(current, newName);
      this.emit(current, 'rename', { oldName: old });
    });
  }

  /** Waits for a container by Docker's conditions. */
  async wait(_ctx: RequestContext, ref: string, condition: WaitCondition = 'not-running'): Promise<WaitResult> {
    const record = this.registry.get(ref);
    if (condition === 'not-running' && record.state !== 'running' && record.state !== 'restarting') {
      return { statusCode: record.exitCode ?? 0, error: record.error };
    }
    return this.waitFor(record.id, condition);
  }

  private waitFor(id: string, condition: WaitCondition): Promise<WaitResult> {
    return new Promise((resolve) => {
      const list = this.waiters.get(id) ?? [];
      list.push({ condition, resolve });
      this.waiters.set(id, list);
    });
  }

  /** Reads a container's logs (and follows them until `signal` aborts, when `follow`). */
  async logs(
    _ctx: RequestContext,
    ref: string,
    query: LogQuery,
    follow: boolean,
    onLine: (line: LogLine) => void,
    signal: AbortSignal,
    ready?: () => Promise<void>,
  ): Promise<void> {
    const record = this.registry.get(ref);
    const file = this.logFile(record.id);
    // Without --tail the log is delivered batch by batch, each once the client has taken the one before (a whole
    // log in memory, or in a socket's buffer, would be as large as the log). --tail needs the whole log read.
    // Rotated files first, oldest first (each holds whole records), then the current one.
    const feed = this.logFeed(record.id);
    const tailed: LogLine[] = [];
    let end = 0;
    for (const f of await logFileSet(file)) {
      const size = (await stat(f).catch(() => ({ size: 0 }))).size;
      end = 0;
      for (;;) {
        const batch = await readLog(f, end, query.tail === undefined ? FOLLOW_BATCH_BYTES : Infinity);
        if (batch.corruptAt !== undefined)
          this.log.warn(
            { container: record.id, file: f, offset: batch.corruptAt },
            'the container log is damaged; it is read up to the damage',
          );
        if (query.tail === undefined) for (const line of filterLines(batch.lines, query)) onLine(line);
        else tailed.push(...batch.lines);
        const progressed = batch.end > end;
        end = batch.end;
        if (!progressed || end >= size || batch.corruptAt !== undefined || signal.aborted) break;
        if (ready && query.tail === undefined) await ready();
      }
    }
    for (const line of filterLines(tailed, query)) onLine(line);
    if (!follow || signal.aborted) return;
    const stopOnExit = new AbortController();
    const relay = (): void => stopOnExit.abort();
    signal.addEventListener('abort', relay, { once: true });
    if (!this.live.has(record.id) && record.state !== 'restarting') return;
    const ended = new AbortController();
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId === record.id && (e.action === 'die' || e.action === 'destroy')) ended.abort();
    };
    this.events.on('event', onEvent);
    try {
      await followLog(file, end, query, onLine, () => undefined, stopOnExit.signal, ended.signal, ready, feed);
    } finally {
      this.events.off('event', onEvent);
      signal.removeEventListener('abort', relay);
    }
  }

  /**
   * Attaches to a running container: its output from now on goes to `sink` until it exits or `signal` aborts;
   * returns functions to feed stdin (when the container has it open) and to resize its pty.
   */
  async attach(_ctx: RequestContext, ref: string, sink: StreamSink, signal: AbortSignal): Promise<Attachment> {
    const record = this.registry.get(ref);
    const file = this.logFile(record.id);
    const offset = (await stat(file).catch(() => ({ size: 0 }))).size;
    const stop = new AbortController();
    signal.addEventListener('abort', () => stop.abort(), { once: true });
    // The die event comes once QEMU is gone, so the log is complete: read it to the end, then stop.
    const ended = new AbortController();
    // Stdin held until the process runs (see Attachment): the VM is live right after its 'start' event.
    const held: Array<Buffer | null> = [];
    let running = this.live.has(record.id);
    const deliver = (item: Buffer | null): void => {
      const c = this.live.get(record.id)?.ctl;
      if (item === null) c?.send(FrameType.STDIN_EOF);
      else c?.sendStdin(item);
    };
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId !== record.id) return;
      if (e.action === 'die' || e.action === 'destroy') ended.abort();
      else if (e.action === 'start' && !running)
        setImmediate(() => {
          running = true;
          for (const item of held.splice(0)) deliver(item);
        });
    };
    this.events.on('event', onEvent);
    const done = followLog(
      file,
      offset,
      {},
      (line) => (line.stream === 'stdout' ? sink.stdout(line.data) : sink.stderr(line.data)),
      () => undefined,
      stop.signal,
      ended.signal,
      sink.ready ? () => sink.ready!() : undefined,
      this.logFeed(record.id),
    ).finally(() => this.events.off('event', onEvent));
    const pass = (item: Buffer | null): void => {
      if (!record.config.openStdin) return;
      if (running) deliver(item);
      else held.push(item);
    };
    return {
      stdin: (data) => pass(data),
      closeStdin: () => pass(null),
      resize: (rows, cols) => this.live.get(record.id)?.ctl.sendResize(rows, cols),
      done,
    };
  }

  /**
   * create + attach + start + wait as one call: output reaches `sink` from the first byte, and `exit` resolves
   * once the container has ended, its output has been delivered and (with autoRemove) it has been removed. A
   * container that cannot start is settled as start does it (and removed with autoRemove) before this rejects.
   */
  async run(ctx: RequestContext, spec: ContainerSpec, sink: StreamSink, options: RunOptions = {}): Promise<RunSession> {
    const record = await this.createRecord(spec, [], undefined, true);
    options.onCreated?.(containerView(record));
    const id = record.id;
    const detach = new AbortController();
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId !== id) return;
      if (e.action === 'pause')
        options.onNotice?.(
          `the micro-VM is paused: the disk holding ${this.paths.stateDir} is full; it resumes by itself once there is room`,
        );
      else if (e.action === 'unpause') options.onNotice?.('the micro-VM resumed: the disk has room again');
    };
    this.events.on('event', onEvent);
    detach.signal.addEventListener('abort', () => this.events.off('event', onEvent), { once: true });
    const attachment = await this.attach(ctx, id, sink, detach.signal);
    const exited = this.waitFor(id, 'next-exit');
    const removed = record.autoRemove ? this.waitFor(id, 'removed') : undefined;
    try {
      await this.lock.run(id, () => this.startLocked(id, false, options.winsize, options.onNotice));
    } catch (err) {
      detach.abort();
      if (record.autoRemove) await this.lock.run(id, () => this.removeLocked(id, true)).catch(() => undefined);
      throw err;
    }
    const exit = exited.then(async (result) => {
      await attachment.done;
      if (removed) await removed;
      this.events.off('event', onEvent);
      return result;
    });
    const ctl = (): ControlChannel | undefined => this.live.get(id)?.ctl;
    return {
      container: containerView(this.record(id)),
      stdin: attachment.stdin,
      closeStdin: attachment.closeStdin,
      resize: attachment.resize,
      signal: (signo) => ctl()?.sendSignal(signo),
      exit,
    };
  }

  /**
   * Runs work nobody awaits (a VM's exit, found by a watcher): a failure is logged instead of ending the process
   * as an unhandled rejection would.
   */
  private background(work: Promise<unknown>, what: string): void {
    work.catch((err: unknown) => {
      const e = toBosonError(err);
      this.log.error({ code: e.code }, `${what}: ${e.message}`);
    });
  }

  /** The confinement of a container's QEMU under the host's policy. */
  private jailFor(record: ContainerRecord, runtimeDir: string | undefined): VmJail | undefined {
    return this.jailOf(record.id.slice(0, 16), record.resources.memoryMiB, record.resources.cpus, runtimeDir);
  }

  /** The confinement of a QEMU whose cgroup is `name`, for a VM of that size (a container's, or a warm one). */
  private jailOf(name: string, memoryMiB: number, cpus: number, runtimeDir: string | undefined): VmJail | undefined {
    const policy = this.options.jail;
    if (!policy) return undefined;
    return {
      sandbox: policy.sandbox,
      user: runtimeDir ? policy.user : undefined,
      chroot: policy.chroot ? (runtimeDir ?? policy.emptyDir) : undefined,
      cgroup: policy.cgroupParent
        ? {
            parent: policy.cgroupParent,
            name,
            memoryBytes: (memoryMiB + VMM_MEMORY_ALLOWANCE_MIB) * 1024 * 1024,
            pids: 256,
            cpus: cpus + 1,
          }
        : undefined,
    };
  }

  /** Refuses to act on a container that another live process (an embedded runtime: `boson run`) supervises. */
  private checkOwned(record: ContainerRecord): void {
    if (record.managed === this.options.detached) {
      if (record.managed || record.ownerPid === null || record.ownerPid === process.pid || !isAlive(record.ownerPid)) return;
    }
    if (record.ownerPid !== null && record.ownerPid !== process.pid && isAlive(record.ownerPid)) {
      throw new BosonError(
        'CONTAINER_RUNNING',
        `container ${record.name} is run in the foreground by boson run (pid ${record.ownerPid}) without a daemon; stop it there`,
      );
    }
    if (record.managed && !this.options.detached) {
      throw new BosonError(
        'DAEMON_UNAVAILABLE',
        `container ${record.name} is managed by the daemon, and none is running: start it with boson up`,
      );
    }
  }

  /**
   * The live VM an offline exec of container `id` runs in: the container's own when it was started meanwhile, else
   * its helper micro-VM (booted now if it has none); `release` when the exec has ended.
   */
  private helperFor(id: string): Promise<{ live: Live; release: () => void }> {
    return this.lock.run(id, async () => {
      const running = this.live.get(id);
      if (running) return { live: running, release: () => undefined };
      return this.helperVms.acquire(id, () => this.bootHelper(id));
    });
  }

  /**
   * Boots a helper micro-VM of a container that is not running: its image root, writable layer, volumes and bind
   * mounts, no network, and a main process that waits on its stdin (`sh`, which the copy's stat and tar need
   * anyway). It is jailed like the container's own VM would be (the workload's files are as untrusted as the
   * workload), in the container's runtime directory; a daemon that dies leaves it to the next one's orphan sweep.
   * Its output goes to a log of its own, never to the container's.
   */
  private async bootHelper(id: string): Promise<{ live: Live; cleanup: () => Promise<void> }> {
    const record = this.registry.get(id);
    this.checkOwned(record);
    if (record.state === 'running' || record.state === 'restarting')
      throw new BosonError('CONTAINER_RUNNING', `container ${record.name} is running in another Boson process`);
    await this.scratchReady(record);
    const runtimeDir = this.options.detached ? this.runtimeDir(id) : undefined;
    const [rootDisk, bundle] = await Promise.all([
      this.images.resolve(record.imageId).then((image) => this.images.rootDisk(image)),
      this.bootBundle(),
      runtimeDir ? rm(runtimeDir, { recursive: true, force: true }).then(() => mkdir(runtimeDir, { recursive: true })) : undefined,
    ]);
    await checkHostCapacity(record.resources.memoryMiB, this.paths.stateDir);
    const logFile = path.join(this.registry.containerDir(id), 'helper.log');
    const cleanup = async (): Promise<void> => {
      this.releaseVolumes(id);
      if (runtimeDir) await this.vmm.cleanup(runtimeDir).catch(() => undefined);
      await rm(logFile, { force: true });
    };
    try {
      const { disks, shares, mounts } = await this.mountPlan(record);
      const accel = await this.vmm.accelerator();
      let ctl!: ControlChannel;
      const { vm } = await bootWithWatchdog(
        {
          kernel: bundle.kernelPath,
          initramfs: bundle.initramfsPath,
          acpi: bundle.acpi,
          memoryMiB: record.resources.memoryMiB,
          cpus: record.resources.cpus,
          disks: [
            { serial: 'boson-root', path: rootDisk.path, readOnly: true },
            { serial: 'boson-scratch', path: this.scratchOf(id), readOnly: false },
            ...disks,
          ],
          shares,
          runtimeDir,
          logFile,
          nics: [],
          debug: this.options.debug,
          jail: this.jailFor(record, runtimeDir),
        },
        (booting: Vm) => {
          ctl = new ControlChannel(booting.channel);
          return ctl.waitForHello();
        },
        { timeoutMs: this.options.bootTimeoutMs ?? (accel === 'kvm' ? 5000 : 15000), attempts: 3 },
        (config) => this.vmm.launch(config),
      );
      const started = new Promise<void>((resolve, reject) => {
        let guestError: BosonError | undefined;
        ctl.onSession(0, (frame) => {
          if (frame.type === FrameType.STARTED) resolve();
          else if (frame.type === FrameType.ERROR) guestError = guestErrorOf(frame);
          else if (frame.type === FrameType.EXIT)
            reject(guestError ?? new BosonError('CONTAINER_START_FAILED', 'the helper ended at once'));
        });
        ctl.onClose(() => reject(new BosonError('GUEST_CRASHED', 'the helper micro-VM ended before it was ready')));
      });
      ctl.send(
        FrameType.SPEC,
        encodeSpec({
          argv: ['sh', '-c', 'read -r _ || :'],
          env: record.config.env,
          cwd: '/',
          user: '0',
          hostname: record.config.hostname,
          tty: false,
          stdin: true,
          rootDisk: 'boson-root',
          rootFstype: rootDisk.fstype,
          scratchDisk: 'boson-scratch',
          logPort: true,
          clockNs: BigInt(Date.now()) * 1_000_000n,
          mounts,
        }),
      );
      try {
        await started;
      } catch (err) {
        await vm.shutdown(1000);
        const e = toBosonError(err);
        if (e.code === 'COMMAND_NOT_FOUND' || e.code === 'COMMAND_NOT_EXECUTABLE')
          throw new BosonError(
            'CONTAINER_NOT_RUNNING',
            `container ${record.name} is not running, and its image has no shell (sh) for Boson to reach its files with while it is stopped: start it first`,
          );
        throw err;
      }
      return { live: { vm, ctl, logFile, execs: new Map(), nextSession: 1, finished: false }, cleanup };
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  /** Resizes a running container's pty. */
  async resize(_ctx: RequestContext, ref: string, rows: number, cols: number): Promise<void> {
    const record = this.registry.get(ref);
    this.live.get(record.id)?.ctl.sendResize(rows, cols);
  }

  /** Creates an exec instance in a running container. */
  async createExec(_ctx: RequestContext, ref: string, spec: ExecSpec): Promise<ExecInstance> {
    return execView(this.newExec(ref, spec));
  }

  /** Creates an exec record (see createExec). */
  newExec(ref: string, spec: ExecSpec, root?: ExecRoot): ExecRecord {
    const record = this.registry.get(ref);
    if (record.state === 'suspended')
      throw new BosonError('CONTAINER_SUSPENDED', `container ${record.name} is suspended: resume it first (boson resume)`);
    const offline = spec.offline === true && !this.live.has(record.id) && record.state !== 'running' && record.state !== 'restarting';
    if (!this.live.has(record.id) && !offline) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} is not running`);
    const paused = this.diskFull.reason(record.id);
    if (paused !== undefined)
      throw new BosonError(
        'CONTAINER_PAUSED_DISK_FULL',
        `container ${record.name} is paused: ${paused}; it resumes by itself once the disk has room`,
      );
    if (spec.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'no command given to exec');
    // As Docker's exec: the container's user unless one is given (an image's User, e.g. redis, applies to exec too).
    const exec: ExecRecord = {
      id: newContainerId(),
      containerId: record.id,
      argv: spec.argv,
      env: mergeEnv(record.config.env, spec.env ?? []),
      cwd: spec.cwd,
      user: spec.user || record.config.user,
      tty: spec.tty ?? false,
      stdin: spec.stdin ?? false,
      running: false,
      exitCode: null,
      pid: null,
      session: 0,
      ...(offline ? { offline } : {}),
      ...(root !== undefined ? { root } : {}),
    };
    this.execs.set(exec.id, exec);
    return exec;
  }

  /** Drops a finished exec instance (a one-request exec, which nobody can look up afterwards). */
  forgetExec(id: string): void {
    this.execs.delete(id);
  }

  async inspectExec(_ctx: RequestContext, id: string): Promise<ExecInstance> {
    return execView(this.getExec(id));
  }

  /** Looks up an exec instance. */
  getExec(id: string): ExecRecord {
    const exec = this.execs.get(id);
    if (!exec) throw new BosonError('EXEC_NOT_FOUND', `no such exec instance: ${id}`);
    return exec;
  }

  /**
   * Starts an exec instance; its output goes to `sink`. Resolves with stdin/resize controls once the process runs,
   * and `exit` with its exit code.
   */
  async startExec(_ctx: RequestContext, id: string, sink: StreamSink): Promise<ExecSession> {
    const exec = this.getExec(id);
    if (exec.running || exec.exitCode !== null) throw new BosonError('INVALID_ARGUMENT', `exec ${id.slice(0, 12)} has already run`);
    let live = this.live.get(exec.containerId);
    let release = (): void => undefined;
    if (!live && exec.offline) ({ live, release } = await this.helperFor(exec.containerId));
    if (!live) throw new BosonError('CONTAINER_NOT_RUNNING', 'the container is not running');
    let resolveExit!: (code: number) => void;
    const exit = new Promise<number>((resolve) => (resolveExit = resolve));
    // A helper VM (an offline exec) is held until the exec has ended.
    void exit.then(release);
    // A daemon that re-attached to a VM does not know the sessions of execs an earlier daemon left running there:
    // the guest refuses a number in use (SESSION_IN_USE), and the exec takes the next one.
    for (let attempt = 0; ; attempt++) {
      const session = live.nextSession;
      live.nextSession = live.nextSession >= 65535 ? 1 : live.nextSession + 1;
      exec.session = session;
      const outcome = await this.tryExecSession(live, exec, session, sink, resolveExit, attempt < 64);
      if (outcome === 'session-in-use') continue;
      return {
        stdin: (d) => live.ctl.sendStdin(d, session),
        closeStdin: () => live.ctl.send(FrameType.STDIN_EOF, Buffer.alloc(0), session),
        resize: (r, c) => live.ctl.sendResize(r, c, session),
        signal: (n) => live.ctl.sendSignal(n, session),
        exit,
      };
    }
  }

  /** Sends one EXEC on `session`; resolves once it started or ended, or 'session-in-use' (when `mayRetry`). */
  private async tryExecSession(
    live: Live,
    exec: ExecRecord,
    session: number,
    sink: StreamSink,
    resolveExit: (code: number) => void,
    mayRetry: boolean,
  ): Promise<'started' | 'ended' | 'session-in-use'> {
    let startError: BosonError | undefined;
    let inUse = false;
    return new Promise((resolve) => {
      const done = (code: number): void => {
        live.execs.delete(session);
        live.ctl.offSession(session);
        if (inUse) {
          resolve('session-in-use');
          return;
        }
        exec.running = false;
        exec.exitCode = code;
        resolveExit(code);
        resolve('ended');
      };
      live.execs.set(session, { exec, sink, done });
      live.ctl.onSession(session, (frame: Frame) => {
        switch (frame.type) {
          case FrameType.STARTED:
            exec.running = true;
            exec.pid = decodeStarted(frame);
            resolve('started');
            return;
          case FrameType.STDOUT:
            sink.stdout(frame.payload);
            // A client that does not read holds the guest back (exec output comes over the control channel).
            if (sink.ready) live.ctl.holdUntil(sink.ready());
            return;
          case FrameType.STDERR:
            sink.stderr(frame.payload);
            if (sink.ready) live.ctl.holdUntil(sink.ready());
            return;
          case FrameType.ERROR:
            startError = guestErrorOf(frame);
            if (mayRetry && startError.details.guestReason === GuestErrorReason.SESSION_IN_USE) inUse = true;
            else sink.stderr(Buffer.from(`${startError.message}\n`));
            return;
          case FrameType.EXIT:
            done(decodeExit(frame).status);
            return;
          default:
        }
      });
      live.ctl.send(
        FrameType.EXEC,
        encodeExec({
          argv: exec.argv,
          env: exec.env,
          cwd: exec.cwd,
          user: exec.user,
          tty: exec.tty,
          stdin: exec.stdin,
          root: exec.root?.path,
          readOnlyRoot: exec.root?.readOnly,
          mounts: exec.root?.mounts,
          cgroup: exec.root?.cgroup,
          groups: exec.root?.groups,
          capabilities: exec.root?.capabilities,
          noNewPrivileges: exec.root?.noNewPrivileges,
        }),
        session,
      );
    });
  }

  /** Resource usage of a running container, read from its QEMU process. */
  async stats(_ctx: RequestContext, ref: string): Promise<ContainerStats> {
    const record = this.registry.get(ref);
    const live = this.live.get(record.id);
    const base = {
      id: record.id,
      name: record.name,
      memoryLimitBytes: record.resources.memoryMiB * 1024 * 1024,
      read: new Date().toISOString(),
    };
    if (!live) return { ...base, cpuNs: 0, memoryBytes: 0, pids: 0 };
    const statText = await readFile(`/proc/${live.vm.pid}/stat`, 'utf8').catch(() => '');
    const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    const status = await readFile(`/proc/${live.vm.pid}/status`, 'utf8').catch(() => '');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { ...base, cpuNs: Math.round((ticks / 100) * 1e9), memoryBytes: rssKb * 1024, pids: live.execs.size + 1 };
  }

  /** Ids of containers this daemon is connected to. */
  liveIds(): Set<string> {
    return new Set(this.live.keys());
  }
}

/** The API view of an exec record. */
function execView(e: ExecRecord): ExecInstance {
  return {
    id: e.id,
    containerId: e.containerId,
    argv: e.argv,
    env: e.env,
    cwd: e.cwd,
    user: e.user,
    tty: e.tty,
    stdin: e.stdin,
    running: e.running,
    exitCode: e.exitCode,
    pid: e.pid,
  };
}

/** Throws INVALID_ARGUMENT unless `name` is a valid container name. */
function validateName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name) || name.length > 128) {
    throw new BosonError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

/** An absolute path that is not '/', normalised; INVALID_ARGUMENT naming `what` otherwise. */
function checkMountPath(p: string, what: string): string {
  if (!p.startsWith('/')) throw new BosonError('INVALID_ARGUMENT', `invalid mount: ${what} must be an absolute path: ${JSON.stringify(p)}`);
  const normal = path.posix.normalize(p);
  if (normal === '/' && what === 'the container path') throw new BosonError('INVALID_ARGUMENT', 'invalid mount: cannot mount over /');
  return normal;
}

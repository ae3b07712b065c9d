/**
 * The machine service: the daemon's container operations (create, start, stop, kill, restart, rm, wait, logs,
 * attach, exec, stats, rename, events) over daemon-managed micro-VMs that outlive the daemon.
 *
 * State has one owner: the record in the machine database says what a container is; the live map holds what this
 * daemon process is connected to. Operations on one container are serialised (a per-container lock); different
 * containers proceed in parallel. Exits are observed from boson-init's EXIT frame, from QEMU's end, or (for a VM
 * that died while no daemon ran) from the EXIT record in the container's log file.
 */
import { EventEmitter } from 'node:events';
import { mkdir, rm, stat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, isBosonError, toBosonError, type BosonPaths } from '../common/index.ts';
import { encodeSpec, encodeExec, FrameType, decodeExit, decodeError, decodeStarted, type Frame } from '../guest/index.ts';
import { bootBundle } from './boot-bundle.ts';
import { attachMicroVm, bootWithWatchdog, probeAccelerator, type MicroVm } from '../vmm/index.ts';
import { ImageStore } from '../image/index.ts';
import { resolveProcessConfig, type ContainerRequest } from './container-config.ts';
import { ContainerRegistry, newContainerId, type ContainerRecord, type MachineEvent, type RestartPolicy } from './containers.ts';
import { ControlChannel } from './control-channel.ts';
import { guestError as guestErrorOf } from './guest-session.ts';
import { filterLines, followLog, lastExit, readLog, type LogLine, type LogQuery } from './logs.ts';
import { randomContainerName } from './names.ts';
import { createScratchDisk } from './scratch.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { VolumeManager, parseVolumeSpec, type MountSpec } from './volumes/index.ts';
import { checkHostCapacity } from './capacity.ts';
import { DiskFullGuard } from './disk-full.ts';
import { NetworkManager, DEFAULT_NETWORK, parsePortSpec, publishAllPorts, type Endpoint } from './network/index.ts';
import type { DiskSpec, ShareSpec } from '../vmm/index.ts';
import { DEFAULT_MEMORY_MIB } from './runner.ts';

/** A request to create a daemon-managed container. */
export interface CreateRequest extends ContainerRequest {
  image: string;
  name?: string;
  tty: boolean;
  openStdin: boolean;
  memoryMiB?: number;
  cpus?: number;
  labels?: Record<string, string>;
  restartPolicy?: RestartPolicy;
  autoRemove?: boolean;
  /** `-v` specs: name:/dest[:ro], /host:/dest[:ro], /dest. */
  volumes?: string[];
  /** Network name or id ("none": no network; default: the default bridge network). */
  network?: string;
  /** `-p` specs. */
  ports?: string[];
  /** `-P`: publish every port the image exposes, on free host ports. */
  publishAll?: boolean;
  /** Size of the writable layer's disk in bytes (sparse; default 8 GiB). */
  diskSizeBytes?: number;
}

/** What a wait returns. */
export interface WaitResult {
  statusCode: number;
  error: string | null;
}

/** Conditions of `wait`, as Docker names them. */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/** Output of an attach or exec stream. */
export interface StreamSink {
  stdout(data: Buffer): void;
  stderr(data: Buffer): void;
}

/** An exec instance: a further process in a running container. */
export interface ExecInstance {
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
}

/** One process's live connection to a running VM. */
interface Live {
  vm: MicroVm;
  ctl: ControlChannel;
  logFile: string;
  execs: Map<number, { exec: ExecInstance; sink?: StreamSink; done: (code: number) => void }>;
  nextSession: number;
  finished: boolean;
}

/** Resource usage of a running container, from its QEMU process. */
export interface ContainerStats {
  id: string;
  name: string;
  cpuNs: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  pids: number;
  read: string;
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15, CONT: 18, STOP: 19, WINCH: 28,
};

/** Parses a signal name or number ("TERM", "SIGTERM", "15"); INVALID_ARGUMENT otherwise. */
export function parseSignal(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n >= 1 && n <= 64) return n;
  }
  const n = SIGNALS[value.toUpperCase().replace(/^SIG/, '')];
  if (n === undefined) throw new BosonError('INVALID_ARGUMENT', `invalid signal: ${value}`);
  return n;
}

/** Parses a restart policy ("no", "always", "unless-stopped", "on-failure[:N]"). */
export function parseRestartPolicy(value: string): RestartPolicy {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(value);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure')) throw new BosonError('INVALID_ARGUMENT', `invalid restart policy: ${value} (no, always, unless-stopped, on-failure[:N])`);
  return { name: m[1] as RestartPolicy['name'], maximumRetryCount: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Daemon-side container operations. */
export class MachineService {
  readonly registry: ContainerRegistry;
  readonly images: ImageStore;
  readonly volumes: VolumeManager;
  readonly networks: NetworkManager;
  /** Emits 'event' with a MachineEvent for every lifecycle change. */
  readonly events = new EventEmitter();
  private readonly live = new Map<string, Live>();
  private readonly lock = new KeyedMutex();
  private readonly waiters = new Map<string, Array<{ condition: WaitCondition; resolve: (r: WaitResult) => void }>>();
  private readonly execs = new Map<string, ExecInstance>();
  private closing = false;
  private readonly diskFull: DiskFullGuard;
  /** Observed durations, for /metrics. */
  readonly metrics = { boots: [] as number[], stops: [] as number[], failures: 0 };

  constructor(private readonly paths: BosonPaths) {
    this.registry = new ContainerRegistry(paths.stateDir);
    this.images = new ImageStore(paths.stateDir, { rootless: paths.rootless });
    this.volumes = new VolumeManager(paths.stateDir);
    this.networks = new NetworkManager({
      stateDir: paths.stateDir,
      rootless: paths.rootless,
      prefix: process.env.BOSON_NET_PREFIX,
      defaultSubnet: process.env.BOSON_NET_SUBNET,
      subnetPool: process.env.BOSON_NET_POOL,
    });
    this.events.setMaxListeners(0);
    this.diskFull = new DiskFullGuard(paths.stateDir, (id, paused) => {
      try {
        this.emit(this.registry.get(id), paused ? 'pause' : 'unpause', paused ? { reason: 'host disk full' } : {});
      } catch {
        // The container is gone meanwhile: nothing to tell.
      }
    });
  }

  /** Opens state and re-attaches to (or settles) every container that was running when the last daemon stopped. */
  async init(): Promise<void> {
    await this.registry.init();
    await mkdir(path.join(this.paths.runDir, 'vms'), { recursive: true });
    await this.networks.init();
    for (const record of await this.registry.list()) {
      if (!record.managed || (record.state !== 'running' && record.state !== 'restarting')) continue;
      const vm = await attachMicroVm(this.runtimeDir(record.id));
      if (vm) {
        const ctl = new ControlChannel(vm.channel);
        this.watch(record.id, { vm, ctl, logFile: this.logFile(record.id), execs: new Map(), nextSession: 1, finished: false });
        // Paused on a full disk while no daemon ran: no event will say so.
        if (await vm.pausedOnDiskError().catch(() => false)) this.diskFull.mark(record.id, vm);
      } else {
        const exit = await lastExit(this.logFile(record.id));
        await this.exited(record.id, exit?.status ?? 137, exit ? null : 'the micro-VM ended while no daemon was running, without an exit status');
      }
    }
    await this.networks.reconcile(this.liveIds());
  }

  /** Detaches from every VM, leaving them running (daemon shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    this.diskFull.close();
    for (const live of this.live.values()) {
      live.finished = true;
      live.ctl.close();
      live.vm.detach();
    }
    this.live.clear();
    await this.networks.close();
    this.registry.close();
    this.volumes.close();
  }

  /**
   * A VM's runtime directory. Short (16 hex digits of the id) because the UNIX sockets in it must have paths
   * under 108 bytes; a run directory too long even for that is refused with a clear error.
   */
  private runtimeDir(id: string): string {
    const dir = path.join(this.paths.runDir, 'vms', id.slice(0, 16));
    if (Buffer.byteLength(path.join(dir, 'ctl.sock')) >= 108) {
      throw new BosonError('INVALID_ARGUMENT', `the run directory ${this.paths.runDir} is too long for UNIX socket paths (108 bytes at most): set BOSON_RUN_DIR to a shorter path`);
    }
    return dir;
  }

  private logFile(id: string): string {
    return path.join(this.registry.containerDir(id), 'container.log');
  }

  private emit(record: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const event = this.registry.recordEvent('container', action, record.id, { name: record.name, image: record.image, ...extra });
    this.events.emit('event', event);
  }

  /** Events since `afterSeq` (and within the times given). */
  pastEvents(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[] {
    return this.registry.events(afterSeq, sinceNs, untilNs);
  }

  /** Creates a container (not started). */
  async create(req: CreateRequest): Promise<ContainerRecord> {
    const image = await this.images.resolve(req.image);
    const id = newContainerId();
    const config = resolveProcessConfig(image.config, req, {}, id.slice(0, 12));
    const record: ContainerRecord = {
      id, name: req.name ?? randomContainerName(), image: req.image, imageId: image.id, created: new Date().toISOString(),
      config: { ...config, tty: req.tty, openStdin: req.openStdin, labels: { ...image.config.labels, ...(req.labels ?? {}) } },
      resources: { memoryMiB: req.memoryMiB ?? DEFAULT_MEMORY_MIB, cpus: req.cpus ?? 1 },
      autoRemove: req.autoRemove ?? false, restartPolicy: req.restartPolicy ?? { name: 'no', maximumRetryCount: 0 }, restartCount: 0,
      managed: true, state: 'created', ownerPid: null, vmPid: null, exitCode: null, startedAt: null, finishedAt: null, error: null,
      stoppedByUser: false, mounts: [], network: DEFAULT_NETWORK, ports: [], endpoint: null,
    };
    if (record.autoRemove && record.restartPolicy.name !== 'no') throw new BosonError('INVALID_ARGUMENT', 'conflicting options: --restart and --rm');
    if ((req.volumes ?? []).some((v) => v.startsWith('/') && v.includes(':'))) {
      // virtiofsd (QEMU's C one) needs root for its sandbox, and a rootless one would show the user's files as root's.
      if (this.paths.rootless) throw new BosonError('ROOTLESS_UNSUPPORTED', 'bind mounts (-v /host/path:/path) need a daemon running as root; in rootless mode use a volume (-v name:/path)');
      await this.shareTransport();
    }
    record.mounts = await this.resolveMounts(req.volumes ?? [], image.config.volumes);
    record.network = req.network ?? DEFAULT_NETWORK;
    if (record.network !== 'none') await this.networks.get(record.network);
    record.ports = [...(req.ports ?? []).flatMap(parsePortSpec), ...(req.publishAll ? publishAllPorts(image.config.exposedPorts ?? []) : [])];
    if (record.network === 'none' && record.ports.length > 0) throw new BosonError('INVALID_ARGUMENT', 'published ports need a network (not --network none)');
    await this.networks.checkPublishable(record.ports);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.registry.create(record);
        break;
      } catch (err) {
        if (req.name !== undefined || !isBosonError(err, 'CONTAINER_NAME_IN_USE') || attempt > 8) throw err;
        record.name = `${randomContainerName()}_${id.slice(0, 4 + attempt)}`;
      }
    }
    await createScratchDisk(path.join(this.registry.containerDir(id), 'scratch.ext4'), req.diskSizeBytes);
    this.emit(record, 'create');
    return record;
  }

  /** Parses `-v` specs and adds anonymous volumes for the image's VOLUMEs not covered; creates missing volumes. */
  private async resolveMounts(specs: string[], imageVolumes: string[]): Promise<MountSpec[]> {
    const mounts = specs.map(parseVolumeSpec);
    const seen = new Set<string>();
    for (const m of mounts) {
      if (seen.has(m.destination)) throw new BosonError('INVALID_ARGUMENT', `duplicate mount point: ${m.destination}`);
      seen.add(m.destination);
    }
    for (const dest of imageVolumes) {
      if (!seen.has(dest)) mounts.push({ type: 'volume', name: '', destination: dest, readOnly: false, anonymous: true });
    }
    for (const m of mounts) {
      if (m.type === 'volume') m.name = (await this.volumes.create(m.name, { anonymous: m.anonymous })).name;
    }
    return mounts;
  }

  /**
   * How host directories reach this host's guests: virtiofs when the guest kernel has it and virtiofsd is
   * installed (QEMU's), else 9p when the kernel has that; INVALID_ARGUMENT naming what is missing otherwise.
   */
  private async shareTransport(): Promise<'virtiofs' | '9p'> {
    const bundle = await bootBundle(this.paths);
    const has = (name: string): boolean => bundle.drivers.includes(name);
    const virtiofsd = process.env.BOSON_VIRTIOFSD ?? '/usr/lib/qemu/virtiofsd';
    if (has('virtiofs') && (await stat(virtiofsd).then(() => true, () => false))) return 'virtiofs';
    if (has('9p')) return '9p';
    throw new BosonError('INVALID_ARGUMENT', `bind mounts need a guest kernel with virtiofs (and ${virtiofsd}) or 9p, and ${bundle.kernelRelease} has neither: use a volume (-v name:/path), or set BOSON_GUEST_KERNEL to such a kernel`);
  }

  /** Containers that refer to a volume. */
  async volumeUsers(name: string): Promise<string[]> {
    return (await this.registry.list()).filter((r) => (r.mounts ?? []).some((m) => m.type === 'volume' && m.name === name)).map((r) => r.id);
  }

  /** Every container (running only unless `all`). */
  async list(all: boolean): Promise<ContainerRecord[]> {
    const records = (await this.registry.list()).map((r) => this.withPause(r));
    return all ? records : records.filter((r) => r.state === 'running' || r.state === 'restarting');
  }

  /** One container's record. */
  inspect(ref: string): ContainerRecord {
    return this.withPause(this.registry.get(ref));
  }

  /** The record with `pausedReason` when its VM is paused on a full disk (a live condition, never stored). */
  private withPause(record: ContainerRecord): ContainerRecord {
    const reason = this.diskFull.reason(record.id);
    return reason === undefined ? record : { ...record, pausedReason: reason };
  }

  /** Starts a created or exited container; a running one is left as it is. */
  async start(ref: string): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.startLocked(id, false));
  }

  private async startLocked(id: string, isRestart: boolean): Promise<void> {
    const record = this.registry.get(id);
    if (record.state === 'running' && this.live.has(id)) return;
    if (!record.managed) throw new BosonError('INVALID_ARGUMENT', `container ${record.name} was run in the foreground by boson run; it cannot be started by the daemon`);
    const t0 = performance.now();
    const image = await this.images.resolve(record.imageId);
    const rootDisk = await this.images.rootDisk(image);
    const bundle = await bootBundle(this.paths);
    const runtimeDir = this.runtimeDir(id);
    await rm(runtimeDir, { recursive: true, force: true });
    await mkdir(runtimeDir, { recursive: true });
    const logFile = this.logFile(id);
    await checkHostCapacity(record.resources.memoryMiB, this.paths.stateDir);
    const { disks: extraDisks, shares, mounts } = await this.mountPlan(record);
    const endpoint = await this.connectNetwork(record);
    const accel = await probeAccelerator();
    let ctl!: ControlChannel;
    let vm: MicroVm;
    try {
      const boot = await bootWithWatchdog(
        {
          kernel: bundle.kernelPath, initramfs: bundle.initramfsPath, acpi: bundle.acpi, memoryMiB: record.resources.memoryMiB, cpus: record.resources.cpus,
          disks: [
            { serial: 'boson-root', path: rootDisk.path, readOnly: true },
            { serial: 'boson-scratch', path: path.join(this.registry.containerDir(id), 'scratch.ext4'), readOnly: false },
            ...extraDisks,
          ],
          shares, runtimeDir, logFile, nics: endpoint ? [endpoint.nic] : [],
        },
        (booting) => {
          ctl = new ControlChannel(booting.channel);
          return ctl.waitForHello();
        },
        { timeoutMs: accel.accel === 'kvm' ? 5000 : 15000, attempts: 3 },
      );
      vm = boot.vm;
    } catch (err) {
      this.metrics.failures++;
      if (endpoint) await this.networks.disconnect(id).catch(() => undefined);
      this.settle(record, 125, toBosonError(err).message);
      await this.registry.save(record);
      throw err;
    }
    const live: Live = { vm, ctl, logFile, execs: new Map(), nextSession: 1, finished: false };
    const startup = new Promise<void>((resolve, reject) => {
      let guestError: BosonError | undefined;
      ctl.onSession(0, (frame) => {
        if (frame.type === FrameType.STARTED) resolve();
        else if (frame.type === FrameType.ERROR) {
          guestError = guestErrorOf(frame);
        } else if (frame.type === FrameType.EXIT) reject(guestError ?? new BosonError('CONTAINER_START_FAILED', `the container exited with ${decodeExit(frame).status} before it started`));
      });
      ctl.onClose(() => reject(new BosonError('GUEST_CRASHED', 'the micro-VM ended before the container started')));
    });
    ctl.send(FrameType.SPEC, encodeSpec({
      argv: record.config.argv, env: record.config.env, cwd: record.config.cwd, user: record.config.user, hostname: record.config.hostname,
      tty: record.config.tty, stdin: record.config.openStdin, rootDisk: 'boson-root', rootFstype: rootDisk.fstype, scratchDisk: 'boson-scratch',
      logPort: true, clockNs: BigInt(Date.now()) * 1_000_000n, mounts,
      ...(endpoint ? {
        interfaces: [{ mac: endpoint.mac, address: endpoint.address, prefixLen: endpoint.prefixLen, gateway: endpoint.gateway, mtu: 1500 }],
        dns: endpoint.dns, dnsSearch: endpoint.dnsSearch, hosts: endpoint.hosts,
      } : {}),
    }));
    try {
      await startup;
    } catch (err) {
      await vm.shutdown(1000);
      if (endpoint) await this.networks.disconnect(id).catch(() => undefined);
      const e = toBosonError(err);
      this.settle(record, e.code === 'COMMAND_NOT_FOUND' ? 127 : e.code === 'COMMAND_NOT_EXECUTABLE' ? 126 : 125, e.message);
      throw err;
    }
    record.state = 'running';
    record.vmPid = vm.pid;
    record.startedAt = new Date().toISOString();
    record.finishedAt = null;
    record.exitCode = null;
    record.error = null;
    record.stoppedByUser = false;
    record.endpoint = endpoint ? { network: endpoint.network, address: endpoint.address, gateway: endpoint.gateway, mac: endpoint.mac, ports: endpoint.ports } : null;
    if (isRestart) record.restartCount++;
    await this.registry.save(record);
    this.metrics.boots.push(performance.now() - t0);
    this.emit(record, 'start');
    this.watch(id, live);
  }

  /** The disks, 9p shares and guest mount records for a container's mounts; VOLUME_IN_USE if a running container has one of its volumes. */
  private async mountPlan(record: ContainerRecord): Promise<{ disks: DiskSpec[]; shares: ShareSpec[]; mounts: Array<{ kind: 'disk' | '9p' | 'virtiofs'; source: string; target: string; fstype: string; readOnly: boolean }> }> {
    const disks: DiskSpec[] = [];
    const shares: ShareSpec[] = [];
    const mounts: Array<{ kind: 'disk' | '9p' | 'virtiofs'; source: string; target: string; fstype: string; readOnly: boolean }> = [];
    const running = (await this.registry.list()).filter((r) => r.id !== record.id && this.live.has(r.id));
    for (const [i, m] of (record.mounts ?? []).entries()) {
      if (m.type === 'volume') {
        const holder = running.find((r) => (r.mounts ?? []).some((o) => o.type === 'volume' && o.name === m.name));
        if (holder) throw new BosonError('VOLUME_IN_USE', `volume ${m.name} is mounted by running container ${holder.name}; a volume disk can be used by one running micro-VM at a time`);
        const serial = `boson-vol${i}`;
        disks.push({ serial, path: this.volumes.diskPath(this.volumes.get(m.name).name), readOnly: m.readOnly });
        mounts.push({ kind: 'disk', source: serial, target: m.destination, fstype: 'ext4', readOnly: m.readOnly });
      } else {
        await mkdir(m.source, { recursive: true });
        const tag = `boson-bind${i}`;
        const transport = await this.shareTransport();
        shares.push({ tag, path: m.source, readOnly: m.readOnly, transport });
        mounts.push({ kind: transport, source: tag, target: m.destination, fstype: transport, readOnly: m.readOnly });
      }
    }
    return { disks, shares, mounts };
  }

  /** Joins the container's network (tap, address, published ports, DNS name); null for --network none. */
  private async connectNetwork(record: ContainerRecord): Promise<Endpoint | null> {
    if ((record.network ?? 'none') === 'none') return null;
    await this.networks.disconnect(record.id).catch(() => undefined);
    return this.networks.connect({
      containerId: record.id, containerName: record.name, aliases: [], network: record.network, ports: record.ports ?? [], hostname: record.config.hostname,
    });
  }

  /** Follows a live VM until its container exits. */
  private watch(id: string, live: Live): void {
    this.live.set(id, live);
    this.diskFull.watch(id, live.vm);
    const finish = (status: number, error: string | null): void => {
      if (live.finished) return;
      live.finished = true;
      for (const [, e] of live.execs) e.done(137);
      background(live.vm.shutdown(1000).then(() => this.exited(id, status, error)), `recording the exit of container ${id.slice(0, 12)}`);
    };
    let guestError: string | null = null;
    live.ctl.onSession(0, (frame) => {
      if (frame.type === FrameType.ERROR) guestError = decodeError(frame).message;
      if (frame.type === FrameType.EXIT) finish(decodeExit(frame).status, guestError);
    });
    background(live.vm.exited.then(async () => {
      if (live.finished) return;
      const exit = await lastExit(live.logFile).catch(() => undefined);
      // Without an EXIT in the log, QEMU was killed or crashed: what it printed last tells which.
      const said = live.vm.qemuStderr.split('\n').at(-1)?.trim();
      finish(exit?.status ?? 137, exit ? null : `the micro-VM ended without an exit status (stopped from outside Boson, or QEMU failed${said ? `: ${said}` : ''})`);
    }), `following the micro-VM of container ${id.slice(0, 12)}`);
  }

  /** Records an exit (from whatever source), wakes waiters, and applies the restart policy. */
  private async exited(id: string, status: number, error: string | null): Promise<void> {
    this.live.delete(id);
    this.diskFull.forget(id);
    if (this.closing) return;
    await this.networks.disconnect(id).catch(() => undefined);
    let record: ContainerRecord;
    try {
      record = this.registry.get(id);
    } catch {
      return;
    }
    this.settle(record, status, error);
    await this.registry.save(record);
    this.emit(record, 'die', { exitCode: String(status) });
    this.wake(id, 'exit', { statusCode: status, error });
    if (record.autoRemove) {
      await this.lock.run(id, () => this.removeLocked(id, true)).catch(() => undefined);
      return;
    }
    if (this.shouldRestart(record, status)) {
      const delay = Math.min(100 * 2 ** record.restartCount, 10_000);
      record.state = 'restarting';
      await this.registry.save(record);
      setTimeout(() => {
        void this.lock.run(id, async () => {
          const current = this.registry.get(id);
          if (current.state !== 'restarting' || current.stoppedByUser) return;
          await this.startLocked(id, true);
        }).catch(() => undefined);
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
        return status !== 0 && (record.restartPolicy.maximumRetryCount === 0 || record.restartCount < record.restartPolicy.maximumRetryCount);
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
  async stop(ref: string, timeoutSec = 10): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.stopLocked(id, timeoutSec));
  }

  private async stopLocked(id: string, timeoutSec: number): Promise<void> {
    const record = this.registry.get(id);
    record.stoppedByUser = true;
    await this.registry.save(record);
    const live = this.live.get(id);
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
  async restart(ref: string, timeoutSec = 10): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, async () => {
      await this.stopLocked(id, timeoutSec);
      await this.startLocked(id, false);
      this.emit(this.registry.get(id), 'restart');
    });
  }

  /** Sends a signal to a running container's process. */
  async kill(ref: string, signal = 'KILL'): Promise<void> {
    const signo = parseSignal(signal);
    const record = this.registry.get(ref);
    const live = this.live.get(record.id);
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
  async remove(ref: string, force: boolean, volumes = false): Promise<void> {
    const { id } = this.registry.get(ref);
    await this.lock.run(id, () => this.removeLocked(id, force, volumes));
  }

  private async removeLocked(id: string, force: boolean, volumes = false): Promise<void> {
    let record: ContainerRecord;
    try {
      record = this.registry.get(id);
    } catch {
      return;
    }
    const live = this.live.get(id);
    if (live) {
      if (!force) throw new BosonError('CONTAINER_RUNNING', `container ${record.name} is running: stop it first or use --force`);
      record.stoppedByUser = true;
      await this.registry.save(record);
      const exited = this.waitFor(id, 'next-exit');
      await live.vm.kill();
      await exited;
    }
    await this.registry.remove(record);
    await this.networks.disconnect(id).catch(() => undefined);
    await rm(this.runtimeDir(id), { recursive: true, force: true });
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

  /** Renames a container. */
  async rename(ref: string, newName: string): Promise<void> {
    const record = this.registry.get(ref);
    await this.lock.run(record.id, async () => {
      const current = this.registry.get(record.id);
      const old = current.name;
      await this.registry.rename(current, newName);
      this.emit(current, 'rename', { oldName: old });
    });
  }

  /** Waits for a container by Docker's conditions. */
  async wait(ref: string, condition: WaitCondition = 'not-running'): Promise<WaitResult> {
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
  async logs(ref: string, query: LogQuery, follow: boolean, onLine: (line: LogLine) => void, signal: AbortSignal): Promise<void> {
    const record = this.registry.get(ref);
    const file = this.logFile(record.id);
    const { lines, end } = await readLog(file);
    for (const line of filterLines(lines, query)) onLine(line);
    if (!follow || signal.aborted) return;
    const stopOnExit = new AbortController();
    const relay = (): void => stopOnExit.abort();
    signal.addEventListener('abort', relay, { once: true });
    if (!this.live.has(record.id) && record.state !== 'restarting') return;
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId === record.id && (e.action === 'die' || e.action === 'destroy')) setTimeout(() => stopOnExit.abort(), 300);
    };
    this.events.on('event', onEvent);
    try {
      await followLog(file, end, query, onLine, () => undefined, stopOnExit.signal);
    } finally {
      this.events.off('event', onEvent);
      signal.removeEventListener('abort', relay);
    }
  }

  /**
   * Attaches to a running container: its output from now on goes to `sink` until it exits or `signal` aborts;
   * returns functions to feed stdin (when the container has it open) and to resize its pty.
   */
  async attach(ref: string, sink: StreamSink, signal: AbortSignal): Promise<{ stdin: (data: Buffer) => void; closeStdin: () => void; resize: (rows: number, cols: number) => void; done: Promise<void> }> {
    const record = this.registry.get(ref);
    const file = this.logFile(record.id);
    const offset = (await stat(file).catch(() => ({ size: 0 }))).size;
    const stop = new AbortController();
    signal.addEventListener('abort', () => stop.abort(), { once: true });
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId === record.id && (e.action === 'die' || e.action === 'destroy')) setTimeout(() => stop.abort(), 300);
    };
    this.events.on('event', onEvent);
    const done = followLog(file, offset, {}, (line) => (line.stream === 'stdout' ? sink.stdout(line.data) : sink.stderr(line.data)), () => undefined, stop.signal)
      .finally(() => this.events.off('event', onEvent));
    const ctl = (): ControlChannel | undefined => this.live.get(record.id)?.ctl;
    return {
      stdin: (data) => {
        if (record.config.openStdin) ctl()?.sendStdin(data);
      },
      closeStdin: () => {
        if (record.config.openStdin) ctl()?.send(FrameType.STDIN_EOF);
      },
      resize: (rows, cols) => ctl()?.sendResize(rows, cols),
      done,
    };
  }

  /** Resizes a running container's pty. */
  resize(ref: string, rows: number, cols: number): void {
    const record = this.registry.get(ref);
    this.live.get(record.id)?.ctl.sendResize(rows, cols);
  }

  /** Creates an exec instance in a running container. */
  createExec(ref: string, spec: { argv: string[]; env: string[]; cwd?: string; user?: string; tty: boolean; stdin: boolean }): ExecInstance {
    const record = this.registry.get(ref);
    if (!this.live.has(record.id)) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} is not running`);
    const paused = this.diskFull.reason(record.id);
    if (paused !== undefined) throw new BosonError('CONTAINER_PAUSED_DISK_FULL', `container ${record.name} is paused: ${paused}; it resumes by itself once the disk has room`);
    if (spec.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'no command given to exec');
    const exec: ExecInstance = {
      id: newContainerId(), containerId: record.id, argv: spec.argv, env: mergeEnvs(record.config.env, spec.env), cwd: spec.cwd, user: spec.user,
      tty: spec.tty, stdin: spec.stdin, running: false, exitCode: null, pid: null, session: 0,
    };
    this.execs.set(exec.id, exec);
    return exec;
  }

  /** Drops a finished exec instance (a one-request exec, which nobody can look up afterwards). */
  forgetExec(id: string): void {
    this.execs.delete(id);
  }

  /** Looks up an exec instance. */
  getExec(id: string): ExecInstance {
    const exec = this.execs.get(id);
    if (!exec) throw new BosonError('EXEC_NOT_FOUND', `no such exec instance: ${id}`);
    return exec;
  }

  /**
   * Starts an exec instance; its output goes to `sink`. Resolves with stdin/resize controls once the process runs,
   * and `exit` with its exit code.
   */
  async startExec(id: string, sink: StreamSink): Promise<{ stdin: (d: Buffer) => void; closeStdin: () => void; resize: (r: number, c: number) => void; signal: (n: number) => void; exit: Promise<number> }> {
    const exec = this.getExec(id);
    if (exec.running || exec.exitCode !== null) throw new BosonError('INVALID_ARGUMENT', `exec ${id.slice(0, 12)} has already run`);
    const live = this.live.get(exec.containerId);
    if (!live) throw new BosonError('CONTAINER_NOT_RUNNING', 'the container is not running');
    const session = live.nextSession;
    live.nextSession = live.nextSession >= 65535 ? 1 : live.nextSession + 1;
    exec.session = session;
    let resolveExit!: (code: number) => void;
    const exit = new Promise<number>((resolve) => (resolveExit = resolve));
    let startError: BosonError | undefined;
    const started = new Promise<void>((resolve, reject) => {
      const done = (code: number): void => {
        exec.running = false;
        exec.exitCode = code;
        live.execs.delete(session);
        live.ctl.offSession(session);
        resolveExit(code);
        reject(startError ?? new BosonError('CONTAINER_NOT_RUNNING', 'the container stopped before the exec started'));
      };
      live.execs.set(session, { exec, sink, done });
      live.ctl.onSession(session, (frame: Frame) => {
        switch (frame.type) {
          case FrameType.STARTED:
            exec.running = true;
            exec.pid = decodeStarted(frame);
            resolve();
            return;
          case FrameType.STDOUT:
            sink.stdout(frame.payload);
            return;
          case FrameType.STDERR:
            sink.stderr(frame.payload);
            return;
          case FrameType.ERROR:
            startError = guestErrorOf(frame);
            sink.stderr(Buffer.from(`${startError.message}\n`));
            return;
          case FrameType.EXIT:
            done(decodeExit(frame).status);
            return;
          default:
        }
      });
    });
    started.catch(() => undefined);
    live.ctl.send(FrameType.EXEC, encodeExec({ argv: exec.argv, env: exec.env, cwd: exec.cwd, user: exec.user, tty: exec.tty, stdin: exec.stdin }), session);
    await Promise.race([started, exit]);
    return {
      stdin: (d) => live.ctl.sendStdin(d, session),
      closeStdin: () => live.ctl.send(FrameType.STDIN_EOF, Buffer.alloc(0), session),
      resize: (r, c) => live.ctl.sendResize(r, c, session),
      signal: (n) => live.ctl.sendSignal(n, session),
      exit,
    };
  }

  /** Resource usage of a running container, read from its QEMU process. */
  async stats(ref: string): Promise<ContainerStats> {
    const record = this.registry.get(ref);
    const live = this.live.get(record.id);
    const base = { id: record.id, name: record.name, memoryLimitBytes: record.resources.memoryMiB * 1024 * 1024, read: new Date().toISOString() };
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

/**
 * Runs work nobody awaits (a VM's exit, found by a watcher): a failure is printed on the daemon's stderr (its log
 * under systemd) instead of ending the daemon as an unhandled rejection would.
 */
function background(work: Promise<unknown>, what: string): void {
  work.catch((err: unknown) => process.stderr.write(`boson daemon: ${what}: ${toBosonError(err).message}\n`));
}

function mergeEnvs(base: string[], extra: string[]): string[] {
  const map = new Map<string, string>();
  for (const kv of [...base, ...extra]) {
    const eq = kv.indexOf('=');
    map.set(eq < 0 ? kv : kv.slice(0, eq), kv);
  }
  return [...map.values()];
}

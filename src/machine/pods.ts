/**
 * Pod sandboxes on this host (the port's MachinePods): each pod is one micro-VM, a container of the runtime whose
 * process only keeps the VM up, with the pod's directory shared into it over virtiofs (or 9p) at /.boson/pod. A
 * container of the pod gets its own root filesystem, its image unpacked by the host into that directory
 * (`<pod>/share/<container id>/rootfs`), and runs as an exec session of the pod VM with EXEC_ROOT: boson-init gives
 * it a mount namespace of its own, chrooted into its root (docs/design.md, "Pods", for the choice and its numbers).
 * Its output goes to its CRI log file.
 *
 * Records (kinds `pod` and `pod-container`) live in the runtime's state store. What a pod's containers run is live
 * state of this daemon: after a daemon restart their exec sessions are gone, and they are reported exited
 * (reason Unknown) while the pod VM itself is re-attached like any container.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, KeyedMutex, MemoryStateStore, isBosonError, silentLogger, type Logger, type StateStore } from '../common/index.ts';
import { resolveProcessConfig } from './container-config.ts';
import { newContainerId } from './containers.ts';
import { CriLogWriter, nowNs } from './cri-log.ts';
import { capabilityMask } from './pod-capabilities.ts';
import {
  CGROUPS_MISSING_EXIT,
  cgroupScript,
  containerCgroup,
  killCgroupScript,
  parseStats,
  removeCgroupScript,
  statsScript,
} from './pod-cgroups.ts';
import { bindInto, makeSharedMount, removeUnmounted } from './host-mounts.ts';
import type {
  ExecSession,
  ExecSyncResult,
  MachinePods,
  Pod,
  PodStats,
  PodContainerStats,
  PodAttachment,
  PodContainer,
  PodContainerResources,
  PodContainerSpec,
  PodSpec,
  RequestContext,
  StreamSink,
} from './port/index.ts';
import type { ExecRoot, MachineRuntime } from './runtime.ts';
import type { PodNetworks, PodNetworkState, PodNic } from './pod-network.ts';

/** Where a pod's directory appears inside its micro-VM's root. */
export const POD_SHARE_TARGET = '/.boson/pod';

/** The image a pod's micro-VM boots (its root holds what keeps the VM up); the demo image by default. */
export const DEFAULT_POD_IMAGE = 'localhost/busybox:latest';

/** The runtime handlers a pod may ask for. */
const HANDLERS = ['', 'boson'];

interface PodRecord {
  id: string;
  spec: PodSpec;
  createdNs: string;
  vmContainerId: string;
  /** Stopped by StopPodSandbox: never ready again. */
  stopped: boolean;
  /** `cni:<network name>` for a pod networked by CNI; absent: the pod VM's Boson network. */
  network?: string;
}

interface PodContainerRecord extends Omit<PodContainer, 'pid'> {
  env: string[];
  cwd: string;
  user: string;
}

/** A container of a pod whose process runs now. */
interface Running {
  session: ExecSession;
  log: CriLogWriter | null;
  pid: number | null;
  /** Resolves once its exit is recorded. */
  done: Promise<void>;
  /** Where its output goes besides its log: the attaches open now. */
  attached: Set<StreamSink>;
  /** Its stdin was closed (stdinOnce, by the end of an attach): nothing more reaches it. */
  stdinClosed: boolean;
}

/** What the pod service is built from. */
export interface PodServiceOptions {
  stateDir: string;
  /** The runtime's state store (records of kinds pod and pod-container); in memory when absent. */
  store?: StateStore;
  log?: Logger;
  /** The image pod VMs boot (DEFAULT_POD_IMAGE). */
  podImage?: string;
  /** Pod networks through CNI (records of kind pod-network); absent: pods join the machine's default network. */
  networks?: PodNetworks;
}

/** Store kind of a pod's network state (PodNetworkState), written before its namespace exists. */
const POD_NETWORK = 'pod-network';

/** MachinePods on this host (see the module comment). */
export class PodService implements MachinePods {
  private readonly store: StateStore;
  private readonly log: Logger;
  private readonly running = new Map<string, Running>();
  private readonly lock = new KeyedMutex();

  constructor(
    private readonly runtime: MachineRuntime,
    private readonly options: PodServiceOptions,
  ) {
    this.store = options.store ?? new MemoryStateStore();
    this.log = options.log ?? silentLogger;
  }

  private podDir(id: string): string {
    return path.join(this.options.stateDir, 'pods', id);
  }

  private shareDir(id: string): string {
    return path.join(this.podDir(id), 'share');
  }

  /** The pod record `ref` (an id or a unique prefix) names; POD_NOT_FOUND otherwise. */
  private podRecord(ref: string): PodRecord {
    const exact = this.store.get<PodRecord>('pod', ref);
    if (exact) return exact.value;
    const found = ref === '' ? [] : this.store.list<PodRecord>('pod', { prefix: ref });
    if (found.length === 1) return found[0]!.value;
    if (found.length > 1) throw new BosonError('INVALID_ARGUMENT', `pod id prefix ${ref} is ambiguous`);
    throw new BosonError('POD_NOT_FOUND', `no pod sandbox has the id ${JSON.stringify(ref)}`);
  }

  private containerRecord(ref: string): PodContainerRecord {
    const exact = this.store.get<PodContainerRecord>('pod-container', ref);
    if (exact) return exact.value;
    const found = ref === '' ? [] : this.store.list<PodContainerRecord>('pod-container', { prefix: ref });
    if (found.length === 1) return found[0]!.value;
    if (found.length > 1) throw new BosonError('INVALID_ARGUMENT', `container id prefix ${ref} is ambiguous`);
    throw new BosonError('CONTAINER_NOT_FOUND', `no container of a pod has the id ${JSON.stringify(ref)}`);
  }

  private save(kind: 'pod' | 'pod-container', record: { id: string }): void {
    this.store.put(kind, record.id, record);
  }

  private async podView(ctx: RequestContext, record: PodRecord): Promise<Pod> {
    const vm = await this.runtime.inspect(ctx, record.vmContainerId).catch((err: unknown) => {
      if (isBosonError(err, 'CONTAINER_NOT_FOUND')) return null;
      throw err;
    });
    const ready = !record.stopped && vm !== null && vm.state === 'running';
    return {
      id: record.id,
      spec: record.spec,
      state: ready ? 'ready' : 'notready',
      createdNs: record.createdNs,
      vmContainerId: record.vmContainerId,
      vmPid: ready ? vm.vmPid : null,
      accelerator: await this.runtime.accelerator(),
      address: ready ? (vm.endpoint?.address ?? null) : null,
      network: record.network ?? vm?.network ?? 'none',
      resources: vm?.resources ?? { memoryMiB: 0, cpus: 0 },
    };
  }

  private containerView(record: PodContainerRecord): PodContainer {
    const live = this.running.get(record.id);
    const { env: _env, cwd: _cwd, user: _user, ...view } = record;
    // Recorded as running, but no process of this daemon: its session ended with the daemon that started it.
    if (record.state === 'running' && !live)
      return { ...view, state: 'exited', exitCode: 255, reason: 'Unknown', message: 'the daemon that ran it restarted', pid: null };
    return { ...view, pid: live?.pid ?? null };
  }

  async run(ctx: RequestContext, spec: PodSpec): Promise<Pod> {
    if (!HANDLERS.includes(spec.runtimeHandler ?? ''))
      throw new BosonError(
        'INVALID_ARGUMENT',
        `unknown runtime handler ${JSON.stringify(spec.runtimeHandler)}: Boson has one, "boson" (every pod is a micro-VM)`,
      );
    const id = newContainerId();
    const share = this.shareDir(id);
    await mkdir(share, { recursive: true, mode: 0o755 });
    let vmId: string | undefined;
    let nic: PodNic | undefined;
    const t0 = performance.now();
    let tNet = t0;
    try {
      const networks = this.options.networks;
      if (networks) {
        // Kept before anything is made, so that a daemon killed in between undoes it at its next start.
        const state = await networks.plan(id, spec);
        this.store.put(POD_NETWORK, id, state);
        nic = await networks.setUp(state, (s) => this.store.put(POD_NETWORK, id, s));
        tNet = performance.now();
      }
      // Created first: it refuses what this host cannot do (a rootless daemon) before anything is mounted.
      const vm = await this.runtime.createPodVm(
        {
          image: this.options.podImage ?? DEFAULT_POD_IMAGE,
          name: `boson-pod-${id.slice(0, 12)}`,
          process: {
            entrypoint: ['/bin/sleep'],
            args: ['2147483647'],
            hostname: spec.hostname || undefined,
          },
          ...(spec.resources ? { resources: spec.resources } : {}),
          labels: {
            'io.boson.pod': id,
            'io.kubernetes.pod.name': spec.name,
            'io.kubernetes.pod.namespace': spec.namespace,
            'io.kubernetes.pod.uid': spec.uid,
          },
          ...(spec.dns ? { dns: spec.dns } : {}),
          // With CNI the hostPorts are the portmap plugin's (capability portMappings), not Boson's DNAT.
          ...(!nic && spec.ports && spec.ports.length > 0 ? { ports: spec.ports } : {}),
        },
        share,
        nic,
      );
      vmId = vm.id;
      // Before the VM's virtiofsd starts: the containers' volumes are bound under it later, and must reach it.
      await makeSharedMount(share);
      const record: PodRecord = {
        id,
        spec,
        createdNs: String(nowNs()),
        vmContainerId: vm.id,
        stopped: false,
        ...(nic ? { network: `cni:${nic.network}` } : {}),
      };
      this.save('pod', record);
      const tCreated = performance.now();
      await this.runtime.start(ctx, vm.id);
      if (nic && nic.routes.length > 0) await this.addRoutes(ctx, vm.id, nic);
      const ms = (a: number, b: number): number => Math.round(b - a);
      this.log.debug(
        { pod: id, networkMs: ms(t0, tNet), createMs: ms(tNet, tCreated), startMs: ms(tCreated, performance.now()) },
        'pod sandbox running',
      );
      return await this.podView(ctx, record);
    } catch (err) {
      if (vmId !== undefined) await this.runtime.remove(ctx, vmId, { force: true }).catch(() => undefined);
      await this.releaseNetwork(id).catch((e: unknown) =>
        this.log.warn({ pod: id, error: (e as Error).message }, "a failed pod's network could not be torn down; retried at the next start"),
      );
      this.store.delete('pod', id);
      await removeUnmounted(this.podDir(id));
      throw err;
    }
  }

  async stop(ctx: RequestContext, id: string): Promise<void> {
    let record: PodRecord;
    try {
      record = this.podRecord(id);
    } catch (err) {
      if (isBosonError(err, 'POD_NOT_FOUND')) return; // CRI: stopping a pod that is gone is no error
      throw err;
    }
    await this.lock.run(record.id, async () => {
      for (const c of await this.listContainers(ctx, record.id)) await this.stopContainer(ctx, c.id, 2);
      record = this.podRecord(record.id);
      record.stopped = true;
      this.save('pod', record);
      await this.runtime.stop(ctx, record.vmContainerId, 2).catch((err: unknown) => {
        if (!isBosonError(err, 'CONTAINER_NOT_FOUND')) throw err;
      });
      // As kubelet expects: a stopped pod holds no network (CNI DEL); a failure is an error it retries.
      await this.releaseNetwork(record.id);
    });
  }

  /**
   * The CNI routes other than the default one, added in the pod VM (its boot configures the address and the
   * default route only).
   */
  private async addRoutes(ctx: RequestContext, vmId: string, nic: PodNic): Promise<void> {
    const script = nic.routes.map((r) => `ip route add ${r.dst}${r.gw ? ` via ${r.gw}` : ''} dev eth0`).join(' && ');
    const { code, stderr } = await this.runInVm(ctx, vmId, script);
    if (code !== 0) throw new BosonError('CNI_FAILED', `the pod VM could not take the CNI routes (${script}): ${stderr.trim()}`);
  }

  /** Tears down pod `id`'s CNI network, if it has one (idempotent). */
  private async releaseNetwork(id: string): Promise<void> {
    const state = this.store.get<PodNetworkState>(POD_NETWORK, id)?.value;
    if (!state || !this.options.networks) return;
    await this.options.networks.tearDown(state);
    this.store.delete(POD_NETWORK, id);
  }

  /**
   * At a daemon's start: tears down the CNI networks of pods that are gone or stopped (a daemon killed while it
   * made or undid them). `running(vmId)` tells whether a pod's VM runs. Failures are logged and left for later.
   */
  async reconcileNetworks(running: (vmId: string) => Promise<boolean>): Promise<void> {
    if (!this.options.networks) return;
    for (const { key, value } of this.store.list<PodNetworkState>(POD_NETWORK)) {
      const pod = this.store.get<PodRecord>('pod', key)?.value;
      if (pod && !pod.stopped) continue;
      if (pod && (await running(pod.vmContainerId))) continue;
      try {
        await this.options.networks.tearDown(value);
        this.store.delete(POD_NETWORK, key);
        this.log.info({ pod: key, netns: value.netns }, 'tore down the network of a pod that is gone');
      } catch (err) {
        this.log.warn({ pod: key, error: (err as Error).message }, 'cannot tear down the network of a pod that is gone');
      }
    }
  }

  async portForward(ctx: RequestContext, id: string, port: number, sink: StreamSink): Promise<ExecSession> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BosonError('INVALID_ARGUMENT', `invalid port ${port}`);
    const pod = await this.readyPod(ctx, id);
    // A relay in the pod VM's own root (the pod image's busybox): the pod's localhost is the VM's, not the host's.
    const exec = this.runtime.newExec(pod.vmContainerId, { argv: ['nc', '127.0.0.1', String(port)], stdin: true });
    try {
      const session = await this.runtime.startExec(ctx, exec.id, sink);
      void session.exit.finally(() => this.runtime.forgetExec(exec.id));
      return session;
    } catch (err) {
      this.runtime.forgetExec(exec.id);
      throw err;
    }
  }

  async networkStatus(ctx: RequestContext): Promise<{ ready: boolean; reason: string; message: string }> {
    if (this.options.networks) {
      const s = await this.options.networks.status();
      return { ready: s.ready, reason: s.ready ? '' : 'NoCNIConfig', message: s.message };
    }
    try {
      const networks = await this.runtime.networkService.list(ctx);
      return networks.some((n) => n.builtin)
        ? { ready: true, reason: '', message: 'pods join the machine default network (CNI is off)' }
        : { ready: false, reason: 'NoDefaultNetwork', message: 'the machine has no default network for pods to join' };
    } catch (err) {
      return { ready: false, reason: 'NetworkUnavailable', message: (err as Error).message };
    }
  }

  async remove(ctx: RequestContext, id: string): Promise<void> {
    let record: PodRecord;
    try {
      record = this.podRecord(id);
    } catch (err) {
      if (isBosonError(err, 'POD_NOT_FOUND')) return;
      throw err;
    }
    await this.stop(ctx, record.id);
    for (const c of await this.listContainers(ctx, record.id)) await this.removeContainer(ctx, c.id);
    await this.runtime.remove(ctx, record.vmContainerId, { force: true }).catch((err: unknown) => {
      if (!isBosonError(err, 'CONTAINER_NOT_FOUND')) throw err;
    });
    await removeUnmounted(this.podDir(record.id));
    this.store.delete('pod', record.id);
  }

  async inspect(ctx: RequestContext, id: string): Promise<Pod> {
    return this.podView(ctx, this.podRecord(id));
  }

  async list(ctx: RequestContext): Promise<Pod[]> {
    const pods = await Promise.all(this.store.list<PodRecord>('pod').map((r) => this.podView(ctx, r.value)));
    return pods.sort((a, b) => (BigInt(b.createdNs) > BigInt(a.createdNs) ? 1 : -1));
  }

  /** The pod `podId`, ready; POD_NOT_READY otherwise. */
  private async readyPod(ctx: RequestContext, podId: string): Promise<Pod> {
    const pod = await this.inspect(ctx, podId);
    if (pod.state !== 'ready')
      throw new BosonError('POD_NOT_READY', `pod ${pod.spec.name} (${pod.id.slice(0, 12)}) is not ready: its micro-VM is not running`);
    return pod;
  }

  async createContainer(ctx: RequestContext, podId: string, spec: PodContainerSpec): Promise<PodContainer> {
    const pod = await this.readyPod(ctx, podId);
    if (spec.logPath !== undefined && !path.isAbsolute(spec.logPath))
      throw new BosonError('INVALID_ARGUMENT', `log path ${JSON.stringify(spec.logPath)} is not absolute`);
    for (const m of spec.mounts ?? []) {
      if (!path.isAbsolute(m.hostPath)) throw new BosonError('INVALID_ARGUMENT', `host path ${JSON.stringify(m.hostPath)} is not absolute`);
      if (!m.containerPath.startsWith('/') || m.containerPath.split('/').includes('..') || /[\t\n]/.test(m.containerPath))
        throw new BosonError('INVALID_ARGUMENT', `container path ${JSON.stringify(m.containerPath)} is not absolute or contains ..`);
    }
    // As kubelet expects (and containerd does): one container per name and attempt in a pod.
    const same = this.store
      .list<PodContainerRecord>('pod-container')
      .find((r) => r.value.podId === pod.id && r.value.spec.name === spec.name && r.value.spec.attempt === spec.attempt);
    if (same)
      throw new BosonError(
        'CONTAINER_NAME_IN_USE',
        `pod ${pod.spec.name} has a container ${spec.name} (attempt ${spec.attempt}) already: ${same.value.id.slice(0, 12)}`,
      );
    capabilityMask(spec.capAdd, spec.capDrop); // an unknown capability is refused here, before anything is made
    const image = await this.runtime.images.resolve(spec.image);
    const config = resolveProcessConfig(
      image.config,
      { entrypoint: spec.command, args: spec.args, env: spec.env, cwd: spec.cwd, user: spec.user },
      pod.spec.hostname || pod.spec.name,
    );
    const id = newContainerId();
    const dir = path.join(this.shareDir(pod.id), id);
    try {
      await this.runtime.images.unpack(image, path.join(dir, 'rootfs'));
      // The container's volumes: bound on the host under the pod's share, and from there into its root in the VM.
      for (const [i, m] of (spec.mounts ?? []).entries()) await bindInto(m.hostPath, path.join(dir, 'mounts', String(i)), m.readOnly);
      const record: PodContainerRecord = {
        id,
        podId: pod.id,
        spec,
        imageId: image.id,
        argv: config.argv,
        env: config.env,
        cwd: config.cwd,
        user: config.user,
        state: 'created',
        createdNs: String(nowNs()),
        startedNs: '0',
        finishedNs: '0',
        exitCode: null,
        reason: '',
        message: '',
      };
      this.save('pod-container', record);
      return this.containerView(record);
    } catch (err) {
      await removeUnmounted(dir);
      throw err;
    }
  }

  async startContainer(ctx: RequestContext, id: string): Promise<void> {
    const { id: cid } = this.containerRecord(id);
    await this.lock.run(cid, async () => {
      const record = this.containerRecord(cid);
      if (record.state !== 'created')
        throw new BosonError(
          record.state === 'running' ? 'CONTAINER_RUNNING' : 'INVALID_ARGUMENT',
          `container ${record.spec.name} is ${record.state}: only a created container can be started`,
        );
      const pod = await this.readyPod(ctx, record.podId);
      const log = record.spec.logPath ? new CriLogWriter(record.spec.logPath) : null;
      await this.applyResources(ctx, pod.vmContainerId, record);
      const exec = this.runtime.newExec(
        pod.vmContainerId,
        {
          argv: record.argv,
          env: record.env,
          cwd: record.cwd,
          user: record.user,
          tty: record.spec.tty ?? false,
          stdin: record.spec.stdin ?? false,
        },
        this.execRoot(record),
      );
      let startError = '';
      const attached = new Set<StreamSink>();
      const sink = {
        stdout: (d: Buffer) => {
          log?.write('stdout', d);
          for (const a of attached) a.stdout(d);
        },
        stderr: (d: Buffer) => {
          if (!this.running.has(cid)) startError += d.toString();
          log?.write('stderr', d);
          for (const a of attached) a.stderr(d);
        },
      };
      let session: ExecSession;
      try {
        session = await this.runtime.startExec(ctx, exec.id, sink);
      } catch (err) {
        this.runtime.forgetExec(exec.id);
        log?.close();
        throw err;
      }
      const started = this.runtime.getExec(exec.id);
      if (started.pid === null) {
        // The guest refused to start it (no such command, a user it does not have, a bad working directory).
        const code = await session.exit;
        this.runtime.forgetExec(exec.id);
        log?.close();
        this.finish(record, code, 'StartError', startError.trim());
        throw new BosonError(
          code === 127 ? 'COMMAND_NOT_FOUND' : code === 126 ? 'COMMAND_NOT_EXECUTABLE' : 'CONTAINER_START_FAILED',
          `container ${record.spec.name}: ${startError.trim() || `exited with ${code} before it started`}`,
        );
      }
      const done = session.exit.then(async (code) => {
        this.runtime.forgetExec(exec.id);
        log?.close();
        this.running.delete(cid);
        try {
          const current = this.containerRecord(cid);
          this.finish(current, code, code === 0 ? 'Completed' : 'Error', '');
        } catch {
          // removed meanwhile
        }
        // As when a container's PID namespace ends with its init: what its main process left running is killed.
        await this.runInVm({ principal: 'pods' }, pod.vmContainerId, killCgroupScript(cid)).catch(() => undefined);
      });
      this.running.set(cid, { session, log, pid: started.pid, done, attached, stdinClosed: false });
      record.state = 'running';
      record.startedNs = String(nowNs());
      this.save('pod-container', record);
    });
  }

  /**
   * Where a container's processes run in the pod VM: its root, read-only or not, with its volumes bound in, in its
   * cgroup of the guest, with its supplementary groups, capabilities and no_new_privs.
   */
  private execRoot(record: PodContainerRecord): ExecRoot {
    const base = `${POD_SHARE_TARGET}/${record.id}`;
    return {
      path: `${base}/rootfs`,
      readOnly: record.spec.readOnlyRoot ?? false,
      mounts: (record.spec.mounts ?? []).map((m, i) => ({ source: `${base}/mounts/${i}`, target: m.containerPath, readOnly: m.readOnly })),
      cgroup: containerCgroup(record.id),
      ...(record.spec.groups && record.spec.groups.length > 0 ? { groups: record.spec.groups } : {}),
      capabilities: capabilityMask(record.spec.capAdd, record.spec.capDrop),
      ...(record.spec.noNewPrivileges ? { noNewPrivileges: true } : {}),
    };
  }

  /** Runs a shell script in the pod VM's own root (not a container's); its exit code and output. */
  private async runInVm(
    ctx: RequestContext,
    vmContainerId: string,
    script: string,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const exec = this.runtime.newExec(vmContainerId, { argv: ['sh', '-c', script] });
    let stdout = '';
    let stderr = '';
    try {
      const session = await this.runtime.startExec(ctx, exec.id, {
        stdout: (d) => (stdout += d.toString()),
        stderr: (d) => (stderr += d.toString()),
      });
      return { code: await session.exit, stdout, stderr };
    } finally {
      this.runtime.forgetExec(exec.id);
    }
  }

  /** Writes the container's limits into its cgroup in the pod VM (made if missing), by a script run in the VM. */
  private async applyResources(ctx: RequestContext, vmContainerId: string, record: PodContainerRecord): Promise<void> {
    if (!record.spec.resources) return;
    const { code, stderr } = await this.runInVm(ctx, vmContainerId, cgroupScript(record.id, record.spec.resources));
    if (code === CGROUPS_MISSING_EXIT)
      throw new BosonError(
        'POD_CGROUPS_UNAVAILABLE',
        `container ${record.spec.name}: the pod VM's kernel has no cgroup v2, so its CPU, memory and pids limits cannot be applied`,
      );
    if (code !== 0)
      throw new BosonError('INVALID_ARGUMENT', `container ${record.spec.name}: its limits were refused in the pod VM: ${stderr.trim()}`);
  }

  async updateContainerResources(ctx: RequestContext, id: string, resources: PodContainerResources): Promise<void> {
    const { id: cid } = this.containerRecord(id);
    await this.lock.run(cid, async () => {
      const record = this.containerRecord(cid);
      if (record.state === 'exited') throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.spec.name} has exited`);
      const updated: PodContainerRecord = { ...record, spec: { ...record.spec, resources } };
      // A running container's cgroup changes now; a created one gets its limits when it starts.
      if (this.running.has(cid)) await this.applyResources(ctx, this.podRecord(record.podId).vmContainerId, updated);
      this.save('pod-container', updated);
    });
  }

  async attach(_ctx: RequestContext, id: string, options: { stdin: boolean }, sink: StreamSink): Promise<PodAttachment> {
    const record = this.containerRecord(id);
    const live = this.running.get(record.id);
    if (!live) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.spec.name} is not running`);
    if (options.stdin && !record.spec.stdin)
      throw new BosonError('INVALID_ARGUMENT', `container ${record.spec.name} was created without stdin: there is nothing to attach it to`);
    const tty = record.spec.tty ?? false;
    const once = record.spec.stdinOnce ?? false;
    live.attached.add(sink);
    let ended = false;
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const end = (): void => {
      if (ended) return;
      ended = true;
      live.attached.delete(sink);
      resolveDone();
    };
    void live.done.then(end);
    const closeStdin = (): void => {
      // As containerd: the process's stdin closes with the first attach's only for stdin_once.
      if (!options.stdin || !once || live.stdinClosed) return;
      live.stdinClosed = true;
      live.session.closeStdin();
    };
    return {
      stdin: (d) => {
        if (!ended && options.stdin && !live.stdinClosed) live.session.stdin(d);
      },
      closeStdin,
      resize: (rows, cols) => {
        if (!ended && tty) live.session.resize(rows, cols);
      },
      detach: () => {
        closeStdin();
        end();
      },
      done,
    };
  }

  /** Records the exit of a container. */
  private finish(record: PodContainerRecord, code: number, reason: string, message: string): void {
    record.state = 'exited';
    record.exitCode = code;
    record.finishedNs = String(nowNs());
    if (record.startedNs === '0') record.startedNs = record.finishedNs;
    record.reason = reason;
    record.message = message;
    this.save('pod-container', record);
  }

  async stopContainer(_ctx: RequestContext, id: string, timeoutSec: number): Promise<void> {
    const { id: cid } = this.containerRecord(id);
    const live = this.running.get(cid);
    if (!live) return;
    if (timeoutSec <= 0) live.session.signal(9);
    else live.session.signal(15);
    const timer = timeoutSec > 0 ? setTimeout(() => live.session.signal(9), timeoutSec * 1000) : undefined;
    await live.done;
    clearTimeout(timer);
  }

  async removeContainer(ctx: RequestContext, id: string): Promise<void> {
    let record: PodContainerRecord;
    try {
      record = this.containerRecord(id);
    } catch (err) {
      if (isBosonError(err, 'CONTAINER_NOT_FOUND')) return;
      throw err;
    }
    await this.stopContainer(ctx, record.id, 0);
    await this.removeCgroup(ctx, record);
    await removeUnmounted(path.join(this.shareDir(record.podId), record.id));
    this.store.delete('pod-container', record.id);
  }

  /** Removes the container's cgroup in its pod VM, when the VM runs (the cgroup goes with the VM otherwise). */
  private async removeCgroup(ctx: RequestContext, record: PodContainerRecord): Promise<void> {
    const pod = await this.inspect(ctx, record.podId).catch(() => null);
    if (pod?.state !== 'ready') return;
    await this.runInVm(ctx, pod.vmContainerId, removeCgroupScript(record.id)).catch((err: unknown) =>
      this.log.debug({ container: record.id, error: String(err) }, "the container's cgroup was not removed"),
    );
  }

  async inspectContainer(_ctx: RequestContext, id: string): Promise<PodContainer> {
    return this.containerView(this.containerRecord(id));
  }

  async listContainers(_ctx: RequestContext, podId?: string): Promise<PodContainer[]> {
    return this.store
      .list<PodContainerRecord>('pod-container')
      .map((r) => r.value)
      .filter((r) => podId === undefined || r.podId === podId)
      .map((r) => this.containerView(r))
      .sort((a, b) => (BigInt(b.createdNs) > BigInt(a.createdNs) ? 1 : -1));
  }

  async execSync(ctx: RequestContext, id: string, argv: string[], timeoutSec: number): Promise<ExecSyncResult> {
    const record = this.containerRecord(id);
    if (!this.running.has(record.id)) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.spec.name} is not running`);
    if (argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'ExecSync needs a command');
    const pod = this.podRecord(record.podId);
    const exec = this.runtime.newExec(
      pod.vmContainerId,
      { argv, env: record.env, cwd: record.cwd, user: record.user },
      this.execRoot(record),
    );
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    try {
      const session = await this.runtime.startExec(ctx, exec.id, {
        stdout: (d) => stdout.push(Buffer.from(d)),
        stderr: (d) => stderr.push(Buffer.from(d)),
      });
      let timedOut = false;
      const timer =
        timeoutSec > 0
          ? setTimeout(() => {
              timedOut = true;
              session.signal(9);
            }, timeoutSec * 1000)
          : undefined;
      const exitCode = await session.exit;
      clearTimeout(timer);
      if (timedOut) this.log.debug({ container: record.id, argv }, 'ExecSync timed out and was killed');
      return { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), exitCode, timedOut };
    } finally {
      this.runtime.forgetExec(exec.id);
    }
  }

  async containerStats(ctx: RequestContext, podId?: string): Promise<PodContainerStats[]> {
    const byPod = new Map<string, Array<{ id: string; pid: number }>>();
    for (const r of this.store.list<PodContainerRecord>('pod-container')) {
      const live = this.running.get(r.value.id);
      if (!live || live.pid === null || (podId !== undefined && r.value.podId !== podId)) continue;
      byPod.set(r.value.podId, [...(byPod.get(r.value.podId) ?? []), { id: r.value.id, pid: live.pid }]);
    }
    const out: PodContainerStats[] = [];
    for (const [pod, containers] of byPod) {
      // One exec per pod VM, in its own root: each container's cgroup (its /proc without one).
      const { stdout } = await this.runInVm(ctx, this.podRecord(pod).vmContainerId, statsScript(containers));
      out.push(...parseStats(stdout, String(nowNs())));
    }
    return out;
  }

  async stats(ctx: RequestContext, id: string): Promise<PodStats> {
    const record = this.podRecord(id);
    const vm = await this.runtime.stats(ctx, record.vmContainerId).catch((err: unknown) => {
      if (isBosonError(err, 'CONTAINER_NOT_FOUND')) return null;
      throw err;
    });
    const processes = this.store
      .list<PodContainerRecord>('pod-container')
      .filter((r) => r.value.podId === record.id && this.running.has(r.value.id)).length;
    return {
      timestampNs: String(nowNs()),
      cpuNs: vm?.cpuNs ?? 0,
      memoryBytes: vm?.memoryBytes ?? 0,
      memoryLimitBytes: vm?.memoryLimitBytes ?? 0,
      processes,
    };
  }

  async exec(
    ctx: RequestContext,
    id: string,
    options: { argv: string[]; tty: boolean; stdin: boolean },
    sink: StreamSink,
  ): Promise<ExecSession> {
    const record = this.containerRecord(id);
    if (!this.running.has(record.id)) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.spec.name} is not running`);
    if (options.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'exec needs a command');
    const pod = this.podRecord(record.podId);
    const exec = this.runtime.newExec(
      pod.vmContainerId,
      { argv: options.argv, env: record.env, cwd: record.cwd, user: record.user, tty: options.tty, stdin: options.stdin },
      this.execRoot(record),
    );
    try {
      const session = await this.runtime.startExec(ctx, exec.id, sink);
      void session.exit.finally(() => this.runtime.forgetExec(exec.id));
      return session;
    } catch (err) {
      this.runtime.forgetExec(exec.id);
      throw err;
    }
  }

  async reopenLog(_ctx: RequestContext, id: string): Promise<void> {
    const record = this.containerRecord(id);
    const live = this.running.get(record.id);
    if (!live) throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.spec.name} is not running: its log is closed`);
    live.log?.reopen();
  }
}

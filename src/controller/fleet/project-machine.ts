/**
 * One project's view of the fleet as a port `Machine`, so that the Docker personality (src/docker) serves a
 * project's Docker endpoint unchanged, as VIC's virtual container host did: containers are created through the
 * controller (quota, placement, the chosen machine) and every other container call goes to the machine that holds
 * the container; another project's containers do not exist here. Images are the union of the READY machines'
 * (a pull goes to every READY machine, so that placement may choose any). Volumes and networks are the project's
 * own, kept by the controller and made on a machine when a container first uses them (project-resources.ts). Exec
 * ids are recorded in the store (`ctl.exec/<id>`: machine, tenant, project), not in memory, so another replica can
 * answer for them.
 */
import { BosonError, type AsyncStateStore } from '../../common/index.ts';
import type {
  Attachment,
  Container,
  ContainerSpec,
  SuspendResult,
  ContainerStats,
  ContainerUpdate,
  Event,
  EventQuery,
  ExecInstance,
  ExecSession,
  ExecSpec,
  Image,
  ImageImportSource,
  ImageInspect,
  ImageProgressListener,
  ImagePruneResult,
  ImagePullRequest,
  ImagePullResult,
  ImageRemoveResult,
  LogLine,
  LogQuery,
  Machine,
  MachineContainers,
  MachineEvents,
  MachineImages,
  MachineNetworks,
  MachineVolumes,
  Network,
  NetworkConnectOptions,
  NetworkCreateRequest,
  NetworkInspect,
  NetworkPruneResult,
  RequestContext,
  RunOptions,
  RunSession,
  StreamSink,
  Volume,
  VolumeCreateRequest,
  VolumeInspect,
  VolumePruneResult,
  WaitCondition,
  WaitResult,
} from '../../machine/port/index.ts';
import type { FleetContainers } from './containers.ts';
import type { Fleet } from './fleet.ts';
import { machineImageKeys } from './image-locality.ts';
import type { MachineClients } from './machines.ts';
import type { ProjectResources } from './project-resources.ts';

/** The store kind of execs started through the controller. */
export const EXEC_KIND = 'ctl.exec';

interface ExecRecord {
  machineId: string;
  tenant: string;
  project: string;
  containerId: string;
}

const notThroughController = (what: string): BosonError =>
  new BosonError('INVALID_ARGUMENT', `${what} is not offered through a project's endpoint yet (use the machine's own)`);

/** A project's containers as MachineContainers. */
class ProjectContainers implements MachineContainers {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly fc: FleetContainers,
    private readonly clients: MachineClients,
    private readonly tenant: string,
    private readonly project: string,
  ) {}

  private at(ref: string): ReturnType<FleetContainers['resolve']> {
    return this.fc.resolve(this.tenant, this.project, ref);
  }
  /** For a change: refused (CONTAINER_LEASED) while a lease holds the container, whose nonce Docker cannot carry. */
  private changing(ref: string): ReturnType<FleetContainers['resolve']> {
    return this.fc.resolveForChange(this.tenant, this.project, ref);
  }

  async create(_ctx: RequestContext, spec: ContainerSpec): Promise<Container> {
    return this.fc.create(this.tenant, this.project, spec, { start: false });
  }
  async start(_ctx: RequestContext, ref: string): Promise<void> {
    const { rec, remote, ctx } = await this.changing(ref);
    await remote.start(ctx, rec.machineContainerId);
  }
  async stop(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    const { rec, remote, ctx } = await this.changing(ref);
    await remote.stop(ctx, rec.machineContainerId, timeoutSec);
  }
  async restart(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    const { rec, remote, ctx } = await this.changing(ref);
    await remote.restart(ctx, rec.machineContainerId, timeoutSec);
  }
  async kill(_ctx: RequestContext, ref: string, signal?: string): Promise<void> {
    const { rec, remote, ctx } = await this.changing(ref);
    await remote.kill(ctx, rec.machineContainerId, signal);
  }
  async remove(_ctx: RequestContext, ref: string, options?: { force?: boolean; volumes?: boolean }): Promise<void> {
    await this.fc.remove(this.tenant, this.project, ref, options?.force ?? false);
  }
  async suspend(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    const { rec, remote, ctx } = await this.at(ref);
    return remote.suspend(ctx, rec.machineContainerId);
  }
  async resume(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    const { rec, remote, ctx } = await this.at(ref);
    return remote.resume(ctx, rec.machineContainerId);
  }
  async rename(): Promise<void> {
    throw notThroughController('rename');
  }
  async update(_ctx: RequestContext, ref: string, change: ContainerUpdate): Promise<Container> {
    const { rec, remote, ctx } = await this.changing(ref);
    return this.fc.viewOf(rec, await remote.update(ctx, rec.machineContainerId, change));
  }
  async wait(_ctx: RequestContext, ref: string, condition?: WaitCondition): Promise<WaitResult> {
    const { rec, remote, ctx } = await this.at(ref);
    return remote.wait(ctx, rec.machineContainerId, condition);
  }
  async list(_ctx: RequestContext, options?: { all?: boolean }): Promise<Container[]> {
    const all = await this.fc.list(this.tenant, this.project);
    return options?.all ? all : all.filter((c) => c.state === 'running' || c.state === 'restarting');
  }
  async inspect(_ctx: RequestContext, ref: string): Promise<Container> {
    return this.fc.inspect(this.tenant, this.project, ref);
  }
  async stats(_ctx: RequestContext, ref: string): Promise<ContainerStats> {
    const { rec, remote, ctx } = await this.at(ref);
    return remote.stats(ctx, rec.machineContainerId);
  }
  async attach(_ctx: RequestContext, ref: string, sink: StreamSink, signal: AbortSignal): Promise<Attachment> {
    const { rec, remote, ctx } = await this.at(ref);
    return remote.attach(ctx, rec.machineContainerId, sink, signal);
  }
  async resize(_ctx: RequestContext, ref: string, rows: number, cols: number): Promise<void> {
    const { rec, remote, ctx } = await this.at(ref);
    await remote.resize(ctx, rec.machineContainerId, rows, cols);
  }
  async logs(
    _ctx: RequestContext,
    ref: string,
    query: LogQuery,
    follow: boolean,
    onLine: (line: LogLine) => void,
    signal: AbortSignal,
  ): Promise<void> {
    // The machine's client paces itself by the connection; `ready` has no use over it.
    const { rec, remote, ctx } = await this.at(ref);
    await remote.logs(ctx, rec.machineContainerId, query, follow, onLine, signal);
  }
  /**
   * A run in one call, in Docker's order through the fleet: created through the controller (quota, placement) but
   * not started, attached on its machine before it starts (no byte of its output is missed), started, waited for;
   * with autoRemove, removed through the controller once its output has ended, so that its quota comes back. A
   * failure before it runs removes it.
   */
  async run(_ctx: RequestContext, spec: ContainerSpec, sink: StreamSink, options: RunOptions = {}): Promise<RunSession> {
    const container = await this.fc.create(this.tenant, this.project, { ...spec, autoRemove: false }, { start: false });
    const remove = (): Promise<void> => this.fc.remove(this.tenant, this.project, container.id, true).catch(() => undefined);
    try {
      options.onCreated?.(container);
      const { rec, remote, ctx } = await this.at(container.id);
      const id = rec.machineContainerId;
      const detach = new AbortController();
      const attachment = await remote.attach(ctx, id, sink, detach.signal);
      await remote.start(ctx, id);
      const resize = (rows: number, cols: number): void => void remote.resize(ctx, id, rows, cols).catch(() => undefined);
      if (options.winsize && spec.process?.tty) resize(options.winsize.rows, options.winsize.cols);
      const exit = (async (): Promise<WaitResult> => {
        const result = await remote.wait(ctx, id);
        await attachment.done;
        if (spec.autoRemove) await remove();
        return result;
      })();
      exit.catch(() => undefined);
      return {
        container,
        stdin: attachment.stdin,
        closeStdin: attachment.closeStdin,
        resize,
        signal: (signo) => void remote.kill(ctx, id, String(signo)).catch(() => undefined),
        exit,
      };
    } catch (err) {
      await remove();
      throw err;
    }
  }
  async createExec(_ctx: RequestContext, ref: string, spec: ExecSpec): Promise<ExecInstance> {
    const { rec, remote, ctx } = await this.at(ref);
    const exec = await remote.createExec(ctx, rec.machineContainerId, spec);
    const value: ExecRecord = { machineId: rec.machineId, tenant: this.tenant, project: this.project, containerId: rec.id };
    await this.store.put(EXEC_KIND, exec.id, value);
    return { ...exec, containerId: rec.id };
  }
  private async exec(id: string): Promise<ExecRecord> {
    const r = await this.store.get<ExecRecord>(EXEC_KIND, id);
    if (!r || r.value.tenant !== this.tenant || r.value.project !== this.project)
      throw new BosonError('EXEC_NOT_FOUND', `no such exec instance: ${id}`);
    return r.value;
  }
  async inspectExec(_ctx: RequestContext, id: string): Promise<ExecInstance> {
    const e = await this.exec(id);
    const remote = await this.clients.of(e.machineId);
    return { ...(await remote.inspectExec({ tenant: this.tenant, project: this.project }, id)), containerId: e.containerId };
  }
  async startExec(_ctx: RequestContext, id: string, sink: StreamSink): Promise<ExecSession> {
    const e = await this.exec(id);
    return (await this.clients.of(e.machineId)).startExec({ tenant: this.tenant, project: this.project }, id, sink);
  }
}

/** The images of the READY machines, as one. */
class FleetImages implements MachineImages {
  constructor(
    private readonly fleet: Fleet,
    private readonly clients: MachineClients,
  ) {}

  private async ready(): Promise<Array<ReturnType<MachineClients['forAddress']>>> {
    return (await this.readyIds()).map((m) => m.remote);
  }
  private async readyIds(): Promise<Array<{ id: string; remote: ReturnType<MachineClients['forAddress']> }>> {
    return (await this.fleet.list())
      .filter((m) => m.state === 'READY')
      .map((m) => ({ id: m.id, remote: this.clients.forAddress(m.id, m.address) }));
  }
  /** Pulls on every READY machine, and records each one's image list right after (placement's image locality). */
  async pull(ctx: RequestContext, request: ImagePullRequest, onProgress?: ImageProgressListener): Promise<ImagePullResult> {
    const machines = await this.readyIds();
    if (machines.length === 0) throw new BosonError('PLACEMENT_NO_CAPACITY', 'no READY machine to pull the image on');
    const results = await Promise.all(
      machines.map(async ({ id, remote }, i) => {
        const result = await remote.images.pull(ctx, request, i === 0 ? onProgress : undefined);
        // Best effort: the health checks record the list again within IMAGES_EVERY checks anyway.
        await remote.images
          .list(ctx)
          .then((images) => this.fleet.recordImages(id, machineImageKeys(images)))
          .catch(() => undefined);
        return result;
      }),
    );
    return results[0]!;
  }
  async import(_ctx: RequestContext, _source: ImageImportSource): Promise<Image[]> {
    throw notThroughController('image import');
  }
  async list(ctx: RequestContext): Promise<Image[]> {
    const seen = new Map<string, Image>();
    for (const m of await this.ready())
      for (const img of await m.images.list(ctx).catch(() => [] as Image[])) if (!seen.has(img.id)) seen.set(img.id, img);
    return [...seen.values()];
  }
  async inspect(ctx: RequestContext, ref: string): Promise<ImageInspect> {
    let last: unknown = new BosonError('IMAGE_NOT_FOUND', `no such image: ${ref}`);
    for (const m of await this.ready()) {
      try {
        return await m.images.inspect(ctx, ref);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }
  async tag(): Promise<Image> {
    throw notThroughController('image tag');
  }
  async remove(): Promise<ImageRemoveResult> {
    throw notThroughController('image removal');
  }
  async prune(): Promise<ImagePruneResult> {
    throw notThroughController('image prune');
  }
}

/** The project's volumes (kept by the controller; see project-resources.ts). */
class ProjectVolumes implements MachineVolumes {
  constructor(
    private readonly res: ProjectResources,
    private readonly tenant: string,
    private readonly project: string,
  ) {}
  create(_ctx: RequestContext, request: VolumeCreateRequest): Promise<Volume> {
    return this.res.createVolume(this.tenant, this.project, request);
  }
  list(): Promise<Volume[]> {
    return this.res.listVolumes(this.tenant, this.project);
  }
  inspect(_ctx: RequestContext, name: string): Promise<VolumeInspect> {
    return this.res.inspectVolume(this.tenant, this.project, name);
  }
  remove(_ctx: RequestContext, name: string): Promise<void> {
    return this.res.removeVolume(this.tenant, this.project, name);
  }
  async prune(_ctx: RequestContext, options?: { all?: boolean }): Promise<VolumePruneResult> {
    return { removed: await this.res.pruneVolumes(this.tenant, this.project, options?.all ?? false) };
  }
}

/** The project's networks (kept by the controller; see project-resources.ts). */
class ProjectNetworks implements MachineNetworks {
  constructor(
    private readonly res: ProjectResources,
    private readonly fc: FleetContainers,
    private readonly tenant: string,
    private readonly project: string,
  ) {}
  create(_ctx: RequestContext, request: NetworkCreateRequest): Promise<Network> {
    return this.res.createNetwork(this.tenant, this.project, request);
  }
  list(): Promise<Network[]> {
    return this.res.listNetworks(this.tenant, this.project);
  }
  inspect(_ctx: RequestContext, ref: string): Promise<NetworkInspect> {
    return this.res.inspectNetwork(this.tenant, this.project, ref);
  }
  remove(_ctx: RequestContext, ref: string): Promise<void> {
    return this.res.removeNetwork(this.tenant, this.project, ref);
  }
  async connect(_ctx: RequestContext, ref: string, container: string, options?: NetworkConnectOptions): Promise<void> {
    const { rec, remote } = await this.fc.resolveForChange(this.tenant, this.project, container);
    await this.res.connect(this.tenant, this.project, ref, rec, remote, options);
  }
  async disconnect(_ctx: RequestContext, ref: string, container: string): Promise<void> {
    const { rec, remote } = await this.fc.resolveForChange(this.tenant, this.project, container);
    await this.res.disconnect(this.tenant, this.project, ref, rec, remote);
  }
  async prune(): Promise<NetworkPruneResult> {
    return { removed: await this.res.pruneNetworks(this.tenant, this.project) };
  }
}

const noEvents: MachineEvents = {
  past: async (): Promise<Event[]> => [],
  follow: async (_ctx: RequestContext, _q: EventQuery, _on: (e: Event) => void, signal: AbortSignal) =>
    new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }))),
};

/** A project of the fleet as a port Machine (see the module comment). */
export class ProjectMachine implements Machine {
  readonly containers: MachineContainers;
  readonly images: MachineImages;
  readonly volumes: MachineVolumes;
  readonly networks: MachineNetworks;
  readonly events = noEvents;

  constructor(
    store: AsyncStateStore,
    fleet: Fleet,
    containers: FleetContainers,
    clients: MachineClients,
    readonly tenant: string,
    readonly project: string,
  ) {
    this.containers = new ProjectContainers(store, containers, clients, tenant, project);
    this.images = new FleetImages(fleet, clients);
    this.volumes = new ProjectVolumes(containers.resources, tenant, project);
    this.networks = new ProjectNetworks(containers.resources, containers, tenant, project);
  }
}

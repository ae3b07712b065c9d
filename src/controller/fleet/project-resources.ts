/**
 * A project's volumes and networks on a fleet of separate hosts (no overlay network, no shared disks). Each is a
 * record in the controller's store, named in the project (`ctl.volume/<tenant>/<project>/<name>`,
 * `ctl.network/<tenant>/<project>/<name>`: two projects can both have `data`), with a name of its own on machines
 * (`pv-<hex>`, `pn-<hex>`) so that no project can name, see or reach another's. It lives on no machine until a
 * container first uses it: the commit that places that container *binds* it to the chosen machine (in the same
 * store commit as the placement, compare-and-swapped, so two containers racing to use an unbound volume cannot bind
 * it to two machines); the controller then makes it on that machine (idempotently). From then on every container
 * that uses it carries a constraint to that machine: a volume's data and a network's bridge are there and nowhere
 * else. A container that asks for resources bound to two machines is PROJECT_RESOURCES_SPLIT.
 *
 * A record keeps its users (the controller ids of the containers placed with it, added by the placement commit); a
 * user counts while its placement or container record exists, so a user whose removal did not finish does not pin
 * it for ever. Removal is refused while a user counts (VOLUME_IN_USE / NETWORK_IN_USE), then marks the record
 * `removing` (a placement that read it before fails its compare-and-swap), removes the machine's copy, and deletes
 * the record; a machine that does not answer leaves the record as it was (MACHINE_UNREACHABLE). Quota: each volume
 * holds `volume.count` 1 and each network `network.count` 1 of its project (unlimited unless a limit names them).
 */
import { randomBytes } from 'node:crypto';
import { BosonError, isBosonError, isStoreConflict, type AsyncStateStore, type StoredRecord, type StoreOp } from '../../common/index.ts';
import type {
  Container,
  ContainerSpec,
  MountSpec,
  Network,
  NetworkConnectOptions,
  NetworkContainer,
  NetworkCreateRequest,
  NetworkInspect,
  RequestContext,
  Volume,
  VolumeCreateRequest,
  VolumeInspect,
} from '../../machine/port/index.ts';
import type { RemoteMachine } from '../../machine/client/index.ts';
import type { Tenants } from '../model/tenants.ts';
import type { Limits } from '../model/schemas.ts';
import { now } from '../model/records.ts';
import { PLACEMENT_KIND, type Constraint } from '../scheduler/index.ts';
import type { MachineClients } from './machines.ts';

/** The store kind of a project's volumes. */
export const VOLUME_KIND = 'ctl.volume';
/** The store kind of a project's networks. */
export const NETWORK_KIND = 'ctl.network';
/** The store kind of controller containers (one definition: containers.ts re-exports it). */
export const CONTAINER_KIND = 'ctl.container';

/** What volumes and networks cost in quota keys. */
export const VOLUME_COST: Limits = [{ key: 'volume.count', value: 1, unit: 'count' }];
export const NETWORK_COST: Limits = [{ key: 'network.count', value: 1, unit: 'count' }];

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

interface ResourceRecord {
  /** Random hex: a network's Docker id (64 digits), a volume's record id. */
  id: string;
  tenant: string;
  project: string;
  name: string;
  /** Its name on the machine it lives on. */
  machineName: string;
  labels: Record<string, string>;
  created: string;
  /** The machine it lives on, once a placement bound it. */
  machineId?: string;
  /** Controller ids of the containers placed with it. */
  users: string[];
  /** A removal is in progress (or was interrupted: removing again finishes it). */
  removing?: boolean;
  /** The quota reservation it holds. */
  reservation: string;
}

/** A project's volume as the controller records it. */
export interface VolumeRecord extends ResourceRecord {
  sizeBytes?: number;
}

/** A project's network as the controller records it. */
export interface NetworkRecord extends ResourceRecord {
  subnet?: string;
  gateway?: string;
  internal: boolean;
}

type Kind = typeof VOLUME_KIND | typeof NETWORK_KIND;

/** One volume or network a container uses, as read (its revision is what the placement commit expects). */
export interface Use {
  kind: Kind;
  key: string;
  revision: number;
  rec: VolumeRecord | NetworkRecord;
}

const ctxOf = (tenant: string, project: string): RequestContext => ({ principal: 'boson-controller', tenant, project });

/** True when `spec` uses a volume or network of its project (a container the controller cannot move elsewhere). */
export function usesProjectResources(spec: ContainerSpec): boolean {
  return namedVolumes(spec).length > 0 || projectNetwork(spec) !== undefined;
}

/** True for the store kinds of project resources (a placement commit that failed on one: read again and retry). */
export function isResourceKind(kind: string): boolean {
  return kind === VOLUME_KIND || kind === NETWORK_KIND;
}

function namedVolumes(spec: ContainerSpec): string[] {
  return [
    ...new Set(
      (spec.mounts ?? [])
        .filter((m) => m.type === 'volume' && m.name !== '' && m.anonymous !== true)
        .map((m) => (m as { name: string }).name),
    ),
  ];
}

function projectNetwork(spec: ContainerSpec): string | undefined {
  const n = spec.network;
  return n === undefined || n === '' || n === 'none' || n === 'bridge' || n === 'default' ? undefined : n;
}

const volumeMissing = (name: string): BosonError => new BosonError('VOLUME_NOT_FOUND', `no such volume: ${name}`);
const networkMissing = (ref: string): BosonError => new BosonError('NETWORK_NOT_FOUND', `network ${ref} not found`);

/** A project's volumes and networks (see the module comment). */
export class ProjectResources {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly tenants: Tenants,
    private readonly machines: MachineClients,
  ) {}

  private key(tenant: string, project: string, name: string): string {
    return `${tenant}/${project}/${name}`;
  }

  // ---- volumes ----

  /** Creates a volume in the project (a random name when none is given); an existing name is returned as it is. */
  async createVolume(tenant: string, project: string, req: VolumeCreateRequest): Promise<Volume> {
    const name = req.name ? req.name : randomBytes(32).toString('hex');
    return this.view(await this.ensureVolume(tenant, project, name, req.labels ?? {}, req.sizeBytes));
  }

  private async ensureVolume(
    tenant: string,
    project: string,
    name: string,
    labels: Record<string, string>,
    sizeBytes?: number,
  ): Promise<StoredRecord<VolumeRecord>> {
    if (!NAME.test(name))
      throw new BosonError('INVALID_ARGUMENT', `invalid volume name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const key = this.key(tenant, project, name);
    const existing = await this.store.get<VolumeRecord>(VOLUME_KIND, key);
    if (existing && !existing.value.removing) return existing;
    if (existing) throw new BosonError('VOLUME_IN_USE', `volume ${name} is being removed`);
    const id = randomBytes(8).toString('hex');
    const reservation = await this.tenants.reserve(tenant, project, VOLUME_COST, `volume-${id}`);
    const rec: VolumeRecord = {
      id,
      tenant,
      project,
      name,
      machineName: `pv-${id}`,
      labels,
      created: now(),
      users: [],
      reservation,
      ...(sizeBytes === undefined ? {} : { sizeBytes }),
    };
    try {
      await this.store.put(VOLUME_KIND, key, rec, { expectRevision: 0 });
    } catch (err) {
      await this.tenants.release(tenant, project, reservation).catch(() => undefined);
      if (!isStoreConflict(err)) throw err;
      const won = await this.store.get<VolumeRecord>(VOLUME_KIND, key); // another create of the name won: it is the volume
      if (won && !won.value.removing) return won;
      throw err;
    }
    return (await this.store.get<VolumeRecord>(VOLUME_KIND, key))!;
  }

  /** The project's volumes, oldest first. */
  async listVolumes(tenant: string, project: string): Promise<Volume[]> {
    const recs = await this.store.list<VolumeRecord>(VOLUME_KIND, { prefix: `${tenant}/${project}/` });
    return recs
      .filter((r) => !r.value.removing)
      .sort((a, b) => a.createRevision - b.createRevision)
      .map((r) => this.view(r));
  }

  private async volume(tenant: string, project: string, name: string): Promise<StoredRecord<VolumeRecord>> {
    const r = await this.store.get<VolumeRecord>(VOLUME_KIND, this.key(tenant, project, name));
    if (!r || r.value.removing) throw volumeMissing(name);
    return r;
  }

  /** A volume with the disk it takes on its machine (0 before it lives on one) and the containers that use it. */
  async inspectVolume(tenant: string, project: string, name: string): Promise<VolumeInspect> {
    const r = await this.volume(tenant, project, name);
    let usageBytes = 0;
    let mountpoint = '';
    if (r.value.machineId) {
      const there = await this.onMachine(r.value.machineId, (m) => m.volumes.inspect(ctxOf(tenant, project), r.value.machineName)).catch(
        () => undefined,
      );
      usageBytes = there?.usageBytes ?? 0;
      mountpoint = there?.mountpoint ?? '';
    }
    return { ...this.view(r), mountpoint, usageBytes, usedBy: await this.alive(r.value) };
  }

  /** Removes a volume and its machine's copy; VOLUME_IN_USE while a container uses it. */
  async removeVolume(tenant: string, project: string, name: string): Promise<void> {
    const r = await this.store.get<VolumeRecord>(VOLUME_KIND, this.key(tenant, project, name));
    if (!r) throw volumeMissing(name);
    await this.removeResource(r, VOLUME_KIND, async (m) => {
      await m.volumes.remove(ctxOf(tenant, project), r.value.machineName).catch((err: unknown) => {
        if (!isBosonError(err, 'VOLUME_NOT_FOUND')) throw err;
      });
    });
  }

  /** Removes the project's volumes no container uses (all of them are named: only with `all`). */
  async pruneVolumes(tenant: string, project: string, all: boolean): Promise<string[]> {
    if (!all) return [];
    return this.prune(await this.listVolumes(tenant, project), (v) => this.removeVolume(tenant, project, v.name));
  }

  // ---- networks ----

  /** Creates a network in the project; NETWORK_NAME_IN_USE when the project has one of that name. */
  async createNetwork(tenant: string, project: string, req: NetworkCreateRequest): Promise<Network> {
    if (!NAME.test(req.name))
      throw new BosonError('INVALID_ARGUMENT', `invalid network name "${req.name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (['bridge', 'default', 'none', 'host'].includes(req.name))
      throw new BosonError('NETWORK_NAME_IN_USE', `network with name ${req.name} already exists (it is predefined)`);
    const key = this.key(tenant, project, req.name);
    const taken = (): BosonError => new BosonError('NETWORK_NAME_IN_USE', `network with name ${req.name} already exists`);
    if (await this.store.get(NETWORK_KIND, key)) throw taken();
    const id = randomBytes(32).toString('hex');
    const reservation = await this.tenants.reserve(tenant, project, NETWORK_COST, `network-${id.slice(0, 16)}`);
    const rec: NetworkRecord = {
      id,
      tenant,
      project,
      name: req.name,
      machineName: `pn-${id.slice(0, 12)}`,
      labels: req.labels ?? {},
      created: now(),
      users: [],
      reservation,
      internal: req.internal ?? false,
      ...(req.subnet ? { subnet: req.subnet } : {}),
      ...(req.gateway ? { gateway: req.gateway } : {}),
    };
    try {
      await this.store.put(NETWORK_KIND, key, rec, { expectRevision: 0 });
    } catch (err) {
      await this.tenants.release(tenant, project, reservation).catch(() => undefined);
      throw isStoreConflict(err) ? taken() : err;
    }
    return this.netView(rec);
  }

  /** The project's networks, oldest first. */
  async listNetworks(tenant: string, project: string): Promise<Network[]> {
    return (await this.networkRecords(tenant, project)).map((r) => this.netView(r.value));
  }

  private async networkRecords(tenant: string, project: string): Promise<Array<StoredRecord<NetworkRecord>>> {
    const recs = await this.store.list<NetworkRecord>(NETWORK_KIND, { prefix: `${tenant}/${project}/` });
    return recs.filter((r) => !r.value.removing).sort((a, b) => a.createRevision - b.createRevision);
  }

  /** A network of the project by name, id or unique id prefix; NETWORK_NOT_FOUND otherwise. */
  async network(tenant: string, project: string, ref: string): Promise<StoredRecord<NetworkRecord>> {
    const byName = await this.store.get<NetworkRecord>(NETWORK_KIND, this.key(tenant, project, ref));
    if (byName && !byName.value.removing) return byName;
    const all = await this.networkRecords(tenant, project);
    const hit = all.find((r) => r.value.id === ref) ?? (ref.length > 0 ? single(all.filter((r) => r.value.id.startsWith(ref))) : undefined);
    if (!hit) throw networkMissing(ref);
    return hit;
  }

  /** A network with its subnet on its machine and the project's containers on it there. */
  async inspectNetwork(tenant: string, project: string, ref: string): Promise<NetworkInspect> {
    const r = await this.network(tenant, project, ref);
    const view = this.netView(r.value);
    if (!r.value.machineId) return { ...view, containers: [] };
    const ctx = ctxOf(tenant, project);
    const there = await this.onMachine(r.value.machineId, (m) => m.networks.inspect(ctx, r.value.machineName)).catch(() => undefined);
    if (!there) return { ...view, containers: [] };
    const containers: NetworkContainer[] = [];
    for (const c of there.containers) {
      // On the machine a container is named by its controller id; the project knows it by its own name.
      const rec = await this.store.get<{ name: string; id: string }>(CONTAINER_KIND, this.key(tenant, project, c.name));
      if (rec) containers.push({ ...c, id: rec.value.id, name: rec.value.name });
    }
    return { ...view, subnet: there.subnet, gateway: there.gateway, bridge: there.bridge, containers };
  }

  /** Removes a network and its machine's copy; NETWORK_IN_USE while a container uses it. */
  async removeNetwork(tenant: string, project: string, ref: string): Promise<void> {
    const r = await this.network(tenant, project, ref);
    await this.removeResource(r, NETWORK_KIND, async (m) => {
      await m.networks.remove(ctxOf(tenant, project), r.value.machineName).catch((err: unknown) => {
        if (!isBosonError(err, 'NETWORK_NOT_FOUND')) throw err;
      });
    });
  }

  /** Removes the project's networks no container uses. */
  async pruneNetworks(tenant: string, project: string): Promise<string[]> {
    return this.prune(await this.listNetworks(tenant, project), (n) => this.removeNetwork(tenant, project, n.id));
  }

  /**
   * Puts a container of the project (`container`: its controller id, machine and id there) on network `ref` for its
   * next start, binding the network to the container's machine if it lives nowhere yet (PROJECT_RESOURCES_SPLIT if
   * it lives on another). The container also answers to its project name there.
   */
  async connect(
    tenant: string,
    project: string,
    ref: string,
    container: { id: string; name: string; machineId: string; machineContainerId: string },
    remote: RemoteMachine,
    options: NetworkConnectOptions | undefined,
  ): Promise<void> {
    const ctx = ctxOf(tenant, project);
    for (let attempt = 1; ; attempt++) {
      const net = await this.network(tenant, project, ref);
      const use: Use = { kind: NETWORK_KIND, key: net.key, revision: net.revision, rec: net.value };
      pinOf([use], container.name, container.machineId);
      try {
        await this.store.commit(this.bindOps([use], container.id, container.machineId));
      } catch (err) {
        if (attempt < 8 && isStoreConflict(err)) continue;
        throw err;
      }
      await this.materialise([use], container.machineId);
      if (options === undefined) {
        const c = await remote.inspect(ctx, container.machineContainerId);
        if (c.network === net.value.machineName)
          throw new BosonError('ALREADY_CONNECTED', `container ${container.name} is already connected to network ${net.value.name}`);
      }
      const aliases = [...new Set([...(options?.aliases ?? []), container.name])];
      await remote.networks.connect(ctx, net.value.machineName, container.machineContainerId, { ...(options ?? {}), aliases });
      return;
    }
  }

  /** Takes a container of the project off network `ref` (it then has no network). */
  async disconnect(
    tenant: string,
    project: string,
    ref: string,
    container: { id: string; name: string; machineId: string; machineContainerId: string },
    remote: RemoteMachine,
  ): Promise<void> {
    const net = await this.network(tenant, project, ref);
    if (net.value.machineId !== container.machineId)
      throw new BosonError('INVALID_ARGUMENT', `container ${container.name} is not connected to network ${net.value.name}`);
    await remote.networks.disconnect(ctxOf(tenant, project), net.value.machineName, container.machineContainerId);
    await this.dropUser(NETWORK_KIND, net.key, container.id);
  }

  // ---- placement ----

  /**
   * The volumes and networks of the project that `spec` uses, read for the placement commit (a named volume that
   * does not exist is created, as Docker does; a network must exist). None: no store read at all.
   */
  async usesOf(tenant: string, project: string, spec: ContainerSpec): Promise<Use[]> {
    const uses: Use[] = [];
    for (const name of namedVolumes(spec)) {
      const r = await this.ensureVolume(tenant, project, name, {});
      uses.push({ kind: VOLUME_KIND, key: r.key, revision: r.revision, rec: r.value });
    }
    const net = projectNetwork(spec);
    if (net !== undefined) {
      const r = await this.network(tenant, project, net);
      uses.push({ kind: NETWORK_KIND, key: r.key, revision: r.revision, rec: r.value });
    }
    return uses;
  }

  /** The constraint that keeps a container with `uses` on the machine they live on (none when they live nowhere yet). */
  constraintOf(uses: Use[], container: string): Constraint[] {
    const pin = pinOf(uses, container);
    return pin ? [{ type: 'machine', ids: [pin] }] : [];
  }

  /** The store operations that bind `uses` to `machineId` with container `id` as a user (part of its placement commit). */
  bindOps(uses: Use[], id: string, machineId: string): StoreOp[] {
    return uses.map((u) => ({
      op: 'put',
      kind: u.kind,
      key: u.key,
      value: { ...u.rec, machineId, users: [...new Set([...u.rec.users, id])] },
      expectRevision: u.revision,
    }));
  }

  /**
   * Makes each of `uses` on machine `machineId` unless it is there already. Two containers placed at once with one
   * new volume both get here: the makings of one resource on one machine are serialised in this process (a machine
   * is not asked to make one disk twice at once), and a making that fails is forgiven when the resource is there.
   */
  async materialise(uses: Use[], machineId: string): Promise<void> {
    for (const u of uses) {
      const key = `${machineId}/${u.kind}/${u.rec.machineName}`;
      const before = this.making.get(key) ?? Promise.resolve();
      const mine = before.then(() => this.makeOn(u, machineId));
      const settled = mine.catch(() => undefined);
      this.making.set(key, settled);
      void settled.then(() => {
        if (this.making.get(key) === settled) this.making.delete(key);
      });
      await mine;
    }
  }

  private readonly making = new Map<string, Promise<void>>();

  private async makeOn(u: Use, machineId: string): Promise<void> {
    {
      const rec = u.rec;
      const ctx = ctxOf(rec.tenant, rec.project);
      const labels = { ...rec.labels, 'boson.tenant': rec.tenant, 'boson.project': rec.project, 'boson.controller.name': rec.name };
      await this.onMachine(machineId, async (m) => {
        if (u.kind === VOLUME_KIND) {
          const v = rec as VolumeRecord;
          try {
            await m.volumes.create(ctx, { name: v.machineName, labels, ...(v.sizeBytes ? { sizeBytes: v.sizeBytes } : {}) });
          } catch (err) {
            // Made meanwhile (by another replica): as good as made here.
            if (
              !(await m.volumes.inspect(ctx, v.machineName).then(
                () => true,
                () => false,
              ))
            )
              throw err;
          }
          return;
        }
        const n = rec as NetworkRecord;
        try {
          await m.networks.inspect(ctx, n.machineName);
        } catch (err) {
          if (!isBosonError(err, 'NETWORK_NOT_FOUND')) throw err;
          await m.networks
            .create(ctx, {
              name: n.machineName,
              labels,
              internal: n.internal,
              ...(n.subnet ? { subnet: n.subnet } : {}),
              ...(n.gateway ? { gateway: n.gateway } : {}),
            })
            .catch((e: unknown) => {
              if (!isBosonError(e, 'NETWORK_NAME_IN_USE')) throw e;
            });
        }
      });
    }
  }

  /**
   * `spec` as its machine gets it: the project's volume and network names replaced by their names there, and the
   * container's project name among its aliases on a project network (Docker resolves container names there).
   */
  machineSpec(spec: ContainerSpec, uses: Use[]): ContainerSpec {
    const vol = new Map(uses.filter((u) => u.kind === VOLUME_KIND).map((u) => [u.rec.name, u.rec.machineName]));
    const net = uses.find((u) => u.kind === NETWORK_KIND)?.rec;
    const out: ContainerSpec = { ...spec };
    if (spec.mounts)
      out.mounts = spec.mounts.map((m): MountSpec => (m.type === 'volume' && vol.has(m.name) ? { ...m, name: vol.get(m.name)! } : m));
    if (net) {
      out.network = net.machineName;
      const aliases = [...(spec.aliases ?? []), ...(spec.name ? [spec.name] : [])];
      if (aliases.length > 0) out.aliases = [...new Set(aliases)];
    }
    return out;
  }

  /** Takes container `id` off the users of every volume and network of the project that lists it. */
  async dropUserEverywhere(tenant: string, project: string, id: string): Promise<void> {
    for (const kind of [VOLUME_KIND, NETWORK_KIND] as const)
      for (const r of await this.store.list<ResourceRecord>(kind, { prefix: `${tenant}/${project}/` }))
        if (r.value.users.includes(id)) await this.dropUser(kind, r.key, id);
  }

  private async dropUser(kind: Kind, key: string, id: string): Promise<void> {
    for (let attempt = 0; attempt < 16; attempt++) {
      const r = await this.store.get<ResourceRecord>(kind, key);
      if (!r || !r.value.users.includes(id)) return;
      try {
        await this.store.put(kind, key, { ...r.value, users: r.value.users.filter((u) => u !== id) }, { expectRevision: r.revision });
        return;
      } catch (err) {
        if (!isStoreConflict(err)) throw err;
      }
    }
  }

  /**
   * `containers` as the project sees them: its volumes' and networks' names for their names on machines (in mounts,
   * the network and the running endpoint's network).
   */
  async translate<C extends Container>(tenant: string, project: string, containers: C[]): Promise<C[]> {
    const touches = containers.some(
      (c) => c.network.startsWith('pn-') || c.mounts.some((m) => m.type === 'volume' && m.name.startsWith('pv-')),
    );
    if (!touches) return containers;
    const [vols, nets] = await Promise.all([
      this.store.list<VolumeRecord>(VOLUME_KIND, { prefix: `${tenant}/${project}/` }),
      this.store.list<NetworkRecord>(NETWORK_KIND, { prefix: `${tenant}/${project}/` }),
    ]);
    const vol = new Map(vols.map((r) => [r.value.machineName, r.value.name]));
    const net = new Map(nets.map((r) => [r.value.machineName, r.value.name]));
    return containers.map((c) => {
      const network = net.get(c.network);
      return {
        ...c,
        mounts: c.mounts.map((m) => (m.type === 'volume' && vol.has(m.name) ? { ...m, name: vol.get(m.name)! } : m)),
        ...(network === undefined ? {} : { network }),
        // A running container's endpoint is on the network it joined at start (a running one cannot change it).
        ...(network !== undefined && c.endpoint ? { endpoint: { ...c.endpoint, network } } : {}),
      };
    });
  }

  // ---- shared ----

  private view(r: StoredRecord<VolumeRecord>): Volume {
    const v = r.value;
    return {
      name: v.name,
      created: v.created,
      anonymous: false,
      sizeBytes: v.sizeBytes ?? 16 * 1024 ** 3,
      labels: v.labels,
      mountpoint: '',
    };
  }

  private netView(n: NetworkRecord): Network {
    return {
      id: n.id,
      name: n.name,
      driver: 'bridge',
      bridge: '',
      subnet: n.subnet ?? '',
      gateway: n.gateway ?? '',
      internal: n.internal,
      labels: n.labels,
      created: n.created,
      builtin: false,
    };
  }

  /** The users of `rec` that still exist (placed, or recorded). */
  private async alive(rec: ResourceRecord): Promise<string[]> {
    const out: string[] = [];
    for (const id of rec.users) {
      const placed = await this.store.get(PLACEMENT_KIND, id);
      const recorded = placed ? undefined : await this.store.get(CONTAINER_KIND, this.key(rec.tenant, rec.project, id));
      if (placed || recorded) out.push(id);
    }
    return out;
  }

  private async removeResource(
    r: StoredRecord<ResourceRecord>,
    kind: Kind,
    removeThere: (m: RemoteMachine) => Promise<void>,
  ): Promise<void> {
    const rec = r.value;
    const users = await this.alive(rec);
    if (users.length > 0) {
      const what = kind === VOLUME_KIND ? 'volume' : 'network';
      throw new BosonError(
        kind === VOLUME_KIND ? 'VOLUME_IN_USE' : 'NETWORK_IN_USE',
        `remove ${rec.name}: ${what} is in use by ${users.length === 1 ? 'container' : 'containers'} ${users.join(', ')}`,
        { details: { [what]: rec.name, containers: users } },
      );
    }
    // Marked first: a placement that read the record before now fails its compare-and-swap.
    const marked = await this.store.put(kind, r.key, { ...rec, users: [], removing: true }, { expectRevision: r.revision });
    if (rec.machineId) {
      try {
        await this.onMachine(rec.machineId, removeThere);
      } catch (err) {
        if (!isBosonError(err, 'MACHINE_NOT_FOUND')) {
          await this.store.put(kind, r.key, { ...rec, removing: false }, { expectRevision: marked }).catch(() => undefined);
          throw err;
        }
      }
    }
    await this.store.delete(kind, r.key);
    await this.tenants.release(rec.tenant, rec.project, rec.reservation).catch(() => undefined);
  }

  private async prune<T>(items: T[], rm: (item: T) => Promise<void>): Promise<string[]> {
    const removed: string[] = [];
    for (const item of items) {
      try {
        await rm(item);
        removed.push((item as { name: string }).name);
      } catch (err) {
        if (!isBosonError(err, 'VOLUME_IN_USE', 'NETWORK_IN_USE')) throw err;
      }
    }
    return removed;
  }

  private async onMachine<T>(machineId: string, f: (m: RemoteMachine) => Promise<T>): Promise<T> {
    const m = await this.machines.of(machineId);
    try {
      return await f(m);
    } catch (err) {
      if (isBosonError(err, 'DAEMON_UNAVAILABLE'))
        throw new BosonError('MACHINE_UNREACHABLE', `machine ${machineId} does not answer`, {
          cause: err,
          details: { machine: machineId },
        });
      throw err;
    }
  }
}

function single<T>(xs: T[]): T | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}

/** The one machine `uses` live on (undefined: none yet); PROJECT_RESOURCES_SPLIT when they live on two, or not on `on`. */
function pinOf(uses: Use[], container: string, on?: string): string | undefined {
  const where = new Map<string, string>();
  for (const u of uses) if (u.rec.machineId) where.set(u.rec.name, u.rec.machineId);
  const machines = new Set(where.values());
  if (on !== undefined && machines.size > 0 && !machines.has(on)) machines.add(on);
  if (machines.size <= 1) return [...machines][0];
  const parts = [...where].map(([name, m]) => `${name} on ${m}`);
  if (on !== undefined) parts.push(`${container} on ${on}`);
  throw new BosonError(
    'PROJECT_RESOURCES_SPLIT',
    `${container} cannot run: ${parts.join(', ')}; a container runs on one machine, and the project's volumes and networks live where they were first used (no overlay network or shared disk joins machines)`,
    { details: { container, machines: Object.fromEntries(where) } },
  );
}

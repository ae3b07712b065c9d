/**
 * Containers through the controller, scoped to one project: create = reserve the project's quota (exact under
 * concurrency) → plan on the fleet's snapshot → commit the plan optimistically with the container's record → create
 * (and start) it on the chosen machine over its RemoteMachine; every other call goes to the machine that holds the
 * container. A container is found only through its project's records, so another tenant's (or project's) container
 * is CONTAINER_NOT_FOUND, never a hint that it exists.
 *
 * Records: `ctl.container/<tenant>/<project>/<id>` (the request, the machine and the machine's container id, the
 * quota reservation) and the scheduler's `placement/<id>` and `machine-alloc/<machine>`.
 */
import { randomBytes } from 'node:crypto';
import { BosonError, isStoreConflict, type AsyncStateStore, type StoreOp } from '../../common/index.ts';
import type { Container, ContainerSpec, LogLine, LogQuery, RequestContext } from '../../machine/port/index.ts';
import type { Tenants } from '../model/tenants.ts';
import type { Limits } from '../model/schemas.ts';
import { now } from '../model/records.ts';
import {
  Placer,
  PLACEMENT_KIND,
  releasePlacement,
  SnapshotCache,
  type Constraint,
  type PlacementPolicy,
  type PlacementRecord,
  type Resources,
  ALLOC_KIND,
  type AllocRecord,
} from '../scheduler/index.ts';
import type { MachineClients } from './machines.ts';
import type { RemoteMachine } from '../../machine/client/index.ts';
import { CONTAINER_KIND, isResourceKind, ProjectResources, usesProjectResources, type Use } from './project-resources.ts';
import { ContainerLeases, type LeaseGranted, type LeaseInfo } from './leases.ts';
import { imageLocalityKey } from './image-locality.ts';

export { CONTAINER_KIND };
/** The store kind of container names: `<tenant>/<project>/<name>` → the container's id (a name is taken once). */
export const CONTAINER_NAME_KIND = 'ctl.container-name';

/** Labels the controller puts on a container on its machine. */
export const LABELS = { id: 'boson.controller.id', tenant: 'boson.tenant', project: 'boson.project' } as const;

/** A container as the controller records it. */
export interface ContainerRecord {
  id: string;
  tenant: string;
  project: string;
  /** The name the project gave it (unique in the project), or its id. */
  name: string;
  spec: ContainerSpec;
  resources: Resources;
  machineId: string;
  /** The container's id on its machine. */
  machineContainerId: string;
  reservation: string;
  createdAt: string;
}

/** A container as the controller's API shows it: the machine's view, with the controller's id and name, and its live lease. */
export type FleetContainer = Container & { machineId: string; lease?: LeaseInfo };

/** The states a client can wait for (Fly's explicit states): `stopped` is any state but running (created, exited, dead...). */
export type WaitState = 'running' | 'stopped' | 'removed';

/** A label filter: `key=value` (equal) or `key` (present); every filter must match (AND). */
export interface LabelFilter {
  key: string;
  value?: string;
}

/** Parses `k=v` / `k` label filters; INVALID_ARGUMENT for an empty key. */
export function parseLabelFilters(items: string[]): LabelFilter[] {
  return items.map((item) => {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!key) throw new BosonError('INVALID_ARGUMENT', `invalid label filter ${JSON.stringify(item)} (use key=value or key)`);
    return eq < 0 ? { key } : { key, value: item.slice(eq + 1) };
  });
}

/** True when `labels` match every filter. */
export function matchesLabels(labels: Record<string, string>, filters: LabelFilter[]): boolean {
  return filters.every((f) => (f.value === undefined ? f.key in labels : labels[f.key] === f.value));
}

const DEFAULT_MEMORY_MIB = 256;
const DEFAULT_DISK_BYTES = 8 * 1024 ** 3;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** What a container costs in quota keys. */
export function containerCost(r: Resources): Limits {
  return [
    { key: 'vm.count', value: 1, unit: 'count' },
    { key: 'vm.cpu', value: r.cpus, unit: 'count' },
    { key: 'vm.memory', value: r.memoryBytes, unit: 'bytes' },
    { key: 'disk.capacity', value: r.diskBytes, unit: 'bytes' },
  ];
}

/** The resources a spec asks for (with the machine's defaults where it is silent). */
export function specResources(spec: ContainerSpec): Resources {
  return {
    cpus: spec.resources?.cpus ?? 1,
    memoryBytes: (spec.resources?.memoryMiB ?? DEFAULT_MEMORY_MIB) * 1024 * 1024,
    diskBytes: spec.resources?.diskBytes ?? DEFAULT_DISK_BYTES,
  };
}

/** Containers of projects, over the fleet (see the module comment). */
export class FleetContainers {
  /** The projects' volumes and networks (what containers use of them binds them to machines). */
  readonly resources: ProjectResources;

  private constructor(
    private readonly store: AsyncStateStore,
    private readonly tenants: Tenants,
    private readonly machines: MachineClients,
    private readonly cache: SnapshotCache,
    private readonly placer: Placer,
    /** The containers' leases. */
    readonly leases: ContainerLeases,
  ) {
    this.resources = new ProjectResources(store, tenants, machines);
  }

  /** Opens the scheduler's snapshot cache and a placer over it. */
  static async open(store: AsyncStateStore, tenants: Tenants, machines: MachineClients): Promise<FleetContainers> {
    const cache = await SnapshotCache.open(store);
    return new FleetContainers(store, tenants, machines, cache, new Placer(store, cache), new ContainerLeases(store));
  }

  /** Stops following the store. */
  close(): void {
    this.cache.close();
  }

  private key(tenant: string, project: string, id: string): string {
    return `${tenant}/${project}/${id}`;
  }

  /** The record of a project's container by id or name; CONTAINER_NOT_FOUND otherwise (whoever else has it). */
  async record(tenant: string, project: string, ref: string): Promise<ContainerRecord> {
    const direct = await this.store.get<ContainerRecord>(CONTAINER_KIND, this.key(tenant, project, ref));
    if (direct) return direct.value;
    const named = await this.store.get<{ id: string }>(CONTAINER_NAME_KIND, this.key(tenant, project, ref));
    const byName = named && (await this.store.get<ContainerRecord>(CONTAINER_KIND, this.key(tenant, project, named.value.id)));
    if (byName) return byName.value;
    const all = await this.store.list<ContainerRecord>(CONTAINER_KIND, { prefix: `${tenant}/${project}/` });
    // A unique prefix of an id (as `docker ps` shows them), at least 4 characters.
    const byPrefix = ref.length >= 4 ? all.filter((r) => r.value.id.startsWith(ref)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!.value;
    throw new BosonError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  /** A project's container with the client of the machine that holds it and the context to call it with. */
  async resolve(
    tenant: string,
    project: string,
    ref: string,
  ): Promise<{ rec: ContainerRecord; remote: RemoteMachine; ctx: RequestContext }> {
    const rec = await this.record(tenant, project, ref);
    return { rec, remote: await this.machines.of(rec.machineId), ctx: this.ctx(rec) };
  }

  /**
   * A project's container about to be changed, with its machine: CONTAINER_LEASED when a live lease holds it and
   * `nonce` is not that lease's (the project's Docker endpoint, which cannot carry a nonce, is refused while it holds).
   */
  async resolveForChange(
    tenant: string,
    project: string,
    ref: string,
    nonce?: string,
  ): Promise<{ rec: ContainerRecord; remote: RemoteMachine; ctx: RequestContext }> {
    const rec = await this.changeable(tenant, project, ref, nonce);
    return { rec, remote: await this.machines.of(rec.machineId), ctx: this.ctx(rec) };
  }

  private async changeable(tenant: string, project: string, ref: string, nonce: string | undefined): Promise<ContainerRecord> {
    const rec = await this.record(tenant, project, ref);
    await this.leases.check(this.key(tenant, project, rec.id), rec.name, nonce);
    return rec;
  }

  /** Takes (or, with the nonce of the lease it holds, extends) a container's lease. */
  async lease(
    tenant: string,
    project: string,
    ref: string,
    req: { owner: string; ttlSeconds?: number; description?: string; nonce?: string },
  ): Promise<LeaseGranted> {
    const rec = await this.record(tenant, project, ref);
    return this.leases.acquire(this.key(tenant, project, rec.id), rec.name, req);
  }

  /** A container's live lease; LEASE_NOT_FOUND when none holds. */
  async getLease(tenant: string, project: string, ref: string): Promise<LeaseInfo> {
    const rec = await this.record(tenant, project, ref);
    const l = await this.leases.get(this.key(tenant, project, rec.id));
    if (!l) throw new BosonError('LEASE_NOT_FOUND', `container ${rec.name} holds no lease`, { details: { container: rec.name } });
    return l;
  }

  /** Releases a container's lease with its nonce. */
  async releaseLease(tenant: string, project: string, ref: string, nonce: string | undefined): Promise<void> {
    const rec = await this.record(tenant, project, ref);
    await this.leases.release(this.key(tenant, project, rec.id), rec.name, nonce);
  }

  /** The machine's view of a container as the project sees it (the controller's id and name, the project's volumes and networks). */
  async viewOf(rec: ContainerRecord, c: Container): Promise<FleetContainer> {
    return this.view(rec, c);
  }

  /**
   * Creates a container in the project and starts it unless `start` is false: quota, placement (the project's
   * `policy`), then the machine. Whatever fails, what was reserved and placed is given back.
   */
  async create(
    tenant: string,
    project: string,
    spec: ContainerSpec,
    opts: { policy?: PlacementPolicy; start?: boolean; constraints?: Constraint[] } = {},
  ): Promise<FleetContainer> {
    const id = `c-${randomBytes(8).toString('hex')}`;
    const name = spec.name ?? id;
    if (!NAME.test(name)) throw new BosonError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}`);
    // A machine's host directories are its operator's, not a project's (and which machine is the scheduler's choice).
    if (spec.mounts?.some((m) => m.type === 'bind'))
      throw new BosonError(
        'INVALID_ARGUMENT',
        "bind mounts are not offered through a project (a machine's directories are not the project's): use a volume",
      );
    const nameTaken = (): BosonError => new BosonError('NAME_IN_USE', `a container named ${name} already exists in ${tenant}/${project}`);
    if (await this.store.get(CONTAINER_NAME_KIND, this.key(tenant, project, name))) throw nameTaken();
    const resources = specResources(spec);
    const reservation = await this.tenants.reserve(tenant, project, containerCost(resources), id);
    let placed: { machineId: string } | undefined;
    let uses: Use[] = [];
    try {
      let p: Awaited<ReturnType<Placer['place']>>;
      // The project's volumes and networks it uses: read, pinned to where they live, bound in the placement's commit.
      for (let attempt = 1; ; attempt++) {
        uses = await this.resources.usesOf(tenant, project, spec);
        const pinned = this.resources.constraintOf(uses, name);
        try {
          p = await this.placer.place(
            {
              containerId: id,
              project: `${tenant}/${project}`,
              resources,
              labels: spec.labels ?? {},
              image: imageLocalityKey(spec.image),
              policy: opts.policy ?? 'spread',
              ...(opts.constraints || pinned.length > 0 ? { constraints: [...(opts.constraints ?? []), ...pinned] } : {}),
            },
            (plan) => this.resources.bindOps(uses, id, plan.machineId),
          );
          break;
        } catch (err) {
          // A volume or network changed since it was read (another container bound it): read it again.
          if (attempt < 8 && isStoreConflict(err) && isResourceKind(err.storeKind)) continue;
          throw err;
        }
      }
      placed = { machineId: p.plan.machineId };
      await this.resources.materialise(uses, p.plan.machineId);
      const remote = await this.machines.of(p.plan.machineId);
      const ctx: RequestContext = { principal: 'boson-controller', tenant, project };
      const machineSpec: ContainerSpec = {
        ...this.resources.machineSpec(spec, uses),
        name: id,
        labels: { ...(spec.labels ?? {}), [LABELS.id]: id, [LABELS.tenant]: tenant, [LABELS.project]: project },
      };
      const created = await remote.create(ctx, machineSpec);
      const rec: ContainerRecord = {
        id,
        tenant,
        project,
        name,
        spec,
        resources,
        machineId: p.plan.machineId,
        machineContainerId: created.id,
        reservation,
        createdAt: now(),
      };
      try {
        // The record and the name together: of two creates racing for one name, one commits.
        await this.store.commit([
          { op: 'put', kind: CONTAINER_KIND, key: this.key(tenant, project, id), value: rec, expectRevision: 0 },
          { op: 'put', kind: CONTAINER_NAME_KIND, key: this.key(tenant, project, name), value: { id }, expectRevision: 0 },
        ]);
      } catch (err) {
        await remote.remove(ctx, created.id, { force: true }).catch(() => undefined);
        if (isStoreConflict(err) && err.storeKind === CONTAINER_NAME_KIND) throw nameTaken();
        throw err;
      }
      if (opts.start !== false) await remote.start(ctx, created.id);
      return this.view(rec, await remote.inspect(ctx, created.id));
    } catch (err) {
      // Recorded: the container exists on its machine (only starting it failed) and stays, as `docker create` would.
      const hasRecord = await this.store.get(CONTAINER_KIND, this.key(tenant, project, id));
      if (!hasRecord) {
        if (placed) await releasePlacement(this.store, id).catch(() => undefined);
        if (uses.length > 0) await this.resources.dropUserEverywhere(tenant, project, id).catch(() => undefined);
        await this.tenants.release(tenant, project, reservation).catch(() => undefined);
      }
      throw isStoreConflict(err)
        ? new BosonError('STORE_CONFLICT', `placing ${name}: the fleet kept changing; try again`, { cause: err })
        : err;
    }
  }

  private async view(rec: ContainerRecord, c: Container): Promise<FleetContainer> {
    const [t] = await this.resources.translate(rec.tenant, rec.project, [c]);
    return { ...t!, id: rec.id, name: rec.name, machineId: rec.machineId };
  }

  private ctx(rec: ContainerRecord): RequestContext {
    return { principal: 'boson-controller', tenant: rec.tenant, project: rec.project };
  }

  /** One container of the project, as its machine sees it now (with its live lease, if one holds). */
  async inspect(tenant: string, project: string, ref: string): Promise<FleetContainer> {
    const rec = await this.record(tenant, project, ref);
    const remote = await this.machines.of(rec.machineId);
    const seen = await this.view(rec, await unreachable(rec, remote.inspect(this.ctx(rec), rec.machineContainerId)));
    const lease = await this.leases.get(this.key(tenant, project, rec.id));
    return lease ? { ...seen, lease } : seen;
  }

  /**
   * The project's containers, each as its machine sees it (with its live lease); a container whose machine does not
   * answer is listed from the controller's record with state 'unknown' in its error. `labels` filters by the labels
   * the project gave (every filter must match), from the controller's records: machines are asked only about the
   * containers that match.
   */
  async list(tenant: string, project: string, opts: { labels?: LabelFilter[] } = {}): Promise<FleetContainer[]> {
    const filters = opts.labels ?? [];
    const recs = (await this.store.list<ContainerRecord>(CONTAINER_KIND, { prefix: `${tenant}/${project}/` })).filter((r) =>
      matchesLabels(r.value.spec.labels ?? {}, filters),
    );
    const leases = await this.leases.ofProject(tenant, project);
    return Promise.all(
      recs.map(async ({ value: rec }) => {
        let seen: FleetContainer;
        try {
          seen = await this.view(rec, await (await this.machines.of(rec.machineId)).inspect(this.ctx(rec), rec.machineContainerId));
        } catch (err) {
          seen = { ...this.placeholder(rec), error: `machine ${rec.machineId}: ${(err as Error).message}` };
        }
        const lease = leases.get(rec.id);
        return lease ? { ...seen, lease } : seen;
      }),
    );
  }

  private placeholder(rec: ContainerRecord): FleetContainer {
    return {
      id: rec.id,
      name: rec.name,
      image: rec.spec.image,
      imageId: '',
      created: rec.createdAt,
      config: { argv: [], env: [], cwd: '', user: '', hostname: '', tty: false, openStdin: false, labels: rec.spec.labels ?? {} },
      resources: { memoryMiB: rec.resources.memoryBytes / 1024 / 1024, cpus: rec.resources.cpus },
      autoRemove: false,
      restartPolicy: rec.spec.restartPolicy ?? { name: 'no', maximumRetryCount: 0 },
      restartCount: 0,
      state: 'dead',
      vmPid: null,
      exitCode: null,
      startedAt: null,
      finishedAt: null,
      error: null,
      mounts: [],
      network: '',
      machineId: rec.machineId,
    } as unknown as FleetContainer;
  }

  /**
   * Waits until a project's container is in `target` state, at most `timeoutMs`: `running`, `stopped` (any state but
   * running: created, exited, dead…) or `removed` (its record is gone). Resolves with the state and the container as
   * its machine then shows it; CONTAINER_WAIT_TIMEOUT (408) with the state it is in when the time passes. It reacts to
   * changes instead of polling: the store's watch of the container's record (removal, a move to another machine),
   * and the event stream of the machine that holds it (start, die, stop…), with a re-check every
   * WAIT_RECHECK_MS as a safety net for an event stream that broke.
   */
  async wait(
    tenant: string,
    project: string,
    ref: string,
    target: WaitState,
    timeoutMs: number,
  ): Promise<{ state: string; container?: FleetContainer }> {
    const first = await this.record(tenant, project, ref);
    const key = this.key(tenant, project, first.id);
    const deadline = Date.now() + timeoutMs;
    let poke: () => void = () => undefined;
    let changed = new Promise<void>((r) => (poke = r));
    const rearm = (): void => {
      changed = new Promise<void>((r) => (poke = r));
    };
    const watch = await this.store.watch<ContainerRecord>(CONTAINER_KIND, await this.store.revision(), (c) => {
      if (c.key === key) poke();
    });
    let following: { machineId: string; stop: AbortController } | undefined;
    const follow = (rec: ContainerRecord): void => {
      if (following?.machineId === rec.machineId) return;
      following?.stop.abort();
      const stop = new AbortController();
      following = { machineId: rec.machineId, stop };
      // From a second ago: what happened while the stream was being opened is replayed, not missed.
      const sinceNs = BigInt(Date.now() - 1000) * 1_000_000n;
      void this.machines
        .of(rec.machineId)
        .then(async (remote) => {
          if (stop.signal.aborted) return;
          await remote.events.follow(
            this.ctx(rec),
            { sinceNs },
            (e) => {
              if (e.type === 'container' && e.actorId === rec.machineContainerId) poke();
            },
            stop.signal,
          );
        })
        .catch(() => undefined);
    };
    try {
      for (;;) {
        rearm();
        const cur = await this.store.get<ContainerRecord>(CONTAINER_KIND, key);
        let state = 'removed';
        let container: FleetContainer | undefined;
        if (cur) {
          follow(cur.value);
          try {
            container = await this.view(
              cur.value,
              await (await this.machines.of(cur.value.machineId)).inspect(this.ctx(cur.value), cur.value.machineContainerId),
            );
            state = container.state;
          } catch {
            state = 'unknown';
          }
        }
        if (reached(state, target)) return container ? { state, container } : { state };
        const left = deadline - Date.now();
        if (left <= 0)
          throw new BosonError(
            'CONTAINER_WAIT_TIMEOUT',
            `container ${first.name} is ${state}, not ${target}, after ${Math.round(timeoutMs / 1000)}s`,
            { details: { container: first.id, name: first.name, state, waitedFor: target } },
          );
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([changed, new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, WAIT_RECHECK_MS))))]);
        clearTimeout(timer);
      }
    } finally {
      watch.cancel();
      following?.stop.abort();
    }
  }

  /** Stops a container on its machine (CONTAINER_LEASED without the nonce of a lease that holds it). */
  async stop(tenant: string, project: string, ref: string, timeoutSec?: number, nonce?: string): Promise<void> {
    const rec = await this.changeable(tenant, project, ref, nonce);
    await unreachable(rec, (await this.machines.of(rec.machineId)).stop(this.ctx(rec), rec.machineContainerId, timeoutSec));
  }

  /** Starts a container on its machine (CONTAINER_LEASED without the nonce of a lease that holds it). */
  async start(tenant: string, project: string, ref: string, nonce?: string): Promise<void> {
    const rec = await this.changeable(tenant, project, ref, nonce);
    await unreachable(rec, (await this.machines.of(rec.machineId)).start(this.ctx(rec), rec.machineContainerId));
  }

  /** Reads a container's log (not followed) from its machine. */
  async logs(tenant: string, project: string, ref: string, query: LogQuery): Promise<LogLine[]> {
    const rec = await this.record(tenant, project, ref);
    const lines: LogLine[] = [];
    const remote = await this.machines.of(rec.machineId);
    await unreachable(
      rec,
      remote.logs(this.ctx(rec), rec.machineContainerId, query, false, (l) => lines.push(l), new AbortController().signal),
    );
    return lines;
  }

  /**
   * Places again, on another machine, every container recorded on LOST machine `machineId` whose restart policy
   * asks to be kept running (always, unless-stopped, on-failure): off the lost machine's allocation, a new plan on
   * the READY machines, created and started there, and the record moved with a compare-and-swap (a second replica
   * doing the same loses the swap and removes what it created). The quota reservation stays (same container).
   * Level-triggered: called on every health round for every LOST machine, so a controller that restarts meanwhile
   * still does it; a container that cannot be placed now is tried again next round.
   */
  async rescheduleFrom(machineId: string): Promise<Rescheduled[]> {
    const all = await this.store.list<ContainerRecord>(CONTAINER_KIND);
    const out: Rescheduled[] = [];
    for (const stored of all) {
      const rec = stored.value;
      if (rec.machineId !== machineId || !restartsElsewhere(rec.spec)) continue;
      if (usesProjectResources(rec.spec)) {
        // Its volumes' data and its network are on the lost machine: it comes back with that machine.
        out.push({ id: rec.id, from: machineId, error: "its project's volumes or network live on the lost machine" });
        continue;
      }
      try {
        if (!(await this.releaseFrom(rec.id, stored.key, machineId, stored.revision))) continue;
        const p = await this.placer.place({
          containerId: rec.id,
          project: `${rec.tenant}/${rec.project}`,
          resources: rec.resources,
          labels: rec.spec.labels ?? {},
          image: imageLocalityKey(rec.spec.image),
          policy: 'spread',
        });
        const remote = await this.machines.of(p.plan.machineId);
        const ctx = this.ctx(rec);
        let created: Container;
        try {
          created = await remote.create(ctx, {
            ...rec.spec,
            name: rec.id,
            labels: { ...(rec.spec.labels ?? {}), [LABELS.id]: rec.id, [LABELS.tenant]: rec.tenant, [LABELS.project]: rec.project },
          });
        } catch (err) {
          await releasePlacement(this.store, rec.id).catch(() => undefined);
          throw err;
        }
        const moved: ContainerRecord = { ...rec, machineId: p.plan.machineId, machineContainerId: created.id };
        try {
          await this.store.put(CONTAINER_KIND, stored.key, moved, { expectRevision: stored.revision });
        } catch (err) {
          await remote.remove(ctx, created.id, { force: true }).catch(() => undefined);
          throw err;
        }
        await remote.start(ctx, created.id);
        out.push({ id: rec.id, from: machineId, to: p.plan.machineId });
      } catch (err) {
        out.push({ id: rec.id, from: machineId, error: (err as Error).message });
      }
    }
    return out;
  }

  /**
   * Takes container `id` (its record at `key`) off lost machine `machineId`'s allocation, only if it is still placed there and its record
   * is still at `recordRevision` (one commit, compare-and-swapped): false when another replica got there first (it
   * placed the container again already), so that two replicas never release each other's new placement.
   */
  private async releaseFrom(id: string, key: string, machineId: string, recordRevision: number): Promise<boolean> {
    const placement = await this.store.get<PlacementRecord>(PLACEMENT_KIND, id);
    if (placement && placement.value.machineId !== machineId) return false;
    if (!placement) return true; // released before (a placement that failed last round): place it now
    const alloc = await this.store.get<AllocRecord>(ALLOC_KIND, machineId);
    const ops: StoreOp[] = [
      { op: 'check', kind: CONTAINER_KIND, key, expectRevision: recordRevision },
      { op: 'delete', kind: PLACEMENT_KIND, key: id, expectRevision: placement.revision },
    ];
    if (alloc)
      ops.push({
        op: 'put',
        kind: ALLOC_KIND,
        key: machineId,
        value: { containers: alloc.value.containers.filter((c) => c.id !== id) } satisfies AllocRecord,
        expectRevision: alloc.revision,
      });
    try {
      await this.store.commit(ops);
      return true;
    } catch (err) {
      if (isStoreConflict(err)) return false; // moved meanwhile: the next round sees it as it is now
      throw err;
    }
  }

  /**
   * Removes from machine `machineId` the containers the controller placed there that are no longer recorded there
   * (placed again elsewhere while the machine was LOST, or removed meanwhile): what a machine that comes back runs
   * must not run twice. Returns their controller ids.
   */
  async removeOrphans(machineId: string): Promise<string[]> {
    const remote = await this.machines.of(machineId);
    const ctx: RequestContext = { principal: 'boson-controller' };
    const here = await remote.list(ctx, { all: true });
    const removed: string[] = [];
    for (const c of here) {
      const id = c.config.labels[LABELS.id];
      const tenant = c.config.labels[LABELS.tenant];
      const project = c.config.labels[LABELS.project];
      if (!id || !tenant || !project) continue;
      const rec = await this.store.get<ContainerRecord>(CONTAINER_KIND, this.key(tenant, project, id));
      if (rec && rec.value.machineId === machineId && rec.value.machineContainerId === c.id) continue;
      // Placed here and not recorded yet: a create in progress, not an orphan.
      const placement = await this.store.get<PlacementRecord>(PLACEMENT_KIND, id);
      if (!rec && placement?.value.machineId === machineId) continue;
      await remote.remove(ctx, c.id, { force: true }).catch(() => undefined);
      removed.push(id);
    }
    return removed;
  }

  /**
   * Removes a container: from its machine (force stops it), then its placement, record and lease, and its quota
   * back. A machine that no longer has it (or is gone from the fleet) does not block the removal with `force`.
   * CONTAINER_LEASED without the nonce of a lease that holds it.
   */
  async remove(tenant: string, project: string, ref: string, force = false, nonce?: string): Promise<void> {
    const rec = await this.changeable(tenant, project, ref, nonce);
    try {
      await (await this.machines.of(rec.machineId)).remove(this.ctx(rec), rec.machineContainerId, { force });
    } catch (err) {
      const gone = err instanceof BosonError && (err.code === 'CONTAINER_NOT_FOUND' || err.code === 'MACHINE_NOT_FOUND');
      if (!gone && !force) throw err instanceof BosonError && err.code === 'DAEMON_UNAVAILABLE' ? machineDown(rec, err) : err;
    }
    await releasePlacement(this.store, rec.id);
    await this.store.delete(CONTAINER_KIND, this.key(tenant, project, rec.id)).catch(() => undefined);
    // A user left behind is harmless (a user counts only while its placement or record exists): never fatal here.
    await this.resources.dropUserEverywhere(tenant, project, rec.id).catch(() => undefined);
    await this.store.delete(CONTAINER_NAME_KIND, this.key(tenant, project, rec.name)).catch(() => undefined);
    await this.leases.drop(this.key(tenant, project, rec.id)).catch(() => undefined);
    await this.tenants.release(tenant, project, rec.reservation);
  }
}

/** How often a wait checks again without a change seen (a safety net for a broken event stream). */
export const WAIT_RECHECK_MS = 5000;

/** True when a container's `state` is the `target` a wait asks for (`unknown`: its machine did not answer). */
function reached(state: string, target: WaitState): boolean {
  if (target === 'removed') return state === 'removed';
  if (target === 'running') return state === 'running';
  return state !== 'running' && state !== 'restarting' && state !== 'unknown' && state !== 'removed';
}

/** True for a container the controller should run again elsewhere when its machine is lost. */
export function restartsElsewhere(spec: ContainerSpec): boolean {
  const name = spec.restartPolicy?.name ?? 'no';
  return name === 'always' || name === 'unless-stopped' || name === 'on-failure';
}

/** What one reschedule did. */
export interface Rescheduled {
  id: string;
  from: string;
  to?: string;
  error?: string;
}

function machineDown(rec: ContainerRecord, cause: unknown): BosonError {
  return new BosonError('MACHINE_UNREACHABLE', `machine ${rec.machineId}, which holds ${rec.name}, does not answer`, {
    cause,
    details: { machine: rec.machineId, container: rec.id },
  });
}

async function unreachable<T>(rec: ContainerRecord, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof BosonError && err.code === 'DAEMON_UNAVAILABLE') throw machineDown(rec, err);
    throw err;
  }
}

/**
 * The optimistic plan applier (Nomad's): a plan is committed only if the machine is still exactly as the snapshot saw
 * it. One store commit checks the machine record's revision (no drain, no LOST, no new labels since), writes the
 * machine's allocation record at the revision the plan read (no other placement or release since) and creates the
 * container's placement record (a container is placed once), together with the caller's own operations (a quota
 * usage record, the container record), all or nothing. A moved snapshot is STORE_CONFLICT: the caller plans again.
 * Schedulers therefore plan in parallel without locks, and a machine is never over-committed: every commit that
 * adds to a machine was planned against its latest allocation.
 */
import { isStoreConflict, type AsyncStateStore, type StoreOp } from '../../common/index.ts';
import type { CapacityError } from './capacity-error.ts';
import { plan, type PlanOptions } from './plan.ts';
import { ALLOC_KIND, MACHINE_KIND, PLACEMENT_KIND, type AllocRecord, type PlacementRecord, type SnapshotCache } from './state.ts';
import type { PlacedContainer, Plan, PlacementRequest } from './types.ts';

/** The store operations that commit `plan` (before the caller's own). */
export function planOps(p: Plan): StoreOp[] {
  const placed: PlacedContainer = {
    id: p.containerId,
    project: p.project,
    labels: { ...(p.request.labels ?? {}) },
    resources: { ...p.request.resources },
    ...(p.request.image === undefined ? {} : { image: p.request.image }),
  };
  const alloc: AllocRecord = { containers: [...p.containers, placed] };
  const placement: PlacementRecord = { machineId: p.machineId, project: p.project };
  return [
    { op: 'check', kind: MACHINE_KIND, key: p.machineId, expectRevision: p.machineRevision },
    { op: 'put', kind: ALLOC_KIND, key: p.machineId, value: alloc, expectRevision: p.allocRevision },
    { op: 'put', kind: PLACEMENT_KIND, key: p.containerId, value: placement, expectRevision: 0 },
  ];
}

/**
 * Commits `plan` with the caller's `extra` operations; returns the store revision after it. STORE_CONFLICT when the
 * snapshot moved (isStalePlan says whether it was the machine: then plan again) or an extra operation's expectation
 * failed.
 */
export async function applyPlan(store: AsyncStateStore, p: Plan, extra: StoreOp[] = []): Promise<number> {
  return store.commit([...planOps(p), ...extra]);
}

/** True when `err` rejected `p` because its machine moved (planning again may succeed). */
export function isStalePlan(err: unknown, p: Plan): boolean {
  return isStoreConflict(err) && (err.storeKind === MACHINE_KIND || err.storeKind === ALLOC_KIND) && err.key === p.machineId;
}

/** Takes a container off its machine (a container removed or lost); false when it was not placed. */
export async function releasePlacement(store: AsyncStateStore, containerId: string, extra: StoreOp[] = []): Promise<boolean> {
  for (;;) {
    const placement = await store.get<PlacementRecord>(PLACEMENT_KIND, containerId);
    if (!placement) return false;
    const alloc = await store.get<AllocRecord>(ALLOC_KIND, placement.value.machineId);
    const ops: StoreOp[] = [{ op: 'delete', kind: PLACEMENT_KIND, key: containerId, expectRevision: placement.revision }];
    if (alloc)
      ops.push({
        op: 'put',
        kind: ALLOC_KIND,
        key: placement.value.machineId,
        value: { containers: alloc.value.containers.filter((c) => c.id !== containerId) } satisfies AllocRecord,
        expectRevision: alloc.revision,
      });
    try {
      await store.commit([...ops, ...extra]);
      return true;
    } catch (err) {
      if (!isStoreConflict(err) || (err.storeKind !== PLACEMENT_KIND && err.storeKind !== ALLOC_KIND)) throw err;
    }
  }
}

/** The outcome of a placement. */
export interface Placed {
  plan: Plan;
  /** The store revision after the commit. */
  revision: number;
  /** Plans made, including the rejected ones. */
  attempts: number;
}

/** How a Placer plans and retries. */
export interface PlacerOptions extends PlanOptions {
  /** Plans to try before giving up with the last STORE_CONFLICT (default 16). */
  maxAttempts?: number;
}

/**
 * Plan → apply → on a stale plan refresh that machine and plan again: the whole placement of one container, on a
 * SnapshotCache. Any number of Placers (in this process or in other controller replicas) may run at once.
 */
export class Placer {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly cache: SnapshotCache,
    private readonly opts: PlacerOptions = {},
  ) {}

  /**
   * Places `req`; throws the CapacityError when no machine can take it, STORE_CONFLICT when retries ran out (or an
   * `extra` operation's expectation failed: that is the caller's to handle). `extra` may depend on the plan (the
   * chosen machine).
   */
  async place(req: PlacementRequest, extra: StoreOp[] | ((p: Plan) => StoreOp[]) = []): Promise<Placed> {
    const max = this.opts.maxAttempts ?? 16;
    for (let attempt = 1; ; attempt++) {
      const p: Plan | CapacityError = plan(this.cache.snapshot(), req, this.opts);
      if (!('machineId' in p)) throw p;
      try {
        return { plan: p, revision: await applyPlan(this.store, p, typeof extra === 'function' ? extra(p) : extra), attempts: attempt };
      } catch (err) {
        if (!isStalePlan(err, p) || attempt >= max) throw err;
        await this.cache.refresh([p.machineId]);
      }
    }
  }
}

/** Builders of machines and requests for the scheduler's tests and the controller benchmark. */
import { ALLOC_KIND, MACHINE_KIND, PLACEMENT_KIND, machineSnapshot, SnapshotCache, type AllocRecord, type MachineRecord } from './state.ts';
import { Placer } from './apply.ts';
import { isCapacityError } from './capacity-error.ts';
import { seededRng } from './plan.ts';
import type { MachineSnapshot, PlacedContainer, PlacementRequest, Resources } from './types.ts';
import type { AsyncStateStore } from '../../common/index.ts';

export const GiB = 1024 ** 3;

/** A resource amount: cpus, memory GiB, disk GiB. */
export const res = (cpus: number, memGiB: number, diskGiB = 0): Resources => ({
  cpus,
  memoryBytes: memGiB * GiB,
  diskBytes: diskGiB * GiB,
});

/** A machine snapshot (READY, 8 cpus, 16 GiB, 100 GiB, zone a, no labels unless given). */
export function machine(
  id: string,
  over: Partial<MachineRecord> & { containers?: PlacedContainer[]; revision?: number; allocRevision?: number } = {},
): MachineSnapshot {
  const { containers, revision, allocRevision, ...rec } = over;
  const value: MachineRecord = { id, state: 'READY', capacity: res(8, 16, 100), labels: {}, zone: 'a', images: [], ...rec };
  return machineSnapshot(
    { kind: MACHINE_KIND, key: id, value, revision: revision ?? 1, createRevision: 1 },
    containers ? { kind: ALLOC_KIND, key: id, value: { containers }, revision: allocRevision ?? 1, createRevision: 1 } : undefined,
  );
}

/** A placed container. */
export const placed = (id: string, project: string, resources: Resources, labels: Record<string, string> = {}): PlacedContainer => ({
  id,
  project,
  labels,
  resources,
});

/** A request (spread, 1 cpu, 1 GiB, in project t/p unless given). */
export const request = (containerId: string, over: Partial<PlacementRequest> = {}): PlacementRequest => ({
  containerId,
  project: 't/p',
  resources: res(1, 1),
  policy: 'spread',
  ...over,
});

/** Registers machines in a store (their records; no allocations). */
export async function registerMachines(store: AsyncStateStore, records: MachineRecord[]): Promise<void> {
  for (let i = 0; i < records.length; i += 50)
    await store.commit(records.slice(i, i + 50).map((r) => ({ op: 'put' as const, kind: MACHINE_KIND, key: r.id, value: r })));
}

/** The containers the store has on each machine. */
export async function allocations(store: AsyncStateStore): Promise<Map<string, PlacedContainer[]>> {
  return new Map((await store.list<AllocRecord>(ALLOC_KIND)).map((a) => [a.key, a.value.containers]));
}

/** What a race of planners did. */
export interface RaceOutcome {
  placed: number;
  capacityErrors: number;
  /** Plans rejected by the applier because another planner moved the machine first. */
  rejectedPlans: number;
}

/**
 * Several planners, each with its own SnapshotCache (half on `a`, half on `b`: two handles, as two controller
 * replicas), place `placements` one-cpu containers at once on `machines` machines of 4 cpus. Throws if any machine
 * ends over its capacity, or if the placement records and the allocations disagree.
 */
export async function concurrentPlanners(
  a: AsyncStateStore,
  b: AsyncStateStore,
  o: { machines: number; planners: number; placements: number; seed: number },
): Promise<RaceOutcome> {
  await registerMachines(
    a,
    Array.from({ length: o.machines }, (_, i) => ({
      id: `m${i}`,
      state: 'READY' as const,
      capacity: res(4, 64, 100),
      labels: {},
      zone: 'a',
      images: [],
    })),
  );
  const caches = await Promise.all(Array.from({ length: o.planners }, (_, i) => SnapshotCache.open(i % 2 ? b : a)));
  const outcome: RaceOutcome = { placed: 0, capacityErrors: 0, rejectedPlans: 0 };
  try {
    const planners = caches.map((cache, i) => new Placer(i % 2 ? b : a, cache, { rng: seededRng(o.seed + i), maxAttempts: 100 }));
    await Promise.all(
      planners.map(async (placer, i) => {
        for (let n = i; n < o.placements; n += o.planners) {
          try {
            const done = await placer.place(request(`c${n}`, { resources: res(1, 1) }));
            outcome.placed++;
            outcome.rejectedPlans += done.attempts - 1;
          } catch (err) {
            if (!isCapacityError(err)) throw err;
            outcome.capacityErrors++;
          }
        }
      }),
    );
  } finally {
    for (const c of caches) c.close();
  }
  const allocs = await allocations(a);
  let total = 0;
  for (const [id, containers] of allocs) {
    const cpus = containers.reduce((s, c) => s + c.resources.cpus, 0);
    if (cpus > 4) throw new Error(`machine ${id} is over-committed: ${cpus} of 4 cpus (${containers.map((c) => c.id).join(' ')})`);
    total += containers.length;
  }
  const placements = await a.list<{ machineId: string }>(PLACEMENT_KIND);
  if (placements.length !== total || total !== outcome.placed)
    throw new Error(`${placements.length} placement records, ${total} allocated containers, ${outcome.placed} placements reported`);
  for (const p of placements)
    if (!allocs.get(p.value.machineId)?.some((c) => c.id === p.key)) throw new Error(`placement ${p.key} is not on ${p.value.machineId}`);
  return outcome;
}

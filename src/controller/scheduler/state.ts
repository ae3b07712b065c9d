/**
 * Where placement's view of the fleet lives in the state store, and how a scheduler keeps it at hand:
 *
 * - `machine/<id>`        the machine as registered (MachineRecord; the machines part owns it and may add fields).
 *                         Heartbeat times belong in a record of their own: every write here moves the machine's
 *                         revision, which rejects the plans made against the old one.
 * - `machine-alloc/<id>`  the containers placed on it (written only by the plan applier and releasePlacement).
 * - `placement/<container id>` which machine a container was placed on (created once: a container is placed once).
 *
 * `readSnapshot` reads them; `SnapshotCache` reads them once and follows the store's watch, so that planning costs
 * no store round trip (Nomad's schedulers plan against an in-memory snapshot too). A cache may lag the store: that
 * only makes the applier reject a plan (the caller refreshes and plans again); it can never over-commit a machine.
 */
import type { AsyncStateStore, StoreChange, StoredRecord, StoreWatch } from '../../common/index.ts';
import { RESOURCE_NAMES, type MachineSnapshot, type MachineState, type PlacedContainer, type Resources, type Snapshot } from './types.ts';

/** Store kinds of placement. */
export const MACHINE_KIND = 'machine';
export const ALLOC_KIND = 'machine-alloc';
export const PLACEMENT_KIND = 'placement';

/** The fields of a machine record that placement reads. */
export interface MachineRecord {
  id: string;
  state: MachineState;
  capacity: Resources;
  labels: Record<string, string>;
  zone: string;
  images: string[];
}

/** The containers placed on one machine. */
export interface AllocRecord {
  containers: PlacedContainer[];
}

/** Where one container was placed. */
export interface PlacementRecord {
  machineId: string;
  project: string;
}

/** The sum of the containers' resources. */
export function sumResources(containers: PlacedContainer[]): Resources {
  const total: Resources = { cpus: 0, memoryBytes: 0, diskBytes: 0 };
  for (const c of containers) for (const r of RESOURCE_NAMES) total[r] += c.resources[r];
  return total;
}

/** A machine's snapshot from its records (an absent allocation record: nothing placed, revision 0). */
export function machineSnapshot(machine: StoredRecord<MachineRecord>, alloc: StoredRecord<AllocRecord> | undefined): MachineSnapshot {
  const m = machine.value;
  const containers = alloc?.value.containers ?? [];
  return {
    id: machine.key,
    state: m.state,
    capacity: m.capacity,
    allocated: sumResources(containers),
    labels: m.labels ?? {},
    zone: m.zone ?? '',
    images: m.images ?? [],
    containers,
    revision: machine.revision,
    allocRevision: alloc?.revision ?? 0,
  };
}

/** The fleet as the store has it now (two reads: a torn view only makes plans be rejected, never over-commits). */
export async function readSnapshot(store: AsyncStateStore): Promise<Snapshot> {
  const revision = await store.revision();
  const [machines, allocs] = await Promise.all([store.list<MachineRecord>(MACHINE_KIND), store.list<AllocRecord>(ALLOC_KIND)]);
  const byId = new Map(allocs.map((a) => [a.key, a]));
  return { revision, machines: machines.map((m) => machineSnapshot(m, byId.get(m.key))) };
}

interface Entry {
  machine?: StoredRecord<MachineRecord>;
  alloc?: StoredRecord<AllocRecord>;
  /** Revisions of deletes seen, so that a late put older than the delete is not taken back in. */
  machineGone: number;
  allocGone: number;
  /** The machine's snapshot, built once per change of its records. */
  view?: MachineSnapshot;
}

/** A snapshot kept current by the store's watch (see the module comment). */
export class SnapshotCache {
  private readonly entries = new Map<string, Entry>();
  private revision = 0;
  private view: Snapshot | undefined;
  private readonly watches: StoreWatch[] = [];

  private constructor(private readonly store: AsyncStateStore) {}

  /** Reads the fleet and starts following it. */
  static async open(store: AsyncStateStore): Promise<SnapshotCache> {
    const cache = new SnapshotCache(store);
    const from = await store.revision();
    const [machines, allocs] = await Promise.all([store.list<MachineRecord>(MACHINE_KIND), store.list<AllocRecord>(ALLOC_KIND)]);
    for (const m of machines) cache.take(MACHINE_KIND, m);
    for (const a of allocs) cache.take(ALLOC_KIND, a);
    cache.revision = Math.max(cache.revision, from);
    for (const kind of [MACHINE_KIND, ALLOC_KIND]) cache.watches.push(await store.watch(kind, from, (c) => cache.change(c)));
    return cache;
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id);
    if (!e) this.entries.set(id, (e = { machineGone: 0, allocGone: 0 }));
    return e;
  }

  /** Takes a record read or changed at its revision, unless the cache already has a newer state of it. */
  private take(kind: string, rec: StoredRecord): void {
    const e = this.entry(rec.key);
    if (kind === MACHINE_KIND) {
      if (rec.revision <= Math.max(e.machine?.revision ?? 0, e.machineGone)) return;
      e.machine = rec as StoredRecord<MachineRecord>;
    } else {
      if (rec.revision <= Math.max(e.alloc?.revision ?? 0, e.allocGone)) return;
      e.alloc = rec as StoredRecord<AllocRecord>;
    }
    e.view = undefined;
    this.revision = Math.max(this.revision, rec.revision);
    this.view = undefined;
  }

  private change(c: StoreChange): void {
    if (c.type === 'put') {
      this.take(c.kind, { kind: c.kind, key: c.key, value: c.value, revision: c.revision, createRevision: 0 });
      return;
    }
    const e = this.entry(c.key);
    if (c.kind === MACHINE_KIND && c.revision > (e.machine?.revision ?? 0)) {
      e.machine = undefined;
      e.machineGone = Math.max(e.machineGone, c.revision);
    } else if (c.kind === ALLOC_KIND && c.revision > (e.alloc?.revision ?? 0)) {
      e.alloc = undefined;
      e.allocGone = Math.max(e.allocGone, c.revision);
    }
    e.view = undefined;
    this.revision = Math.max(this.revision, c.revision);
    this.view = undefined;
  }

  /** The fleet as this cache has it (the same object until something changes). */
  snapshot(): Snapshot {
    if (!this.view) {
      const machines: MachineSnapshot[] = [];
      for (const e of this.entries.values()) if (e.machine) machines.push((e.view ??= machineSnapshot(e.machine, e.alloc)));
      this.view = { revision: this.revision, machines };
    }
    return this.view;
  }

  /** Reads these machines' records again now (after a rejected plan), without waiting for the watch. */
  async refresh(ids: string[]): Promise<void> {
    await Promise.all(
      ids.map(async (id) => {
        const [m, a] = await Promise.all([this.store.get<MachineRecord>(MACHINE_KIND, id), this.store.get<AllocRecord>(ALLOC_KIND, id)]);
        if (m) this.take(MACHINE_KIND, m);
        if (a) this.take(ALLOC_KIND, a);
      }),
    );
  }

  /** Stops following the store. */
  close(): void {
    for (const w of this.watches.splice(0)) w.cancel();
  }
}

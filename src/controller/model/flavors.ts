/** Flavors: named resource presets (cpus, memory, disk, kernel profile) and what one instance costs in quota. */
import { BosonError, isStoreConflict, type AsyncStateStore } from '../../common/index.ts';
import { normalizeLimits, toMap } from './quota.ts';
import { KINDS, must, now, type FlavorRecord } from './records.ts';
import type { Flavor, Limits } from './schemas.ts';

/** What a flavor is made from. */
export interface FlavorSpec {
  name: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  kernel?: string;
  /** Extra cost items (custom keys), or overrides of the derived ones. */
  cost?: Limits;
}

/** The cost of one instance: vm.count 1, vm.cpu, vm.memory and disk.capacity from the sizes, then `extra` over them. */
export function flavorCost(spec: Pick<FlavorSpec, 'cpus' | 'memoryBytes' | 'diskBytes' | 'cost'>): Limits {
  const base = toMap([
    { key: 'vm.count', value: 1, unit: 'count' },
    { key: 'vm.cpu', value: spec.cpus, unit: 'count' },
    { key: 'vm.memory', value: spec.memoryBytes, unit: 'bytes' },
    { key: 'disk.capacity', value: spec.diskBytes, unit: 'bytes' },
  ]);
  for (const c of spec.cost ?? []) base.set(c.key, c);
  return normalizeLimits([...base.values()]);
}

/** The flavors of the controller (global: every tenant sees them). */
export class Flavors {
  constructor(private readonly store: AsyncStateStore) {}

  /** Creates a flavor; NAME_IN_USE when one has the name. */
  async create(spec: FlavorSpec): Promise<Flavor> {
    const rec: FlavorRecord = {
      name: spec.name,
      cpus: spec.cpus,
      memoryBytes: spec.memoryBytes,
      diskBytes: spec.diskBytes,
      kernel: spec.kernel ?? 'default',
      cost: flavorCost(spec),
      createdAt: now(),
    };
    try {
      await this.store.put(KINDS.flavor, spec.name, rec, { expectRevision: 0 });
    } catch (err) {
      if (isStoreConflict(err))
        throw new BosonError('NAME_IN_USE', `flavor ${spec.name} already exists`, { details: { flavor: spec.name } });
      throw err;
    }
    return rec;
  }

  async list(): Promise<Flavor[]> {
    return (await this.store.list<FlavorRecord>(KINDS.flavor)).map((r) => r.value);
  }

  async get(name: string): Promise<Flavor> {
    return (await must<FlavorRecord>(this.store, KINDS.flavor, name, () => new BosonError('FLAVOR_NOT_FOUND', `no such flavor: ${name}`)))
      .value;
  }

  async remove(name: string): Promise<void> {
    if (!(await this.store.delete(KINDS.flavor, name))) throw new BosonError('FLAVOR_NOT_FOUND', `no such flavor: ${name}`);
  }
}

/**
 * The one capacity error of placement (PLACEMENT_NO_CAPACITY, ResourceExhausted: REST 507): what was asked, how many
 * machines each reason excluded, which resources were short, and the most any eligible machine had free of each, so
 * that a client can show a useful message or ask for less.
 */
import { BosonError } from '../../common/index.ts';
import { RESOURCE_NAMES, type ExclusionReason, type ResourceName, type Resources } from './types.ts';

/** The facts of a capacity error (also its `details`). */
export interface CapacityFacts {
  requested: Resources;
  /** Machines in the snapshot. */
  machines: number;
  /** Machines excluded, by their first failing reason (state, then constraints, affinity, anti-affinity, capacity). */
  excluded: Record<ExclusionReason, number>;
  /** Of the machines excluded for capacity: how many were short of each resource (one machine may count for several). */
  shortOf: Record<ResourceName, number>;
  /** The most free of each resource on a machine that passed every check but capacity (zero when none did). */
  mostFree: Resources;
}

const UNITS: Record<ResourceName, (n: number) => string> = {
  cpus: (n) => `${+n.toFixed(2)} cpus`,
  memoryBytes: (n) => `${bytes(n)} memory`,
  diskBytes: (n) => `${bytes(n)} disk`,
};

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${+n.toFixed(1)} ${units[i]}`;
}

/** No machine can take the request; the message and `details` say why (see CapacityFacts). */
export class CapacityError extends BosonError {
  readonly facts: CapacityFacts;

  constructor(facts: CapacityFacts) {
    const asked = RESOURCE_NAMES.map((r) => UNITS[r](facts.requested[r])).join(', ');
    const reasons: string[] = [];
    const ex = facts.excluded;
    if (ex['not-ready']) reasons.push(`${ex['not-ready']} not READY`);
    if (ex.constraint) reasons.push(`${ex.constraint} excluded by constraints`);
    if (ex.affinity) reasons.push(`${ex.affinity} without the affine containers`);
    if (ex['anti-affinity']) reasons.push(`${ex['anti-affinity']} excluded by anti-affinity`);
    if (ex.capacity) {
      const short = RESOURCE_NAMES.filter((r) => facts.shortOf[r] > 0)
        .map(
          (r) =>
            `${facts.shortOf[r]} short of ${r === 'cpus' ? 'cpus' : r === 'memoryBytes' ? 'memory' : 'disk'} (most free: ${UNITS[r](facts.mostFree[r])})`,
        )
        .join(', ');
      reasons.push(`${ex.capacity} without room: ${short}`);
    }
    const why = facts.machines === 0 ? 'there are no machines' : `of ${facts.machines} machines, ${reasons.join('; ')}`;
    super('PLACEMENT_NO_CAPACITY', `no machine can take ${asked}: ${why}`, { details: { ...facts } });
    this.facts = facts;
  }
}

/** True for a CapacityError. */
export function isCapacityError(err: unknown): err is CapacityError {
  return err instanceof CapacityError;
}

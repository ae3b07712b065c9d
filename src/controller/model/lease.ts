/**
 * Leases of replicas: "owner holds this until expiresAt", kept inside a store record and changed only by
 * compare-and-swap, so that of several controller replicas one holds a thing at a time, and another takes it over
 * once the holder stops renewing (it died, or lost the store). Tasks hold one per running task (tasks.ts); the
 * fleet's health checks hold one per replica, as its presence (fleet/replicas.ts). Times are the replicas' clocks:
 * leases assume clocks that agree to well within a lease time.
 */
import type { TaskLease } from './schemas.ts';

/** A lease as kept in a record: its holder and when it ends (RFC 3339). */
export type Lease = TaskLease;

/** Makes and judges the leases of one owner (a replica), `leaseMs` long, by `clock`. */
export class Leaser {
  constructor(
    readonly owner: string,
    readonly leaseMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** A lease of this owner from now. */
  grant(): Lease {
    return { owner: this.owner, expiresAt: new Date(this.clock() + this.leaseMs).toISOString() };
  }

  /** True when there is no lease, or it has ended: anyone may take it. */
  expired(lease: Lease | undefined): boolean {
    return !lease || Date.parse(lease.expiresAt) <= this.clock();
  }

  /** True when `lease` is this owner's (ended or not: nobody else has taken it). */
  held(lease: Lease | undefined): boolean {
    return lease?.owner === this.owner;
  }
}

/**
 * Splitting the fleet's health checks between controller replicas. Each replica that checks machines keeps a
 * presence record, `ctl.check-replica/<replica id>`, holding a lease (model/lease.ts, the tasks' lease code) that it
 * renews at every round of checks; a replica that stops renewing (it died, or lost the store) is gone once its lease
 * ends, and any replica removes its record then. Each machine is checked by one of the live replicas, chosen by
 * rendezvous hashing (the replica with the highest hash of machine id and replica id): every replica computes the
 * same owner from the same set, a replica that joins or leaves moves only its own share, and nothing per machine is
 * written. When a replica leaves (stop: it deletes its record at once) or dies (after its lease), its machines fall
 * to the others at their next round.
 *
 * While replicas' views of the set differ (for one round after a replica joins, or until a dead one's lease ends),
 * a machine can be checked by two replicas in a round, or by none for up to a lease time: both are harmless (a
 * check's outcome is recorded by compare-and-swap; LOST takes lostAfterMs, more than a lease), and the next rounds
 * agree again.
 */
import { createHash } from 'node:crypto';
import { isStoreConflict, type AsyncStateStore } from '../../common/index.ts';
import { Leaser, type Lease } from '../model/lease.ts';

/** The store kind of the presence records of replicas that check machines. */
export const CHECK_REPLICA_KIND = 'ctl.check-replica';

/** The replicas that check the fleet's machines, as one replica sees and joins them. */
export class CheckReplicas {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly leaser: Leaser,
  ) {}

  /** This replica's id. */
  get id(): string {
    return this.leaser.owner;
  }

  /**
   * Renews this replica's presence and returns the ids of the live replicas (this one included), sorted; removes the
   * records of replicas whose lease has ended.
   */
  async heartbeat(): Promise<string[]> {
    await this.store.put(CHECK_REPLICA_KIND, this.id, this.leaser.grant());
    const live: string[] = [];
    for (const r of await this.store.list<Lease>(CHECK_REPLICA_KIND)) {
      if (r.key === this.id || !this.leaser.expired(r.value)) live.push(r.key);
      else
        await this.store.delete(CHECK_REPLICA_KIND, r.key, { expectRevision: r.revision }).catch((err: unknown) => {
          if (!isStoreConflict(err)) throw err; // renewed meanwhile: it is back
        });
    }
    return live.sort();
  }

  /** Removes this replica's presence: its machines go to the others at their next round. */
  async leave(): Promise<void> {
    await this.store.delete(CHECK_REPLICA_KIND, this.id);
  }

  /** The replica of `replicas` that checks machine `machineId` (rendezvous hashing; `replicas` not empty). */
  static owner(machineId: string, replicas: string[]): string {
    let best = '';
    let bestScore = '';
    for (const r of replicas) {
      const score = createHash('sha256').update(`${machineId}\u0000${r}`).digest('hex');
      if (score > bestScore) [best, bestScore] = [r, score];
    }
    return best;
  }
}

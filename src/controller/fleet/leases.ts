/**
 * Container leases with a nonce (Fly's Machines API): a project's member takes a lease on a container for a time
 * (`ttlSeconds`) and gets a nonce; while the lease holds, every change of that container (start, stop, remove,
 * and through the project's Docker endpoint restart, kill, update) must carry the nonce or is CONTAINER_LEASED
 * (409), so that two clients (two deploy pipelines, an operator and an autoscaler) cannot fight over one container.
 * The holder extends the lease by taking it again with its nonce, and releases it with the nonce. A lease that has
 * expired counts for nothing — it is neither shown nor checked, and the next lease replaces it — so a client that
 * died holding one blocks the container for its ttl at most (no stale leases).
 *
 * Records: `ctl.container-lease/<tenant>/<project>/<container id>`, written by compare-and-swap (of two clients
 * racing for a lease, one gets it). The store keeps a SHA-256 of the nonce, never the nonce (as with tokens): the
 * nonce is shown once, to the one who took the lease. Nothing is in process memory; any replica answers.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BosonError, type AsyncStateStore } from '../../common/index.ts';
import { casLoop } from '../model/records.ts';

/** The store kind of container leases. */
export const LEASE_KIND = 'ctl.container-lease';
/** The header that carries a lease's nonce on a change. */
export const LEASE_NONCE_HEADER = 'boson-lease-nonce';
/** How long a lease holds when the request does not say (seconds), and the longest one may ask for. */
export const LEASE_TTL = { defaultSeconds: 300, maxSeconds: 86_400 } as const;

/** A lease as stored. */
interface LeaseRecord {
  /** hex SHA-256 of the nonce. */
  nonceHash: string;
  owner: string;
  description: string;
  createdAt: string;
  expiresAt: string;
}

/** A lease as shown to anyone who may see the container (without its nonce). */
export interface LeaseInfo {
  owner: string;
  description: string;
  createdAt: string;
  expiresAt: string;
}

/** A lease as its taker gets it: with the nonce (shown this once). */
export interface LeaseGranted extends LeaseInfo {
  nonce: string;
}

const hash = (nonce: string): string => createHash('sha256').update(nonce).digest('hex');

function sameNonce(rec: LeaseRecord, nonce: string | undefined): boolean {
  if (nonce === undefined) return false;
  const a = Buffer.from(rec.nonceHash, 'hex');
  const b = Buffer.from(hash(nonce), 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

const info = (r: LeaseRecord): LeaseInfo => ({
  owner: r.owner,
  description: r.description,
  createdAt: r.createdAt,
  expiresAt: r.expiresAt,
});

/** The leases of a fleet's containers (see the module comment). Keys are `<tenant>/<project>/<container id>`. */
export class ContainerLeases {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly clock: () => number = Date.now,
  ) {}

  private live(r: LeaseRecord | undefined): r is LeaseRecord {
    return r !== undefined && Date.parse(r.expiresAt) > this.clock();
  }

  private leased(container: string, r: LeaseRecord, givenNonce: boolean): BosonError {
    return new BosonError(
      'CONTAINER_LEASED',
      `container ${container} is leased by ${r.owner} until ${r.expiresAt}${r.description ? ` (${r.description})` : ''}: ${
        givenNonce ? 'the nonce given is not its lease' : `a change must carry the lease's nonce (header Boson-Lease-Nonce)`
      }`,
      { details: { container, owner: r.owner, expiresAt: r.expiresAt } },
    );
  }

  /**
   * Takes the lease of container `key` for `ttlSeconds`, as `owner`; with the nonce of the lease it holds, extends
   * that lease instead (same nonce). CONTAINER_LEASED while another live lease holds.
   */
  async acquire(
    key: string,
    container: string,
    req: { owner: string; ttlSeconds?: number; description?: string; nonce?: string },
  ): Promise<LeaseGranted> {
    const ttl = req.ttlSeconds ?? LEASE_TTL.defaultSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > LEASE_TTL.maxSeconds)
      throw new BosonError('INVALID_ARGUMENT', `a lease's ttl is 1 to ${LEASE_TTL.maxSeconds} seconds, not ${ttl}`);
    return casLoop(`lease ${key}`, async () => {
      const cur = await this.store.get<LeaseRecord>(LEASE_KIND, key);
      const at = this.clock();
      const expiresAt = new Date(at + ttl * 1000).toISOString();
      let nonce: string;
      let rec: LeaseRecord;
      if (this.live(cur?.value)) {
        if (!sameNonce(cur.value, req.nonce)) throw this.leased(container, cur.value, req.nonce !== undefined);
        nonce = req.nonce!;
        rec = { ...cur.value, expiresAt, description: req.description ?? cur.value.description };
      } else {
        nonce = randomBytes(16).toString('hex');
        rec = {
          nonceHash: hash(nonce),
          owner: req.owner,
          description: req.description ?? '',
          createdAt: new Date(at).toISOString(),
          expiresAt,
        };
      }
      await this.store.put(LEASE_KIND, key, rec, { expectRevision: cur?.revision ?? 0 });
      return { ...info(rec), nonce };
    });
  }

  /** The live lease of container `key`, or undefined (none, or expired). */
  async get(key: string): Promise<LeaseInfo | undefined> {
    const r = await this.store.get<LeaseRecord>(LEASE_KIND, key);
    return this.live(r?.value) ? info(r.value) : undefined;
  }

  /** The live leases of a project's containers, by container id. */
  async ofProject(tenant: string, project: string): Promise<Map<string, LeaseInfo>> {
    const prefix = `${tenant}/${project}/`;
    const out = new Map<string, LeaseInfo>();
    for (const r of await this.store.list<LeaseRecord>(LEASE_KIND, { prefix }))
      if (this.live(r.value)) out.set(r.key.slice(prefix.length), info(r.value));
    return out;
  }

  /** Releases the lease of container `key` with its nonce: LEASE_NOT_FOUND without a live one, CONTAINER_LEASED for another nonce. */
  async release(key: string, container: string, nonce: string | undefined): Promise<void> {
    await casLoop(`lease ${key}`, async () => {
      const cur = await this.store.get<LeaseRecord>(LEASE_KIND, key);
      if (!this.live(cur?.value)) {
        if (cur) await this.store.delete(LEASE_KIND, key, { expectRevision: cur.revision });
        throw new BosonError('LEASE_NOT_FOUND', `container ${container} holds no lease`, { details: { container } });
      }
      if (!sameNonce(cur.value, nonce)) throw this.leased(container, cur.value, nonce !== undefined);
      await this.store.delete(LEASE_KIND, key, { expectRevision: cur.revision });
    });
  }

  /** Refuses a change of container `key` without the nonce of its live lease (CONTAINER_LEASED); any change passes without one. */
  async check(key: string, container: string, nonce: string | undefined): Promise<void> {
    const cur = await this.store.get<LeaseRecord>(LEASE_KIND, key);
    if (this.live(cur?.value) && !sameNonce(cur.value, nonce)) throw this.leased(container, cur.value, nonce !== undefined);
  }

  /** Forgets the lease of a removed container. */
  async drop(key: string): Promise<void> {
    await this.store.delete(LEASE_KIND, key);
  }
}

/**
 * The machines of a fleet, all in the state store (nothing in process memory that a second controller replica
 * would need):
 *
 * - `machine/<id>`         the machine as placement sees it (MachineRecord) plus its address, its drained flag and
 *                          when it joined, and the images it has (for placement's image locality). Written only
 *                          on real changes (join, drain, LOST, back, a change in its images), because every write
 *                          rejects the plans made against the old revision.
 * - `machine-health/<id>`  when the controller last reached it, and the last failure: the health checks write here.
 * - `ctl.join-token/<id>`  join tokens, as a SHA-256 of their secret (the secret is shown once, at creation).
 *
 * States: READY takes new containers; MAINTENANCE (drained) keeps its containers and takes none; LOST was not
 * reached for `lostAfterMs`. A LOST machine that answers again goes back to READY, or to MAINTENANCE if drained.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BosonError, type AsyncStateStore, type StoreOp } from '../../common/index.ts';
import { casLoop, now } from '../model/records.ts';
import { ALLOC_KIND, MACHINE_KIND, PLACEMENT_KIND, sumResources, type AllocRecord, type MachineRecord } from '../scheduler/index.ts';
import type { MachineState, Resources } from '../scheduler/index.ts';
import { fingerprint, type FleetCa } from './ca.ts';

/** Store kinds of the fleet (beside the scheduler's `machine` and `machine-alloc`). */
export const HEALTH_KIND = 'machine-health';
export const JOIN_TOKEN_KIND = 'ctl.join-token';

/** A machine as stored: placement's fields and the fleet's. */
export interface FleetMachineRecord extends MachineRecord {
  /** host:port of the machine's REST API (TCP with mutual TLS). */
  address: string;
  /** Set by drain, cleared by undrain: the state to come back to after LOST is MAINTENANCE while set. */
  drained: boolean;
  joinedAt: string;
  /** The SHA-256 fingerprint of the certificate issued at join. */
  certFingerprint: string;
}

/** What the health checks last saw of a machine. */
export interface HealthRecord {
  /** When the controller last reached it (RFC 3339; the join time before the first check). */
  lastSeen: string;
  lastError?: string;
  /** Checks failed in a row. */
  failures: number;
}

/** A join token as stored. */
export interface JoinTokenRecord {
  id: string;
  hash: string;
  description: string;
  createdAt: string;
  expiresAt: string;
}

/** A machine as the API shows it. */
export interface MachineInfo {
  id: string;
  state: MachineState;
  address: string;
  capacity: Resources;
  allocated: Resources;
  containers: number;
  labels: Record<string, string>;
  zone: string;
  drained: boolean;
  joinedAt: string;
  lastSeen: string;
  lastError?: string;
}

/** What a machine sends to join. */
export interface JoinRequest {
  token: string;
  /** host:port where the controller reaches the machine's REST API. */
  address: string;
  capacity: Resources;
  labels?: Record<string, string>;
  zone?: string;
  /** The machine's public key (PEM): its certificate is issued for it. */
  publicKey: string;
}

/** What a machine gets back: its id and certificate, and the CA that signs the controller's (to trust it by). */
export interface JoinResponse {
  id: string;
  cert: string;
  ca: string;
}

/** A join token as created (its secret shown this once). */
export interface JoinTokenCreated {
  id: string;
  token: string;
  expiresAt: string;
}

const TOKEN = /^bjoin_([0-9a-f]{12})\.([0-9a-f]{48})(?:\.([0-9a-f]{64}))?$/;
const ADDRESS = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const notFound = (id: string): BosonError => new BosonError('MACHINE_NOT_FOUND', `no such machine: ${id}`, { details: { machine: id } });

/** Parses a join token: its id, secret, and the fingerprint of the controller's CA when it carries one. */
export function parseJoinToken(token: string): { id: string; secret: string; caFingerprint?: string } | null {
  const m = TOKEN.exec(token);
  return m ? { id: m[1]!, secret: m[2]!, ...(m[3] ? { caFingerprint: m[3] } : {}) } : null;
}

/** Splits host:port; INVALID_ARGUMENT otherwise. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = ADDRESS.exec(address);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535)
    throw new BosonError('INVALID_ARGUMENT', `invalid machine address ${JSON.stringify(address)} (use host:port)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** How a Fleet behaves. */
export interface FleetOptions {
  /** A machine not reached for this long is LOST (BOSON_FLEET_LOST_AFTER_MS). */
  lostAfterMs: number;
  /** The fingerprint of the CA of the controller's TCP endpoint, put in join tokens so that machines can pin it. */
  serverCaPem?: string;
  /** The time now (tests move it). */
  clock?: () => number;
}

/** The machines of the fleet (see the module comment). */
export class Fleet {
  private readonly clock: () => number;

  constructor(
    readonly store: AsyncStateStore,
    readonly ca: FleetCa,
    readonly opts: FleetOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  /** Creates a join token, valid for `ttlSeconds` (default a day); its secret is in the answer only. */
  async createJoinToken(opts: { ttlSeconds?: number; description?: string } = {}): Promise<JoinTokenCreated> {
    const ttl = opts.ttlSeconds ?? 86_400;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 365 * 86_400)
      throw new BosonError('INVALID_ARGUMENT', `invalid token lifetime: ${ttl} s`);
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('hex');
    const expiresAt = new Date(this.clock() + ttl * 1000).toISOString();
    const rec: JoinTokenRecord = { id, hash: sha256(secret), description: opts.description ?? '', createdAt: now(), expiresAt };
    await this.store.put(JOIN_TOKEN_KIND, id, rec, { expectRevision: 0 });
    const pin = this.opts.serverCaPem ? `.${fingerprint(this.opts.serverCaPem)}` : '';
    return { id, token: `bjoin_${id}.${secret}${pin}`, expiresAt };
  }

  /** The join tokens (never their secrets). */
  async listJoinTokens(): Promise<Array<Omit<JoinTokenRecord, 'hash'>>> {
    return (await this.store.list<JoinTokenRecord>(JOIN_TOKEN_KIND)).map(({ value: { hash: _h, ...rest } }) => rest);
  }

  /** Revokes a join token (machines that joined with it stay). */
  async revokeJoinToken(id: string): Promise<void> {
    const r = await this.store.get(JOIN_TOKEN_KIND, id);
    if (!r) throw new BosonError('TOKEN_NOT_FOUND', `no such join token: ${id}`);
    await this.store.delete(JOIN_TOKEN_KIND, id);
  }

  /** Checks a join token; JOIN_TOKEN_INVALID for an unknown, wrong, revoked or expired one (one answer for all). */
  private async checkJoinToken(token: string): Promise<void> {
    const invalid = (): BosonError =>
      new BosonError('JOIN_TOKEN_INVALID', 'the join token is unknown, revoked or expired (boson machine token create)');
    const parsed = parseJoinToken(token);
    if (!parsed) throw invalid();
    const rec = await this.store.get<JoinTokenRecord>(JOIN_TOKEN_KIND, parsed.id);
    if (!rec) throw invalid();
    const a = Buffer.from(rec.value.hash, 'hex');
    const b = Buffer.from(sha256(parsed.secret), 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b) || Date.parse(rec.value.expiresAt) <= this.clock()) throw invalid();
  }

  /** Registers a machine: checks the token and the request, issues its certificate, stores it READY. */
  async join(req: JoinRequest): Promise<JoinResponse> {
    await this.checkJoinToken(req.token);
    const { host } = splitAddress(req.address);
    const c = req.capacity;
    if (!(c.cpus > 0) || !(c.memoryBytes > 0) || !(c.diskBytes >= 0))
      throw new BosonError('INVALID_ARGUMENT', 'capacity needs cpus > 0, memoryBytes > 0 and diskBytes >= 0');
    const labels = req.labels ?? {};
    for (const [k, v] of Object.entries(labels))
      if (!LABEL.test(k) || v.length > 253)
        throw new BosonError('INVALID_ARGUMENT', `invalid label ${JSON.stringify(k)}=${JSON.stringify(v)}`);
    const zone = req.zone ?? '';
    if (zone !== '' && !LABEL.test(zone)) throw new BosonError('INVALID_ARGUMENT', `invalid zone ${JSON.stringify(zone)}`);
    const id = `m-${randomBytes(6).toString('hex')}`;
    const cert = await this.ca.issueMachineCert(req.publicKey, id, host);
    const at = now();
    const machine: FleetMachineRecord = {
      id,
      state: 'READY',
      capacity: { cpus: c.cpus, memoryBytes: c.memoryBytes, diskBytes: c.diskBytes },
      labels,
      zone,
      images: [],
      address: req.address,
      drained: false,
      joinedAt: at,
      certFingerprint: fingerprint(cert),
    };
    await this.store.commit([
      { op: 'put', kind: MACHINE_KIND, key: id, value: machine, expectRevision: 0 },
      { op: 'put', kind: HEALTH_KIND, key: id, value: { lastSeen: at, failures: 0 } satisfies HealthRecord, expectRevision: 0 },
    ]);
    return { id, cert, ca: this.ca.cert };
  }

  /**
   * Registers the controller's own host as a machine (`boson up --controller`: that host is the fleet's first
   * machine), reached over its local UNIX socket (`address` unix:///path: no certificate, the socket's permissions
   * are the authentication). Idempotent: the machine already registered at that address keeps its id, and gets the
   * capacity given now.
   */
  async registerLocal(address: string, capacity: Resources, labels: Record<string, string> = {}): Promise<string> {
    if (!address.startsWith('unix:///'))
      throw new BosonError('INVALID_ARGUMENT', `a local machine is reached at unix:///path, not ${address}`);
    return casLoop(`local machine ${address}`, async () => {
      const found = (await this.store.list<FleetMachineRecord>(MACHINE_KIND)).find((m) => m.value.address === address);
      if (found) {
        if (JSON.stringify(found.value.capacity) !== JSON.stringify(capacity))
          await this.store.put(MACHINE_KIND, found.key, { ...found.value, capacity }, { expectRevision: found.revision });
        return found.key;
      }
      const id = `m-${randomBytes(6).toString('hex')}`;
      const at = now();
      const machine: FleetMachineRecord = {
        id,
        state: 'READY',
        capacity,
        labels,
        zone: '',
        images: [],
        address,
        drained: false,
        joinedAt: at,
        certFingerprint: '',
      };
      await this.store.commit([
        { op: 'put', kind: MACHINE_KIND, key: id, value: machine, expectRevision: 0 },
        { op: 'put', kind: HEALTH_KIND, key: id, value: { lastSeen: at, failures: 0 } satisfies HealthRecord, expectRevision: 0 },
      ]);
      return id;
    });
  }

  /** One machine's record (MACHINE_NOT_FOUND otherwise). */
  async record(id: string): Promise<FleetMachineRecord> {
    const r = await this.store.get<FleetMachineRecord>(MACHINE_KIND, id);
    if (!r) throw notFound(id);
    return r.value;
  }

  /** Every machine, as the API shows it. */
  async list(): Promise<MachineInfo[]> {
    const [machines, allocs, health] = await Promise.all([
      this.store.list<FleetMachineRecord>(MACHINE_KIND),
      this.store.list<AllocRecord>(ALLOC_KIND),
      this.store.list<HealthRecord>(HEALTH_KIND),
    ]);
    const a = new Map(allocs.map((r) => [r.key, r.value]));
    const h = new Map(health.map((r) => [r.key, r.value]));
    return machines.map((m) => info(m.value, a.get(m.key), h.get(m.key)));
  }

  /** One machine, as the API shows it. */
  async get(id: string): Promise<MachineInfo> {
    const [m, a, h] = await Promise.all([
      this.store.get<FleetMachineRecord>(MACHINE_KIND, id),
      this.store.get<AllocRecord>(ALLOC_KIND, id),
      this.store.get<HealthRecord>(HEALTH_KIND, id),
    ]);
    if (!m) throw notFound(id);
    return info(m.value, a?.value, h?.value);
  }

  /** Drains a machine (MAINTENANCE: no new placements, its containers stay), or undrains it (`drained` false). */
  async setDrained(id: string, drained: boolean): Promise<MachineInfo> {
    await casLoop(`machine ${id}`, async () => {
      const m = await this.store.get<FleetMachineRecord>(MACHINE_KIND, id);
      if (!m) throw notFound(id);
      if (m.value.drained === drained) return;
      const state: MachineState = m.value.state === 'LOST' ? 'LOST' : drained ? 'MAINTENANCE' : 'READY';
      await this.store.put(MACHINE_KIND, id, { ...m.value, drained, state }, { expectRevision: m.revision });
    });
    return this.get(id);
  }

  /**
   * Removes a machine from the fleet. MACHINE_IN_USE while containers are placed on it, unless `force` (for a
   * machine that is gone for good: its containers' placements are dropped with it).
   */
  async remove(id: string, force = false): Promise<void> {
    await casLoop(`machine ${id}`, async () => {
      const [m, a, h] = await Promise.all([
        this.store.get<FleetMachineRecord>(MACHINE_KIND, id),
        this.store.get<AllocRecord>(ALLOC_KIND, id),
        this.store.get(HEALTH_KIND, id),
      ]);
      if (!m) throw notFound(id);
      const placed = a?.value.containers ?? [];
      if (placed.length > 0 && !force)
        throw new BosonError(
          'MACHINE_IN_USE',
          `machine ${id} still has ${placed.length} container(s): remove them, drain it first, or use --force`,
          {
            details: { machine: id, containers: placed.length },
          },
        );
      const ops: StoreOp[] = [{ op: 'delete', kind: MACHINE_KIND, key: id, expectRevision: m.revision }];
      if (a) ops.push({ op: 'delete', kind: ALLOC_KIND, key: id, expectRevision: a.revision });
      if (h) ops.push({ op: 'delete', kind: HEALTH_KIND, key: id, expectRevision: h.revision });
      for (const c of placed) ops.push({ op: 'delete', kind: PLACEMENT_KIND, key: c.id });
      await this.store.commit(ops);
    });
  }

  /**
   * Records the images a machine has (their locality keys: image-locality.ts), which placement prefers it for.
   * Writes the machine record only when the list changed (every write rejects the plans made against the old
   * revision); nothing for a machine no longer in the fleet. Returns whether it wrote.
   */
  async recordImages(id: string, images: string[]): Promise<boolean> {
    const sorted = [...new Set(images)].sort();
    return casLoop(`images of ${id}`, async () => {
      const m = await this.store.get<FleetMachineRecord>(MACHINE_KIND, id);
      if (!m) return false;
      const had = m.value.images ?? [];
      if (had.length === sorted.length && had.every((x, i) => x === sorted[i])) return false;
      await this.store.put(MACHINE_KIND, id, { ...m.value, images: sorted }, { expectRevision: m.revision });
      return true;
    });
  }

  /**
   * Records one health check's outcome: a success moves lastSeen (and brings a LOST machine back); a failure counts,
   * and a machine not reached for lostAfterMs becomes LOST (lastSeen is written at most every lostAfterMs/4, so LOST
   * comes between lostAfterMs and 1.25 × lostAfterMs after the last answer). Returns the machine's state after.
   */
  async recordCheck(id: string, error?: string): Promise<MachineState | undefined> {
    return casLoop(`health of ${id}`, async () => {
      const [m, h] = await Promise.all([
        this.store.get<FleetMachineRecord>(MACHINE_KIND, id),
        this.store.get<HealthRecord>(HEALTH_KIND, id),
      ]);
      if (!m) return undefined;
      const t = this.clock();
      // Reached, as it was last time, and seen recently enough: nothing to record. A write per check would be N
      // commits every interval (1,000 machines, 5 s: 200/s), the controller's busiest writer by far; so lastSeen is
      // written at most every lostAfterMs/4, and LOST allows for that lag (below).
      const seenEvery = this.opts.lostAfterMs / 4;
      if (
        error === undefined &&
        m.value.state !== 'LOST' &&
        h !== undefined &&
        h.value.failures === 0 &&
        t - Date.parse(h.value.lastSeen) < seenEvery
      )
        return m.value.state;
      const health: HealthRecord =
        error === undefined
          ? { lastSeen: new Date(t).toISOString(), failures: 0 }
          : { lastSeen: h?.value.lastSeen ?? m.value.joinedAt, lastError: error, failures: (h?.value.failures ?? 0) + 1 };
      let state = m.value.state;
      if (error === undefined && state === 'LOST') state = m.value.drained ? 'MAINTENANCE' : 'READY';
      // lastSeen may lag the last answer by up to seenEvery: LOST only once that lag is allowed for, so that a machine
      // is never LOST before it has been unreachable for lostAfterMs (at most lostAfterMs + seenEvery).
      if (error !== undefined && state !== 'LOST' && t - Date.parse(health.lastSeen) >= this.opts.lostAfterMs + seenEvery) state = 'LOST';
      const ops: StoreOp[] = [{ op: 'put', kind: HEALTH_KIND, key: id, value: health, expectRevision: h?.revision ?? 0 }];
      if (state !== m.value.state)
        ops.push({ op: 'put', kind: MACHINE_KIND, key: id, value: { ...m.value, state }, expectRevision: m.revision });
      else ops.push({ op: 'check', kind: MACHINE_KIND, key: id, expectRevision: m.revision });
      await this.store.commit(ops);
      return state;
    });
  }
}

function info(m: FleetMachineRecord, a: AllocRecord | undefined, h: HealthRecord | undefined): MachineInfo {
  const containers = a?.containers ?? [];
  const allocated = sumResources(containers);
  return {
    id: m.id,
    state: m.state,
    address: m.address,
    capacity: m.capacity,
    allocated,
    containers: containers.length,
    labels: m.labels,
    zone: m.zone,
    drained: m.drained,
    joinedAt: m.joinedAt,
    lastSeen: h?.lastSeen ?? m.joinedAt,
    ...(h?.lastError === undefined ? {} : { lastError: h.lastError }),
  };
}

/**
 * The state store on etcd (the AsyncStateStore contract of src/common/store.ts), for a controller that outgrows one
 * host: several controller replicas share one etcd cluster, and every guarantee of the contract holds across them.
 *
 * Layout under the key prefix (default `boson/`; `%`-encoded kinds, so a kind never runs into a key):
 * - `meta/rev`                 the store revision (decimal). Absent: 0.
 * - `r/<kind>/<key>`           a record: `{"v": value, "r": revision, "c": createRevision}`.
 * - `log/<revision, 16 digits>` one change (StoreChange as JSON) per revision, the last CHANGE_LOG_SIZE kept.
 * - `meta/seq`, `ev/<seq, 16 digits>` the event log's sequence and events, the last EVENT_LOG_SIZE kept.
 *
 * Why the store keeps its own revision instead of exposing etcd's: the contract promises that every change takes
 * the next revision (gap-free, one per write, events taking none) and that the last 10,000 revisions can be watched.
 * etcd gives one revision per transaction, shared with every other key of the cluster (other prefixes, our event
 * counter), and drops history only when someone compacts it. So each record carries its store revision, and etcd's
 * mod_revision is what the transactions compare: a commit reads `meta/rev` and the records it touches in one
 * read-only Txn (one consistent etcd revision), checks the expected store revisions against them (planCommit, the
 * same code as memory and SQLite), then writes records, change-log entries, the new `meta/rev` and the log trim in
 * one Txn whose compare is "meta/rev is still at the mod_revision we read". Every writer rewrites `meta/rev`, so
 * that one compare makes commits linearizable across processes and hosts; a lost race reads again and re-checks
 * (lock-free: a retry means another commit succeeded). The event log does the same with `meta/seq`.
 *
 * Watches read the change log from the asked revision, then follow it with an etcd watch from the etcd revision of
 * that read; the kind is filtered here. An etcd watch cancelled by etcd's own compaction resumes from the store's
 * change log; a watch asked for revisions the change log no longer holds is STORE_COMPACTED.
 *
 * etcd refuses a transaction with more operations than its `--max-txn-ops` (default 128): a commit of N writes takes
 * about 2N + 3, so commits larger than the server allows are INVALID_ARGUMENT (the controller's commits are a few
 * operations; the conformance suite's 10,005-write commit needs a raised limit). An unreachable etcd is
 * STORE_UNAVAILABLE.
 */
import { Etcd3, type IOptions } from 'etcd3';
import {
  BosonError,
  compactedRevision,
  EVENT_LOG_SIZE,
  planCommit,
  type PlannedWrite,
  type AsyncStateStore,
  type EventQuery,
  type NewStoreEvent,
  type StoreChange,
  type StoredEvent,
  type StoredRecord,
  type StoreOp,
  type StoreWatch,
} from '../../common/index.ts';

/** How to reach etcd and where the store lives in its key space. */
export interface EtcdStoreOptions {
  /** Client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  /** The key prefix of this store (default 'boson/'); several stores can share one etcd under different prefixes. */
  prefix?: string;
  /** The deadline of one etcd call in ms (default 10 s); past it the call is STORE_UNAVAILABLE. */
  callTimeoutMs?: number;
  /** TLS credentials for the etcd client (as etcd3's). */
  credentials?: IOptions['credentials'];
}

interface RecordValue {
  v: unknown;
  r: number;
  c: number;
}

interface PendingCommit {
  ops: StoreOp[];
  resolve(result: { revision: number; wrote: boolean }): void;
  reject(err: unknown): void;
}

interface Kv {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
}

type Compare = NonNullable<Parameters<Etcd3['kv']['txn']>[0]['compare']>[number];
type RequestOp = NonNullable<Parameters<Etcd3['kv']['txn']>[0]['success']>[number];

const pad = (n: number): string => String(n).padStart(16, '0');
const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
/** The end of the range of every key starting with `p` (etcd's prefix range_end). */
function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Turns what etcd3/gRPC throws into the store's typed errors. */
function translate(err: unknown, what: string): BosonError {
  if (err instanceof BosonError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/too many operations in txn|request is too large|duplicate key/i.test(message))
    return new BosonError('INVALID_ARGUMENT', `etcd refused ${what}: ${message}`, { cause: err });
  return new BosonError('STORE_UNAVAILABLE', `etcd ${what} failed: ${message}`, { cause: err });
}

/** An AsyncStateStore on etcd (see the module comment). */
export class EtcdStateStore implements AsyncStateStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly watches = new Set<() => void>();
  private closed = false;
  private readonly pending: PendingCommit[] = [];
  private flushing = false;
  /** What this store object's commits cost: etcd Txns (reads and writes), commit groups, and races for meta/rev lost. */
  readonly stats = { commits: 0, groups: 0, txns: 0, lostRaces: 0, speculated: 0, speculationMisses: 0 };
  /**
   * What this object last saw of `meta/rev` and of the records its commits touched (null: absent), as etcd had them:
   * a commit writes at once against it (see commitGroup), and etcd's compares decide whether it still holds.
   */
  private knownRev: Kv | null | undefined;
  private readonly known = new Map<string, Kv | null>();

  constructor(opts: EtcdStoreOptions) {
    const timeout = opts.callTimeoutMs ?? 10_000;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      credentials: opts.credentials,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    this.prefix = opts.prefix ?? 'boson/';
  }

  private recordKey(kind: string, key: string): Buffer {
    return buf(`${this.prefix}r/${encodeURIComponent(kind)}/${key}`);
  }
  private recordPrefix(kind: string): string {
    return `${this.prefix}r/${encodeURIComponent(kind)}/`;
  }
  private get revKey(): Buffer {
    return buf(`${this.prefix}meta/rev`);
  }
  private get seqKey(): Buffer {
    return buf(`${this.prefix}meta/seq`);
  }
  private logKey(rev: number): Buffer {
    return buf(`${this.prefix}log/${pad(rev)}`);
  }
  private get logPrefix(): Buffer {
    return buf(`${this.prefix}log/`);
  }
  private eventKey(seq: number): Buffer {
    return buf(`${this.prefix}ev/${pad(seq)}`);
  }
  private get eventPrefix(): Buffer {
    return buf(`${this.prefix}ev/`);
  }

  private check(): void {
    if (this.closed) throw new BosonError('STORE_UNAVAILABLE', 'the etcd store is closed');
  }

  private async txn(req: Parameters<Etcd3['kv']['txn']>[0], what: string): ReturnType<Etcd3['kv']['txn']> {
    this.check();
    try {
      return await this.client.kv.txn(req);
    } catch (err) {
      throw translate(err, what);
    }
  }

  private async range(req: Parameters<Etcd3['kv']['range']>[0], what: string): ReturnType<Etcd3['kv']['range']> {
    this.check();
    try {
      return await this.client.kv.range(req);
    } catch (err) {
      throw translate(err, what);
    }
  }

  /** Every key/value in [start, end), read in pages at one etcd revision; and that revision. */
  private async rangeAll(start: Buffer, end: Buffer, what: string): Promise<{ kvs: Kv[]; etcdRevision: number }> {
    const kvs: Kv[] = [];
    let from = start;
    let at: number | undefined;
    for (;;) {
      const res = await this.range({ key: from, range_end: end, limit: 1000, revision: at }, what);
      at ??= Number(res.header.revision);
      kvs.push(...(res.kvs as Kv[]));
      if (!res.more || res.kvs.length === 0) return { kvs, etcdRevision: at };
      from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
  }

  private toRecord<T>(kind: string, key: string, kv: Kv): StoredRecord<T> {
    const r = JSON.parse(kv.value.toString('utf8')) as RecordValue;
    return { kind, key, value: r.v as T, revision: r.r, createRevision: r.c };
  }

  /**
   * How many records and events the store holds (0 and 0: nothing was ever kept under its prefix, or everything was
   * deleted), counted by etcd without reading them.
   */
  async occupancy(): Promise<{ records: number; events: number }> {
    const count = async (p: Buffer, what: string): Promise<number> =>
      Number((await this.range({ key: p, range_end: prefixEnd(p), count_only: true }, what)).count);
    return {
      records: await count(buf(`${this.prefix}r/`), 'count of records'),
      events: await count(this.eventPrefix, 'count of events'),
    };
  }

  async revision(): Promise<number> {
    const res = await this.range({ key: this.revKey }, 'read of the revision');
    return res.kvs[0] ? Number(res.kvs[0].value.toString()) : 0;
  }

  async get<T = unknown>(kind: string, key: string): Promise<StoredRecord<T> | undefined> {
    const res = await this.range({ key: this.recordKey(kind, key) }, `read of ${kind} ${key}`);
    const kv = res.kvs[0] as Kv | undefined;
    return kv ? this.toRecord<T>(kind, key, kv) : undefined;
  }

  async list<T = unknown>(kind: string, opts: { prefix?: string } = {}): Promise<StoredRecord<T>[]> {
    const base = this.recordPrefix(kind);
    const start = buf(base + (opts.prefix ?? ''));
    const { kvs } = await this.rangeAll(start, prefixEnd(start), `list of ${kind}`);
    return kvs.map((kv) => this.toRecord<T>(kind, kv.key.toString('utf8').slice(base.length), kv));
  }

  async put(kind: string, key: string, value: unknown, opts: { expectRevision?: number } = {}): Promise<number> {
    return this.commit([{ op: 'put', kind, key, value, expectRevision: opts.expectRevision }]);
  }

  async delete(kind: string, key: string, opts: { expectRevision?: number } = {}): Promise<boolean> {
    const before = await this.commitWrites([{ op: 'delete', kind, key, expectRevision: opts.expectRevision }]);
    return before.wrote;
  }

  async commit(ops: StoreOp[]): Promise<number> {
    return (await this.commitWrites(ops)).revision;
  }

  /**
   * The commit loop (see the module comment): read, check, write if nothing moved, else again. The commits of one
   * store object are grouped: those that arrive while a Txn is in flight go together into the next one (each checked
   * in turn against the state its predecessors leave, each failing or succeeding alone, as if run one after another),
   * which saves the round trips and the lost races for meta/rev of writers in one process. A write that lost the race
   * brings the fresh reads back in its failure branch, so a retry costs one round trip.
   */
  private commitWrites(ops: StoreOp[]): Promise<{ revision: number; wrote: boolean }> {
    return new Promise((resolve, reject) => {
      this.stats.commits++;
      this.pending.push({ ops, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        // etcd's --max-txn-ops (default 128): a group stays under it, unless one commit alone is larger.
        let size = 0;
        let n = 0;
        while (n < this.pending.length && (n === 0 || size + 2 * this.pending[n]!.ops.length + 4 <= 120))
          size += 2 * this.pending[n++]!.ops.length + 4;
        const group = this.pending.splice(0, n);
        try {
          await this.commitGroup(group);
        } catch (err) {
          for (const c of group) c.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async commitGroup(group: PendingCommit[]): Promise<void> {
    const ids = new Map<string, { kind: string; key: string }>();
    const live: PendingCommit[] = [];
    for (const c of group) {
      if (c.ops.some((op) => !op.kind || typeof op.key !== 'string')) {
        c.reject(new BosonError('INVALID_ARGUMENT', 'a store operation needs a kind and a key'));
        continue;
      }
      live.push(c);
      for (const op of c.ops) ids.set(`${op.kind}\u0000${op.key}`, { kind: op.kind, key: op.key });
    }
    if (live.length === 0) return;
    const touched = [...ids.values()];
    // The counter and every touched record, read in one Txn (one etcd revision).
    const reads: RequestOp[] = [
      { request_range: { key: this.revKey } },
      ...touched.map((t) => ({ request_range: { key: this.recordKey(t.kind, t.key) } })),
    ];
    this.stats.groups++;
    // Speculation: when this object has seen meta/rev (it committed or read before), the first attempt skips the read
    // Txn and writes against what it knows (a record it has never seen is taken as absent), with a compare per
    // touched record besides meta/rev's. If anything moved, etcd refuses the write and its failure branch returns the
    // fresh reads: never more round trips than read-then-write, and one instead of two while no other writer
    // interleaves. A commit that fails its checks against what is only known is decided again on a real read.
    let speculative = this.knownRev !== undefined;
    let read: Array<{ response_range: { kvs: unknown[] } }>;
    if (speculative) {
      this.stats.speculated++;
      read = [
        { response_range: { kvs: this.knownRev ? [this.knownRev] : [] } },
        ...touched.map((t) => {
          const kv = this.known.get(this.recordKey(t.kind, t.key).toString('latin1'));
          return { response_range: { kvs: kv ? [kv] : [] } };
        }),
      ];
    } else {
      this.stats.txns++;
      read = (await this.txn({ success: reads }, 'read for a commit')).responses as typeof read;
      this.learn(touched, read);
    }
    for (let attempt = 0; ; attempt++) {
      const revKv = read[0]!.response_range.kvs[0] as Kv | undefined;
      const base = revKv ? Number(revKv.value.toString()) : 0;
      const current = new Map<string, StoredRecord | undefined>();
      touched.forEach((t, i) => {
        const kv = read[i + 1]!.response_range.kvs[0] as Kv | undefined;
        current.set(`${t.kind}\u0000${t.key}`, kv ? this.toRecord(t.kind, t.key, kv) : undefined);
      });
      // Each commit in turn, on the state the ones before it leave.
      let rev = base;
      const writes: PlannedWrite[] = [];
      const outcomes: Array<{ ok: true; revision: number; wrote: boolean } | { ok: false; error: unknown }> = [];
      for (const c of live) {
        try {
          const mine = planCommit(c.ops, rev, (kind, key) => current.get(`${kind}\u0000${key}`));
          for (const w of mine) current.set(`${w.change.kind}\u0000${w.change.key}`, w.record);
          if (mine.length > 0) rev = mine[mine.length - 1]!.change.revision;
          writes.push(...mine);
          outcomes.push({ ok: true, revision: rev, wrote: mine.length > 0 });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
      const settle = (): void =>
        live.forEach((c, i) => {
          const o = outcomes[i]!;
          if (o.ok) c.resolve({ revision: o.revision, wrote: o.wrote });
          else c.reject(o.error);
        });
      if (speculative && (writes.length === 0 || outcomes.some((o) => !o.ok))) {
        // Decided on what is only known: decide again on what etcd has.
        this.stats.speculationMisses++;
        speculative = false;
        this.stats.txns++;
        read = (await this.txn({ success: reads }, 'read for a commit')).responses as typeof read;
        this.learn(touched, read);
        attempt--;
        continue;
      }
      if (writes.length === 0) return settle();
      // The final state of each touched key (etcd allows one write per key in a Txn), then the log, the counter and the trim.
      const final = new Map<string, { kind: string; key: string; record: StoredRecord | undefined }>();
      for (const w of writes)
        final.set(`${w.change.kind}\u0000${w.change.key}`, { kind: w.change.kind, key: w.change.key, record: w.record });
      const success: RequestOp[] = [];
      for (const f of final.values()) {
        const key = this.recordKey(f.kind, f.key);
        if (f.record) {
          const value: RecordValue = { v: f.record.value, r: f.record.revision, c: f.record.createRevision };
          success.push({ request_put: { key, value: buf(JSON.stringify(value)) } });
        } else success.push({ request_delete_range: { key } });
      }
      // The log keeps the last CHANGE_LOG_SIZE revisions: older entries are deleted, and a commit's own writes that
      // would fall out at once are not logged (etcd refuses a put inside a range the same Txn deletes).
      const keepFrom = compactedRevision(rev) + 1;
      for (const w of writes)
        if (w.change.revision >= keepFrom)
          success.push({ request_put: { key: this.logKey(w.change.revision), value: buf(JSON.stringify(w.change)) } });
      success.push({ request_put: { key: this.revKey, value: buf(String(rev)) } });
      // Only the entries that fall out now: [the first one kept before this commit, the first one kept after). Every
      // commit deletes its own range, so nothing older is left; a range from 0 would make etcd walk every log key
      // ever deleted (they stay in its index until etcd itself compacts), a cost that grows with the store's age.
      const trimTo = Math.min(keepFrom, base + 1);
      const trimFrom = compactedRevision(base) + 1;
      if (trimTo > trimFrom) success.push({ request_delete_range: { key: this.logKey(trimFrom), range_end: this.logKey(trimTo) } });
      const compare: Compare[] = [{ key: this.revKey, target: 'Mod', result: 'Equal', mod_revision: revKv ? revKv.mod_revision : 0 }];
      if (speculative)
        touched.forEach((t, i) => {
          const kv = read[i + 1]!.response_range.kvs[0] as Kv | undefined;
          const key = this.recordKey(t.kind, t.key);
          compare.push(
            kv
              ? { key, target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }
              : { key, target: 'Version', result: 'Equal', version: 0 },
          );
        });
      this.stats.txns++;
      const res = await this.txn({ compare, success, failure: reads }, `commit of ${writes.length} write(s)`);
      if (res.succeeded) {
        // What etcd now has: meta/rev and the touched records, all at the Txn's revision.
        const at = String(res.header.revision);
        this.knownRev = { key: this.revKey, value: buf(String(rev)), mod_revision: at };
        for (const f of final.values()) {
          const key = this.recordKey(f.kind, f.key);
          const value: RecordValue | undefined = f.record && { v: f.record.value, r: f.record.revision, c: f.record.createRevision };
          this.remember(key, value ? { key, value: buf(JSON.stringify(value)), mod_revision: at } : null);
        }
        return settle();
      }
      if (speculative) this.stats.speculationMisses++;
      else this.stats.lostRaces++;
      speculative = false;
      read = res.responses as typeof read;
      this.learn(touched, read);
      await backoff(attempt);
    }
  }

  /** Keeps what a read of meta/rev and `touched` (in that order) returned. */
  private learn(touched: Array<{ kind: string; key: string }>, read: Array<{ response_range: { kvs: unknown[] } }>): void {
    this.knownRev = (read[0]!.response_range.kvs[0] as Kv | undefined) ?? null;
    touched.forEach((t, i) => {
      const key = this.recordKey(t.kind, t.key);
      this.remember(key, (read[i + 1]!.response_range.kvs[0] as Kv | undefined) ?? null);
    });
  }

  private remember(key: Buffer, kv: Kv | null): void {
    if (this.known.size >= 50_000) this.known.clear(); // a cache: forgetting only costs a speculation
    this.known.set(key.toString('latin1'), kv && { key: kv.key, value: kv.value, mod_revision: String(kv.mod_revision) });
  }

  async watch<T = unknown>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void): Promise<StoreWatch> {
    const rev = await this.revision();
    const compacted = compactedRevision(rev);
    if (fromRevision < compacted) {
      throw new BosonError(
        'STORE_COMPACTED',
        `cannot watch ${kind} from revision ${fromRevision}: changes up to ${compacted} are compacted`,
        {
          details: { kind, fromRevision, compacted },
        },
      );
    }
    const w = new LogFollower(this, kind, fromRevision, onChange as (c: StoreChange) => void);
    const stop = (): void => w.cancel();
    this.watches.add(stop);
    w.start();
    return {
      cancel: () => {
        this.watches.delete(stop);
        w.cancel();
      },
    };
  }

  /** @internal The change log after `after` at one etcd revision (for a watch's catch-up), and that revision. */
  async changesAfter(after: number): Promise<{ changes: StoreChange[]; etcdRevision: number; compacted: boolean }> {
    const rev = await this.revision();
    if (after < compactedRevision(rev)) return { changes: [], etcdRevision: 0, compacted: true };
    const { kvs, etcdRevision } = await this.rangeAll(this.logKey(after + 1), prefixEnd(this.logPrefix), 'read of the change log');
    const changes = kvs.map((kv) => JSON.parse(kv.value.toString('utf8')) as StoreChange);
    // A trim between the two reads: the first change must follow `after`.
    if (changes.length > 0 && changes[0]!.revision !== after + 1) return { changes: [], etcdRevision: 0, compacted: true };
    return { changes, etcdRevision, compacted: false };
  }

  /** @internal An etcd watch of the change log from `etcdRevision` (its trims are delete events, which a follower ignores; etcd3's ignore() filter is inverted in 1.1.2). */
  watchLog(etcdRevision: number): ReturnType<ReturnType<Etcd3['watch']>['create']> {
    return this.client.watch().prefix(this.logPrefix.toString('utf8')).startRevision(String(etcdRevision)).create();
  }

  async appendEvent(event: NewStoreEvent): Promise<StoredEvent> {
    const timeNano = event.timeNano ?? BigInt(Date.now()) * 1_000_000n;
    for (let attempt = 0; ; attempt++) {
      const res = await this.range({ key: this.seqKey }, 'read of the event sequence');
      const kv = res.kvs[0] as Kv | undefined;
      const seq = (kv ? Number(kv.value.toString()) : 0) + 1;
      const stored: StoredEvent = {
        seq,
        timeNano,
        type: event.type,
        action: event.action,
        actorId: event.actorId,
        attributes: { ...event.attributes },
      };
      const success: RequestOp[] = [
        { request_put: { key: this.seqKey, value: buf(String(seq)) } },
        { request_put: { key: this.eventKey(seq), value: buf(JSON.stringify({ ...stored, timeNano: String(timeNano) })) } },
      ];
      if (seq > EVENT_LOG_SIZE)
        success.push({ request_delete_range: { key: this.eventKey(0), range_end: this.eventKey(seq - EVENT_LOG_SIZE + 1) } });
      const txn = await this.txn(
        { compare: [{ key: this.seqKey, target: 'Mod', result: 'Equal', mod_revision: kv ? kv.mod_revision : 0 }], success },
        'append of an event',
      );
      if (txn.succeeded) return structuredClone(stored);
      await backoff(attempt);
    }
  }

  async events(query: EventQuery = {}): Promise<StoredEvent[]> {
    const { kvs } = await this.rangeAll(this.eventKey((query.afterSeq ?? 0) + 1), prefixEnd(this.eventPrefix), 'read of events');
    const out: StoredEvent[] = [];
    for (const kv of kvs) {
      const raw = JSON.parse(kv.value.toString('utf8')) as Omit<StoredEvent, 'timeNano'> & { timeNano: string };
      const e: StoredEvent = { ...raw, timeNano: BigInt(raw.timeNano) };
      if (query.sinceNs !== undefined && e.timeNano < query.sinceNs) continue;
      if (query.untilNs !== undefined && e.timeNano > query.untilNs) continue;
      out.push(e);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const stop of this.watches) stop();
    this.watches.clear();
    this.closed = true;
    this.client.close();
  }
}

/** A short, growing, jittered pause between retries of a lost race (so that racing writers spread out). */
async function backoff(attempt: number): Promise<void> {
  if (attempt === 0) return;
  const ms = Math.min(50, 2 ** Math.min(attempt, 6)) * Math.random();
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * One watch: delivers the changes of `kind` after `from`, in order, one at a time: first what the change log holds
 * (catch-up), then what an etcd watch of the log brings from the etcd revision of that read. If etcd cancels the
 * watch (its own compaction) or the stream fails for good, it catches up from the log again; if the log no longer
 * holds what it has not delivered, it stops with a warning, like the other stores' watches that fall behind.
 */
class LogFollower {
  private last: number;
  private cancelled = false;
  private watcher: Awaited<ReturnType<EtcdStateStore['watchLog']>> | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: EtcdStateStore,
    private readonly kind: string,
    from: number,
    private readonly onChange: (change: StoreChange) => void,
  ) {
    this.last = from;
  }

  start(): void {
    void this.follow();
  }

  cancel(): void {
    this.cancelled = true;
    const w = this.watcher;
    this.watcher = undefined;
    if (w) void w.cancel().catch(() => undefined);
  }

  private deliver(change: StoreChange): void {
    if (this.cancelled || change.revision <= this.last) return;
    this.last = change.revision;
    if (change.kind !== this.kind) return;
    try {
      this.onChange(change);
    } catch (err) {
      process.emitWarning(`a store watch callback of ${this.kind} threw: ${(err as Error).message}`);
    }
  }

  private async follow(): Promise<void> {
    for (let attempt = 0; !this.cancelled; attempt++) {
      try {
        const { changes, etcdRevision, compacted } = await this.store.changesAfter(this.last);
        if (this.cancelled) return;
        if (compacted) {
          process.emitWarning(`a store watch of ${this.kind} fell behind the change log (at revision ${this.last}); it is cancelled`);
          this.cancelled = true;
          return;
        }
        for (const c of changes) this.deliver(c);
        const watcher = await this.store.watchLog(etcdRevision + 1);
        if (this.cancelled) {
          void watcher.cancel().catch(() => undefined);
          return;
        }
        this.watcher = watcher;
        const ended = new Promise<void>((resolve) => {
          watcher.on('put', (kv) => {
            const change = JSON.parse(kv.value.toString('utf8')) as StoreChange;
            // Delivered through one promise chain, so a callback's own writes never overtake the change it handles.
            this.queue = this.queue.then(() => this.deliver(change));
          });
          watcher.on('error', () => resolve());
          watcher.on('end', () => resolve());
        });
        await ended;
        this.watcher = undefined;
        void watcher.cancel().catch(() => undefined);
      } catch (err) {
        if (this.cancelled) return;
        if (attempt > 50) {
          process.emitWarning(`a store watch of ${this.kind} stopped: ${(err as Error).message}`);
          this.cancelled = true;
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * (attempt + 1))));
      }
    }
  }
}

/** Opens the etcd store (the connection is made on first use). */
export function openEtcdStore(opts: EtcdStoreOptions): EtcdStateStore {
  return new EtcdStateStore(opts);
}

/**
 * The state store in memory: the reference implementation, and the store of unit tests in every layer (src/image's
 * tests cannot reach the SQLite one in src/machine). It runs the same conformance suite as SQLite.
 */
import {
  CHANGE_LOG_SIZE,
  EVENT_LOG_SIZE,
  type EventQuery,
  type NewStoreEvent,
  type StateStore,
  type StoreChange,
  type StoredEvent,
  type StoredRecord,
  type StoreOp,
  type StoreWatch,
} from './store.ts';
import { planCommit, WatchHub } from './store-core.ts';

const clone = <T>(v: T): T => structuredClone(v);

/** A StateStore held in this process's memory. */
export class MemoryStateStore implements StateStore {
  private rev = 0;
  private readonly records = new Map<string, Map<string, StoredRecord>>();
  private changes: StoreChange[] = [];
  private log: StoredEvent[] = [];
  private seq = 0;
  private readonly hub = new WatchHub({
    revision: () => this.rev,
    changesAfter: (kind, after, limit) => {
      const out: StoreChange[] = [];
      for (const c of this.changes) {
        if (c.revision > after && c.kind === kind) out.push(clone(c));
        if (out.length >= limit) break;
      }
      return out;
    },
  });

  revision(): number {
    return this.rev;
  }

  get<T = unknown>(kind: string, key: string): StoredRecord<T> | undefined {
    const r = this.records.get(kind)?.get(key);
    return r ? (clone(r) as StoredRecord<T>) : undefined;
  }

  list<T = unknown>(kind: string, opts: { prefix?: string } = {}): StoredRecord<T>[] {
    const all = [...(this.records.get(kind)?.values() ?? [])].filter((r) => opts.prefix === undefined || r.key.startsWith(opts.prefix));
    return all.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((r) => clone(r) as StoredRecord<T>);
  }

  put(kind: string, key: string, value: unknown, opts: { expectRevision?: number } = {}): number {
    return this.commit([{ op: 'put', kind, key, value, expectRevision: opts.expectRevision }]);
  }

  delete(kind: string, key: string, opts: { expectRevision?: number } = {}): boolean {
    const before = this.rev;
    return this.commit([{ op: 'delete', kind, key, expectRevision: opts.expectRevision }]) !== before;
  }

  commit(ops: StoreOp[]): number {
    const writes = planCommit(ops, this.rev, (kind, key) => this.records.get(kind)?.get(key));
    if (writes.length === 0) return this.rev;
    for (const { change, record } of writes) {
      let byKey = this.records.get(change.kind);
      if (!byKey) this.records.set(change.kind, (byKey = new Map()));
      if (record) byKey.set(change.key, record);
      else byKey.delete(change.key);
      this.changes.push(change);
      this.rev = change.revision;
    }
    if (this.changes.length > CHANGE_LOG_SIZE) this.changes = this.changes.slice(-CHANGE_LOG_SIZE);
    this.hub.notify();
    return this.rev;
  }

  watch<T = unknown>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void): StoreWatch {
    return this.hub.watch(kind, fromRevision, onChange as (c: StoreChange) => void, () => undefined);
  }

  appendEvent(event: NewStoreEvent): StoredEvent {
    const stored: StoredEvent = {
      seq: ++this.seq,
      timeNano: event.timeNano ?? BigInt(Date.now()) * 1_000_000n,
      type: event.type,
      action: event.action,
      actorId: event.actorId,
      attributes: { ...event.attributes },
    };
    this.log.push(stored);
    if (this.log.length > EVENT_LOG_SIZE) this.log = this.log.slice(-EVENT_LOG_SIZE);
    return clone(stored);
  }

  events(query: EventQuery = {}): StoredEvent[] {
    const after = query.afterSeq ?? 0;
    return this.log
      .filter(
        (e) =>
          e.seq > after &&
          (query.sinceNs === undefined || e.timeNano >= query.sinceNs) &&
          (query.untilNs === undefined || e.timeNano <= query.untilNs),
      )
      .map(clone);
  }

  close(): void {
    /* nothing to release */
  }
}

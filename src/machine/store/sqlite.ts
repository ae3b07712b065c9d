/**
 * The state store in SQLite: the machine database (<stateDir>/machine.db, db.ts), which the daemon and CLI
 * processes open together (WAL). Records are rows (kind, key, value JSON, revision, create_revision); every change
 * is also a row of the change log, kept for the last CHANGE_LOG_SIZE revisions; the revision counter is a row of
 * store_meta. A commit checks its expected revisions and writes inside one IMMEDIATE transaction, so it is atomic
 * against other processes too.
 *
 * Watches are fed from the change log: this process's own writes notify them at once, and while any watch is open
 * the counter is polled (every `pollMs`) so that other processes' writes reach them too.
 *
 * SQLite's "disk full" (SQLITE_FULL) is STORE_FULL; nothing of the failed commit is written.
 */
import {
  BosonError,
  CHANGE_LOG_SIZE,
  EVENT_LOG_SIZE,
  planCommit,
  WatchHub,
  type EventQuery,
  type NewStoreEvent,
  type StateStore,
  type StoreChange,
  type StoredEvent,
  type StoredRecord,
  type StoreOp,
  type StoreWatch,
} from '../../common/index.ts';
import { openMachineDb, type MachineDb } from './db.ts';

interface RecordRow {
  kind: string;
  key: string;
  value: string;
  revision: number;
  create_revision: number;
}

const toRecord = <T>(r: RecordRow): StoredRecord<T> => ({
  kind: r.kind,
  key: r.key,
  value: JSON.parse(r.value) as T,
  revision: r.revision,
  createRevision: r.create_revision,
});

/** Turns SQLite's disk-full error into STORE_FULL. */
function storeError(cause: unknown, what: string): unknown {
  if ((cause as { code?: string }).code === 'SQLITE_FULL')
    return new BosonError('STORE_FULL', `the disk holding the state store is full: cannot ${what}`, { cause });
  return cause;
}

/** A StateStore in a machine database. */
export class SqliteStateStore implements StateStore {
  private readonly hub: WatchHub;
  private poll: NodeJS.Timeout | undefined;
  private polledRevision = 0;
  private readonly pollMs: number;
  private readonly stmt;

  /** `db`: an open, migrated machine database (openMachineDb), which the store closes on close(). */
  constructor(
    readonly db: MachineDb,
    opts: { pollMs?: number } = {},
  ) {
    this.pollMs = opts.pollMs ?? 500;
    this.stmt = {
      revision: db.prepare("SELECT value FROM store_meta WHERE name = 'revision'").pluck(),
      setRevision: db.prepare("UPDATE store_meta SET value = ? WHERE name = 'revision'"),
      get: db.prepare('SELECT * FROM records WHERE kind = ? AND key = ?'),
      list: db.prepare('SELECT * FROM records WHERE kind = ? ORDER BY key'),
      listPrefix: db.prepare('SELECT * FROM records WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key'),
      upsert: db.prepare('INSERT OR REPLACE INTO records (kind, key, value, revision, create_revision) VALUES (?, ?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM records WHERE kind = ? AND key = ?'),
      logChange: db.prepare('INSERT INTO changes (revision, kind, key, type, value) VALUES (?, ?, ?, ?, ?)'),
      trimChanges: db.prepare('DELETE FROM changes WHERE revision <= ?'),
      changesAfter: db.prepare('SELECT * FROM changes WHERE kind = ? AND revision > ? ORDER BY revision LIMIT ?'),
      appendEvent: db.prepare('INSERT INTO events (time_ns, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)'),
      trimEvents: db.prepare('DELETE FROM events WHERE seq <= ?'),
      events: db.prepare('SELECT * FROM events WHERE seq > ? AND time_ns >= ? AND time_ns <= ? ORDER BY seq').safeIntegers(true),
    };
    this.hub = new WatchHub({
      revision: () => this.revision(),
      changesAfter: (kind, after, limit) =>
        (
          this.stmt.changesAfter.all(kind, after, limit) as Array<{
            revision: number;
            kind: string;
            key: string;
            type: 'put' | 'delete';
            value: string;
          }>
        ).map((c) => ({
          type: c.type,
          kind: c.kind,
          key: c.key,
          value: JSON.parse(c.value) as unknown,
          revision: c.revision,
        })),
    });
  }

  revision(): number {
    return this.stmt.revision.get() as number;
  }

  get<T = unknown>(kind: string, key: string): StoredRecord<T> | undefined {
    const row = this.stmt.get.get(kind, key) as RecordRow | undefined;
    return row ? toRecord<T>(row) : undefined;
  }

  list<T = unknown>(kind: string, opts: { prefix?: string } = {}): StoredRecord<T>[] {
    const rows = (opts.prefix ? this.stmt.listPrefix.all(kind, opts.prefix.length, opts.prefix) : this.stmt.list.all(kind)) as RecordRow[];
    return rows.map((r) => toRecord<T>(r));
  }

  put(kind: string, key: string, value: unknown, opts: { expectRevision?: number } = {}): number {
    return this.commit([{ op: 'put', kind, key, value, expectRevision: opts.expectRevision }]);
  }

  delete(kind: string, key: string, opts: { expectRevision?: number } = {}): boolean {
    let deleted = false;
    this.commitWith([{ op: 'delete', kind, key, expectRevision: opts.expectRevision }], (n) => (deleted = n > 0));
    return deleted;
  }

  commit(ops: StoreOp[]): number {
    return this.commitWith(ops, () => undefined);
  }

  private commitWith(ops: StoreOp[], written: (n: number) => void): number {
    let after = 0;
    try {
      this.db
        .transaction(() => {
          const before = this.revision();
          const writes = planCommit(ops, before, (kind, key) => this.get(kind, key));
          after = before;
          for (const { change, record } of writes) {
            if (record) this.stmt.upsert.run(record.kind, record.key, JSON.stringify(record.value), record.revision, record.createRevision);
            else this.stmt.remove.run(change.kind, change.key);
            this.stmt.logChange.run(change.revision, change.kind, change.key, change.type, JSON.stringify(change.value));
            after = change.revision;
          }
          if (after !== before) {
            this.stmt.setRevision.run(after);
            if (after - CHANGE_LOG_SIZE > 0) this.stmt.trimChanges.run(after - CHANGE_LOG_SIZE);
          }
          written(writes.length);
        })
        .immediate();
    } catch (cause) {
      throw storeError(cause, `write ${ops.map((o) => `${o.kind} ${o.key}`).join(', ')}`);
    }
    this.hub.notify();
    return after;
  }

  watch<T = unknown>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void): StoreWatch {
    const w = this.hub.watch(kind, fromRevision, onChange as (c: StoreChange) => void, () => {
      clearInterval(this.poll);
      this.poll = undefined;
    });
    this.poll ??= setInterval(() => {
      const rev = this.revision();
      if (rev !== this.polledRevision) {
        this.polledRevision = rev;
        this.hub.notify();
      }
    }, this.pollMs).unref();
    return w;
  }

  appendEvent(event: NewStoreEvent): StoredEvent {
    const timeNano = event.timeNano ?? BigInt(Date.now()) * 1_000_000n;
    try {
      const info = this.stmt.appendEvent.run(timeNano, event.type, event.action, event.actorId, JSON.stringify(event.attributes));
      const seq = Number(info.lastInsertRowid);
      if (seq > EVENT_LOG_SIZE) this.stmt.trimEvents.run(seq - EVENT_LOG_SIZE);
      return { seq, timeNano, type: event.type, action: event.action, actorId: event.actorId, attributes: { ...event.attributes } };
    } catch (cause) {
      throw storeError(cause, `record the event ${event.type} ${event.action}`);
    }
  }

  events(query: EventQuery = {}): StoredEvent[] {
    const rows = this.stmt.events.all(query.afterSeq ?? 0, query.sinceNs ?? 0n, query.untilNs ?? 9_223_372_036_854_775_807n) as Array<{
      seq: bigint;
      time_ns: bigint;
      type: string;
      action: string;
      actor_id: string;
      attributes: string;
    }>;
    return rows.map((r) => ({
      seq: Number(r.seq),
      timeNano: r.time_ns,
      type: r.type,
      action: r.action,
      actorId: r.actor_id,
      attributes: JSON.parse(r.attributes) as Record<string, string>,
    }));
  }

  /**
   * Every record of every kind, in the order they were created (createRevision), and every event, read in one
   * transaction: one consistent state, however other processes write meanwhile (the copy of `boson controller
   * migrate`). Not in the contract: only a local store can list its kinds cheaply.
   */
  snapshot(): { revision: number; records: StoredRecord[]; events: StoredEvent[] } {
    return this.db.transaction(() => ({
      revision: this.revision(),
      records: (this.db.prepare('SELECT * FROM records ORDER BY create_revision, kind, key').all() as RecordRow[]).map((r) => toRecord(r)),
      events: this.events(),
    }))();
  }

  close(): void {
    clearInterval(this.poll);
    this.poll = undefined;
    if (this.db.open) this.db.close();
  }
}

/**
 * Opens the state store of `stateDir` (<stateDir>/machine.db, or `file`: the controller keeps its own,
 * controller.db); STATE_DIR_UNWRITABLE when it cannot.
 */
export function openStateStore(stateDir: string, opts: { pollMs?: number; file?: string } = {}): SqliteStateStore {
  return new SqliteStateStore(openMachineDb(stateDir, undefined, opts.file), opts);
}

/**
 * `boson controller migrate`: carries a controller's state from its SQLite file (<state dir>/controller.db) into
 * etcd, so that a user who outgrows one host starts `boson controller --etcd …` with everything there: tenants,
 * projects, quotas and usage, flavors, users, hashed tokens, tasks, idempotency keys, machines and join tokens, the
 * fleet's CAs, container records, leases, placements, volumes and networks — every record, of every kind, with its
 * kind, key and value exactly as it was, and the event log.
 *
 * The steps, each refusing with nothing written:
 * 1. The SQLite file must exist, and no controller may be using it: the migration takes the lock a controller holds
 *    on it (<controller.db>.lock, DAEMON_ALREADY_RUNNING naming the holder) and keeps it to the end, so no
 *    controller starts on the file while it is copied. The records are read in one SQLite transaction.
 * 2. etcd must answer (STORE_UNAVAILABLE), and its prefix must hold no record and no event (STORE_NOT_EMPTY): a
 *    migration never overwrites or merges, so a second run, or a run after a controller already started on etcd,
 *    stops here. A different --etcd-prefix is the way to keep several states in one etcd.
 * 3. A marker record (MIGRATION_MARKER) is created first (compare-and-swap: of two migrations racing for one
 *    prefix, one goes on); a controller refuses to start while it is there (STORE_MIGRATION_INCOMPLETE).
 * 4. The records are written in batches that fit etcd's default --max-txn-ops (128), each put expecting the record
 *    to be absent, in the order they were created in SQLite, then the events, in order.
 * 5. What etcd now holds is read back and compared with the source, kind by kind; then the marker is removed.
 * If a step after 3 fails, what this run wrote is removed again (the marker last); if even that fails, the marker
 * stays and the error says how to clear the prefix.
 *
 * Revisions are the etcd store's own (1, 2, 3… in the copy's order): nothing of the controller keeps a store
 * revision inside a value (compare-and-swap reads the revision it then expects; task and container leases are
 * times and owners; idempotency keys hold their claim's revision only during the request), and the copy keeps
 * the order of createRevision, which task listings and project volumes and networks sort by. Event sequence
 * numbers are also the new store's own; their times are kept.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BosonError, type StoredEvent, type StoredRecord, type StoreOp } from '../common/index.ts';
import { ADMIN_USER, KINDS } from '../controller/index.ts';
import { SqliteStateStore, openStateStore, type EtcdStateStore } from '../machine/index.ts';
import type { ControllerEtcd } from './config.ts';
import { lockControllerDb, MIGRATION_MARKER, openControllerEtcd } from './controller.ts';

/** What to migrate: the SQLite file and the etcd target (as `boson controller --etcd` reaches it). */
export interface MigrationRequest {
  from: string;
  to: ControllerEtcd;
  /** Called after each batch written: records (and then events) copied so far, of `total`. */
  onProgress?: (done: number, total: number) => void;
  /** Records per etcd transaction (default 50: about 2 operations each, under etcd's default --max-txn-ops of 128). */
  batchSize?: number;
}

/** What a migration copied. */
export interface MigrationSummary {
  from: string;
  to: { endpoints: string[]; prefix: string };
  records: number;
  events: number;
  /** Records per kind, by kind. */
  kinds: Record<string, number>;
}

/** A batch stays under this many bytes of JSON (each value is written twice: the record and the change log). */
const BATCH_BYTES = 256 * 1024;

/** Splits `records` into batches of at most `size` records and BATCH_BYTES of values (a larger record alone). */
function batches(records: StoredRecord[], size: number): StoredRecord[][] {
  const out: StoredRecord[][] = [];
  let cur: StoredRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const b = JSON.stringify(r.value).length + r.key.length + r.kind.length;
    if (cur.length > 0 && (cur.length >= size || bytes + b > BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(r);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Records per kind. */
function countKinds(records: StoredRecord[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const r of [...records].sort((a, b) => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0))) kinds[r.kind] = (kinds[r.kind] ?? 0) + 1;
  return kinds;
}

/**
 * Reads the SQLite file at `file` (which must exist): its records in creation order and its events. INVALID_ARGUMENT
 * when it is not a controller's database (every controller's holds its admin user from its first start; a
 * machine's machine.db does not).
 */
function readSource(file: string): { records: StoredRecord[]; events: StoredEvent[] } {
  let sqlite: SqliteStateStore | undefined;
  try {
    sqlite = openStateStore(path.dirname(file), { file: path.basename(file) });
    const snap = sqlite.snapshot();
    if (!snap.records.some((r) => r.kind === KINDS.user && r.key === ADMIN_USER))
      throw new BosonError('INVALID_ARGUMENT', `${file} is not a Boson controller's database (it has no controller user ${ADMIN_USER})`);
    return { records: snap.records, events: snap.events };
  } finally {
    sqlite?.close();
  }
}

/** Compares what `target` holds with `records` and `events`, kind by kind; the first difference, or null. */
async function difference(target: EtcdStateStore, records: StoredRecord[], events: StoredEvent[]): Promise<string | null> {
  const byKind = new Map<string, StoredRecord[]>();
  for (const r of records) byKind.set(r.kind, [...(byKind.get(r.kind) ?? []), r]);
  for (const [kind, want] of byKind) {
    const have = new Map((await target.list(kind)).map((r) => [r.key, JSON.stringify(r.value)]));
    if (have.size !== want.length) return `${kind}: ${have.size} records in etcd, ${want.length} in SQLite`;
    for (const r of want) if (have.get(r.key) !== JSON.stringify(r.value)) return `${kind} ${r.key} differs`;
  }
  const copied = await target.events();
  if (copied.length !== events.length) return `${copied.length} events in etcd, ${events.length} in SQLite`;
  return null;
}

/**
 * Copies the controller's state from the SQLite file `request.from` into etcd (see the module comment); resolves
 * with what was copied. DAEMON_ALREADY_RUNNING while a controller uses the file, STORE_UNAVAILABLE when etcd does
 * not answer, STORE_NOT_EMPTY when the prefix holds anything: in those cases nothing is written.
 */
export async function migrateControllerToEtcd(request: MigrationRequest): Promise<MigrationSummary> {
  const from = path.resolve(request.from);
  if (!existsSync(from)) throw new BosonError('INVALID_ARGUMENT', `no controller database at ${from} (--from names a controller.db)`);
  const lock = await lockControllerDb(from);
  try {
    const { records, events } = readSource(from);
    const { store: target, where } = await openControllerEtcd(request.to);
    try {
      const held = await target.occupancy();
      if (held.records > 0 || held.events > 0) {
        const partial = await target.get(MIGRATION_MARKER.kind, MIGRATION_MARKER.key);
        throw new BosonError(
          'STORE_NOT_EMPTY',
          `${where} already holds ${held.records} record(s) and ${held.events} event(s)${partial ? ' (of a migration that did not complete)' : ''}: ` +
            `a migration writes only into an empty prefix; nothing was written (another --etcd-prefix, or etcdctl del --prefix ${request.to.prefix}, if that state is not wanted)`,
          { details: { ...held, prefix: request.to.prefix } },
        );
      }
      const summary: MigrationSummary = {
        from,
        to: { endpoints: request.to.endpoints, prefix: request.to.prefix },
        records: records.length,
        events: events.length,
        kinds: countKinds(records),
      };
      await copy(target, where, request, records, events);
      return summary;
    } finally {
      await target.close().catch(() => undefined);
    }
  } finally {
    lock.release();
  }
}

/** Steps 3 to 5 of the module comment, on an empty target. */
async function copy(
  target: EtcdStateStore,
  where: string,
  request: MigrationRequest,
  records: StoredRecord[],
  events: StoredEvent[],
): Promise<void> {
  const marker = { from: path.resolve(request.from), host: os.hostname(), startedAt: new Date().toISOString(), records: records.length };
  let markerRevision: number;
  try {
    markerRevision = await target.put(MIGRATION_MARKER.kind, MIGRATION_MARKER.key, marker, { expectRevision: 0 });
  } catch (err) {
    if (err instanceof BosonError && err.code === 'STORE_CONFLICT')
      throw new BosonError('STORE_NOT_EMPTY', `another migration into ${where} started at the same time; nothing was written`, {
        cause: err,
      });
    throw err;
  }
  const written: Array<{ kind: string; key: string; revision: number }> = [];
  const total = records.length + events.length;
  try {
    let done = 0;
    for (const batch of batches(records, request.batchSize ?? 50)) {
      const ops: StoreOp[] = batch.map((r) => ({ op: 'put', kind: r.kind, key: r.key, value: r.value, expectRevision: 0 }));
      const after = await target.commit(ops);
      // Each put of a commit takes the next revision, in order.
      batch.forEach((r, i) => written.push({ kind: r.kind, key: r.key, revision: after - batch.length + 1 + i }));
      done += batch.length;
      request.onProgress?.(done, total);
    }
    for (const e of events) {
      await target.appendEvent({ type: e.type, action: e.action, actorId: e.actorId, attributes: e.attributes, timeNano: e.timeNano });
      request.onProgress?.(++done, total);
    }
    const diff = await difference(target, records, events);
    if (diff !== null) throw new BosonError('INTERNAL', `the copy in ${where} does not read back as the SQLite file: ${diff}`);
    await target.delete(MIGRATION_MARKER.kind, MIGRATION_MARKER.key, { expectRevision: markerRevision });
  } catch (err) {
    const undone = await undo(target, written, markerRevision);
    const message = (err as Error).message;
    if (undone === null)
      throw new BosonError(
        err instanceof BosonError ? err.code : 'INTERNAL',
        `the migration into ${where} failed, and what it wrote was removed again: ${message}`,
        { cause: err, details: err instanceof BosonError ? err.details : undefined },
      );
    throw new BosonError(
      err instanceof BosonError ? err.code : 'INTERNAL',
      `the migration into ${where} failed (${message}), and what it wrote could not be removed (${undone}): ` +
        `the prefix holds a partial copy, on which no controller starts; remove it (etcdctl del --prefix ${request.to.prefix}) and migrate again`,
      { cause: err, details: err instanceof BosonError ? err.details : undefined },
    );
  }
}

/**
 * Removes what a failed copy wrote (each record only at the revision it was written at), then, when nothing else
 * is left, the marker; null when all is gone, else why not. Copied events cannot be removed through the store (an
 * append-only log): when there are any, the marker stays and the caller says how to clear the prefix.
 */
async function undo(
  target: EtcdStateStore,
  written: Array<{ kind: string; key: string; revision: number }>,
  markerRevision: number,
): Promise<string | null> {
  try {
    for (let i = 0; i < written.length; i += 50) {
      const ops: StoreOp[] = written.slice(i, i + 50).map((w) => ({ op: 'delete', kind: w.kind, key: w.key, expectRevision: w.revision }));
      await target.commit(ops);
    }
    const left = await target.occupancy();
    if (left.records !== 1 || left.events > 0) return `${left.records - 1} record(s) and ${left.events} event(s) are left`;
    await target.delete(MIGRATION_MARKER.kind, MIGRATION_MARKER.key, { expectRevision: markerRevision });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

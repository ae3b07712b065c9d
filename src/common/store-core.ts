/**
 * What the state store implementations share (memory here, SQLite in src/machine/store, etcd later): checking a commit's expected revisions and turning its operations
 * into changes (plan), and delivering changes to watches in revision order (WatchHub).
 */
import { BosonError } from './errors.ts';
import { CHANGE_LOG_SIZE, StoreConflictError, type StoreChange, type StoreOp, type StoredRecord, type StoreWatch } from './store.ts';

/** One write a commit makes: the change, and the record as it is after it (undefined for a delete). */
export interface PlannedWrite {
  change: StoreChange;
  record: StoredRecord | undefined;
}

/**
 * Checks `ops` against the records `read` returns (later operations see earlier ones of the same commit) and
 * gives each write the next revision after `revision`. Throws StoreConflictError (nothing is written) when an
 * expected revision does not hold, and INVALID_ARGUMENT for a value JSON cannot carry.
 */
export function planCommit(
  ops: StoreOp[],
  revision: number,
  read: (kind: string, key: string) => StoredRecord | undefined,
): PlannedWrite[] {
  const overlay = new Map<string, StoredRecord | undefined>();
  const id = (kind: string, key: string): string => `${kind}\u0000${key}`;
  const current = (kind: string, key: string): StoredRecord | undefined => {
    const k = id(kind, key);
    return overlay.has(k) ? overlay.get(k) : read(kind, key);
  };
  const writes: PlannedWrite[] = [];
  for (const op of ops) {
    if (!op.kind || typeof op.key !== 'string') throw new BosonError('INVALID_ARGUMENT', 'a store operation needs a kind and a key');
    const have = current(op.kind, op.key);
    const actual = have?.revision ?? 0;
    if (op.expectRevision !== undefined && op.expectRevision !== actual)
      throw new StoreConflictError(op.kind, op.key, op.expectRevision, actual);
    if (op.op === 'check') continue;
    if (op.op === 'delete') {
      if (!have) continue;
      revision += 1;
      overlay.set(id(op.kind, op.key), undefined);
      writes.push({ change: { type: 'delete', kind: op.kind, key: op.key, value: have.value, revision }, record: undefined });
      continue;
    }
    const text = JSON.stringify(op.value);
    if (text === undefined) throw new BosonError('INVALID_ARGUMENT', `store value of ${op.kind} ${op.key} is not JSON`);
    revision += 1;
    const record: StoredRecord = {
      kind: op.kind,
      key: op.key,
      value: JSON.parse(text) as unknown,
      revision,
      createRevision: have?.createRevision ?? revision,
    };
    overlay.set(id(op.kind, op.key), record);
    writes.push({ change: { type: 'put', kind: op.kind, key: op.key, value: record.value, revision }, record });
  }
  return writes;
}

/** Where a hub reads changes from. */
export interface ChangeSource {
  /** Changes of `kind` with revisions above `after`, in order, at most `limit`. */
  changesAfter(kind: string, after: number, limit: number): StoreChange[];
  /** The store's current revision. */
  revision(): number;
}

interface Watcher {
  kind: string;
  last: number;
  onChange: (change: StoreChange) => void;
  cancelled: boolean;
  scheduled: boolean;
}

/** The oldest revision a watch can start from: changes up to it are gone from the log. */
export function compactedRevision(revision: number): number {
  return Math.max(0, revision - CHANGE_LOG_SIZE);
}

/**
 * Delivers changes to watches. A notification only says "there may be news": each watch reads the change log
 * from the last revision it delivered, so a watch sees every change once, in order, whoever wrote it, and a
 * callback that writes to the store never sees changes out of order (delivery runs in a microtask, one at a time).
 */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();

  constructor(private readonly source: ChangeSource) {}

  get size(): number {
    return this.watchers.size;
  }

  watch(kind: string, fromRevision: number, onChange: (change: StoreChange) => void, onEmpty: () => void): StoreWatch {
    const compacted = compactedRevision(this.source.revision());
    if (fromRevision < compacted) {
      throw new BosonError(
        'STORE_COMPACTED',
        `cannot watch ${kind} from revision ${fromRevision}: changes up to ${compacted} are compacted`,
        { details: { kind, fromRevision, compacted } },
      );
    }
    const w: Watcher = { kind, last: fromRevision, onChange, cancelled: false, scheduled: false };
    this.watchers.add(w);
    this.schedule(w);
    return {
      cancel: () => {
        w.cancelled = true;
        this.watchers.delete(w);
        if (this.watchers.size === 0) onEmpty();
      },
    };
  }

  /** Something may have changed: every watch reads the log again. */
  notify(): void {
    for (const w of this.watchers) this.schedule(w);
  }

  private schedule(w: Watcher): void {
    if (w.scheduled || w.cancelled) return;
    w.scheduled = true;
    queueMicrotask(() => {
      w.scheduled = false;
      this.drain(w);
    });
  }

  private drain(w: Watcher): void {
    while (!w.cancelled) {
      const revision = this.source.revision();
      if (w.last < compactedRevision(revision)) {
        process.emitWarning(`a store watch of ${w.kind} fell behind the change log (at revision ${w.last}); it is cancelled`);
        w.cancelled = true;
        this.watchers.delete(w);
        return;
      }
      const batch = this.source.changesAfter(w.kind, w.last, 500);
      if (batch.length === 0) {
        // Nothing of this kind up to `revision` (read before the changes, so every change up to it was visible): the
        // watch is current there. Without this, a watch of a quiet kind fell "behind" the log after 10,000 changes
        // of other kinds and was cancelled (found by bench/controller.ts: the scheduler's machine watches).
        w.last = Math.max(w.last, revision);
        return;
      }
      for (const change of batch) {
        if (w.cancelled) return;
        w.last = change.revision;
        try {
          w.onChange(change);
        } catch (err) {
          process.emitWarning(`a store watch callback of ${w.kind} threw: ${(err as Error).message}`);
        }
      }
    }
  }
}

/**
 * The state store contract: one small, generic record store for everything a layer keeps (containers, volumes,
 * networks, images, events), shaped like etcd's key space so that an etcd implementation can follow.
 *
 * - A record is (kind, key) -> a JSON value, with `revision`: the store-wide counter value of its last change
 *   (etcd's mod_revision) and `createRevision` (etcd's create_revision). Every change takes the next revision, so
 *   revisions are unique, and increase in the order changes were made.
 * - Writes compare and swap: `expectRevision` 0 means "must not exist", N means "must still be at revision N";
 *   otherwise STORE_CONFLICT (StoreConflictError) and nothing is written. `commit` applies several operations
 *   (puts, deletes and plain checks) all or nothing, like an etcd transaction with compares.
 * - `watch(kind, fromRevision, onChange)` delivers every change of that kind with a revision above `fromRevision`,
 *   in revision order, asynchronously, until cancelled. The change log is kept for the last CHANGE_LOG_SIZE
 *   revisions; watching from before that is STORE_COMPACTED (as etcd's compaction).
 * - Events are append-only, with their own sequence (the event log of the Docker API), read back by sequence and
 *   time.
 *
 * The methods are synchronous: both implementations a machine uses are local (SQLite in <stateDir>/machine.db,
 * and memory for tests), and the container registry's reads are synchronous. A remote implementation (etcd, the
 * controller's) offers the same methods returning promises (`AsyncStateStore`); the conformance suite awaits every
 * call, so one suite checks both forms; `asyncStore` (store-async.ts) gives a synchronous store the promise form.
 * Implementations live in src/machine/store/ (SQLite, etcd) and src/common (memory), and are built by src/main.
 */
import { BosonError } from './errors.ts';

/** A stored record. `value` is a parsed JSON value. */
export interface StoredRecord<T = unknown> {
  kind: string;
  key: string;
  value: T;
  /** The store revision of its last change (etcd's mod_revision). */
  revision: number;
  /** The store revision that created it (etcd's create_revision). */
  createRevision: number;
}

/** One operation of a commit. `expectRevision`: 0 = must not exist, N = must be at N, undefined = no check. */
export type StoreOp =
  | { op: 'put'; kind: string; key: string; value: unknown; expectRevision?: number }
  | { op: 'delete'; kind: string; key: string; expectRevision?: number }
  /** A compare without a write: the record must be at `expectRevision` (0: must not exist). */
  | { op: 'check'; kind: string; key: string; expectRevision: number };

/** One change seen by a watch. `value` is the new value of a put, and the last value of a deleted record. */
export interface StoreChange<T = unknown> {
  type: 'put' | 'delete';
  kind: string;
  key: string;
  value: T;
  revision: number;
}

/** A running watch. */
export interface StoreWatch {
  cancel(): void;
}

/** An event to append. `timeNano` defaults to now. */
export interface NewStoreEvent {
  type: string;
  action: string;
  actorId: string;
  attributes: Record<string, string>;
  timeNano?: bigint;
}

/** An appended event, with its sequence number (increasing, never reused). */
export interface StoredEvent extends Required<NewStoreEvent> {
  seq: number;
}

/** Which events to read: sequence above `afterSeq`, time within [sinceNs, untilNs]. */
export interface EventQuery {
  afterSeq?: number;
  sinceNs?: bigint;
  untilNs?: bigint;
}

/** The state store (see the module comment). */
export interface StateStore {
  /** The current store revision (0 for an empty store). */
  revision(): number;
  get<T = unknown>(kind: string, key: string): StoredRecord<T> | undefined;
  /** Records of `kind` (only keys starting with `prefix`, when given), by key. */
  list<T = unknown>(kind: string, opts?: { prefix?: string }): StoredRecord<T>[];
  /** Creates or replaces a record; returns its new revision. STORE_CONFLICT when `expectRevision` does not hold. */
  put(kind: string, key: string, value: unknown, opts?: { expectRevision?: number }): number;
  /** Deletes a record; false when there was none. STORE_CONFLICT when `expectRevision` does not hold. */
  delete(kind: string, key: string, opts?: { expectRevision?: number }): boolean;
  /** Applies `ops` atomically (each write takes the next revision); returns the store revision after it. */
  commit(ops: StoreOp[]): number;
  /** Delivers every change of `kind` after `fromRevision`, in order, asynchronously, until cancelled. */
  watch<T = unknown>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void): StoreWatch;
  /** Appends an event to the event log (which keeps the newest EVENT_LOG_SIZE). */
  appendEvent(event: NewStoreEvent): StoredEvent;
  /** Events matching `query`, by sequence. */
  events(query?: EventQuery): StoredEvent[];
  close(): void;
}

/** The same contract with promises, for a remote store (etcd); spelled out so that the typed reads keep their type parameter. */
export interface AsyncStateStore {
  revision(): Promise<number>;
  get<T = unknown>(kind: string, key: string): Promise<StoredRecord<T> | undefined>;
  list<T = unknown>(kind: string, opts?: { prefix?: string }): Promise<StoredRecord<T>[]>;
  put(kind: string, key: string, value: unknown, opts?: { expectRevision?: number }): Promise<number>;
  delete(kind: string, key: string, opts?: { expectRevision?: number }): Promise<boolean>;
  commit(ops: StoreOp[]): Promise<number>;
  watch<T = unknown>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void): Promise<StoreWatch>;
  appendEvent(event: NewStoreEvent): Promise<StoredEvent>;
  events(query?: EventQuery): Promise<StoredEvent[]>;
  close(): Promise<void>;
}

/** How many revisions of changes a store keeps for watches. */
export const CHANGE_LOG_SIZE = 10_000;
/** How many events a store keeps. */
export const EVENT_LOG_SIZE = 10_000;

/** A write whose expected revision did not hold (another writer was first). */
export class StoreConflictError extends BosonError {
  constructor(
    readonly storeKind: string,
    readonly key: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      'STORE_CONFLICT',
      `${storeKind} ${key}: expected revision ${expected === 0 ? '0 (absent)' : expected}, found ${actual === 0 ? 'none' : actual}`,
      {
        details: { kind: storeKind, key, expected, actual },
      },
    );
  }
}

/** True for a StoreConflictError. */
export function isStoreConflict(err: unknown): err is StoreConflictError {
  return err instanceof StoreConflictError;
}

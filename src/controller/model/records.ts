/**
 * How the controller's objects lie in the state store (the key space the SQLite, memory and etcd stores share):
 * one kind per object, keys that list by prefix (a tenant's projects are `tenant/…`), and a compare-and-swap loop
 * for read-decide-commit operations. Nothing here is held in process memory: a second replica sees the same.
 */
import { BosonError, isStoreConflict, type AsyncStateStore, type StoredRecord } from '../../common/index.ts';
import type { Flavor, Grant, Limits, Task, User } from './schemas.ts';

/** The store kinds of the controller. */
export const KINDS = {
  tenant: 'ctl.tenant',
  project: 'ctl.project',
  usage: 'ctl.usage',
  flavor: 'ctl.flavor',
  user: 'ctl.user',
  token: 'ctl.token',
  task: 'ctl.task',
  idempotency: 'ctl.idempotency',
} as const;

/** A tenant as stored. */
export interface TenantRecord {
  name: string;
  limits: Limits;
  /** The sum of its projects' limits (kept in the tenant record, so that carving is one compare-and-swap). */
  allocated: Limits;
  createdAt: string;
}

/** A project as stored (its usage is a record of its own, so that reservations do not contend with edits). */
export interface ProjectRecord {
  tenant: string;
  name: string;
  limits: Limits;
  createdAt: string;
}

/** A project's usage: every reservation by id, and their sum. */
export interface UsageRecord {
  reservations: Record<string, Limits>;
  used: Limits;
}

/** A token as stored: a SHA-256 of its secret, never the secret. */
export interface TokenRecord {
  id: string;
  user: string;
  grant: Grant;
  description: string;
  createdAt: string;
  expiresAt?: string;
  /** hex SHA-256 of the secret part of the token. */
  hash: string;
}

export type FlavorRecord = Flavor;
export type UserRecord = User;
/** A task as stored: what the API shows, and the parameters its kind's runner needs to run (or resume) it anywhere. */
export type TaskRecord = Task & { params?: Record<string, unknown> };

/** The store key of a project. */
export const projectKey = (tenant: string, project: string): string => `${tenant}/${project}`;

/** The time now, RFC 3339. */
export const now = (): string => new Date().toISOString();

/**
 * Runs `attempt` until its commit does not conflict (another writer was first: read again and decide again), at
 * most `tries` times, backing off a little more each time. Throws what `attempt` throws otherwise.
 */
export async function casLoop<T>(what: string, attempt: () => Promise<T>, tries = 200): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isStoreConflict(err)) throw err;
      if (i >= tries) throw new BosonError('STORE_CONFLICT', `${what}: still contended after ${tries} attempts`, { cause: err });
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, i * 2)));
    }
  }
}

/** The record, or a NotFound error from `missing`. */
export async function must<T>(store: AsyncStateStore, kind: string, key: string, missing: () => BosonError): Promise<StoredRecord<T>> {
  const r = await store.get<T>(kind, key);
  if (!r) throw missing();
  return r;
}

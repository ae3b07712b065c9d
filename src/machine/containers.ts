/**
 * The host's record of its containers, in the machine database: ids, unique names, configuration and last known
 * state. Names are unique by constraint, so two creates cannot take the same name.
 *
 * A full disk under the database does not stop a container's life: a change to an existing record (a stop, an
 * exit, a removal) that SQLite cannot write is kept in memory, shown by every read, and written as soon as the
 * disk has room again (retried every second, and on close). A new record is refused with HOST_CAPACITY_EXCEEDED.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import type { ProcessConfig } from './container-config.ts';
import type { ContainerState, MountSpec, PortBinding, RestartPolicy } from './port/index.ts';

export type { ContainerState, RestartPolicy };
import { openMachineDb, type MachineDb } from './store/db.ts';

/** What is known about one container. */
export interface ContainerRecord {
  id: string;
  name: string;
  image: string;
  imageId: string;
  created: string;
  config: ProcessConfig & { tty: boolean; openStdin: boolean; labels: Record<string, string> };
  resources: { memoryMiB: number; cpus: number };
  autoRemove: boolean;
  restartPolicy: RestartPolicy;
  restartCount: number;
  /** True for containers a daemon supervises (detached micro-VMs); false for an embedded runtime's (`boson run` without a daemon). */
  managed: boolean;
  state: ContainerState;
  /** pid of the embedded runtime's process that supervises the VM (unmanaged containers). */
  ownerPid: number | null;
  /** pid of the QEMU process, while running. */
  vmPid: number | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Set by an explicit stop, so that `unless-stopped` and `always` know not to restart after a daemon restart. */
  stoppedByUser: boolean;
  /** Volumes and bind mounts (anonymous volumes carry their generated names). */
  mounts: MountSpec[];
  /** The network it joins ("none" for no network), and the ports it asked to publish (host port 0 = any). */
  network: string;
  ports: PortBinding[];
  /** While running: its address and the host ports actually published. */
  endpoint: { network: string; address: string; gateway: string; mac: string; ports: PortBinding[] } | null;
  /** Only in the daemon's answers, never stored: why the running VM is paused (the host's disk is full). */
  pausedReason?: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Throws INVALID_ARGUMENT unless `name` is a valid container name (Docker's rule). */
export function validateContainerName(name: string): void {
  if (!NAME_RE.test(name) || name.length > 128) {
    throw new BosonError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

/** Generates a 64-hex container id. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** True if `pid` is a live process. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One entry of the event log. */
export interface MachineEvent {
  seq: number;
  timeNano: bigint;
  type: 'container' | 'image' | 'network' | 'volume';
  action: string;
  actorId: string;
  attributes: Record<string, string>;
}

/** SQLite's answer when the disk (or the database's size limit) is full. */
function isDiskFull(err: unknown): boolean {
  return (err as { code?: string }).code === 'SQLITE_FULL';
}

/** How often changes the disk had no room for are written again. */
const UNWRITTEN_RETRY_MS = 1000;

/** Container records in the machine database. */
export class ContainerRegistry {
  private readonly dir: string;
  private dbHandle: MachineDb | undefined;
  /** Records changed while the disk was full, by id, newest version; and ids removed then. */
  private readonly unwritten = new Map<string, ContainerRecord>();
  private readonly unremoved = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly stateDir: string) {
    this.dir = path.join(stateDir, 'containers');
  }

  private get db(): MachineDb {
    this.dbHandle ??= openMachineDb(this.stateDir);
    return this.dbHandle;
  }

  /** Opens the database and creates the directories; STATE_DIR_UNWRITABLE if that is impossible. */
  async init(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (cause) {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot write container state in ${this.dir}: ${(cause as Error).message}`, { cause });
    }
    void this.db;
  }

  /** Closes the database (after one more try at writing what a full disk held back). */
  close(): void {
    if (this.dbHandle) this.writeHeldBack();
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    this.dbHandle?.close();
    this.dbHandle = undefined;
  }

  /** The directory holding a container's files (writable layer, log). */
  containerDir(id: string): string {
    return path.join(this.dir, id);
  }

  /** Stores a new record; CONTAINER_NAME_IN_USE if the name is taken. */
  async create(record: ContainerRecord): Promise<void> {
    validateContainerName(record.name);
    try {
      this.db.prepare('INSERT INTO containers (id, name, state, created, record) VALUES (?, ?, ?, ?, ?)').run(record.id, record.name, record.state, record.created, JSON.stringify(record));
    } catch (cause) {
      if ((cause as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        const owner = this.db.prepare('SELECT id FROM containers WHERE name = ?').get(record.name) as { id: string } | undefined;
        throw new BosonError('CONTAINER_NAME_IN_USE', `the container name "${record.name}" is already in use by container ${owner?.id.slice(0, 12) ?? '(unknown)'}`);
      }
      if (isDiskFull(cause)) throw new BosonError('HOST_CAPACITY_EXCEEDED', `the disk holding ${this.stateDir} is full: no room for a new container`, { cause });
      throw cause;
    }
    await mkdir(this.containerDir(record.id), { recursive: true });
  }

  /** Writes `record` (which must exist); on a full disk it is held in memory and written later (see above). */
  async save(record: ContainerRecord): Promise<void> {
    try {
      this.write(record);
      this.unwritten.delete(record.id);
    } catch (cause) {
      if (!isDiskFull(cause)) throw cause;
      this.unwritten.set(record.id, structuredClone(record));
      this.retryLater();
    }
  }

  private write(record: ContainerRecord): void {
    this.db.prepare('UPDATE containers SET name = ?, state = ?, record = ? WHERE id = ?').run(record.name, record.state, JSON.stringify(record), record.id);
  }

  private retryLater(): void {
    this.retryTimer ??= setInterval(() => this.writeHeldBack(), UNWRITTEN_RETRY_MS).unref();
  }

  /** Writes what a full disk held back, as far as it goes now. */
  private writeHeldBack(): void {
    try {
      for (const [id, record] of this.unwritten) {
        this.write(record);
        this.unwritten.delete(id);
      }
      for (const id of this.unremoved) {
        this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
        this.unremoved.delete(id);
      }
    } catch (cause) {
      if (!isDiskFull(cause)) throw cause;
    }
    if (this.unwritten.size === 0 && this.unremoved.size === 0) {
      clearInterval(this.retryTimer);
      this.retryTimer = undefined;
    }
  }

  /** A record as read from the database, with what a full disk held back laid over it. */
  private overlay(record: ContainerRecord): ContainerRecord | undefined {
    if (this.unremoved.has(record.id)) return undefined;
    const held = this.unwritten.get(record.id);
    return held ? structuredClone(held) : record;
  }

  /** Renames a container; CONTAINER_NAME_IN_USE if taken. */
  async rename(record: ContainerRecord, newName: string): Promise<void> {
    validateContainerName(newName);
    const previous = record.name;
    record.name = newName;
    try {
      await this.save(record);
    } catch (cause) {
      record.name = previous;
      if ((cause as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new BosonError('CONTAINER_NAME_IN_USE', `the container name "${newName}" is already in use`);
      throw cause;
    }
  }

  /** Deletes a container's record and files (on a full disk the files first, which gives room for the record). */
  async remove(record: ContainerRecord): Promise<void> {
    try {
      this.db.prepare('DELETE FROM containers WHERE id = ?').run(record.id);
    } catch (cause) {
      if (!isDiskFull(cause)) throw cause;
      this.unremoved.add(record.id);
      this.retryLater();
    }
    this.unwritten.delete(record.id);
    await rm(this.containerDir(record.id), { recursive: true, force: true });
    if (this.unremoved.size > 0) this.writeHeldBack();
  }

  /** Finds a container by full id, unique id prefix, or name; CONTAINER_NOT_FOUND otherwise. */
  get(ref: string): ContainerRecord {
    const name = ref.replace(/^\//, '');
    if (this.unwritten.size > 0 || this.unremoved.size > 0) {
      // Held-back changes first: a rename the database does not have yet, a removal it still has.
      const held = [...this.unwritten.values()].find((r) => r.name === name || r.id === ref);
      if (held) return structuredClone(held);
    }
    const found = (text: string): ContainerRecord | undefined => this.overlay(JSON.parse(text) as ContainerRecord);
    const byName = this.db.prepare('SELECT record FROM containers WHERE name = ? OR id = ?').get(name, ref) as { record: string } | undefined;
    const direct = byName ? found(byName.record) : undefined;
    if (direct && (direct.name === name || direct.id === ref)) return direct;
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const rows = (this.db.prepare("SELECT record FROM containers WHERE id LIKE ? || '%' LIMIT 2").all(ref) as Array<{ record: string }>).map((r) => found(r.record)).filter((r) => r !== undefined);
      if (rows.length === 1) return rows[0]!;
      if (rows.length > 1) throw new BosonError('INVALID_ARGUMENT', `container id prefix ${ref} is ambiguous`);
    }
    throw new BosonError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  /** Every container record, newest first. */
  async list(): Promise<ContainerRecord[]> {
    const rows = this.db.prepare('SELECT record FROM containers ORDER BY created DESC').all() as Array<{ record: string }>;
    return rows.map((r) => this.overlay(JSON.parse(r.record) as ContainerRecord)).filter((r) => r !== undefined);
  }

  /** Appends an event to the event log and returns it; on a full disk it is not stored (seq 0) but still returned. */
  recordEvent(type: MachineEvent['type'], action: string, actorId: string, attributes: Record<string, string>): MachineEvent {
    const timeNano = BigInt(Date.now()) * 1_000_000n;
    try {
      const info = this.db.prepare('INSERT INTO events (time_ns, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)').run(timeNano, type, action, actorId, JSON.stringify(attributes));
      this.db.prepare('DELETE FROM events WHERE seq < ?').run(Number(info.lastInsertRowid) - 10_000);
      return { seq: Number(info.lastInsertRowid), timeNano, type, action, actorId, attributes };
    } catch (cause) {
      if (!isDiskFull(cause)) throw cause;
      return { seq: 0, timeNano, type, action, actorId, attributes };
    }
  }

  /** Events with sequence numbers above `afterSeq` and times in [sinceNs, untilNs]. */
  events(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE seq > ? AND time_ns >= ? AND time_ns <= ? ORDER BY seq').safeIntegers(true)
      .all(afterSeq, sinceNs ?? 0n, untilNs ?? 9_223_372_036_854_775_807n) as Array<{ seq: bigint; time_ns: bigint; type: string; action: string; actor_id: string; attributes: string }>;
    return rows.map((r) => ({ seq: Number(r.seq), timeNano: r.time_ns, type: r.type as MachineEvent['type'], action: r.action, actorId: r.actor_id, attributes: JSON.parse(r.attributes) as Record<string, string> }));
  }
}

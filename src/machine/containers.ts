/**
 * The host's record of its containers, in the machine database: ids, unique names, configuration and last known
 * state. Names are unique by constraint, so two creates cannot take the same name. Records whose owning
 * foreground process died (kill -9 of `boson run`) are repaired by sweep().
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import type { ProcessConfig } from './container-config.ts';
import type { MountSpec } from './volumes/index.ts';
import type { PortBinding } from './network/index.ts';
import { openMachineDb, type MachineDb } from './store/db.ts';

/** Docker's restart policies. */
export interface RestartPolicy {
  name: 'no' | 'on-failure' | 'always' | 'unless-stopped';
  /** For on-failure: how many restarts at most (0 = no limit). */
  maximumRetryCount: number;
}

/** The states a container goes through. */
export type ContainerState = 'created' | 'running' | 'restarting' | 'exited' | 'dead';

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
  /** True for containers the daemon runs (detached micro-VMs); false for a foreground `boson run`. */
  managed: boolean;
  state: ContainerState;
  /** pid of the foreground Boson process that runs the VM (unmanaged containers), while running. */
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

/** Container records in the machine database. */
export class ContainerRegistry {
  private readonly dir: string;
  private dbHandle: MachineDb | undefined;

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

  /** Closes the database. */
  close(): void {
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
      throw cause;
    }
    await mkdir(this.containerDir(record.id), { recursive: true });
  }

  /** Writes `record` (which must exist). */
  async save(record: ContainerRecord): Promise<void> {
    this.db.prepare('UPDATE containers SET name = ?, state = ?, record = ? WHERE id = ?').run(record.name, record.state, JSON.stringify(record), record.id);
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

  /** Deletes a container's record and files. */
  async remove(record: ContainerRecord): Promise<void> {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(record.id);
    await rm(this.containerDir(record.id), { recursive: true, force: true });
  }

  /** Finds a container by full id, unique id prefix, or name; CONTAINER_NOT_FOUND otherwise. */
  get(ref: string): ContainerRecord {
    const byName = this.db.prepare('SELECT record FROM containers WHERE name = ? OR id = ?').get(ref.replace(/^\//, ''), ref) as { record: string } | undefined;
    if (byName) return JSON.parse(byName.record) as ContainerRecord;
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const rows = this.db.prepare("SELECT record FROM containers WHERE id LIKE ? || '%' LIMIT 2").all(ref) as Array<{ record: string }>;
      if (rows.length === 1) return JSON.parse(rows[0]!.record) as ContainerRecord;
      if (rows.length > 1) throw new BosonError('INVALID_ARGUMENT', `container id prefix ${ref} is ambiguous`);
    }
    throw new BosonError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  /** Every container record, newest first. */
  async list(): Promise<ContainerRecord[]> {
    const rows = this.db.prepare('SELECT record FROM containers ORDER BY created DESC').all() as Array<{ record: string }>;
    return rows.map((r) => JSON.parse(r.record) as ContainerRecord);
  }

  /** Appends an event to the event log and returns it. */
  recordEvent(type: MachineEvent['type'], action: string, actorId: string, attributes: Record<string, string>): MachineEvent {
    const timeNano = BigInt(Date.now()) * 1_000_000n;
    const info = this.db.prepare('INSERT INTO events (time_ns, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)').run(timeNano, type, action, actorId, JSON.stringify(attributes));
    this.db.prepare('DELETE FROM events WHERE seq < ?').run(Number(info.lastInsertRowid) - 10_000);
    return { seq: Number(info.lastInsertRowid), timeNano, type, action, actorId, attributes };
  }

  /** Events with sequence numbers above `afterSeq` and times in [sinceNs, untilNs]. */
  events(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[] {
    const rows = this.db.prepare('SELECT * FROM events WHERE seq > ? AND time_ns >= ? AND time_ns <= ? ORDER BY seq').safeIntegers(true)
      .all(afterSeq, sinceNs ?? 0n, untilNs ?? 9_223_372_036_854_775_807n) as Array<{ seq: bigint; time_ns: bigint; type: string; action: string; actor_id: string; attributes: string }>;
    return rows.map((r) => ({ seq: Number(r.seq), timeNano: r.time_ns, type: r.type as MachineEvent['type'], action: r.action, actorId: r.actor_id, attributes: JSON.parse(r.attributes) as Record<string, string> }));
  }

  /**
   * Repairs what a killed foreground `boson run` left: a running unmanaged container whose owner is gone is marked
   * exited (or removed, for --rm). Managed containers belong to the daemon, which recovers them itself.
   */
  async sweep(): Promise<void> {
    for (const r of await this.list()) {
      if (!r.managed && r.state === 'running' && r.ownerPid !== null && !isAlive(r.ownerPid)) {
        if (r.autoRemove) await this.remove(r);
        else await this.save({ ...r, state: 'exited', ownerPid: null, vmPid: null, exitCode: 137, finishedAt: new Date().toISOString(), error: 'the boson process running this container was killed' });
      }
    }
  }
}

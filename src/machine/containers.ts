/**
 * The host's record of its containers, in the state store: ids, unique names, configuration and last known state.
 * A name is a record of its own (kind container-name), created with the container's in one commit that expects
 * both absent, so two creates cannot take the same name.
 *
 * A full disk under the database does not stop a container's life: a change to an existing record (a stop, an
 * exit, a removal) that the store cannot write (STORE_FULL) is kept in memory, shown by every read, and written as soon as the
 * disk has room again (retried every second, and on close). A new record is refused with HOST_CAPACITY_EXCEEDED.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { pidAlive, BosonError, isBosonError, isStoreConflict, type StateStore, type StoreOp } from '../common/index.ts';
import type { ProcessConfig } from './container-config.ts';
import type { PodNic } from './pod-network.ts';
import type { ContainerState, LogOptions, MountSpec, PortBinding, RestartPolicy } from './port/index.ts';

export type { ContainerState, RestartPolicy };

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
  /** Its log's rotation (max-size, max-file), fixed at create from its spec or the host's default; absent: none. */
  log?: LogOptions;
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
  /** More names it answers to by DNS on its network (Docker's endpoint Aliases); absent in records from before. */
  aliases?: string[];
  /** The static IPv4 address it asked for on its network (Docker's IPAMConfig.IPv4Address). */
  ipv4Address?: string;
  /** Legacy links: the linked container's id, its name when linked, and the alias (Docker's HostConfig.Links). */
  links?: Array<{ container: string; name: string; alias: string }>;
  /** While running: its address and the host ports actually published. */
  endpoint: { network: string; address: string; gateway: string; mac: string; ports: PortBinding[] } | null;
  /** A pod VM's NIC, made by CNI in the pod's network namespace (pod-network.ts), instead of a Boson network. */
  podNic?: PodNic;
  /** DNS settings that replace the network's (a pod's DNSConfig). */
  dns?: { servers: string[]; searches: string[]; options: string[] };
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

/** True if `pid` is a live process (the one helper, in common). */
export const isAlive = pidAlive;

/** One entry of the event log. */
export interface MachineEvent {
  seq: number;
  timeNano: bigint;
  type: 'container' | 'image' | 'network' | 'volume';
  action: string;
  actorId: string;
  attributes: Record<string, string>;
}

/** The store's answer when the disk under it is full. */
function isDiskFull(err: unknown): boolean {
  return isBosonError(err, 'STORE_FULL');
}

/** How often changes the disk had no room for are written again. */
const UNWRITTEN_RETRY_MS = 1000;

/** Store kinds: a container's record by id, and its name (unique: a record of its own, created with it). */
const CONTAINER = 'container';
const CONTAINER_NAME = 'container-name';

/** Container records in the state store. */
export class ContainerRegistry {
  private readonly dir: string;
  /** Records changed while the disk was full, by id, newest version; and ids removed then. */
  private readonly unwritten = new Map<string, ContainerRecord>();
  private readonly unremoved = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;

  /** `store`: the host's state store (the composition root's; not closed here). */
  constructor(
    private readonly store: StateStore,
    private readonly stateDir: string,
  ) {
    this.dir = path.join(stateDir, 'containers');
  }

  /** Creates the containers directory; STATE_DIR_UNWRITABLE if that is impossible. */
  async init(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (cause) {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot write container state in ${this.dir}: ${(cause as Error).message}`, { cause });
    }
  }

  /** Stops retrying (after one more try at writing what a full disk held back). The store stays open. */
  close(): void {
    this.writeHeldBack();
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
  }

  /** The directory holding a container's files (writable layer, log). */
  containerDir(id: string): string {
    return path.join(this.dir, id);
  }

  /** Stores a new record; CONTAINER_NAME_IN_USE if the name is taken. */
  async create(record: ContainerRecord): Promise<void> {
    validateContainerName(record.name);
    try {
      this.store.commit([
        { op: 'put', kind: CONTAINER, key: record.id, value: record, expectRevision: 0 },
        { op: 'put', kind: CONTAINER_NAME, key: record.name, value: { id: record.id }, expectRevision: 0 },
      ]);
    } catch (cause) {
      if (isStoreConflict(cause) && cause.storeKind === CONTAINER_NAME) {
        const owner = this.store.get<{ id: string }>(CONTAINER_NAME, record.name)?.value.id;
        throw new BosonError(
          'CONTAINER_NAME_IN_USE',
          `the container name "${record.name}" is already in use by container ${owner?.slice(0, 12) ?? '(unknown)'}`,
        );
      }
      if (isDiskFull(cause))
        throw new BosonError('HOST_CAPACITY_EXCEEDED', `the disk holding ${this.stateDir} is full: no room for a new container`, { cause });
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

  /**
   * Replaces a stored record (last writer wins, as an UPDATE did; nothing when it is gone), moving its name record
   * along when the name changed: CONTAINER_NAME_IN_USE when the new name is taken.
   */
  private write(record: ContainerRecord): void {
    for (;;) {
      const current = this.store.get<ContainerRecord>(CONTAINER, record.id);
      if (!current) return;
      const ops: StoreOp[] = [{ op: 'put', kind: CONTAINER, key: record.id, value: record, expectRevision: current.revision }];
      const oldName = current.value.name;
      if (oldName !== record.name) {
        const held = this.store.get<{ id: string }>(CONTAINER_NAME, oldName);
        if (held?.value.id === record.id) ops.push({ op: 'delete', kind: CONTAINER_NAME, key: oldName, expectRevision: held.revision });
        ops.push({ op: 'put', kind: CONTAINER_NAME, key: record.name, value: { id: record.id }, expectRevision: 0 });
      }
      try {
        this.store.commit(ops);
        return;
      } catch (cause) {
        if (!isStoreConflict(cause)) throw cause;
        if (cause.storeKind === CONTAINER_NAME && cause.key === record.name)
          throw new BosonError('CONTAINER_NAME_IN_USE', `the container name "${record.name}" is already in use`);
        // Another writer changed the record in between: read it again.
      }
    }
  }

  private retryLater(): void {
    this.retryTimer ??= setInterval(() => this.writeHeldBack(), UNWRITTEN_RETRY_MS).unref();
  }

  /** Writes what a full disk held back, as far as it goes now (a change that can no longer be written is dropped). */
  private writeHeldBack(): void {
    const attempt = (what: string, fn: () => void): boolean => {
      try {
        fn();
        return true;
      } catch (cause) {
        if (isDiskFull(cause)) return false;
        process.emitWarning(`a held-back change of container ${what} cannot be written: ${(cause as Error).message}`);
        return true;
      }
    };
    for (const [id, record] of this.unwritten) {
      if (!attempt(id, () => this.write(record))) break;
      this.unwritten.delete(id);
    }
    for (const id of this.unremoved) {
      if (!attempt(id, () => this.delete(id))) break;
      this.unremoved.delete(id);
    }
    if (this.unwritten.size === 0 && this.unremoved.size === 0) {
      clearInterval(this.retryTimer);
      this.retryTimer = undefined;
    }
  }

  /** Deletes a record and its name record, in one commit. */
  private delete(id: string): void {
    const current = this.store.get<ContainerRecord>(CONTAINER, id);
    if (!current) return;
    const name = this.store.get<{ id: string }>(CONTAINER_NAME, current.value.name);
    const ops: StoreOp[] = [{ op: 'delete', kind: CONTAINER, key: id }];
    if (name?.value.id === id) ops.push({ op: 'delete', kind: CONTAINER_NAME, key: current.value.name, expectRevision: name.revision });
    this.store.commit(ops);
  }

  /** A record as read from the store, with what a full disk held back laid over it. */
  private overlay(record: ContainerRecord | undefined): ContainerRecord | undefined {
    if (!record || this.unremoved.has(record.id)) return undefined;
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
      throw cause;
    }
  }

  /** Deletes a container's record and files (on a full disk the files first, which gives room for the record). */
  async remove(record: ContainerRecord): Promise<void> {
    try {
      this.delete(record.id);
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
      // Held-back changes first: a rename the store does not have yet, a removal it still has.
      const held = [...this.unwritten.values()].find((r) => r.name === name || r.id === ref);
      if (held) return structuredClone(held);
    }
    const read = (id: string): ContainerRecord | undefined => this.overlay(this.store.get<ContainerRecord>(CONTAINER, id)?.value);
    const owner = this.store.get<{ id: string }>(CONTAINER_NAME, name)?.value.id;
    const byName = owner === undefined ? undefined : read(owner);
    if (byName && byName.name === name) return byName;
    const byId = read(ref);
    if (byId) return byId;
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const rows = this.store
        .list<ContainerRecord>(CONTAINER, { prefix: ref })
        .map((r) => this.overlay(r.value))
        .filter((r) => r !== undefined);
      if (rows.length === 1) return rows[0]!;
      if (rows.length > 1) throw new BosonError('INVALID_ARGUMENT', `container id prefix ${ref} is ambiguous`);
    }
    throw new BosonError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
  }

  /** Every container record, newest first. */
  async list(): Promise<ContainerRecord[]> {
    const records = this.store
      .list<ContainerRecord>(CONTAINER)
      .map((r) => this.overlay(r.value))
      .filter((r) => r !== undefined);
    return records.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  }

  /** Appends an event to the event log and returns it; on a full disk it is not stored (seq 0) but still returned. */
  recordEvent(type: MachineEvent['type'], action: string, actorId: string, attributes: Record<string, string>): MachineEvent {
    const timeNano = BigInt(Date.now()) * 1_000_000n;
    try {
      const e = this.store.appendEvent({ type, action, actorId, attributes, timeNano });
      return { seq: e.seq, timeNano, type, action, actorId, attributes };
    } catch (cause) {
      if (!isDiskFull(cause)) throw cause;
      return { seq: 0, timeNano, type, action, actorId, attributes };
    }
  }

  /** Events with sequence numbers above `afterSeq` and times in [sinceNs, untilNs]. */
  events(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[] {
    return this.store.events({ afterSeq, sinceNs, untilNs }).map((e) => ({
      seq: e.seq,
      timeNano: e.timeNano,
      type: e.type as MachineEvent['type'],
      action: e.action,
      actorId: e.actorId,
      attributes: e.attributes,
    }));
  }
}

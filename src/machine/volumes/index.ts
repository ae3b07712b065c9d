/**
 * Volumes: named (and anonymous) ext4 disks that outlive their containers, and the `-v` specs that put volumes
 * and host directories (bind mounts, shared over virtio-9p) into a container. A volume disk can be attached to
 * one running micro-VM at a time (ext4 is not a shared filesystem); a volume any container refers to cannot be
 * removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, isStoreConflict, KeyedMutex, type StateStore } from '../../common/index.ts';
import { DEFAULT_VOLUME_BYTES, type MountSpec } from '../port/index.ts';
import { createScratchDisk } from '../scratch.ts';

/** One volume. */
export interface VolumeRecord {
  name: string;
  created: string;
  anonymous: boolean;
  sizeBytes: number;
  labels: Record<string, string>;
  /** Where its disk lives on the host. */
  mountpoint: string;
}

/** One mount of a container (the port's type), parsed from `-v` or the image's VOLUME. */
export type { MountSpec };

export { DEFAULT_VOLUME_BYTES };

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Parses one `-v` value: `name:/dest[:ro|rw]` (named volume), `/host:/dest[:ro|rw]` (bind mount) or `/dest`
 * (anonymous volume). INVALID_ARGUMENT with Docker-like wording otherwise.
 */
export function parseVolumeSpec(spec: string): MountSpec {
  const parts = spec.split(':');
  let mode = 'rw';
  if (parts.length === 3 || (parts.length === 2 && (parts[1] === 'ro' || parts[1] === 'rw'))) mode = parts.pop()!;
  if (mode !== 'ro' && mode !== 'rw')
    throw new BosonError('INVALID_ARGUMENT', `invalid mode in volume spec ${JSON.stringify(spec)}: ${mode}`);
  const readOnly = mode === 'ro';
  const absolute = (p: string): string => {
    if (!p.startsWith('/'))
      throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}: the container path must be absolute`);
    if (p === '/') throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}: cannot mount over /`);
    return path.posix.normalize(p);
  };
  if (parts.length === 1) return { type: 'volume', name: '', destination: absolute(parts[0]!), readOnly, anonymous: true };
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}`);
  const [source, dest] = parts as [string, string];
  if (source.startsWith('/')) return { type: 'bind', source: path.resolve(source), destination: absolute(dest), readOnly };
  if (!VOLUME_NAME.test(source))
    throw new BosonError('INVALID_ARGUMENT', `invalid volume name ${JSON.stringify(source)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return { type: 'volume', name: source, destination: absolute(dest), readOnly, anonymous: false };
}

/** What the store keeps of a volume (the mountpoint follows from its name). */
type StoredVolume = Omit<VolumeRecord, 'mountpoint'>;

/** Store kind of volume records, by name. */
const VOLUME = 'volume';

/** Volumes on this host. */
export class VolumeManager {
  private readonly dir: string;
  /** Creates of one name run one at a time (two at once would both make the disk file, one under the other). */
  private readonly creating = new KeyedMutex();

  /** `store`: the host's state store (the composition root's; not closed here). */
  constructor(
    private readonly store: StateStore,
    stateDir: string,
  ) {
    this.dir = path.join(stateDir, 'volumes');
  }

  /** Nothing to release: the store belongs to the composition root. */
  close(): void {
    /* the store is closed by its owner */
  }

  /** The disk file of a volume. */
  diskPath(name: string): string {
    return path.join(this.dir, name, 'disk.ext4');
  }

  private toRecord(v: StoredVolume): VolumeRecord {
    return {
      name: v.name,
      created: v.created,
      anonymous: v.anonymous,
      sizeBytes: v.sizeBytes,
      labels: v.labels,
      mountpoint: this.diskPath(v.name),
    };
  }

  /** Creates a volume (a random name when `name` is empty); like Docker, creating an existing name returns it. */
  async create(
    name: string,
    opts: { labels?: Record<string, string>; sizeBytes?: number; anonymous?: boolean } = {},
  ): Promise<VolumeRecord> {
    const volumeName = name || randomBytes(32).toString('hex');
    if (!VOLUME_NAME.test(volumeName)) throw new BosonError('INVALID_ARGUMENT', `invalid volume name ${JSON.stringify(volumeName)}`);
    return this.creating.run(volumeName, () => this.createOnce(volumeName, opts));
  }

  private async createOnce(
    volumeName: string,
    opts: { labels?: Record<string, string>; sizeBytes?: number; anonymous?: boolean },
  ): Promise<VolumeRecord> {
    const existing = this.store.get<StoredVolume>(VOLUME, volumeName);
    if (existing) return this.toRecord(existing.value);
    const sizeBytes = opts.sizeBytes ?? DEFAULT_VOLUME_BYTES;
    await mkdir(path.dirname(this.diskPath(volumeName)), { recursive: true });
    await rm(this.diskPath(volumeName), { force: true });
    await createScratchDisk(this.diskPath(volumeName), sizeBytes);
    const stored: StoredVolume = {
      name: volumeName,
      created: new Date().toISOString(),
      anonymous: opts.anonymous ?? false,
      sizeBytes,
      labels: opts.labels ?? {},
    };
    try {
      this.store.put(VOLUME, volumeName, stored, { expectRevision: 0 });
    } catch (err) {
      // Created by another process meanwhile (a race the old UNIQUE constraint failed on): theirs it is.
      const theirs = isStoreConflict(err) ? this.store.get<StoredVolume>(VOLUME, volumeName) : undefined;
      if (!theirs) throw err;
      return this.toRecord(theirs.value);
    }
    return this.toRecord(stored);
  }

  /** All volumes, oldest first. */
  list(): VolumeRecord[] {
    return this.store
      .list<StoredVolume>(VOLUME)
      .map((r) => this.toRecord(r.value))
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : 0));
  }

  /** One volume; VOLUME_NOT_FOUND otherwise. */
  get(name: string): VolumeRecord {
    const r = this.store.get<StoredVolume>(VOLUME, name);
    if (!r) throw new BosonError('VOLUME_NOT_FOUND', `no such volume: ${name}`);
    return this.toRecord(r.value);
  }

  /** Removes a volume unless `usedBy` names a container that refers to it (VOLUME_IN_USE). */
  async remove(name: string, usedBy: string[]): Promise<void> {
    this.get(name);
    if (usedBy.length > 0)
      throw new BosonError('VOLUME_IN_USE', `volume ${name} is in use by container ${usedBy.map((c) => c.slice(0, 12)).join(', ')}`);
    this.store.delete(VOLUME, name);
    await rm(path.dirname(this.diskPath(name)), { recursive: true, force: true });
  }

  /** Bytes a volume's disk really uses on the host. */
  async usage(name: string): Promise<number> {
    const s = await stat(this.diskPath(name)).catch(() => undefined);
    return s ? s.blocks * 512 : 0;
  }
}

/**
 * Volumes: named (and anonymous) ext4 disks that outlive their containers, and the `-v` specs that put volumes
 * and host directories (bind mounts, shared over virtio-9p) into a container. A volume disk can be attached to
 * one running micro-VM at a time (ext4 is not a shared filesystem); a volume any container refers to cannot be
 * removed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';
import type { MountSpec } from '../port/index.ts';
import { createScratchDisk } from '../scratch.ts';
import { openMachineDb, type MachineDb } from '../store/db.ts';

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

/** Default size of a volume disk (sparse: only what is written takes space). */
export const DEFAULT_VOLUME_BYTES = 16 * 1024 ** 3;

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Parses one `-v` value: `name:/dest[:ro|rw]` (named volume), `/host:/dest[:ro|rw]` (bind mount) or `/dest`
 * (anonymous volume). INVALID_ARGUMENT with Docker-like wording otherwise.
 */
export function parseVolumeSpec(spec: string): MountSpec {
  const parts = spec.split(':');
  let mode = 'rw';
  if (parts.length === 3 || (parts.length === 2 && (parts[1] === 'ro' || parts[1] === 'rw'))) mode = parts.pop()!;
  if (mode !== 'ro' && mode !== 'rw') throw new BosonError('INVALID_ARGUMENT', `invalid mode in volume spec ${JSON.stringify(spec)}: ${mode}`);
  const readOnly = mode === 'ro';
  const absolute = (p: string): string => {
    if (!p.startsWith('/')) throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}: the container path must be absolute`);
    if (p === '/') throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}: cannot mount over /`);
    return path.posix.normalize(p);
  };
  if (parts.length === 1) return { type: 'volume', name: '', destination: absolute(parts[0]!), readOnly, anonymous: true };
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new BosonError('INVALID_ARGUMENT', `invalid volume spec ${JSON.stringify(spec)}`);
  const [source, dest] = parts as [string, string];
  if (source.startsWith('/')) return { type: 'bind', source: path.resolve(source), destination: absolute(dest), readOnly };
  if (!VOLUME_NAME.test(source)) throw new BosonError('INVALID_ARGUMENT', `invalid volume name ${JSON.stringify(source)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return { type: 'volume', name: source, destination: absolute(dest), readOnly, anonymous: false };
}

/** Volumes on this host. */
export class VolumeManager {
  private dbHandle: MachineDb | undefined;
  private readonly dir: string;

  constructor(private readonly stateDir: string) {
    this.dir = path.join(stateDir, 'volumes');
  }

  private get db(): MachineDb {
    this.dbHandle ??= openMachineDb(this.stateDir);
    return this.dbHandle;
  }

  /** Closes the database. */
  close(): void {
    this.dbHandle?.close();
    this.dbHandle = undefined;
  }

  /** The disk file of a volume. */
  diskPath(name: string): string {
    return path.join(this.dir, name, 'disk.ext4');
  }

  private toRecord(row: { name: string; created: string; anonymous: number; size_bytes: number; labels: string }): VolumeRecord {
    return { name: row.name, created: row.created, anonymous: row.anonymous === 1, sizeBytes: row.size_bytes, labels: JSON.parse(row.labels) as Record<string, string>, mountpoint: this.diskPath(row.name) };
  }

  /** Creates a volume (a random name when `name` is empty); like Docker, creating an existing name returns it. */
  async create(name: string, opts: { labels?: Record<string, string>; sizeBytes?: number; anonymous?: boolean } = {}): Promise<VolumeRecord> {
    const volumeName = name || randomBytes(32).toString('hex');
    if (!VOLUME_NAME.test(volumeName)) throw new BosonError('INVALID_ARGUMENT', `invalid volume name ${JSON.stringify(volumeName)}`);
    const existing = this.db.prepare('SELECT * FROM volumes WHERE name = ?').get(volumeName) as Parameters<VolumeManager['toRecord']>[0] | undefined;
    if (existing) return this.toRecord(existing);
    const sizeBytes = opts.sizeBytes ?? DEFAULT_VOLUME_BYTES;
    await mkdir(path.dirname(this.diskPath(volumeName)), { recursive: true });
    await rm(this.diskPath(volumeName), { force: true });
    await createScratchDisk(this.diskPath(volumeName), sizeBytes);
    const created = new Date().toISOString();
    this.db.prepare('INSERT INTO volumes (name, created, anonymous, size_bytes, labels) VALUES (?, ?, ?, ?, ?)').run(volumeName, created, opts.anonymous ? 1 : 0, sizeBytes, JSON.stringify(opts.labels ?? {}));
    return { name: volumeName, created, anonymous: opts.anonymous ?? false, sizeBytes, labels: opts.labels ?? {}, mountpoint: this.diskPath(volumeName) };
  }

  /** All volumes. */
  list(): VolumeRecord[] {
    return (this.db.prepare('SELECT * FROM volumes ORDER BY created').all() as Array<Parameters<VolumeManager['toRecord']>[0]>).map((r) => this.toRecord(r));
  }

  /** One volume; VOLUME_NOT_FOUND otherwise. */
  get(name: string): VolumeRecord {
    const row = this.db.prepare('SELECT * FROM volumes WHERE name = ?').get(name) as Parameters<VolumeManager['toRecord']>[0] | undefined;
    if (!row) throw new BosonError('VOLUME_NOT_FOUND', `no such volume: ${name}`);
    return this.toRecord(row);
  }

  /** Removes a volume unless `usedBy` names a container that refers to it (VOLUME_IN_USE). */
  async remove(name: string, usedBy: string[]): Promise<void> {
    this.get(name);
    if (usedBy.length > 0) throw new BosonError('VOLUME_IN_USE', `volume ${name} is in use by container ${usedBy.map((c) => c.slice(0, 12)).join(', ')}`);
    this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
    await rm(path.dirname(this.diskPath(name)), { recursive: true, force: true });
  }

  /** Bytes a volume's disk really uses on the host. */
  async usage(name: string): Promise<number> {
    const s = await stat(this.diskPath(name)).catch(() => undefined);
    return s ? s.blocks * 512 : 0;
  }
}

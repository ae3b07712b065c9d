/**
 * Where a root disk's staging tree is built: the layers flattened into a directory that mkfs reads once and that is
 * removed right after. It is scratch, so it goes where creating files is cheapest. Flattening is almost all file
 * creation, and on a disk filesystem each create costs journal and block allocation work in the kernel (measured on
 * the development VM's ext4: 130–260 µs of system time per small file, against ~5 µs on tmpfs), so when a tmpfs has
 * room to spare (/dev/shm/boson-<uid>, a private 0700 directory) the tree is built there; otherwise in the store's
 * own tmp directory. "Room to spare": the estimated tree (4× the compressed layers, 1× for uncompressed ones) is at
 * most half of the tmpfs's free space and a quarter of the memory available, to the host and to our memory cgroup
 * (tmpfs pages are charged to the cgroup that writes them, so a daemon with a memory limit must not fill it). If
 * the tmpfs fills up anyway (ENOSPC), the caller builds again in the store's tmp directory.
 *
 * BOSON_STAGING_DIR overrides the choice: `store` always uses the store's tmp directory; an absolute path uses a
 * private `boson-<uid>` directory in that (existing) directory, with the same ENOSPC fallback.
 *
 * Every staging tree is built in a directory that only we can enter (0700, ours: privateDir), and the tree's own
 * top directory is 0700 too, with the image's root one level below it (see flatten.ts): while a tree exists, its
 * setuid files, device nodes and world-writable directories are out of reach of every other user of the host.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import { sweepStaleTemps } from './tempfiles.ts';
import { layerCompression } from './types.ts';

const TMPFS_MAGIC = 0x01021994;
const SHM = '/dev/shm';

/** The private staging directory in /dev/shm (whether or not it exists or is usable). */
export const shmStagingDir = (): string => path.join(SHM, `boson-${process.getuid?.() ?? 0}`);

/** Estimated size of the flattened tree of these layers (an over-estimate for typical images). */
export function estimateTreeBytes(layers: { size: number; mediaType: string }[]): number {
  return layers.reduce((s, l) => s + l.size * (layerCompression(l.mediaType) === 'none' ? 1 : 4), 0);
}

/**
 * Memory our cgroup may still use (limit minus usage; cgroup v2 or the v1 memory controller), or null when there is
 * no limit or it cannot be read.
 */
export async function cgroupMemoryHeadroom(procCgroup = '/proc/self/cgroup', sysRoot = '/sys/fs/cgroup'): Promise<number | null> {
  try {
    const lines = (await fs.readFile(procCgroup, 'utf8')).split('\n');
    const v1 = lines.map((l) => /^\d+:([^:]*):(.*)$/.exec(l)).find((m) => m !== null && m[1]!.split(',').includes('memory'));
    const v2 = lines.map((l) => /^0::(.*)$/.exec(l)).find((m) => m !== null);
    const [limitFile, usageFile] = v1
      ? [path.join(sysRoot, 'memory', v1[2]!, 'memory.limit_in_bytes'), path.join(sysRoot, 'memory', v1[2]!, 'memory.usage_in_bytes')]
      : v2
        ? [path.join(sysRoot, v2[1]!, 'memory.max'), path.join(sysRoot, v2[1]!, 'memory.current')]
        : [null, null];
    if (limitFile === null || usageFile === null) return null;
    const limit = (await fs.readFile(limitFile, 'utf8')).trim();
    if (limit === 'max' || !/^\d+$/.test(limit) || Number(limit) >= 2 ** 60) return null;
    const usage = Number((await fs.readFile(usageFile, 'utf8')).trim());
    return Number.isFinite(usage) ? Math.max(0, Number(limit) - usage) : null;
  } catch {
    return null;
  }
}

/** True when `dir` is a real directory (not a link) owned by us that nobody else may enter. */
async function isPrivateDir(dir: string): Promise<boolean> {
  const st = await fs.lstat(dir).catch(() => null);
  return st !== null && st.isDirectory() && st.uid === (process.getuid?.() ?? 0) && (st.mode & 0o077) === 0;
}

/**
 * Makes `dir` (whose parent exists) a private directory: created 0700 if missing; if it exists it must be a real
 * directory (not a link) of ours, and loses any group/other bits. Throws STATE_DIR_UNWRITABLE when it cannot be.
 */
export async function privateDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot create the staging directory ${dir}: ${(err as Error).message}`, {
        cause: err,
        details: { path: dir },
      });
    }
  }
  const st = await fs.lstat(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) {
    throw new BosonError(
      'STATE_DIR_UNWRITABLE',
      `the staging directory ${dir} is not a directory of uid ${uid} (a link, or someone else's): refusing to build there`,
      { details: { path: dir } },
    );
  }
  if ((st.mode & 0o077) !== 0) await fs.chmod(dir, st.mode & 0o7700);
}

/** Our private directory under /dev/shm, created 0700 if missing; null if it is not a safe, private tmpfs dir. */
async function privateShmDir(): Promise<string | null> {
  const dir = shmStagingDir();
  try {
    await privateDir(dir);
  } catch {
    return null;
  }
  try {
    if (!(await isPrivateDir(dir))) return null;
    return (await fs.statfs(dir)).type === TMPFS_MAGIC ? dir : null;
  } catch {
    return null;
  }
}

/** Removes staging trees of dead processes from our /dev/shm directory (those of every store). */
export async function sweepShmStaging(): Promise<void> {
  const dir = shmStagingDir();
  if (await isPrivateDir(dir)) await sweepStaleTemps(dir).catch(() => undefined);
}

/**
 * The directory to create the staging tree in (private: see privateDir), or null for the store's tmp directory
 * (which the caller makes private). `estimate` is the expected size of the tree in bytes; `configured` is the
 * BOSON_STAGING_DIR setting ("store" or an absolute path), which the composition root hands the image store.
 */
export async function stagingParent(estimate: number, configured?: string): Promise<string | null> {
  const v = configured;
  if (v === 'store') return null;
  if (v !== undefined && v !== '') {
    if (!path.isAbsolute(v)) throw new BosonError('INVALID_ARGUMENT', `BOSON_STAGING_DIR must be "store" or an absolute path, not "${v}"`);
    const dir = path.join(v, `boson-${process.geteuid?.() ?? 0}`);
    await privateDir(dir);
    return dir;
  }
  const dir = await privateShmDir();
  if (dir === null) return null;
  try {
    const sfs = await fs.statfs(dir);
    const free = sfs.bavail * sfs.bsize;
    const memory = Math.min(os.freemem(), (await cgroupMemoryHeadroom()) ?? Infinity);
    return estimate <= free / 2 && estimate <= memory / 4 ? dir : null;
  } catch {
    return null;
  }
}

/** True when `err` (or its cause) says the filesystem is full. */
export function isNoSpace(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
  }
  return false;
}

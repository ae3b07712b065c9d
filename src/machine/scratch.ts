/**
 * The writable layer of a container: a sparse ext4 disk the guest uses as overlayfs upper directory. For a --rm
 * container it exists only as an open, already unlinked file, so that nothing is left on disk however the run ends.
 */
import { execFile } from 'node:child_process';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { BosonError } from '../common/index.ts';

const run = promisify(execFile);

/** Default size of a writable layer (sparse: only what the container writes takes space). */
export const DEFAULT_SCRATCH_BYTES = 8 * 1024 ** 3;

/**
 * Creates and formats a sparse ext4 disk at `file`; TOOL_FAILED if mkfs fails. `journal: false` suits a disk that
 * is thrown away with its container (it mounts faster in the guest and nothing on it must survive a crash).
 */
export async function createScratchDisk(file: string, sizeBytes = DEFAULT_SCRATCH_BYTES, journal = true): Promise<void> {
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
  try {
    const features = journal ? [] : ['-O', '^has_journal'];
    await run('mkfs.ext4', [
      '-q',
      '-F',
      '-m',
      '0',
      '-E',
      'lazy_itable_init=1,lazy_journal_init=1',
      ...features,
      '-L',
      'boson-scratch',
      file,
    ]);
  } catch (cause) {
    await rm(file, { force: true });
    const detail = (cause as { stderr?: string }).stderr?.trim() || (cause as Error).message;
    throw new BosonError('TOOL_FAILED', `mkfs.ext4 failed for the writable layer: ${detail}`, { cause });
  }
}

/**
 * Creates a journal-less scratch disk at `file`, opens it and unlinks it: the returned handle is the only
 * reference, so the disk disappears with the last process holding it.
 */
export async function createEphemeralScratchDisk(file: string, sizeBytes = DEFAULT_SCRATCH_BYTES): Promise<FileHandle> {
  await createScratchDisk(file, sizeBytes, false);
  try {
    return await open(file, 'r+');
  } finally {
    await rm(file, { force: true });
  }
}

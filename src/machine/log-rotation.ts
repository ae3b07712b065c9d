/**
 * Capped, rotated container logs, as Docker's json-file driver does them (`--log-opt max-size=… max-file=…`).
 *
 * QEMU itself appends the guest's log port to `container.log` (so nothing is lost while no daemon runs), and QEMU
 * 7.2 cannot reopen the chardev of a virtio-serial port (`chardev-change` answers "Chardev user does not support
 * chardev hotswap"), so the file can never be swapped under it. Rotation is therefore copy-and-truncate, done by
 * the daemon while the VM is paused (QMP `stop`/`cont`: no vCPU runs, so QEMU writes nothing to the file meanwhile):
 * the older files shift (`container.log.1` → `.2`, the oldest is deleted), the current file up to the start of its
 * last record is copied to `container.log.1` (a reflink or an in-kernel copy), and that last record (whole, or
 * still partial: the guest splits records above 32 KiB in two writes) is moved to the front of `container.log`,
 * which QEMU keeps appending to (O_APPEND). So every file starts and ends at a record boundary, a record is never
 * split across two files, and the EXIT record (always the last one) stays in `container.log`.
 *
 * What this costs: the VM is paused for the copy of one file (a few ms per 10 MB on this host; the guest clock
 * loses that time). The size is checked on each change of the file and every 250 ms, so a guest that writes faster
 * than a rotation takes (tens of ms) overshoots max-size by what it wrote meanwhile (Docker's json-file, which
 * writes the file itself, never does). While no daemon runs nothing rotates: the file grows until the next daemon sees it. A daemon
 * killed while the VM is paused leaves it paused; the next daemon resumes it when it re-attaches.
 *
 * Followers in this process (attach, `logs -f`) subscribe: a rotation waits until none is in a read, and tells
 * each where its unread bytes went (a file it opens at once, so that later rotations cannot take it away).
 */
import { copyFile, constants, open, rename, rm, stat, truncate, type FileHandle } from 'node:fs/promises';
import { HEADER_SIZE, MAX_PAYLOAD } from '../guest/index.ts';

/** Docker json-file's max-size and max-file for one container (max-size absent: never rotated). */
export interface LogLimits {
  maxSizeBytes?: number;
  maxFiles: number;
}

/** The name of the k-th rotated file of a log (1 the newest). */
export function rotatedLogFile(file: string, k: number): string {
  return `${file}.${k}`;
}

/** The files of a log, oldest first, ending with the current one (which may not exist yet). */
export async function logFileSet(file: string): Promise<string[]> {
  const older: string[] = [];
  for (let k = 1; ; k++) {
    const f = rotatedLogFile(file, k);
    if (
      !(await stat(f).then(
        () => true,
        () => false,
      ))
    )
      break;
    older.push(f);
  }
  return [...older.reverse(), file];
}

/** A follower's part in a rotation: wait for its read to finish, then learn where its unread bytes went. */
export interface RotationListener {
  /** Resolves once the follower is not reading the file, and keeps it from reading until rotated() is called. */
  hold(): Promise<void>;
  /**
   * The current file's first `boundary` bytes were moved to `copy` (null: discarded, max-file 1) and the rest to its
   * front; the follower may read again.
   */
  rotated(copy: string | null, boundary: number): Promise<void>;
}

/** Subscriptions to one log's rotations. */
export class RotationFeed {
  private readonly listeners = new Set<RotationListener>();

  /** `maxFiles`: how many files the log keeps (a follower further behind than that skips what is gone). */
  constructor(readonly maxFiles: number) {}

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: RotationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal the rotator's view */
  all(): RotationListener[] {
    return [...this.listeners];
  }
}

/** What a rotation needs of the VM writing the log. */
export interface PausableWriter {
  /** Pauses the VM (no vCPU runs, so nothing more is written to the log). */
  suspend(): Promise<void>;
  /** Resumes it. */
  resume(): Promise<void>;
}

/**
 * The start of the last record in a log that holds whole records from `from` on: the offset from which the file is
 * kept when it is rotated. A damaged header (no writer makes it) ends the walk: then the whole file is rotated away.
 */
export async function lastRecordStart(handle: FileHandle, size: number, from = 0): Promise<number> {
  const buf = Buffer.alloc(1 << 20);
  let pos = from;
  let last = from;
  while (pos + HEADER_SIZE <= size) {
    // A window from pos; the headers inside it are walked in memory.
    const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
    if (bytesRead < HEADER_SIZE) break;
    let off = 0;
    while (off + HEADER_SIZE <= bytesRead && pos + off + HEADER_SIZE <= size) {
      const length = buf.readUInt32BE(off + 4);
      if (length > MAX_PAYLOAD + 8) return size;
      last = pos + off;
      off += HEADER_SIZE + length;
    }
    pos += off;
  }
  // Fewer bytes than a header left: they begin the last (partial) record.
  return pos < size ? pos : last;
}

/** Rotates one container's log when it passes its max-size (see the module comment). */
export class LogRotator {
  private busy = false;
  /** The start of a record of the current file (the last one seen), so that a walk covers only what came since. */
  private scanned = 0;

  constructor(
    private readonly file: string,
    private readonly limits: LogLimits & { maxSizeBytes: number },
    private readonly vm: PausableWriter,
    readonly feed: RotationFeed,
  ) {}

  /** Rotates if the current file is larger than max-size; true if it did. Never runs twice at once. */
  async check(): Promise<boolean> {
    if (this.busy) return false;
    this.busy = true;
    try {
      const size = (await stat(this.file).catch(() => ({ size: 0 }))).size;
      if (size <= this.limits.maxSizeBytes) return false;
      // Most of the walk to the last record happens before the VM is paused; the pause only walks what came since.
      const handle = await open(this.file, 'r');
      try {
        this.scanned = await lastRecordStart(handle, size, this.scanned <= size ? this.scanned : 0);
      } finally {
        await handle.close();
      }
      return await this.rotate();
    } finally {
      this.busy = false;
    }
  }

  private async rotate(): Promise<boolean> {
    const listeners = this.feed.all();
    await Promise.all(listeners.map((l) => l.hold()));
    let copy: string | null = null;
    let boundary = 0;
    try {
      await this.vm.suspend();
      try {
        const handle = await open(this.file, 'r+');
        try {
          const { size } = await handle.stat();
          boundary = await lastRecordStart(handle, size, this.scanned <= size ? this.scanned : 0);
          if (boundary === 0) return false;
          const { maxFiles } = this.limits;
          for (let k = maxFiles - 1; k >= 1; k--) {
            const from = rotatedLogFile(this.file, k);
            if (k === maxFiles - 1) await rm(from, { force: true });
            else await rename(from, rotatedLogFile(this.file, k + 1)).catch(ignoreMissing);
          }
          if (maxFiles >= 2) {
            const tmp = `${this.file}.rotating`;
            await copyFile(this.file, tmp, constants.COPYFILE_FICLONE);
            await truncate(tmp, boundary);
            copy = rotatedLogFile(this.file, 1);
            await rename(tmp, copy);
          }
          const tail = Buffer.alloc(size - boundary);
          if (tail.length > 0) await handle.read(tail, 0, tail.length, boundary);
          await handle.truncate(0);
          if (tail.length > 0) await handle.write(tail, 0, tail.length, 0);
          this.scanned = 0;
        } finally {
          await handle.close();
        }
      } finally {
        await this.vm.resume();
      }
    } finally {
      await Promise.all(listeners.map((l) => l.rotated(copy, boundary)));
    }
    return true;
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

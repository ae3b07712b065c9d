/**
 * A minimal writer for the cpio "newc" format the Linux kernel unpacks as an initramfs. Deterministic: every entry
 * has mtime 0, uid/gid 0 and a sequential inode number, so the same inputs give the same bytes. (It is ~40 lines;
 * the npm cpio packages are unmaintained stream readers, and Debian's cpio needs a staging tree.)
 */

/** One archive member. Directories and files only; parents must come before children. */
export type CpioEntry = { kind: 'dir'; path: string; mode?: number } | { kind: 'file'; path: string; data: Buffer; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function header(ino: number, mode: number, nlink: number, size: number, nameSize: number): string {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return '070701' + [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, nameSize, 0].map(hex).join('');
}

function member(ino: number, name: string, mode: number, nlink: number, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const head = Buffer.from(header(ino, mode, nlink, data.length, nameBytes.length), 'ascii');
  const parts: Buffer[] = [head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length))];
  if (data.length > 0) parts.push(data, Buffer.alloc(pad4(data.length)));
  return parts;
}

/** Serialises `entries` as a newc archive, with the TRAILER!!! record. Paths are relative ("init", "lib/x.ko"). */
export function writeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '');
    if (entry.kind === 'dir') parts.push(...member(ino++, name, S_IFDIR | (entry.mode ?? 0o755), 2, Buffer.alloc(0)));
    else parts.push(...member(ino++, name, S_IFREG | (entry.mode ?? 0o644), 1, entry.data));
  }
  parts.push(...member(0, 'TRAILER!!!', 0, 1, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/**
 * Building a read-only root filesystem disk from a flattened directory with mkfs.erofs (erofs-utils, uncompressed)
 * or mkfs.ext4 -d (e2fsprogs). See docs/design.md "Root filesystem disks" for the measurements behind the default.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BosonError } from '../common/index.ts';

const run = promisify(execFile);

/** A root disk filesystem type. */
export type RootFsType = 'erofs' | 'ext4';

/** The default filesystem (BOSON_ROOTFS, read by the composition root, chooses another). */
export const DEFAULT_ROOTFS: RootFsType = 'erofs';

async function treeUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0;
  let inodes = 1;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = await fs.lstat(p);
      inodes++;
      bytes += Math.ceil(st.size / 4096) * 4096 + 256;
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return { bytes, inodes };
}

async function tool(cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    const why = e.code === 'ENOENT' ? 'not installed' : (e.stderr?.trim() || e.message).slice(-2000);
    throw new BosonError('TOOL_FAILED', `${cmd} failed: ${why}`, { cause: err, details: { tool: cmd } });
  }
}

/**
 * Makes a `fstype` filesystem image at `out` (a new file) holding the tree `dir`, preserving ownership, modes,
 * times, links and device nodes. Returns the image's size in bytes. Throws TOOL_FAILED when mkfs fails.
 */
export async function makeRootFs(dir: string, out: string, fstype: RootFsType): Promise<number> {
  if (fstype === 'erofs') {
    await tool('mkfs.erofs', [out, dir]);
  } else {
    const { bytes, inodes } = await treeUsage(dir);
    const sizeBytes = Math.ceil((bytes * 1.1 + inodes * 256 + 16 * 1024 * 1024) / (1024 * 1024)) * 1024 * 1024;
    const fh = await fs.open(out, 'wx', 0o644);
    await fh.truncate(sizeBytes);
    await fh.close();
    await tool('mkfs.ext4', [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      '-m',
      '0',
      '-N',
      String(inodes + 256),
      '-O',
      '^has_journal,^resize_inode',
      '-E',
      'lazy_itable_init=0,root_owner=0:0',
      '-L',
      'boson-root',
      '-d',
      dir,
      out,
    ]);
  }
  return (await fs.stat(out)).size;
}

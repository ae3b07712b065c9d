/**
 * Flattening image layers (uncompressed tar streams, lowest first) into a directory, as root, with OCI whiteouts.
 *
 * Safety: every path is resolved inside the root by hand (lstat per component). Entry names that are absolute or
 * escape with ".." are refused (LAYER_UNSAFE). Symlinks met in parent components are followed inside the root
 * (absolute targets are relative to the root); a link that would lead above the root is refused (LAYER_UNSAFE).
 * The last component is never followed: an existing entry there is replaced. Hard link targets must be inside the
 * root. Files are created with O_EXCL|O_NOFOLLOW. On an error the caller removes the half-built directory.
 * What is done later, by path (directories' mtimes at the end, each layer's extended attributes at its end), first
 * checks with lstat that every component below the root is still a real directory: a later entry may have put a
 * symlink (say, to a host path) where a directory was, and it must not be followed. Nobody else can change the tree
 * meanwhile (it is in a private directory, see staging.ts), so the check holds until the call.
 *
 * The image's own root entry ("./") never changes the directory we were given while layers are applied: its owner,
 * mode and mtime are applied at the very end (without one, the root gets 0755 root:root, as Docker's), just before
 * mkfs reads them into the disk's root. Callers put that directory inside a private (0700, root-owned) staging
 * directory, so no one else on the host can reach it, or anything under it (setuid files, device nodes).
 *
 * Preserved: file data, mode (incl. setuid/sticky), uid/gid, mtime (directories' mtimes applied at the end),
 * symlinks, hard links; character/block devices and fifos are created with mknod(1).
 *
 * Extended attributes (PAX SCHILY.xattr.* and LIBARCHIVE.xattr.*, e.g. file capabilities): read byte for byte by
 * XattrTap (tar-xattrs.ts) in front of tar-stream, and set at the end of each layer by one setfattr (xattrs.ts),
 * so after every chown/chmod of the layer (chown clears security.capability). An entry is remembered by path and
 * inode: one that a later entry of the same layer replaced or removed gets nothing. A replaced file loses its old
 * attributes (it is a new inode); a directory declared again keeps its attributes and gains the new ones (as in
 * Docker). trusted.overlay.* and other namespaces than user/security/trusted are skipped (see xattrs.ts). What the
 * staging filesystem refuses, or what is skipped, does not fail the build (as in containerd and Docker): each
 * layer's such attributes are summed up in one `warning` progress event and in FlattenStats.warnings.
 */
import { execFile } from 'node:child_process';
import fsSync, { constants, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { BosonError } from '../common/index.ts';
import { XattrTap, type Xattrs } from './tar-xattrs.ts';
import type { ImageProgress } from './types.ts';
import { applyXattrs, xattrVerdict, type XattrTarget, type XattrVerdict } from './xattrs.ts';

const run = promisify(execFile);

/** One layer to apply: a name for messages and a function opening its uncompressed tar stream. */
export interface LayerInput {
  name: string;
  open(): Readable;
}

/** Counts of what flattening did. */
export interface FlattenStats {
  entries: number;
  whiteouts: number;
  /** Extended attributes set. */
  xattrs: number;
  /** Extended attributes skipped or refused, one line per layer and kind (also sent as `warning` progress). */
  warnings: string[];
}

const SKIPPED: Record<Exclude<XattrVerdict, 'apply'>, string> = {
  'overlay-metadata': "skipped overlayfs metadata (it would change the guest's overlay root)",
  namespace: 'skipped (only the user, security and trusted namespaces are applied)',
  'not-file-or-dir': 'skipped (user.* attributes exist only on files and directories)',
};

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

const unsafe = (layer: string, name: string, why: string): BosonError =>
  new BosonError('LAYER_UNSAFE', `layer ${layer}: entry "${name}" ${why}`, { details: { layer, entry: name } });

/** Lexically cleans an entry name into components; LAYER_UNSAFE when absolute or escaping with "..". */
function entryComponents(layer: string, name: string): string[] {
  if (name.startsWith('/')) throw unsafe(layer, name, 'has an absolute path');
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw unsafe(layer, name, 'escapes the root with ".."');
      out.pop();
    } else out.push(c);
  }
  return out;
}

function lstatOrNull(p: string): Stats | null {
  return fsSync.lstatSync(p, { throwIfNoEntry: false }) ?? null;
}

const isExists = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'EEXIST';

/** Writes all of `chunks` at the file's current offset. */
function writeAll(fd: number, chunks: Buffer[]): void {
  let total = 0;
  for (const c of chunks) total += c.length;
  let done = fsSync.writevSync(fd, chunks);
  if (done === total) return;
  // A short write (rare for regular files): finish chunk by chunk.
  for (const c of chunks) {
    if (done >= c.length) {
      done -= c.length;
      continue;
    }
    let off = done;
    done = 0;
    while (off < c.length) off += fsSync.writeSync(fd, c, off);
  }
}

/**
 * The flattener works with synchronous syscalls: each is a few microseconds, while an async fs call costs a
 * thread-pool round trip, and a layer of many small files is all syscalls (open, write, fchown, fchmod, futimes,
 * close). Entries are applied one after another anyway, and the event loop only waits for the tar stream.
 */
class Flattener {
  /** Directories' mtimes to set at the end, by relative path. */
  private readonly dirTimes = new Map<string, { rel: string[]; mtime: Date }>();
  /** The image's root entry ("./"), applied to the root at the end. */
  private rootMeta: { uid: number; gid: number; mode: number; mtime: Date } | null = null;
  private readonly dirCache = new Map<string, string[]>();
  private added = new Set<string>();
  /** This layer's attributes to set, by entry path (relative), with the inode they belong to. */
  private pendingXattrs = new Map<string, XattrTarget & { dev: number; ino: number }>();
  /** This layer's attributes not set: "<name>: <why>" -> example paths and count. */
  private notApplied = new Map<string, { count: number; example: string }>();
  readonly stats: FlattenStats = { entries: 0, whiteouts: 0, xattrs: 0, warnings: [] };

  constructor(
    private readonly root: string,
    private readonly onProgress?: ImageProgress,
  ) {}

  private abs(rel: string[] | string): string {
    return path.join(this.root, ...(typeof rel === 'string' ? [rel] : rel));
  }

  /**
   * Resolves directory components inside the root, following symlinks (inside the root only). Missing directories
   * are created (0755, root) when `create`; otherwise null is returned for a missing one.
   */
  private resolveDir(layer: string, name: string, comps: string[], create: boolean): string[] | null {
    const key = comps.join('/');
    const cached = this.dirCache.get(key);
    if (cached) return cached;
    const out: string[] = [];
    const queue = [...comps];
    let hops = 0;
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (out.length === 0) throw unsafe(layer, name, 'goes through a symlink that leads outside the root');
        out.pop();
        continue;
      }
      const p = this.abs([...out, c]);
      const st = lstatOrNull(p);
      if (st === null) {
        if (!create) return null;
        fsSync.mkdirSync(p, { mode: 0o755 });
        out.push(c);
      } else if (st.isSymbolicLink()) {
        if (++hops > 40) throw unsafe(layer, name, 'goes through too many symlinks');
        const target = fsSync.readlinkSync(p);
        if (target.startsWith('/')) out.length = 0;
        queue.unshift(...target.split('/'));
      } else if (st.isDirectory()) {
        out.push(c);
      } else {
        throw new BosonError('IMAGE_INVALID', `layer ${layer}: entry "${name}": "${[...out, c].join('/')}" is not a directory`);
      }
    }
    this.dirCache.set(key, out);
    return out;
  }

  /**
   * Removes `p` (recursively). Only a removal can invalidate a cached directory resolution: a new entry is created
   * where nothing was, and a resolution never passes through a missing path (it creates a directory there).
   */
  private remove(p: string): void {
    this.dirCache.clear();
    fsSync.rmSync(p, { recursive: true, force: true });
  }

  /** Runs `create` (which fails with EEXIST when something is at `p`); on EEXIST removes `p` and tries once more. */
  private replace<T>(p: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      if (!isExists(err)) throw err;
    }
    this.remove(p);
    return create();
  }

  /** Removes everything under `rel` that this layer did not add (recursing into directories this layer added). */
  private opaque(rel: string[]): void {
    let names: string[];
    try {
      names = fsSync.readdirSync(this.abs(rel));
    } catch {
      return;
    }
    for (const n of names) {
      const child = [...rel, n];
      if (!this.added.has(child.join('/'))) this.remove(this.abs(child));
      else if (fsSync.lstatSync(this.abs(child)).isDirectory()) this.opaque(child);
    }
  }

  async applyLayer(layer: LayerInput): Promise<void> {
    this.added = new Set();
    this.dirCache.clear();
    this.pendingXattrs = new Map();
    this.notApplied = new Map();
    const tap = new XattrTap();
    const ex = tar.extract();
    const done = pipeline(layer.open(), tap, ex);
    done.catch(() => undefined);
    try {
      for await (const entry of ex) {
        try {
          await this.applyEntry(layer.name, entry.header, entry, tap.entryXattrs(layer.name, entry.header));
        } finally {
          entry.resume();
        }
      }
      await done;
      await this.flushXattrs(layer.name);
    } catch (err) {
      ex.destroy();
      if (err instanceof BosonError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code && ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'].includes(e.code)) {
        throw new BosonError('STATE_DIR_UNWRITABLE', `layer ${layer.name}: cannot write the root filesystem: ${e.message}`, { cause: err });
      }
      if (e.syscall) throw new BosonError('IMAGE_INVALID', `layer ${layer.name}: cannot apply an entry: ${e.message}`, { cause: err });
      throw new BosonError('IMAGE_CORRUPT', `layer ${layer.name} is not a readable tar stream: ${(err as Error).message}`, { cause: err });
    }
  }

  private async applyEntry(layer: string, h: tar.Header, body: AsyncIterable<unknown>, xattrs: Xattrs | null): Promise<void> {
    const type: string = h.type ?? 'file';
    const comps = entryComponents(layer, h.name);
    this.stats.entries++;
    if (comps.length === 0) {
      if (type === 'directory') {
        this.rootMeta = { uid: h.uid ?? 0, gid: h.gid ?? 0, mode: (h.mode ?? 0o755) & 0o7777, mtime: h.mtime ?? new Date(0) };
        this.noteXattrs(layer, h.name, [], xattrs);
      }
      return;
    }
    const base = comps.pop()!;
    if (base.startsWith(WH)) {
      this.stats.whiteouts++;
      if (base === OPAQUE) {
        const dir = this.resolveDir(layer, h.name, comps, true)!;
        this.opaque(dir);
        return;
      }
      const victim = base.slice(WH.length);
      if (victim === '' || victim === '.' || victim === '..') throw unsafe(layer, h.name, 'is a malformed whiteout');
      const dir = this.resolveDir(layer, h.name, comps, false);
      if (dir === null) return;
      const rel = [...dir, victim];
      if (!this.added.has(rel.join('/'))) this.remove(this.abs(rel));
      return;
    }
    const dir = this.resolveDir(layer, h.name, comps, true)!;
    const rel = [...dir, base];
    const p = this.abs(rel);
    if (type === 'directory') {
      try {
        fsSync.mkdirSync(p, { mode: 0o700 });
      } catch (err) {
        if (!isExists(err)) throw err;
        // An existing directory is kept (its contents stay); anything else there is replaced.
        if (!fsSync.lstatSync(p).isDirectory()) {
          this.remove(p);
          fsSync.mkdirSync(p, { mode: 0o700 });
        }
      }
      this.setMeta(p, h, true, false, rel);
      this.added.add(rel.join('/'));
      this.noteXattrs(layer, h.name, rel, xattrs);
      return;
    }
    switch (type) {
      case 'file':
      case 'contiguous-file': {
        const fd = this.replace(p, () =>
          fsSync.openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600),
        );
        try {
          // Batched writes: tar-stream yields small chunks, and one write per chunk dominated big layers.
          let batch: Buffer[] = [];
          let bytes = 0;
          for await (const chunk of body) {
            batch.push(chunk as Buffer);
            bytes += (chunk as Buffer).length;
            if (bytes >= 1 << 20) {
              writeAll(fd, batch);
              batch = [];
              bytes = 0;
            }
          }
          if (batch.length > 0) writeAll(fd, batch);
          // Metadata through the descriptor: no path lookups. chown before chmod (chown clears setuid bits).
          fsSync.fchownSync(fd, h.uid ?? 0, h.gid ?? 0);
          fsSync.fchmodSync(fd, (h.mode ?? 0o644) & 0o7777);
          const mtime = h.mtime ?? new Date(0);
          fsSync.futimesSync(fd, mtime, mtime);
        } finally {
          fsSync.closeSync(fd);
        }
        this.added.add(rel.join('/'));
        this.noteXattrs(layer, h.name, rel, xattrs);
        return;
      }
      case 'symlink':
        this.replace(p, () => fsSync.symlinkSync(h.linkname ?? '', p));
        break;
      case 'link': {
        const tcomps = entryComponents(layer, h.linkname ?? '');
        if (h.linkname?.startsWith('/') || tcomps.length === 0)
          throw unsafe(layer, h.name, `is a hard link to "${h.linkname}", outside the root`);
        const tbase = tcomps.pop()!;
        const tdir = this.resolveDir(layer, h.name, tcomps, false);
        const target = tdir === null ? null : this.abs([...tdir, tbase]);
        const tst = target === null ? null : lstatOrNull(target);
        if (target === null || tst === null)
          throw new BosonError('IMAGE_INVALID', `layer ${layer}: hard link "${h.name}" points to missing "${h.linkname}"`);
        if (tst.isDirectory()) throw unsafe(layer, h.name, 'is a hard link to a directory');
        this.replace(p, () => fsSync.linkSync(target, p));
        this.added.add(rel.join('/'));
        this.noteXattrs(layer, h.name, rel, xattrs); // on the shared inode, as Docker does
        return; // a hard link shares the target's inode and metadata
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        if (lstatOrNull(p)) this.remove(p);
        const kind = type === 'fifo' ? ['p'] : [type === 'character-device' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
        try {
          await run('mknod', ['-m', '0600', p, ...kind]);
        } catch (err) {
          throw new BosonError('TOOL_FAILED', `layer ${layer}: mknod ${h.name} failed: ${(err as Error).message}`, {
            cause: err,
            details: { tool: 'mknod', layer, entry: h.name, nodeType: type },
          });
        }
        break;
      }
      default:
        return; // unknown entry types are skipped
    }
    this.setMeta(p, h, false, type === 'symlink');
    this.added.add(rel.join('/'));
    this.noteXattrs(layer, h.name, rel, xattrs);
  }

  /**
   * Remembers `xattrs` of the entry now at `rel`, for the end of the layer. A directory declared again adds to
   * what it had; anything else replaces what was remembered for its path.
   */
  private noteXattrs(layer: string, entry: string, rel: string[], xattrs: Xattrs | null): void {
    const key = rel.join('/');
    const p = this.abs(rel);
    const st = fsSync.lstatSync(p);
    const prev = this.pendingXattrs.get(key);
    const keep = prev !== undefined && st.isDirectory() && prev.ino === st.ino && prev.dev === st.dev;
    if (!keep) this.pendingXattrs.delete(key);
    if (xattrs === null) return;
    const apply: Xattrs = keep ? prev.xattrs : new Map();
    for (const [name, value] of xattrs) {
      const verdict = xattrVerdict(layer, entry, name, value, st.isFile() || st.isDirectory());
      if (verdict === 'apply') apply.set(name, value);
      else this.notApply(`${name}: ${SKIPPED[verdict]}`, key);
    }
    if (apply.size > 0 && !keep) this.pendingXattrs.set(key, { path: p, xattrs: apply, dev: st.dev, ino: st.ino });
  }

  private notApply(what: string, rel: string): void {
    const n = this.notApplied.get(what);
    if (n) n.count++;
    else this.notApplied.set(what, { count: 1, example: `/${rel}` });
  }

  /** Sets this layer's remembered attributes on the entries still there (same inode), with one setfattr. */
  private async flushXattrs(layer: string): Promise<void> {
    const targets: XattrTarget[] = [];
    const known = new Map<string, boolean>();
    for (const [key, t] of this.pendingXattrs) {
      // Not through a symlink that a later entry of this layer put where a parent directory was.
      if (key !== '' && !this.isRealDir(key.split('/').slice(0, -1), known)) continue;
      const st = lstatOrNull(t.path);
      if (st !== null && st.ino === t.ino && st.dev === t.dev) targets.push(t);
    }
    this.pendingXattrs = new Map();
    const refused = await applyXattrs(targets);
    let set = 0;
    for (const t of targets) set += t.xattrs.size;
    this.stats.xattrs += set - refused.length;
    for (const r of refused) this.notApply(`${r.name}: refused by the staging filesystem`, path.relative(this.root, r.path));
    for (const [what, { count, example }] of this.notApplied) {
      const line = `layer ${layer}: extended attribute ${what}, on ${count} ${count === 1 ? 'entry' : 'entries'} (e.g. ${example})`;
      this.stats.warnings.push(line);
      this.onProgress?.({ phase: 'warning', detail: line });
    }
    this.notApplied = new Map();
  }

  private setMeta(p: string, h: tar.Header, isDir: boolean, isLink = false, rel: string[] = []): void {
    fsSync.lchownSync(p, h.uid ?? 0, h.gid ?? 0);
    if (!isLink) fsSync.chmodSync(p, (h.mode ?? (isDir ? 0o755 : 0o644)) & 0o7777);
    const mtime = h.mtime ?? new Date(0);
    if (isDir) this.dirTimes.set(rel.join('/'), { rel, mtime });
    else fsSync.lutimesSync(p, mtime, mtime);
  }

  /**
   * True when every component of `rel` is a real directory (not a symlink, not missing), checked with lstat from
   * the root down; `known` caches the answers of one pass (nothing changes the tree during it).
   */
  private isRealDir(rel: string[], known = new Map<string, boolean>()): boolean {
    for (let i = 1; i <= rel.length; i++) {
      const key = rel.slice(0, i).join('/');
      let ok = known.get(key);
      if (ok === undefined) {
        ok = lstatOrNull(this.abs(rel.slice(0, i)))?.isDirectory() === true;
        known.set(key, ok);
      }
      if (!ok) return false;
    }
    return true;
  }

  /**
   * Applies directory mtimes, deepest first (children change their parent's mtime), on the directories that are
   * still there as directories (never through a symlink a later layer put in place of one of their parents), then
   * the image's root entry to the root.
   */
  finish(): void {
    const dirs = [...this.dirTimes.values()].sort((a, b) => b.rel.length - a.rel.length);
    const known = new Map<string, boolean>();
    for (const { rel, mtime } of dirs) {
      if (this.isRealDir(rel, known)) fsSync.lutimesSync(this.abs(rel), mtime, mtime);
    }
    const m = this.rootMeta ?? { uid: 0, gid: 0, mode: 0o755, mtime: null };
    const fd = fsSync.openSync(this.root, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      fsSync.fchownSync(fd, m.uid, m.gid);
      fsSync.fchmodSync(fd, m.mode);
      if (m.mtime) fsSync.futimesSync(fd, m.mtime, m.mtime);
    } finally {
      fsSync.closeSync(fd);
    }
  }
}

/**
 * Applies `layers` in order into `root` (an existing, normally empty directory). Throws LAYER_UNSAFE for an entry
 * that would write outside `root`, IMAGE_CORRUPT for an unreadable tar stream, TOOL_FAILED when setfattr is
 * missing and a layer has extended attributes. Extended attributes that are skipped or refused are reported as
 * `warning` progress events (and in the result), not as errors. Leaves cleanup of `root` to the caller on error.
 */
export async function flattenLayers(layers: LayerInput[], root: string, opts: { onProgress?: ImageProgress } = {}): Promise<FlattenStats> {
  const f = new Flattener(await fs.realpath(root), opts.onProgress);
  for (const [i, layer] of layers.entries()) {
    opts.onProgress?.({ phase: 'unpack', current: i + 1, total: layers.length, detail: layer.name });
    await f.applyLayer(layer);
  }
  f.finish();
  return f.stats;
}

/**
 * Extended attributes of tar entries, byte for byte. Docker and BuildKit (Go's archive/tar) store an entry's xattrs
 * as PAX records `SCHILY.xattr.<name>=<raw value>`; libarchive as `LIBARCHIVE.xattr.<url-encoded name>=<base64>`.
 * Values are binary (security.capability holds bytes ≥ 0x80), and tar-stream decodes PAX values as UTF-8, which
 * corrupts them. So XattrTap sits in front of tar-stream: it reads the tar framing itself (512-byte headers,
 * sizes in octal or base-256, data padded to 512), keeps the raw bytes of each local ('x') PAX header, and passes
 * every byte on untouched. For each header tar-stream turns into an entry, it queues that entry's xattrs; the
 * consumer takes them with `entryXattrs(layer, header)` as tar-stream emits the entry. Each queued item carries the
 * offset of the entry's data, which tar-stream reports as `header.byteOffset`: a disagreement between the two
 * readers is an error (IMAGE_INVALID), never a silent mismatch.
 *
 * The framing mirrors tar-stream 3's: 'x', 'g', 'L' and 'K' headers are not entries; an all-zero block is skipped;
 * a directory's data is not skipped; a local PAX `size` (or, quirk for quirk, a global one when there is a local
 * header) overrides the header's size. Xattrs in global ('g') headers are ignored (no tool writes them there).
 * Consecutive local headers merge their xattrs (as Go's reader does).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { BosonError } from '../common/index.ts';

/** Extended attributes of one entry: full name ("security.capability") to raw value. */
export type Xattrs = Map<string, Buffer>;

const BLOCK = 512;
/** tar-stream's own limit for a long header's data. */
const MAX_PAX = 4 * 1024 * 1024;
const SCHILY = 'SCHILY.xattr.';
const LIBARCHIVE = 'LIBARCHIVE.xattr.';

const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** Decodes a numeric header field as tar-stream does: base-256 when the top bit is set, else octal. */
function decodeNumber(h: Buffer, off: number, len: number): number {
  const v = h.subarray(off, off + len);
  if (v[0]! & 0x80) {
    if (v[0] !== 0x80 && v[0] !== 0xff) return NaN;
    const positive = v[0] === 0x80;
    let sum = 0;
    for (let i = v.length - 1, m = 1; i > 0; i--, m *= 256) sum += (positive ? v[i]! : 0xff - v[i]!) * m;
    return positive ? sum : -sum;
  }
  let i = 0;
  while (i < v.length && v[i] === 0x20) i++;
  let end = v.indexOf(0x20, i);
  if (end === -1) end = v.length;
  while (i < end && v[i] === 0) i++;
  return end === i ? 0 : parseInt(v.subarray(i, end).toString('latin1'), 8);
}

/** The header checksum's sum (the checksum field counted as spaces); 256 means an all-zero block. */
function checksum(h: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += h[i]!;
  for (let i = 156; i < BLOCK; i++) sum += h[i]!;
  return sum;
}

/** Percent-decodes libarchive's xattr name encoding (bytes outside printable ASCII, '%' and '=' as %XX). */
function percentDecode(s: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const hex = s[i] === 0x25 && i + 2 < s.length ? s.subarray(i + 1, i + 3).toString('latin1') : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(s[i]!);
  }
  return Buffer.from(out);
}

/**
 * Reads the records of one PAX header's data ("<len> <key>=<value>\n" ...): the xattrs in it (SCHILY and
 * LIBARCHIVE forms; a later record for the same name wins) and its `size` record as tar-stream sees it. Stops at
 * a malformed record, as tar-stream does.
 */
export function parsePaxRecords(data: Buffer): { xattrs: Xattrs; size?: string } {
  const xattrs: Xattrs = new Map();
  let size: string | undefined;
  let buf = data;
  while (buf.length > 0) {
    const sp = buf.indexOf(0x20);
    const len = parseInt(buf.subarray(0, sp === -1 ? buf.length : sp).toString('latin1'), 10);
    if (!len || sp === -1 || len > buf.length || len < sp + 2) break;
    const rec = buf.subarray(sp + 1, len - 1); // without the trailing newline
    buf = buf.subarray(len);
    const eq = rec.indexOf(0x3d);
    if (eq === -1) break;
    const key = rec.subarray(0, eq).toString('utf8');
    const value = rec.subarray(eq + 1);
    if (key.startsWith(SCHILY)) xattrs.set(key.slice(SCHILY.length), Buffer.from(value));
    else if (key.startsWith(LIBARCHIVE)) {
      const name = percentDecode(rec.subarray(Buffer.byteLength(LIBARCHIVE), eq)).toString('utf8');
      xattrs.set(name, Buffer.from(value.toString('latin1'), 'base64'));
    } else if (key === 'size') size = value.toString('utf8');
  }
  return { xattrs, size };
}

interface Pending {
  offset: number;
  xattrs: Xattrs | null;
}

/**
 * A pass-through stream for a tar archive that records each entry's extended attributes (see the module comment).
 * Put it between the tar source and tar-stream's extract, and call `entryXattrs` once for every entry extract emits.
 */
export class XattrTap extends Transform {
  private pos = 0;
  private head: Buffer[] = [];
  private headLen = 0;
  private skip = 0;
  private collect: { global: boolean; size: number; got: number; chunks: Buffer[] } | null = null;
  private local: { xattrs: Xattrs; size?: string } | null = null;
  private globalSize: string | undefined;
  private broken = false;
  private readonly queue: Pending[] = [];

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.scan(chunk);
    cb(null, chunk);
  }

  /**
   * The xattrs of the entry tar-stream just emitted (null when it has none). IMAGE_INVALID when the tap did not see
   * that entry where tar-stream did.
   */
  entryXattrs(layer: string, header: { name: string }): Xattrs | null {
    const next = this.queue.shift();
    const offset = (header as { byteOffset?: unknown }).byteOffset;
    if (next === undefined || (typeof offset === 'number' && offset !== next.offset)) {
      throw new BosonError(
        'IMAGE_INVALID',
        `layer ${layer}: entry "${header.name}": cannot read its extended attributes: the tar framing is malformed or ambiguous`,
        {
          details: { layer, entry: header.name },
        },
      );
    }
    return next.xattrs;
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.broken) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
      } else if (this.collect) {
        const c = this.collect;
        const n = Math.min(c.size - c.got, chunk.length - i);
        c.chunks.push(chunk.subarray(i, i + n));
        c.got += n;
        i += n;
        if (c.got === c.size) this.endPax();
      } else {
        const n = Math.min(BLOCK - this.headLen, chunk.length - i);
        this.head.push(chunk.subarray(i, i + n));
        this.headLen += n;
        i += n;
        if (this.headLen === BLOCK) {
          const h = Buffer.concat(this.head, BLOCK);
          this.head = [];
          this.headLen = 0;
          this.header(h, this.pos + i);
        }
      }
    }
    this.pos += chunk.length;
  }

  private endPax(): void {
    const c = this.collect!;
    this.collect = null;
    this.skip = roundUp(c.size) - c.size;
    const rec = parsePaxRecords(Buffer.concat(c.chunks, c.size));
    if (c.global) this.globalSize = rec.size;
    else if (this.local === null) this.local = rec;
    else {
      for (const [k, v] of rec.xattrs) this.local.xattrs.set(k, v);
      this.local.size = rec.size; // tar-stream keeps only the last local header's records
    }
  }

  /** One 512-byte header whose data starts at byte `dataStart` of the stream. */
  private header(h: Buffer, dataStart: number): void {
    const sum = checksum(h);
    if (sum === 256) return; // an all-zero block: tar-stream skips it
    const size = decodeNumber(h, 124, 12);
    if (sum !== decodeNumber(h, 148, 8) || !(size >= 0)) {
      this.broken = true; // tar-stream fails the stream on this header itself
      return;
    }
    const flag = h[156];
    if (flag === 0x78 /* x */ || flag === 0x67 /* g */) {
      if (size > MAX_PAX) {
        this.broken = true;
        return;
      }
      this.collect = { global: flag === 0x67, size, got: 0, chunks: [] };
      if (size === 0) this.endPax();
      return;
    }
    if (flag === 0x4c /* L */ || flag === 0x4b /* K */) {
      this.skip = roundUp(size);
      return;
    }
    let dataSize = size;
    if (this.local) {
      const s = this.local.size ?? this.globalSize;
      if (s) dataSize = parseInt(s, 10);
    }
    const nameEnd = h.subarray(0, 100).indexOf(0);
    const lastNameByte = h[(nameEnd === -1 ? 100 : nameEnd) - 1];
    const directory = flag === 0x35 || ((flag === 0 || flag === 0x30) && lastNameByte === 0x2f);
    this.queue.push({ offset: dataStart, xattrs: this.local && this.local.xattrs.size > 0 ? this.local.xattrs : null });
    this.local = null;
    if (!(dataSize >= 0)) this.broken = true;
    else this.skip = directory ? 0 : roundUp(dataSize);
  }
}

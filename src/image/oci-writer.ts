/**
 * Writing layer tars and OCI image layouts (used by the busybox image builder and by tests). Deterministic: the
 * same inputs give byte-identical blobs (fixed gzip header, entries in the order given).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { digestHex, sha256Digest } from './content-store.ts';
import { MT } from './types.ts';

/** One tar entry to write. Defaults: type file, mode 0644 (0755 for directories), uid/gid 0, mtime epoch. */
export interface TarEntrySpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  content?: Buffer | string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /**
   * PAX records written, raw, in a local extended header before the entry, e.g. `SCHILY.xattr.security.capability`
   * with a binary value (tar-stream's own writer would encode values as UTF-8).
   */
  pax?: Record<string, Buffer | string>;
}

/** The data of a PAX extended header holding `records` ("<length> <key>=<value>\n", the length counting itself). */
export function paxData(records: Record<string, Buffer | string>): Buffer {
  const out: Buffer[] = [];
  for (const [key, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(v), Buffer.from('\n')]);
    let len = body.length + String(body.length).length;
    if (String(len).length !== String(body.length).length) len = body.length + String(len).length;
    out.push(Buffer.from(String(len)), body);
  }
  return Buffer.concat(out);
}

/** A tar archive (ustar/pax via tar-stream) of `entries`, in order. */
export async function makeTar(entries: TarEntrySpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = type === 'file' ? Buffer.from(e.content ?? '') : undefined;
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type,
        mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        uname: '',
        gname: '',
        mtime: e.mtime ?? new Date(0),
        size: body?.length ?? 0,
        linkname: e.linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
      };
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      // tar-stream writes no data for its 'pax-header' type: written as a file, its type byte is patched below.
      if (e.pax) pack.entry({ name: PAX_MARK, type: 'file', mtime: header.mtime, mode: 0o644 }, paxData(e.pax));
      if (body) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await collected;
  return markPaxHeaders(Buffer.concat(chunks));
}

const PAX_MARK = 'boson-pax-header';

/** Turns the entries named PAX_MARK into PAX extended headers (type 'x'), fixing their checksums. */
function markPaxHeaders(t: Buffer): Buffer {
  for (let off = 0; off + 512 <= t.length;) {
    const h = t.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(h.subarray(124, 136).toString('latin1'), 8);
    if (h.subarray(0, 100).toString('latin1').replace(/\0+$/, '') === PAX_MARK) {
      h[156] = 0x78;
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return t;
}

/** A layer for writeOciLayout: an uncompressed tar and how to store it. */
export interface LayoutLayer {
  tar: Buffer;
  compression?: 'gzip' | 'none' | 'zstd';
  /** Override the stored media type (tests of unsupported types). */
  mediaType?: string;
}

/** One image for writeOciLayout. `config.rootfs` is filled from the layers unless given. */
export interface LayoutImage {
  config: Record<string, unknown>;
  layers: LayoutLayer[];
  refName?: string;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}

/** Written blob digests of one image. */
export interface WrittenImage {
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
}

/** The blobs and index of an OCI image layout, in memory (digest -> bytes). */
export interface LayoutFiles {
  blobs: Map<string, Buffer>;
  indexJson: Buffer;
  images: WrittenImage[];
}

/** Builds an OCI image layout in memory: blobs by digest and index.json. */
export function buildOciLayout(images: LayoutImage[]): LayoutFiles {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer): string => {
    const d = sha256Digest(b);
    blobs.set(d, b);
    return d;
  };
  const written: WrittenImage[] = [];
  const manifests: Record<string, unknown>[] = [];
  for (const img of images) {
    const layerDescs = img.layers.map((l) => {
      const c = l.compression ?? 'gzip';
      const data =
        c === 'gzip' ? gzipSync(l.tar, { level: 9 }) : c === 'zstd' ? execFileSync('zstd', ['-q', '-c', '-19'], { input: l.tar }) : l.tar;
      const mediaType = l.mediaType ?? (c === 'gzip' ? MT.ociLayerGzip : c === 'zstd' ? MT.ociLayerZstd : MT.ociLayerTar);
      return { mediaType, digest: put(data), size: data.length, diffId: sha256Digest(l.tar) };
    });
    const diffIds = layerDescs.map((l) => l.diffId);
    const config = { ...img.config, rootfs: img.config.rootfs ?? { type: 'layers', diff_ids: diffIds } };
    const configBuf = Buffer.from(JSON.stringify(config));
    const configDigest = put(configBuf);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: { mediaType: MT.ociConfig, digest: configDigest, size: configBuf.length },
        layers: layerDescs.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
      }),
    );
    const manifestDigest = put(manifest);
    const annotations = { ...(img.annotations ?? {}), ...(img.refName ? { 'org.opencontainers.image.ref.name': img.refName } : {}) };
    manifests.push({
      mediaType: MT.ociManifest,
      digest: manifestDigest,
      size: manifest.length,
      ...(Object.keys(annotations).length ? { annotations } : {}),
      ...(img.platform ? { platform: img.platform } : {}),
    });
    written.push({ manifestDigest, configDigest, layerDigests: layerDescs.map((l) => l.digest), diffIds });
  }
  const indexJson = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests }, null, 2) + '\n');
  return { blobs, indexJson, images: written };
}

/** The oci-layout file's content. */
export const OCI_LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}\n';

/** Writes an in-memory layout into the directory `dir` (created; existing files with the same names replaced). */
export async function saveOciLayout(files: LayoutFiles, dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of files.blobs) await fs.writeFile(path.join(dir, 'blobs', 'sha256', digestHex(d)), b);
  await fs.writeFile(path.join(dir, 'oci-layout'), OCI_LAYOUT_FILE);
  await fs.writeFile(path.join(dir, 'index.json'), files.indexJson);
}

/** Builds and writes an OCI image layout of `images` into `dir`. */
export async function writeOciLayout(dir: string, images: LayoutImage[]): Promise<WrittenImage[]> {
  const files = buildOciLayout(images);
  await saveOciLayout(files, dir);
  return files.images;
}

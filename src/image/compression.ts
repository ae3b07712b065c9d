/**
 * Decompression of layer blobs by media type: gzip with node:zlib, zstd with the `zstd` CLI (Debian package zstd).
 * Every layer stream is capped (LayerLimits): a layer that uncompresses to more than `maxBytes`, or to more than
 * `maxRatio` times its compressed size once past `ratioFloorBytes`, is cut off with LAYER_UNSAFE (a decompression
 * bomb: a few MiB of gzip can hold terabytes of zeros, which would fill the staging tmpfs, the store's disk or the
 * hash loop's time).
 */
import { spawn } from 'node:child_process';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BosonError } from '../common/index.ts';
import { layerCompression } from './types.ts';

/**
 * Output chunk size of gunzip. Node's default (16 KiB) costs one thread-pool round trip per 16 KiB; with 256 KiB
 * a 64 MB layer decompresses and flattens in about half the time.
 */
const GUNZIP_CHUNK = 256 * 1024;

/** Caps on one layer's uncompressed size. */
export interface LayerLimits {
  /** Most bytes a layer may uncompress to. */
  maxBytes: number;
  /** Most times its compressed size a layer may uncompress to... */
  maxRatio: number;
  /** ...once it is larger than this (tar's padding makes tiny layers compress 100-fold and more). */
  ratioFloorBytes: number;
}

/**
 * The defaults: 64 GiB, and 100 times the compressed size past 1 GiB. Real layers compress 2-10-fold (text-heavy
 * ones up to ~20); a gzip of zeros compresses ~1000-fold, zstd's far more.
 */
export const DEFAULT_LAYER_LIMITS: LayerLimits = { maxBytes: 64 * 2 ** 30, maxRatio: 100, ratioFloorBytes: 2 ** 30 };

const size = (n: number): string =>
  n >= 2 ** 30 && n % 2 ** 30 === 0 ? `${n / 2 ** 30} GiB` : n >= 2 ** 20 && n % 2 ** 20 === 0 ? `${n / 2 ** 20} MiB` : `${n} bytes`;

/** What uncompressedLayer checks: the blob's (descriptor) size and the caps; `what` names the layer in messages. */
export interface LayerStreamOptions {
  compressedSize?: number;
  limits?: LayerLimits;
  what?: string;
}

/** A pass-through that counts bytes and fails with LAYER_UNSAFE past the caps. */
function capped(compressed: boolean, opts: LayerStreamOptions): Transform {
  const limits = opts.limits ?? DEFAULT_LAYER_LIMITS;
  const ratioCap =
    compressed && opts.compressedSize !== undefined ? Math.max(limits.ratioFloorBytes, limits.maxRatio * opts.compressedSize) : Infinity;
  const what = opts.what ?? 'a layer';
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > limits.maxBytes) {
        return cb(
          new BosonError('LAYER_UNSAFE', `${what} uncompresses to more than ${size(limits.maxBytes)}, the most a layer may hold`, {
            details: { reason: 'size', limit: limits.maxBytes },
          }),
        );
      }
      if (n > ratioCap) {
        return cb(
          new BosonError(
            'LAYER_UNSAFE',
            `${what} uncompresses to more than ${limits.maxRatio} times its compressed size of ${opts.compressedSize} bytes (more than ${n} bytes): a decompression bomb`,
            {
              details: { reason: 'ratio', limit: limits.maxRatio, compressedSize: opts.compressedSize },
            },
          ),
        );
      }
      cb(null, chunk);
    },
  });
}

/**
 * Returns the uncompressed tar stream of a layer blob, capped (see LayerLimits; LAYER_UNSAFE past them); IMAGE_INVALID
 * for a media type that is not a layer.
 */
export function uncompressedLayer(mediaType: string, blob: Readable, opts: LayerStreamOptions = {}): Readable {
  const c = layerCompression(mediaType);
  if (c === null) throw new BosonError('IMAGE_INVALID', `unsupported layer media type "${mediaType}"`, { details: { mediaType } });
  const cap = capped(c !== 'none', opts);
  if (c === 'none') {
    pipeline(blob, cap).catch((err: Error) => cap.destroy(err));
    return cap;
  }
  const out = cap;
  if (c === 'gzip') {
    pipeline(blob, createGunzip({ chunkSize: GUNZIP_CHUNK }), out).catch((err: Error) => out.destroy(err));
    return out;
  }
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('error', (err) => out.destroy(new BosonError('TOOL_FAILED', `cannot run zstd: ${err.message}`, { cause: err })));
  pipeline(blob, child.stdin).catch(() => undefined);
  child.stdout.pipe(out, { end: false });
  // A capped stream that failed stops the decompressor (and so the blob's reading).
  out.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  child.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new BosonError('IMAGE_CORRUPT', `zstd could not decompress the layer: ${stderr.trim() || `exit ${code}`}`));
  });
  return out;
}

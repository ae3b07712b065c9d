/**
 * Content-addressed blob storage: <root>/sha256/<hex>. Blobs enter only through copyVerified() (temp file, check
 * size and sha256, then rename), so a blob in the store always matches its name.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BosonError } from '../common/index.ts';

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The hex part of a "sha256:<hex>" digest; throws IMAGE_INVALID for anything else. */
export function digestHex(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m) throw new BosonError('IMAGE_INVALID', `unsupported or malformed digest "${digest}"`, { details: { digest } });
  return m[1]!;
}

/** "sha256:<hex>" of a buffer. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Reads a whole stream, returning its sha256 digest and byte count. */
export async function hashStream(stream: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/**
 * Copies `src` to the new file `dest` while hashing it, and checks the result against `expected` (size when
 * given, and digest). On any mismatch or read error `dest` is removed and IMAGE_CORRUPT is thrown naming `what`.
 */
export async function copyVerified(
  src: Readable,
  dest: string,
  expected: { digest: string; size?: number },
  what: string,
  onBytes?: (bytes: number) => void,
): Promise<void> {
  const h = createHash('sha256');
  let size = 0;
  const limit = expected.size;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (limit !== undefined && size > limit) {
        cb(new BosonError('IMAGE_CORRUPT', `${what}: blob ${expected.digest} is larger than its descriptor size ${limit}`));
        return;
      }
      h.update(chunk);
      onBytes?.(size);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(src, meter, createWriteStream(dest, { flags: 'wx', mode: 0o644 }));
    if (limit !== undefined && size !== limit) {
      throw new BosonError('IMAGE_CORRUPT', `${what}: blob ${expected.digest} is truncated (${size} of ${limit} bytes)`, {
        details: { digest: expected.digest, size, expectedSize: limit },
      });
    }
    const got = `sha256:${h.digest('hex')}`;
    if (got !== expected.digest) {
      throw new BosonError('IMAGE_CORRUPT', `${what}: blob ${expected.digest} does not match its digest (content is ${got})`, {
        details: { digest: expected.digest, actual: got },
      });
    }
  } catch (err) {
    await fs.rm(dest, { force: true });
    if (err instanceof BosonError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new BosonError('IMAGE_CORRUPT', `${what}: blob ${expected.digest} is missing`, {
        cause: err,
        details: { digest: expected.digest },
      });
    }
    throw new BosonError('IMAGE_CORRUPT', `${what}: cannot read blob ${expected.digest}: ${(err as Error).message}`, { cause: err });
  }
}

/** The blob directory of the image store. */
export class ContentStore {
  /** `root` is <stateDir>/images/blobs; blobs live in <root>/sha256/<hex>. */
  constructor(readonly root: string) {}

  /** Path of a blob (whether or not it exists). */
  blobPath(digest: string): string {
    return path.join(this.root, 'sha256', digestHex(digest));
  }

  /** True when the blob is stored. */
  async has(digest: string): Promise<boolean> {
    try {
      await fs.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** A read stream of a stored blob (1 MiB reads: a layer is read once, whole, and 64 KiB reads cost CPU). */
  open(digest: string): Readable {
    return createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 });
  }

  /** A stored blob parsed as JSON; IMAGE_CORRUPT if missing or not JSON. */
  async readJson<T = unknown>(digest: string): Promise<T> {
    try {
      return JSON.parse(await fs.readFile(this.blobPath(digest), 'utf8')) as T;
    } catch (err) {
      throw new BosonError('IMAGE_CORRUPT', `stored blob ${digest} is missing or not JSON`, { cause: err, details: { digest } });
    }
  }

  /** Moves an already verified file into the store under `digest` (atomic rename; same filesystem). */
  async adopt(verifiedFile: string, digest: string): Promise<void> {
    const dest = this.blobPath(digest);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.rename(verifiedFile, dest);
  }
}

/**
 * A pass-through stream that hashes what flows through it and, at its end, fails with `mismatch(actual)` unless the
 * sha256 is `expected` (so a consumer sees the error instead of a clean end).
 */
export function digestCheck(expected: string, mismatch: (actual: string) => Error): Transform {
  const h = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = `sha256:${h.digest('hex')}`;
      cb(got === expected ? null : mismatch(got));
    },
  });
}

/**
 * Fetching one image from a registry into the content store (the ImageStore commits the index afterwards).
 *
 * Order: top manifest (by tag or digest) → platform selection when it is an index → platform manifest → config →
 * layers, three at a time. Every blob is hashed and counted while it streams to disk and checked against its
 * descriptor before it is renamed into blobs/sha256/<hex>. The config's diff_ids are checked in the one pass that
 * decompresses each layer: the root disk's flattening when the disk is built during the pull (see onPlan), otherwise
 * a decompression on the fly during the download. A download that breaks is resumed with a Range request from the bytes
 * on disk (a partial file <images>/partial/<hex>.<pid>, which a later pull claims when its process is gone).
 * Blobs already in the store are shared and not fetched again.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { BosonError, isBosonError, type KeyedMutex } from '../common/index.ts';
import { uncompressedLayer, type LayerLimits } from './compression.ts';
import { ContentStore, digestHex, hashStream, sha256Digest } from './content-store.ts';
import { isTransientNetworkError, MAX_MANIFEST_BYTES, readLimited, RegistryClient } from './registry.ts';
import type { RemoteReference } from './reference.ts';
import { pidAlive, tempName } from './tempfiles.ts';
import { isIndexType, isManifestType, layerCompression, MT, type Descriptor, type ImageProgress } from './types.ts';

/** A platform as "os/arch[/variant]". */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
};

/** Parses "os/arch[/variant]" (default linux/amd64); INVALID_ARGUMENT when malformed. */
export function parsePlatform(s: string | undefined): Platform {
  if (s === undefined || s === '') return { os: 'linux', architecture: 'amd64' };
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new BosonError('INVALID_ARGUMENT', `invalid platform "${s}" (expected os/arch[/variant], e.g. linux/arm64)`);
  }
  const architecture = ARCH_ALIASES[parts[1]!] ?? parts[1]!;
  return { os: parts[0]!, architecture, ...(parts[2] ? { variant: parts[2] } : {}) };
}

export const platformString = (p: { os?: string; architecture?: string; variant?: string }): string =>
  [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');

/** Picks the manifest for `want` from an index's entries; PLATFORM_NOT_FOUND (listing what there is) otherwise. */
export function selectPlatform(manifests: Descriptor[], want: Platform, what: string): Descriptor {
  const images = manifests.filter((m) => isManifestType(m.mediaType) && m.platform && m.platform.os !== 'unknown');
  const match = images.filter((m) => m.platform!.os === want.os && m.platform!.architecture === want.architecture);
  let chosen: Descriptor | undefined;
  if (want.variant)
    chosen =
      match.find((m) => m.platform!.variant === want.variant) ??
      (want.variant === 'v8' ? match.find((m) => !m.platform!.variant) : undefined);
  else chosen = match.find((m) => !m.platform!.variant) ?? match.find((m) => m.platform!.variant === 'v8') ?? match[0];
  if (!chosen) {
    const have = [...new Set(images.map((m) => platformString(m.platform!)))].join(', ') || 'none';
    throw new BosonError('PLATFORM_NOT_FOUND', `${what}: no manifest for platform ${platformString(want)} (the index has: ${have})`, {
      details: { platform: platformString(want), available: have },
    });
  }
  return chosen;
}

function asDescriptor(x: unknown, what: string, where: string): Descriptor {
  const d = x as Partial<Descriptor> | null;
  if (
    !d ||
    typeof d !== 'object' ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw new BosonError('IMAGE_INVALID', `${what}: ${where} is a malformed descriptor`);
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(d.digest))
    throw new BosonError('IMAGE_INVALID', `${what}: ${where} has an unsupported digest "${d.digest}"`);
  return {
    mediaType: typeof d.mediaType === 'string' ? d.mediaType : '',
    digest: d.digest,
    size: d.size,
    platform: d.platform,
    annotations: d.annotations,
  };
}

function parseJson<T>(body: Buffer, what: string, kind: string): T {
  try {
    const v = JSON.parse(body.toString('utf8')) as T;
    if (!v || typeof v !== 'object') throw new Error('not an object');
    return v;
  } catch (err) {
    throw new BosonError('IMAGE_INVALID', `${what}: the ${kind} is not valid JSON`, { cause: err });
  }
}

/** Streams bytes through a decompressor into a sha256, for checking a diff_id during the download. */
class DiffHasher {
  private readonly input = new PassThrough();
  private readonly done: Promise<{ digest: string }>;

  constructor(mediaType: string, opts: Parameters<typeof uncompressedLayer>[2]) {
    this.done = hashStream(uncompressedLayer(mediaType, this.input, opts));
    this.done.catch(() => undefined);
  }

  async write(chunk: Buffer): Promise<void> {
    if (!this.input.write(chunk))
      await Promise.race([
        once(this.input, 'drain'),
        this.done.then(
          () => undefined,
          () => undefined,
        ),
      ]);
  }

  async finish(): Promise<string> {
    this.input.end();
    return (await this.done).digest;
  }

  abort(): void {
    this.input.destroy();
  }
}

/**
 * The layers of an image being fetched, each with a promise that resolves once that blob is stored and verified
 * (digest and size; its diff_id too, unless the plan's receiver took that over).
 */
export interface LayerPlan {
  diffIds: string[];
  layers: { digest: string; size: number; mediaType: string }[];
  ready: Promise<void>[];
}

/** What fetch() produced: the manifests and config, ready for the index. */
export interface FetchedImage {
  topDigest: string;
  indexDigest?: string;
  manifestDigest: string;
  configDigest: string;
  configBlob: Record<string, unknown>;
  layers: { digest: string; size: number; mediaType: string; diffId: string }[];
  /** Blobs this fetch put into the store (for rollback). */
  added: string[];
}

/** The parts of the image store a fetch needs. */
export interface FetchContext {
  content: ContentStore;
  /** <images>/partial */
  partialDir: string;
  /** <images>/tmp */
  tmpDir: string;
  /** A diff_id the store already verified for a layer blob, if any. */
  knownDiffId(layerDigest: string): string | undefined;
  /** Caps on a layer's uncompressed size (compression.ts's defaults unless given). */
  layerLimits?: LayerLimits;
  /** One lock per blob digest, shared by the store's fetches: one download of a blob at a time in this process. */
  blobLocks: KeyedMutex;
}

/** Fetches one image (manifest, config, layers) into the content store. */
export class ImageFetcher {
  readonly added: string[] = [];
  private readonly ownPartials = new Set<string>();
  /** False when the onPlan receiver checks the diff_ids (see onPlan). */
  private checkDiffIds = true;

  constructor(
    private readonly ctx: FetchContext,
    private readonly client: RegistryClient,
    private readonly ref: RemoteReference,
    private readonly opts: {
      platform: Platform;
      onProgress?: ImageProgress;
      attempts?: number;
      backoffMs?: number;
      concurrency?: number;
      /**
       * Called once the layers are known, with one promise per layer that settles when it is in the store. Returning
       * true takes over the diff_id checks: the receiver decompresses every layer anyway (to build the root disk)
       * and checks each against `plan.diffIds` in that pass, so the fetch does not decompress them a second time.
       * The receiver's failure must then fail the pull before anything is recorded.
       */
      onPlan?: (plan: LayerPlan) => boolean | void;
    },
  ) {}

  private get what(): string {
    return `pull ${this.ref.canonical}`;
  }

  /** Stores a small verified blob (manifest, index, config) from memory. */
  private async putSmall(digest: string, body: Buffer): Promise<void> {
    if (await this.ctx.content.has(digest)) return;
    const tmp = path.join(this.ctx.tmpDir, tempName('blob'));
    await fs.writeFile(tmp, body, { flag: 'wx', mode: 0o644 });
    await this.ctx.content.adopt(tmp, digest);
    this.added.push(digest);
  }

  /** A manifest by digest from the store when we have it, else from the registry. */
  private async manifestByDigest(d: Descriptor): Promise<{ body: Buffer; mediaType: string }> {
    if (await this.ctx.content.has(d.digest)) {
      const body = await fs.readFile(this.ctx.content.blobPath(d.digest));
      const inner = parseJson<{ mediaType?: string }>(body, this.what, 'manifest').mediaType;
      return { body, mediaType: inner ?? d.mediaType };
    }
    const got = await this.client.manifest(this.ref.repository, d.digest, this.what);
    if (got.body.length !== d.size)
      throw new BosonError(
        'IMAGE_CORRUPT',
        `${this.what}: manifest ${d.digest} is ${got.body.length} bytes, its descriptor says ${d.size}`,
      );
    return got;
  }

  /** Does the whole fetch. On error, blobs already added stay listed in `added` for the caller to roll back. */
  async fetch(): Promise<FetchedImage> {
    const p = this.opts.onProgress;
    p?.({ phase: 'resolve', detail: this.ref.canonical });
    let top: { body: Buffer; mediaType: string; digest: string };
    if (this.ref.digest !== null && (await this.ctx.content.has(this.ref.digest))) {
      const body = await fs.readFile(this.ctx.content.blobPath(this.ref.digest));
      top = { body, mediaType: parseJson<{ mediaType?: string }>(body, this.what, 'manifest').mediaType ?? '', digest: this.ref.digest };
    } else {
      top = await this.client.manifest(this.ref.repository, this.ref.digest ?? this.ref.tag ?? 'latest', this.what);
    }
    let manifestBody = top.body;
    let manifestDigest = top.digest;
    let mediaType = top.mediaType;
    let indexDigest: string | undefined;
    if (isIndexType(mediaType)) {
      const index = parseJson<{ manifests?: unknown }>(top.body, this.what, 'image index');
      if (!Array.isArray(index.manifests)) throw new BosonError('IMAGE_INVALID', `${this.what}: the image index has no manifests`);
      const entries = index.manifests.map((m, i) => asDescriptor(m, this.what, `index entry ${i}`));
      const chosen = selectPlatform(entries, this.opts.platform, this.what);
      if (chosen.size > MAX_MANIFEST_BYTES)
        throw new BosonError('IMAGE_INVALID', `${this.what}: manifest ${chosen.digest} is ${chosen.size} bytes, more than the limit`);
      const m = await this.manifestByDigest(chosen);
      manifestBody = m.body;
      manifestDigest = chosen.digest;
      mediaType = m.mediaType || chosen.mediaType;
      indexDigest = top.digest;
      await this.putSmall(top.digest, top.body);
    }
    if (!isManifestType(mediaType)) {
      throw new BosonError(
        'IMAGE_INVALID',
        `${this.what}: unsupported manifest media type "${mediaType}" (supported: OCI image manifest and index, Docker schema2 manifest and manifest list)`,
        {
          details: { mediaType },
        },
      );
    }
    const manifest = parseJson<{ schemaVersion?: number; config?: unknown; layers?: unknown }>(manifestBody, this.what, 'manifest');
    if (manifest.schemaVersion !== 2 || !Array.isArray(manifest.layers))
      throw new BosonError('IMAGE_INVALID', `${this.what}: the manifest has no schemaVersion 2 or no layers`);
    const cfgDesc = asDescriptor(manifest.config, this.what, 'config');
    if (cfgDesc.mediaType !== MT.ociConfig && cfgDesc.mediaType !== MT.dockerConfig) {
      throw new BosonError('IMAGE_INVALID', `${this.what}: unsupported config media type "${cfgDesc.mediaType}" (not a container image)`, {
        details: { mediaType: cfgDesc.mediaType },
      });
    }
    const layerDescs = manifest.layers.map((l, i) => asDescriptor(l, this.what, `layer ${i + 1}`));
    for (const l of layerDescs) {
      if (layerCompression(l.mediaType) === null) {
        throw new BosonError('IMAGE_INVALID', `${this.what}: layer ${l.digest} has unsupported media type "${l.mediaType}"`, {
          details: { mediaType: l.mediaType, digest: l.digest },
        });
      }
    }
    // Config: small, fetched into memory and verified.
    let configBody: Buffer;
    if (await this.ctx.content.has(cfgDesc.digest)) {
      configBody = await fs.readFile(this.ctx.content.blobPath(cfgDesc.digest));
    } else {
      if (cfgDesc.size > MAX_MANIFEST_BYTES * 2)
        throw new BosonError('IMAGE_INVALID', `${this.what}: the config is ${cfgDesc.size} bytes, more than the limit`);
      const res = await this.client.blob(this.ref.repository, cfgDesc.digest, 0, this.what);
      try {
        configBody = await readLimited(res.body, cfgDesc.size, `${this.what}: config ${cfgDesc.digest}`);
      } catch (err) {
        if (isBosonError(err, 'IMAGE_INVALID'))
          throw new BosonError(
            'IMAGE_CORRUPT',
            `${this.what}: config ${cfgDesc.digest} is larger than its descriptor size ${cfgDesc.size}`,
          );
        if (err instanceof BosonError) throw err;
        throw new BosonError(
          'REGISTRY_UNREACHABLE',
          `${this.what}: the connection broke while reading the config: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (configBody.length !== cfgDesc.size || sha256Digest(configBody) !== cfgDesc.digest) {
        throw new BosonError(
          'IMAGE_CORRUPT',
          `${this.what}: config blob ${cfgDesc.digest} does not match its digest or size (${configBody.length} of ${cfgDesc.size} bytes)`,
          {
            details: { digest: cfgDesc.digest },
          },
        );
      }
    }
    const config = parseJson<{ rootfs?: { type?: string; diff_ids?: unknown } }>(configBody, this.what, 'config');
    const diffIds = config.rootfs?.diff_ids;
    if (
      config.rootfs?.type !== 'layers' ||
      !Array.isArray(diffIds) ||
      diffIds.length !== layerDescs.length ||
      !diffIds.every((d) => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d))
    ) {
      throw new BosonError('IMAGE_INVALID', `${this.what}: the config's rootfs.diff_ids do not list the ${layerDescs.length} layers`);
    }
    // Layers, `concurrency` at a time.
    const results: string[] = new Array(layerDescs.length);
    const deferred = layerDescs.map(() => {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined);
      return { promise, resolve, reject };
    });
    const plan = {
      diffIds: diffIds as string[],
      layers: layerDescs.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
      ready: deferred.map((d) => d.promise),
    };
    if (this.opts.onPlan?.(plan) === true) this.checkDiffIds = false;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < layerDescs.length) {
        const i = next++;
        try {
          results[i] = await this.layer(layerDescs[i]!, diffIds[i] as string, i, layerDescs.length);
          deferred[i]!.resolve();
        } catch (err) {
          for (const d of deferred) d.reject(err);
          throw err;
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.opts.concurrency ?? 3, layerDescs.length) }, () => worker());
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    // Manifest and config enter the store last, once every layer is in.
    await this.putSmall(cfgDesc.digest, configBody);
    await this.putSmall(manifestDigest, manifestBody);
    return {
      topDigest: top.digest,
      indexDigest,
      manifestDigest,
      configDigest: cfgDesc.digest,
      configBlob: config as Record<string, unknown>,
      layers: layerDescs.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: diffIds[i] as string })),
      added: this.added,
    };
  }

  /** Ensures one layer blob is in the store with the expected diff_id; returns its diff_id. */
  private async layer(d: Descriptor, diffId: string, i: number, n: number): Promise<string> {
    const label = `layer ${i + 1}/${n} ${d.digest}`;
    const checkDiff = (got: string): void => {
      if (got !== diffId) {
        throw new BosonError('IMAGE_CORRUPT', `${this.what}: ${label} uncompresses to ${got}, but the config's diff_id is ${diffId}`, {
          details: { digest: d.digest, diffId, actual: got },
        });
      }
    };
    // Two pulls of one blob in this process would share its partial file (named by digest and pid): one at a time.
    return this.ctx.blobLocks.run(d.digest, () => this.layerLocked(d, diffId, label, checkDiff));
  }

  private async layerLocked(d: Descriptor, diffId: string, label: string, checkDiff: (got: string) => void): Promise<string> {
    const p = this.opts.onProgress;
    if (await this.ctx.content.has(d.digest)) {
      const known = this.ctx.knownDiffId(d.digest);
      if (known !== undefined) checkDiff(known);
      else if (this.checkDiffIds) checkDiff(await this.diffOfFile(d, this.ctx.content.blobPath(d.digest), label));
      p?.({ phase: 'exists', current: d.size, total: d.size, detail: d.digest });
      return diffId;
    }
    const file = await this.download(d, label, (got) => checkDiff(got));
    // What is renamed into the store is the file, not the stream that was hashed: check the file itself.
    const onDisk = await hashStream(createReadStream(file)).catch(() => null);
    if (onDisk === null || onDisk.digest !== d.digest || onDisk.size !== d.size) {
      await fs.rm(file, { force: true });
      this.ownPartials.delete(file);
      throw new BosonError('IMAGE_CORRUPT', `${this.what}: ${label}: the downloaded file does not match its digest`, {
        details: { digest: d.digest, actual: onDisk?.digest ?? null },
      });
    }
    if (await this.ctx.content.has(d.digest)) await fs.rm(file, { force: true });
    else {
      await this.ctx.content.adopt(file, d.digest);
      this.added.push(d.digest);
    }
    this.ownPartials.delete(file);
    p?.({ phase: 'downloaded', current: d.size, total: d.size, detail: d.digest });
    return diffId;
  }

  private async diffOfFile(d: Descriptor, file: string, label: string): Promise<string> {
    try {
      return (
        await hashStream(
          uncompressedLayer(d.mediaType, createReadStream(file), {
            compressedSize: d.size,
            limits: this.ctx.layerLimits,
            what: `${this.what}: ${label}`,
          }),
        )
      ).digest;
    } catch (err) {
      if (isBosonError(err, 'TOOL_FAILED') || isBosonError(err, 'LAYER_UNSAFE')) throw err;
      throw new BosonError('IMAGE_CORRUPT', `${this.what}: ${label} cannot be decompressed: ${(err as Error).message}`, {
        cause: err,
        details: { digest: d.digest },
      });
    }
  }

  /** Our partial file for `d`, claiming one left by a dead process. */
  private async partialFile(d: Descriptor): Promise<string> {
    const hex = digestHex(d.digest);
    const mine = path.join(this.ctx.partialDir, `${hex}.${process.pid}`);
    await fs.mkdir(this.ctx.partialDir, { recursive: true });
    this.ownPartials.add(mine);
    for (const name of await fs.readdir(this.ctx.partialDir)) {
      const m = /^([0-9a-f]{64})\.(\d+)$/.exec(name);
      if (!m || m[1] !== hex || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
      try {
        await fs.rename(path.join(this.ctx.partialDir, name), mine);
        break;
      } catch {
        /* another process claimed it */
      }
    }
    return mine;
  }

  /** Downloads a blob into our partial file (resuming), verifies it; returns the file. */
  private async download(d: Descriptor, label: string, checkDiff: (diffId: string) => void): Promise<string> {
    const file = await this.partialFile(d);
    const attempts = this.opts.attempts ?? 5;
    const backoff = this.opts.backoffMs ?? 200;
    const p = this.opts.onProgress;
    let lastTransient: unknown = null;
    let truncated = 0;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1 && lastTransient) await sleep(backoff * 2 ** (attempt - 2));
      let have = await fs.stat(file).then(
        (s) => s.size,
        () => 0,
      );
      if (have > d.size) {
        await fs.truncate(file, 0);
        have = 0;
      }
      let hash: Hash;
      let diff: DiffHasher | null = null;
      let received = have;
      if (have < d.size) {
        const res = await this.client.blob(this.ref.repository, d.digest, have, this.what);
        let start = 0;
        if (res.status === 206) {
          const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
          start = m ? Number(m[1]) : -1;
          if (start !== have) {
            res.body.resume();
            await fs.truncate(file, 0).catch(() => undefined);
            lastTransient = null;
            continue;
          }
        } else if (res.status === 416) {
          res.body.resume();
          await fs.truncate(file, 0).catch(() => undefined);
          lastTransient = null;
          continue;
        }
        hash = createHash('sha256');
        if (start > 0) for await (const c of createReadStream(file, { end: start - 1 })) hash.update(c as Buffer);
        else if (this.checkDiffIds && layerCompression(d.mediaType) !== 'none')
          diff = new DiffHasher(d.mediaType, { compressedSize: d.size, limits: this.ctx.layerLimits, what: `${this.what}: ${label}` });
        received = start;
        p?.({ phase: 'download', current: received, total: d.size, detail: d.digest });
        const h = hash;
        const dh = diff;
        const meter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            received += chunk.length;
            if (received > d.size) {
              cb(new BosonError('IMAGE_CORRUPT', `blob is larger than its descriptor size ${d.size}`));
              return;
            }
            h.update(chunk);
            p?.({ phase: 'download', current: received, total: d.size, detail: d.digest });
            if (dh) dh.write(chunk).then(() => cb(null, chunk), cb);
            else cb(null, chunk);
          },
        });
        try {
          await pipeline(res.body, meter, createWriteStream(file, { flags: start > 0 ? 'a' : 'w', mode: 0o644 }));
        } catch (err) {
          diff?.abort();
          if (err instanceof BosonError) {
            await fs.rm(file, { force: true });
            throw new BosonError(err.code, `${this.what}: ${label}: ${err.message}`, { cause: err, details: { digest: d.digest } });
          }
          if (!isTransientNetworkError(err) && !(err as Error).message.includes('aborted')) throw err;
          lastTransient = err;
          truncated++;
          continue;
        }
        if (received < d.size) {
          diff?.abort();
          lastTransient = new Error(`the download ended after ${received} of ${d.size} bytes`);
          truncated++;
          continue;
        }
      } else {
        hash = createHash('sha256');
        for await (const c of createReadStream(file)) hash.update(c as Buffer);
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== d.digest) {
        diff?.abort();
        await fs.rm(file, { force: true });
        throw new BosonError('IMAGE_CORRUPT', `${this.what}: ${label} does not match its digest (content is ${got})`, {
          details: { digest: d.digest, actual: got },
        });
      }
      if (!this.checkDiffIds) return file;
      let diffId: string;
      try {
        diffId = diff ? await diff.finish() : layerCompression(d.mediaType) === 'none' ? got : await this.diffOfFile(d, file, label);
      } catch (err) {
        await fs.rm(file, { force: true });
        if (err instanceof BosonError) throw err;
        throw new BosonError('IMAGE_CORRUPT', `${this.what}: ${label} cannot be decompressed: ${(err as Error).message}`, {
          cause: err,
          details: { digest: d.digest },
        });
      }
      try {
        checkDiff(diffId);
      } catch (err) {
        await fs.rm(file, { force: true });
        throw err;
      }
      return file;
    }
    if (truncated > 0) {
      const size = await fs.stat(file).then(
        (s) => s.size,
        () => 0,
      );
      await fs.rm(file, { force: true });
      throw new BosonError(
        'IMAGE_CORRUPT',
        `${this.what}: ${label} is truncated: ${attempts} attempts ended early (${size} of ${d.size} bytes; last: ${(lastTransient as Error)?.message})`,
        {
          details: { digest: d.digest, size, expectedSize: d.size },
        },
      );
    }
    throw new BosonError('REGISTRY_ERROR', `${this.what}: ${label}: the registry keeps answering with a wrong Range`, {
      details: { digest: d.digest },
    });
  }

  /** Removes the partial files this fetch owns (rollback after a bad-input error). */
  async removePartials(): Promise<void> {
    for (const f of this.ownPartials) await fs.rm(f, { force: true });
    await fs.rmdir(this.ctx.partialDir).catch(() => undefined);
  }
}

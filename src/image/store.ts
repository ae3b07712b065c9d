/**
 * The local image store: <stateDir>/images/
 *   blobs/sha256/<hex>   verified blobs (manifests, configs, layers)
 *   (images by id and references -> id are records of the state store: kinds image and image-ref)
 *   disks/<chain>.<fs>   flattened root filesystem disks, keyed by layer chain id and filesystem type
 *   tmp/                 temporaries named <kind>-<pid>-<random>, swept when their process is gone
 *   partial/<hex>.<pid>  blob downloads in progress (or interrupted: resumed by the next pull of that blob)
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BosonError, isBosonError, isStoreConflict, KeyedMutex, rootlessMode, type StateStore, type StoreOp } from '../common/index.ts';
import { uncompressedLayer, type LayerLimits } from './compression.ts';
import { ContentStore, copyVerified, digestCheck, digestHex, hashStream } from './content-store.ts';
// flatten.ts and layout.ts (tar-stream) are loaded when first needed: a pull of an image that is already here needs
// neither, and the CLI starts faster without them.
import type { LayerInput } from './flatten.ts';
import type { ImageSource, SourceImage } from './layout.ts';
import { ImageFetcher, parsePlatform, type FetchedImage, type LayerPlan } from './pull.ts';
import { normaliseReference, parseReference, referenceCandidates, remoteReference } from './reference.ts';
import { RegistryClient, type RegistryClientOptions } from './registry.ts';
import { DEFAULT_ROOTFS, makeRootFs, type RootFsType } from './rootfs.ts';
import { estimateTreeBytes, isNoSpace, privateDir, stagingParent, sweepShmStaging } from './staging.ts';
import { pidAlive, sweepStaleTemps, tempName } from './tempfiles.ts';
import { flattenToDiskInUserNamespace } from './userns.ts';
import {
  isManifestType,
  layerCompression,
  type Descriptor,
  type ImageConfig,
  type ImageProgress,
  type ImageRecord,
  type RootDisk,
} from './types.ts';

type StoredImage = Omit<ImageRecord, 'references'>;
/** The image index as read from the store: images by id, references -> id, and the revisions they were read at. */
interface IndexFile {
  images: Record<string, StoredImage>;
  refs: Record<string, string>;
  revisions: { images: Record<string, number>; refs: Record<string, number> };
}

/** Store kinds: an image record by id; a reference by its canonical name, with the id it names. */
const IMAGE = 'image';
const IMAGE_REF = 'image-ref';

interface ConfigBlob {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Volumes?: Record<string, unknown> | null;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown> | null;
  } | null;
  rootfs?: { type?: string; diff_ids?: unknown };
}

const strArr = (x: unknown): string[] | null => (Array.isArray(x) && x.every((s) => typeof s === 'string') ? (x as string[]) : null);

/** The runtime config of a parsed config blob, with Docker's defaults for missing fields. */
export function imageConfigOf(blob: ConfigBlob): ImageConfig {
  const c = blob.config ?? {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.Labels ?? {})) if (typeof v === 'string') labels[k] = v;
  return {
    entrypoint: strArr(c.Entrypoint),
    cmd: strArr(c.Cmd),
    env: strArr(c.Env) ?? [],
    workingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
    user: typeof c.User === 'string' ? c.User : '',
    volumes: Object.keys(c.Volumes ?? {}).sort(),
    labels,
    exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
  };
}

/** The OCI chain id of a list of diff ids ("sha256:<hex>"); the empty chain is the sha256 of "". */
export function chainId(diffIds: string[]): string {
  let chain: string | null = null;
  for (const d of diffIds) chain = chain === null ? d : `sha256:${createHash('sha256').update(`${chain} ${d}`).digest('hex')}`;
  return chain ?? `sha256:${createHash('sha256').update('').digest('hex')}`;
}

/** Options of ImageStore.pull. */
/** How an image store works on this host: the settings the composition root reads and hands down. */
export interface ImageStoreOptions {
  rootless?: boolean;
  layerLimits?: LayerLimits;
  /** The root disk filesystem (BOSON_ROOTFS); default erofs. */
  rootfs?: RootFsType;
  /** Where layers are flattened (BOSON_STAGING_DIR): "store" or an absolute path; default a tmpfs with room. */
  stagingDir?: string;
  /** Registry settings for every pull (a pull's own `registry` options override them); default none. */
  registry?: RegistryClientOptions;
}

export interface PullOptions {
  /** "os/arch[/variant]" chosen from an image index; default linux/amd64. */
  platform?: string;
  onProgress?: ImageProgress;
  /** Allow plain HTTP to this reference's registry (like listing it in BOSON_INSECURE_REGISTRIES). */
  insecure?: boolean;
  /** Build the root disk as part of the pull (default true). */
  unpack?: boolean;
  /** Registry client settings (CA file, credentials, retries). */
  registry?: RegistryClientOptions;
}

/** What a pull did. */
export interface PullResult {
  image: ImageRecord;
  /** The canonical reference pulled ("docker.io/library/alpine:latest"). */
  reference: string;
  /** Digest of the manifest or index the reference named. */
  digest: string;
  /** True when the image was already complete locally and nothing was downloaded. */
  upToDate: boolean;
}

/** What prune (or rmi's clean-up) removed. */
export interface PruneResult {
  images: string[];
  blobs: string[];
  disks: string[];
  partials: string[];
  bytes: number;
}

/** Local image store under <stateDir>/images: import, list, resolve, and cached root filesystem disks. */
export class ImageStore {
  /** <stateDir>/images */
  readonly dir: string;
  private readonly content: ContentStore;
  private readonly tmpDir: string;
  /** Caps on a layer's uncompressed size (compression.ts's defaults unless given). */
  private readonly layerLimits: LayerLimits | undefined;
  private readonly disksDir: string;
  /** The JSON index of versions before the state store: imported once, then removed. */
  private readonly legacyIndexPath: string;
  private readonly partialDir: string;
  private indexChain: Promise<void> = Promise.resolve();
  private legacyImported: Promise<void> | undefined;
  private readonly building = new Map<string, Promise<RootDisk>>();
  /** One download of a blob at a time (concurrent pulls of one image share the blob's partial file). */
  private readonly blobLocks = new KeyedMutex();

  /** Rootless mode: root disks are built in a user namespace (userns.ts). Default: rootlessMode(). */
  readonly rootless: boolean;
  /** The filesystem of the root disks this store builds (BOSON_ROOTFS). */
  readonly rootfs: RootFsType;
  /** Where layers are flattened (BOSON_STAGING_DIR: "store" or an absolute path); default a tmpfs with room. */
  private readonly stagingDir: string | undefined;
  /** The registry settings of every pull (BOSON_INSECURE_REGISTRIES, BOSON_REGISTRY_CA, credentials, certs.d). */
  private readonly registryDefaults: RegistryClientOptions;

  /**
   * Keeps files under <stateDir>/images and the index in `store` (the host's state store, which the composition
   * root builds; not closed here); creates nothing until first used.
   */
  constructor(
    private readonly store: StateStore,
    stateDir: string,
    opts: ImageStoreOptions = {},
  ) {
    this.rootless = opts.rootless ?? rootlessMode();
    this.layerLimits = opts.layerLimits;
    this.rootfs = opts.rootfs ?? DEFAULT_ROOTFS;
    this.stagingDir = opts.stagingDir;
    this.registryDefaults = opts.registry ?? {};
    this.dir = path.join(path.resolve(stateDir), 'images');
    this.content = new ContentStore(path.join(this.dir, 'blobs'));
    this.tmpDir = path.join(this.dir, 'tmp');
    this.disksDir = path.join(this.dir, 'disks');
    this.legacyIndexPath = path.join(this.dir, 'index.json');
    this.partialDir = path.join(this.dir, 'partial');
  }

  private async ensureDirs(): Promise<void> {
    try {
      for (const d of [path.join(this.content.root, 'sha256'), this.tmpDir, this.disksDir]) await fs.mkdir(d, { recursive: true });
      await fs.access(this.dir, fs.constants.W_OK);
    } catch (err) {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot create or write the image store ${this.dir}: ${(err as Error).message}`, {
        cause: err,
        details: { path: this.dir },
      });
    }
  }

  /** Removes temporaries left by processes that are no longer alive (and an older version's stale index lock). Returns their names. */
  async sweepStale(): Promise<string[]> {
    const removed = await sweepStaleTemps(this.tmpDir);
    // Staging trees of dead processes in the shared tmpfs directory (any store's; not listed in the result).
    await sweepShmStaging();
    try {
      const pid = Number((await fs.readFile(`${this.legacyIndexPath}.lock`, 'utf8')).trim());
      if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
        await fs.rm(`${this.legacyIndexPath}.lock`, { force: true });
        removed.push('index.json.lock');
      }
    } catch {
      /* no lock */
    }
    return removed;
  }

  // ---- index -------------------------------------------------------------------------------------------------

  /** The index, from the store (after importing an older version's index.json, once). */
  private async readIndex(): Promise<IndexFile> {
    await (this.legacyImported ??= this.importLegacyIndex());
    const index: IndexFile = { images: {}, refs: {}, revisions: { images: {}, refs: {} } };
    for (const r of this.store.list<StoredImage>(IMAGE)) {
      index.images[r.key] = r.value;
      index.revisions.images[r.key] = r.revision;
    }
    for (const r of this.store.list<{ id: string }>(IMAGE_REF)) {
      index.refs[r.key] = r.value.id;
      index.revisions.refs[r.key] = r.revision;
    }
    return index;
  }

  /** An index.json from before the state store: its images and names become records (unless there), then it goes. */
  private async importLegacyIndex(): Promise<void> {
    let text: string;
    try {
      text = await fs.readFile(this.legacyIndexPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot read ${this.legacyIndexPath}: ${(err as Error).message}`, { cause: err });
    }
    let legacy: { images?: Record<string, StoredImage>; refs?: Record<string, string> };
    try {
      legacy = JSON.parse(text) as typeof legacy;
    } catch (err) {
      throw new BosonError('IMAGE_CORRUPT', `the image index ${this.legacyIndexPath} is not valid JSON`, { cause: err });
    }
    const ops: StoreOp[] = [];
    for (const [id, img] of Object.entries(legacy.images ?? {}))
      if (!this.store.get(IMAGE, id)) ops.push({ op: 'put', kind: IMAGE, key: id, value: img, expectRevision: 0 });
    for (const [ref, id] of Object.entries(legacy.refs ?? {}))
      if (!this.store.get(IMAGE_REF, ref)) ops.push({ op: 'put', kind: IMAGE_REF, key: ref, value: { id }, expectRevision: 0 });
    try {
      if (ops.length > 0) this.store.commit(ops);
    } catch (err) {
      if (!isStoreConflict(err)) throw err; // another process imported it meanwhile
    }
    await fs.rm(this.legacyIndexPath, { force: true });
  }

  /** Runs `fn` after every earlier index change of this process (the in-process queue). */
  private async serial<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.indexChain;
    let release!: () => void;
    this.indexChain = new Promise((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Changes the index: `fn` edits the index it is given, and what it changed is written in one commit, each
   * record expected at the revision it was read at (and each image a new name points to expected unchanged). When
   * another process changed one of them first, `fn` runs again on a fresh read.
   */
  private async withIndexLock<T>(fn: (index: IndexFile) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      for (let attempt = 1; ; attempt++) {
        const index = await this.readIndex();
        const before = { images: structuredClone(index.images), refs: { ...index.refs } };
        const result = await fn(index);
        const ops: StoreOp[] = [];
        const rev = index.revisions;
        for (const [id, img] of Object.entries(index.images)) {
          if (JSON.stringify(before.images[id]) !== JSON.stringify(img))
            ops.push({ op: 'put', kind: IMAGE, key: id, value: img, expectRevision: rev.images[id] ?? 0 });
        }
        for (const id of Object.keys(before.images))
          if (!(id in index.images)) ops.push({ op: 'delete', kind: IMAGE, key: id, expectRevision: rev.images[id] });
        const written = new Set(ops.map((o) => o.key));
        for (const [ref, id] of Object.entries(index.refs)) {
          if (before.refs[ref] === id) continue;
          ops.push({ op: 'put', kind: IMAGE_REF, key: ref, value: { id }, expectRevision: rev.refs[ref] ?? 0 });
          if (!written.has(id)) ops.push({ op: 'check', kind: IMAGE, key: id, expectRevision: rev.images[id] ?? 0 });
        }
        for (const ref of Object.keys(before.refs))
          if (!(ref in index.refs)) ops.push({ op: 'delete', kind: IMAGE_REF, key: ref, expectRevision: rev.refs[ref] });
        try {
          if (ops.length > 0) this.store.commit(ops);
          return result;
        } catch (err) {
          if (!isStoreConflict(err) || attempt >= 100) throw err;
        }
      }
    });
  }

  private static withRefs(index: IndexFile, img: StoredImage): ImageRecord {
    const references = Object.entries(index.refs)
      .filter(([, id]) => id === img.id)
      .map(([r]) => r)
      .sort();
    return { ...img, references };
  }

  // ---- import ------------------------------------------------------------------------------------------------

  /**
   * Imports every image of an OCI image layout directory or a `docker save` tarball (OCI-in-tar or legacy
   * manifest.json form; layers tar, tar+gzip, tar+zstd). Every blob is verified (size, sha256) and every layer's
   * uncompressed sha256 checked against the config's diff_ids before anything enters the store; on any failure
   * the store is unchanged. `tag` adds a name (only when the source holds one image). Returns the imported images.
   */
  async importPath(source: string, opts: { onProgress?: ImageProgress; tag?: string } = {}): Promise<ImageRecord[]> {
    const extraRef = opts.tag === undefined ? undefined : normaliseReference(opts.tag);
    await this.ensureDirs();
    await this.sweepStale();
    const work = path.join(this.tmpDir, tempName('import'));
    await fs.mkdir(work);
    try {
      const { openImageSource } = await import('./layout.ts');
      const src = await openImageSource(path.resolve(source), work, opts.onProgress);
      if (extraRef !== undefined && src.images.length !== 1) {
        throw new BosonError('INVALID_ARGUMENT', `${source} holds ${src.images.length} images; a tag can only be given for one`);
      }
      const staged = new Map<string, string>();
      const records: { rec: StoredImage; refs: string[] }[] = [];
      for (const img of src.images) {
        const rec = await this.stageImage(src, img, source, work, staged, opts.onProgress);
        const refs = new Set<string>();
        for (const n of img.names) {
          try {
            refs.add(normaliseReference(n));
          } catch {
            /* a name we cannot parse is ignored; the image stays reachable by id */
          }
        }
        if (extraRef !== undefined) refs.add(extraRef);
        records.push({ rec, refs: [...refs] });
      }
      for (const [digest, file] of staged) {
        if (await this.content.has(digest)) continue;
        await this.content.adopt(file, digest);
      }
      return await this.withIndexLock(async (index) => {
        for (const { rec, refs } of records) {
          index.images[rec.id] = rec;
          for (const r of refs) index.refs[r] = rec.id;
        }
        return records.map(({ rec }) => ImageStore.withRefs(index, rec));
      }).then((imported) => {
        opts.onProgress?.({ phase: 'done', current: records.length, total: records.length });
        return imported;
      });
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  /** Copies and verifies one image's blobs into `work`; returns its record (without references). */
  private async stageImage(
    src: ImageSource,
    img: SourceImage,
    source: string,
    work: string,
    staged: Map<string, string>,
    onProgress?: ImageProgress,
  ): Promise<StoredImage> {
    const what = (kind: string): string => `image ${img.names[0] ?? img.manifest.digest} from ${source} (${kind})`;
    const stage = async (d: { digest: string; size: number }, kind: string): Promise<string> => {
      const have = staged.get(d.digest);
      if (have) return have;
      const file = path.join(work, `blob-${digestHex(d.digest)}`);
      onProgress?.({ phase: 'copy', current: 0, total: d.size, detail: d.digest });
      await copyVerified(src.openBlob(d.digest), file, d, what(kind), (n) =>
        onProgress?.({ phase: 'copy', current: n, total: d.size, detail: d.digest }),
      );
      staged.set(d.digest, file);
      return file;
    };
    const json = async <T>(file: string, kind: string): Promise<T> => {
      try {
        return JSON.parse(await fs.readFile(file, 'utf8')) as T;
      } catch (err) {
        throw new BosonError('IMAGE_INVALID', `${what(kind)}: not valid JSON`, { cause: err });
      }
    };
    const manifest = await json<{ schemaVersion?: number; mediaType?: string; config?: Descriptor; layers?: Descriptor[] }>(
      await stage(img.manifest, 'manifest'),
      'manifest',
    );
    const mt = manifest.mediaType ?? img.manifest.mediaType;
    if (manifest.schemaVersion !== 2 || !isManifestType(mt))
      throw new BosonError('IMAGE_INVALID', `${what('manifest')}: unsupported manifest (media type "${mt}")`);
    const cfgDesc = manifest.config;
    if (!cfgDesc || typeof cfgDesc.digest !== 'string' || typeof cfgDesc.size !== 'number' || !Array.isArray(manifest.layers)) {
      throw new BosonError('IMAGE_INVALID', `${what('manifest')}: missing config or layers`);
    }
    digestHex(cfgDesc.digest);
    const config = await json<ConfigBlob>(await stage(cfgDesc, 'config'), 'config');
    const diffIds = strArr(config.rootfs?.diff_ids);
    if (config.rootfs?.type !== 'layers' || diffIds === null || diffIds.length !== manifest.layers.length) {
      throw new BosonError('IMAGE_INVALID', `${what('config')}: rootfs.diff_ids does not list the ${manifest.layers.length} layers`);
    }
    const layers: StoredImage['layers'] = [];
    for (const [i, l] of manifest.layers.entries()) {
      if (!l || typeof l.digest !== 'string' || typeof l.size !== 'number' || typeof l.mediaType !== 'string') {
        throw new BosonError('IMAGE_INVALID', `${what('manifest')}: layer ${i} has a malformed descriptor`);
      }
      if (layerCompression(l.mediaType) === null) {
        throw new BosonError('IMAGE_INVALID', `${what('manifest')}: layer ${l.digest} has unsupported media type "${l.mediaType}"`, {
          details: { mediaType: l.mediaType },
        });
      }
      digestHex(l.digest);
      const file = (await this.content.has(l.digest)) ? this.content.blobPath(l.digest) : await stage(l, `layer ${i + 1}`);
      onProgress?.({ phase: 'verify', current: i + 1, total: manifest.layers.length, detail: l.digest });
      let diff: string;
      try {
        diff = (
          await hashStream(
            uncompressedLayer(l.mediaType, createReadStream(file), {
              compressedSize: l.size,
              limits: this.layerLimits,
              what: `${what(`layer ${i + 1}`)}: blob ${l.digest}`,
            }),
          )
        ).digest;
      } catch (err) {
        if (isBosonError(err, 'TOOL_FAILED') || isBosonError(err, 'LAYER_UNSAFE')) throw err;
        throw new BosonError(
          'IMAGE_CORRUPT',
          `${what(`layer ${i + 1}`)}: blob ${l.digest} cannot be decompressed: ${(err as Error).message}`,
          { cause: err, details: { digest: l.digest } },
        );
      }
      if (diff !== diffIds[i]) {
        throw new BosonError(
          'IMAGE_CORRUPT',
          `${what(`layer ${i + 1}`)}: blob ${l.digest} uncompresses to ${diff}, but the config's diff_id is ${diffIds[i]}`,
          {
            details: { digest: l.digest, diffId: diffIds[i], actual: diff },
          },
        );
      }
      layers.push({ digest: l.digest, size: l.size, mediaType: l.mediaType });
    }
    return {
      id: cfgDesc.digest,
      manifestDigest: img.manifest.digest,
      config: imageConfigOf(config),
      layers,
      size: layers.reduce((s, l) => s + l.size, 0),
      created: typeof config.created === 'string' ? config.created : null,
      architecture: config.architecture ?? '',
      os: config.os ?? '',
    };
  }

  // ---- queries -----------------------------------------------------------------------------------------------

  /** All images, each with its current references, sorted by first reference then id. */
  async list(): Promise<ImageRecord[]> {
    const index = await this.readIndex();
    return Object.values(index.images)
      .map((img) => ImageStore.withRefs(index, img))
      .sort((a, b) => (a.references[0] ?? '\uffff').localeCompare(b.references[0] ?? '\uffff') || a.id.localeCompare(b.id));
  }

  /**
   * Finds an image by name[:tag] (a name without registry tries "localhost/<name>" first, then Docker Hub's
   * spelling), or by full or unique-prefix id ("sha256:abc…" or "abc…"). IMAGE_NOT_FOUND when nothing matches;
   * INVALID_ARGUMENT when an id prefix matches several images.
   */
  async resolve(reference: string): Promise<ImageRecord> {
    const index = await this.readIndex();
    const ref = reference.trim();
    const notFound = (): BosonError => new BosonError('IMAGE_NOT_FOUND', `no such image: ${reference}`, { details: { reference } });
    const byId = (hex: string): ImageRecord | null => {
      const ids = Object.keys(index.images).filter((id) => id.startsWith(`sha256:${hex}`));
      if (ids.length > 1) {
        throw new BosonError('INVALID_ARGUMENT', `image id prefix "${reference}" is ambiguous (${ids.length} images match)`, {
          details: { reference, matches: ids },
        });
      }
      return ids.length === 1 ? ImageStore.withRefs(index, index.images[ids[0]!]!) : null;
    };
    const idForm = /^sha256:([0-9a-f]{1,64})$/.exec(ref);
    if (idForm)
      return (
        byId(idForm[1]!) ??
        (() => {
          throw notFound();
        })()
      );
    let candidates: string[] = [];
    try {
      candidates = referenceCandidates(ref);
    } catch (err) {
      if (!/^[0-9a-f]{1,64}$/.test(ref)) throw err;
    }
    for (const c of candidates) {
      const id = index.refs[c];
      const img = id === undefined ? undefined : index.images[id];
      if (img) return ImageStore.withRefs(index, img);
      // name@digest: an image pulled by that manifest or index digest (recorded in repoDigests).
      const at = c.indexOf('@');
      if (at >= 0) {
        const byDigest = c.slice(0, at).replace(/:[^/:]+$/, '') + c.slice(at);
        const hit = Object.values(index.images).find((i) => i.repoDigests?.includes(byDigest));
        if (hit) return ImageStore.withRefs(index, hit);
      }
    }
    if (/^[0-9a-f]{1,64}$/.test(ref)) {
      const img = byId(ref);
      if (img) return img;
    }
    throw notFound();
  }

  // ---- pull --------------------------------------------------------------------------------------------------

  /**
   * Pulls `reference` (Docker's normalisation: "alpine" is docker.io/library/alpine:latest) from its registry:
   * manifest (an index picks `platform`, default linux/amd64), config and layers, every blob verified while it
   * streams; then builds the root disk (unless `unpack: false`) and only then records the image in the index.
   *
   * On a bad-input error (corrupt or truncated blob, invalid or unsupported manifest, unknown platform, unsafe
   * layer, auth failure) everything this pull added is removed: the store is as it was. When the registry becomes
   * unreachable (REGISTRY_UNREACHABLE, REGISTRY_ERROR) or the process is killed, verified blobs and the partial
   * download stay, and the next pull reuses them (Range request). Nothing is visible as an image until the end.
   */
  async pull(reference: string, opts: PullOptions = {}): Promise<PullResult> {
    const ref = remoteReference(reference);
    const platform = parsePlatform(opts.platform);
    // The store's registry settings, with what this pull sets (an option left undefined keeps the store's).
    const registry: RegistryClientOptions = { ...this.registryDefaults };
    for (const [k, v] of Object.entries(opts.registry ?? {})) if (v !== undefined) Object.assign(registry, { [k]: v });
    const insecure = opts.insecure ? [...(registry.insecure ?? []), ref.host] : registry.insecure;
    const client = new RegistryClient(ref.host, ref.registry, { ...registry, insecure });
    // A tag always needs the registry: probe it while the store is prepared and read (the fetch meets the probe's
    // outcome, error included). A digest may be answered from the store without any request: no probe.
    if (ref.digest === null) client.ping(`pull ${ref.canonical}`).catch(() => undefined);
    let before: IndexFile;
    try {
      await this.ensureDirs();
      await this.sweepStale();
      before = await this.readIndex();
    } catch (err) {
      client.close();
      throw err;
    }
    const knownDiffIds = new Map<string, string>();
    for (const img of Object.values(before.images)) for (const l of img.layers) if (l.diffId) knownDiffIds.set(l.digest, l.diffId);
    const what = `pull ${ref.canonical}`;
    const fetcher = new ImageFetcher(
      {
        content: this.content,
        partialDir: this.partialDir,
        tmpDir: this.tmpDir,
        knownDiffId: (d) => knownDiffIds.get(d),
        layerLimits: this.layerLimits,
        blobLocks: this.blobLocks,
      },
      client,
      ref,
      {
        platform,
        onProgress: opts.onProgress,
        attempts: opts.registry?.attempts,
        backoffMs: opts.registry?.backoffMs,
        // The root disk is built while the layers download: layer i is applied as soon as it is verified, and its
        // diff_id is checked in that same decompression (the fetch then skips its own).
        onPlan: opts.unpack === false ? undefined : (plan) => (disk = this.diskWhileFetching(plan, what, opts.onProgress)) !== null,
      },
    );
    let disk: Promise<RootDisk> | null = null;
    // While this marker lives, prune leaves unreferenced blobs and disks alone (ours are not in the index yet).
    const marker = path.join(this.tmpDir, tempName('pulling'));
    await fs.writeFile(marker, ref.canonical);
    try {
      let got: FetchedImage;
      try {
        got = await fetcher.fetch();
      } catch (err) {
        await (disk as Promise<RootDisk> | null)?.catch(() => undefined);
        throw err;
      }
      if (disk) await disk;
      const existed = before.images[got.configDigest] !== undefined;
      const rec = this.recordOf(got, ref.name);
      if (opts.unpack !== false) await this.rootDisk({ ...rec, references: [] }, { onProgress: opts.onProgress });
      const merge = (index: IndexFile): { merged: StoredImage; same: boolean } => {
        const prev = index.images[rec.id];
        const merged: StoredImage = prev
          ? { ...prev, layers: rec.layers, repoDigests: [...new Set([...(prev.repoDigests ?? []), ...(rec.repoDigests ?? [])])].sort() }
          : rec;
        if (rec.indexDigest) merged.indexDigest = rec.indexDigest;
        const same =
          prev !== undefined &&
          JSON.stringify(prev) === JSON.stringify(merged) &&
          (ref.tag === null || index.refs[`${ref.name}:${ref.tag}`] === rec.id);
        return { merged, same };
      };
      // An image pulled again that the index already records exactly (the usual cached pull): no lock, no write.
      const current = await this.readIndex();
      const unchanged = merge(current);
      const image = unchanged.same
        ? ImageStore.withRefs(current, unchanged.merged)
        : await this.withIndexLock(async (index) => {
            const { merged } = merge(index);
            index.images[rec.id] = merged;
            if (ref.tag !== null) index.refs[`${ref.name}:${ref.tag}`] = rec.id;
            return ImageStore.withRefs(index, merged);
          });
      await fs.rmdir(this.partialDir).catch(() => undefined);
      opts.onProgress?.({ phase: 'pulled', detail: image.id });
      return { image, reference: ref.canonical, digest: got.topDigest, upToDate: existed && got.added.length === 0 };
    } catch (err) {
      const kind = isBosonError(err) ? err.kind : 'Unavailable';
      const resumable = kind === 'Unavailable' && !isBosonError(err, 'GUEST_CRASHED');
      if (!resumable) {
        for (const d of fetcher.added) await fs.rm(this.content.blobPath(d), { force: true });
        await fetcher.removePartials();
      }
      if (err instanceof BosonError && !err.message.includes(ref.canonical)) {
        throw new BosonError(err.code, `pull ${ref.canonical}: ${err.message}`, {
          cause: err,
          details: { ...err.details, reference: ref.canonical },
        });
      }
      throw err;
    } finally {
      client.close();
      await fs.rm(marker, { force: true });
    }
  }

  private recordOf(got: FetchedImage, name: string): StoredImage {
    const config = got.configBlob as ConfigBlob;
    return {
      id: got.configDigest,
      manifestDigest: got.manifestDigest,
      config: imageConfigOf(config),
      layers: got.layers,
      size: got.layers.reduce((s, l) => s + l.size, 0),
      created: typeof config.created === 'string' ? config.created : null,
      architecture: config.architecture ?? '',
      os: config.os ?? '',
      repoDigests: [`${name}@${got.topDigest}`],
      ...(got.indexDigest ? { indexDigest: got.indexDigest } : {}),
    };
  }

  /**
   * The local image for `reference`, pulling it first when there is none (like `docker run`). Ids and id prefixes
   * are never pulled. When the pull finds no such image (MANIFEST_UNKNOWN) or no registry (REGISTRY_UNREACHABLE,
   * e.g. offline), the error is IMAGE_NOT_FOUND naming both causes; other pull errors (auth, corruption, platform)
   * keep their own codes.
   */
  async resolveOrPull(reference: string, opts: PullOptions = {}): Promise<ImageRecord> {
    try {
      return await this.resolve(reference);
    } catch (err) {
      if (!isBosonError(err, 'IMAGE_NOT_FOUND') || /^sha256:/.test(reference.trim())) throw err;
    }
    try {
      return (await this.pull(reference, opts)).image;
    } catch (err) {
      if (!isBosonError(err, 'MANIFEST_UNKNOWN', 'REGISTRY_UNREACHABLE')) throw err;
      throw new BosonError('IMAGE_NOT_FOUND', `no such image: ${reference} (not found locally, and ${err.message})`, {
        cause: err,
        details: { reference, pullError: err.code },
      });
    }
  }

  // ---- names, removal, garbage collection -------------------------------------------------------------------

  /** Adds the name `target` (normalised by the local rules) to the image `source` resolves to. */
  async tag(source: string, target: string): Promise<ImageRecord> {
    const p = parseReference(target);
    if (p.digest !== null) throw new BosonError('INVALID_ARGUMENT', `cannot tag with a digest reference "${target}"`);
    const name = normaliseReference(target);
    const img = await this.resolve(source);
    await this.ensureDirs();
    return this.withIndexLock(async (index) => {
      if (!index.images[img.id]) throw new BosonError('IMAGE_NOT_FOUND', `no such image: ${source}`, { details: { reference: source } });
      index.refs[name] = img.id;
      return ImageStore.withRefs(index, index.images[img.id]!);
    });
  }

  /** The parsed config blob of an image (for `image inspect`). */
  async configBlob(image: ImageRecord): Promise<unknown> {
    return this.content.readJson(image.id);
  }

  /**
   * Removes a name, or the image: a name (tag) is untagged, and the image goes when no name is left; an id removes
   * the image with all its names. `inUse(id)` is asked before an image goes: IMAGE_IN_USE unless `force`. Blobs
   * and the root disk no other image needs are deleted. Returns what was untagged and deleted.
   */
  async remove(
    reference: string,
    opts: { force?: boolean; inUse?: (imageId: string) => Promise<boolean> | boolean } = {},
  ): Promise<{ untagged: string[]; deleted: string | null }> {
    const img = await this.resolve(reference);
    let names: string[] = [];
    try {
      names = referenceCandidates(reference.trim());
    } catch {
      /* an id */
    }
    const byName = img.references.find((r) => names.includes(r));
    const untagged = byName !== undefined && img.references.length > 1 ? [byName] : img.references;
    const deleting = untagged.length === img.references.length;
    if (deleting && !opts.force && (await opts.inUse?.(img.id))) {
      throw new BosonError(
        'IMAGE_IN_USE',
        `image ${reference} (${img.id.slice(7, 19)}) is used by a container; remove the container first or use --force`,
        { details: { reference, id: img.id } },
      );
    }
    await this.withIndexLock(async (index) => {
      for (const r of untagged) delete index.refs[r];
      if (deleting) delete index.images[img.id];
    });
    if (deleting) await this.collect({ dangling: false });
    return { untagged, deleted: deleting ? img.id : null };
  }

  /**
   * Garbage collection (`image prune`): removes images without names (when `dangling`, and not `inUse`), then
   * every blob no image references (manifests, indexes, configs, layers), every root disk whose layer chain no
   * image has, partial downloads of dead processes, and stale temporaries. Returns what went and the bytes freed.
   */
  async prune(opts: { inUse?: (imageId: string) => Promise<boolean> | boolean } = {}): Promise<PruneResult> {
    return this.collect({ dangling: true, inUse: opts.inUse });
  }

  private async collect(opts: { dangling: boolean; inUse?: (imageId: string) => Promise<boolean> | boolean }): Promise<PruneResult> {
    await this.ensureDirs();
    await this.sweepStale();
    const result: PruneResult = { images: [], blobs: [], disks: [], partials: [], bytes: 0 };
    if (opts.dangling) {
      await this.withIndexLock(async (index) => {
        result.images = [];
        const named = new Set(Object.values(index.refs));
        for (const id of Object.keys(index.images)) {
          if (named.has(id) || (await opts.inUse?.(id))) continue;
          delete index.images[id];
          result.images.push(id);
        }
      });
    }
    await this.serial(async () => {
      const index = await this.readIndex();
      const pulling = (await fs.readdir(this.tmpDir).catch(() => [] as string[])).some((n) => {
        const m = /^pulling-(\d+)-/.exec(n);
        return m !== null && pidAlive(Number(m[1]));
      });
      if (pulling) return; // a pull is adding blobs that are not in the index yet
      const keepBlobs = new Set<string>();
      const keepDisks = new Set<string>();
      for (const img of Object.values(index.images)) {
        keepBlobs.add(img.id);
        keepBlobs.add(img.manifestDigest);
        if (img.indexDigest) keepBlobs.add(img.indexDigest);
        for (const l of img.layers) keepBlobs.add(l.digest);
        try {
          const diffIds = strArr((await this.content.readJson<ConfigBlob>(img.id)).rootfs?.diff_ids);
          if (diffIds) keepDisks.add(digestHex(chainId(diffIds)));
        } catch {
          /* a missing config: nothing to keep for it */
        }
      }
      const blobDir = path.join(this.content.root, 'sha256');
      for (const hex of await fs.readdir(blobDir).catch(() => [] as string[])) {
        if (keepBlobs.has(`sha256:${hex}`)) continue;
        const f = path.join(blobDir, hex);
        result.bytes += (await fs.stat(f).catch(() => ({ size: 0 }))).size;
        await fs.rm(f, { force: true });
        result.blobs.push(`sha256:${hex}`);
      }
      for (const name of await fs.readdir(this.disksDir).catch(() => [] as string[])) {
        if (keepDisks.has(name.split('.')[0]!)) continue;
        const f = path.join(this.disksDir, name);
        result.bytes += (await fs.stat(f).catch(() => ({ size: 0 }))).size;
        await fs.rm(f, { force: true });
        result.disks.push(name);
      }
      for (const name of await fs.readdir(this.partialDir).catch(() => [] as string[])) {
        const m = /\.(\d+)$/.exec(name);
        if (m && pidAlive(Number(m[1]))) continue;
        const f = path.join(this.partialDir, name);
        result.bytes += (await fs.stat(f).catch(() => ({ size: 0 }))).size;
        await fs.rm(f, { force: true });
        result.partials.push(name);
      }
    });
    return result;
  }

  // ---- root disks --------------------------------------------------------------------------------------------

  /**
   * Starts building the root disk of an image being pulled, applying each layer once its blob is verified in the
   * store, and checking the layer's diff_id while it is decompressed for that (IMAGE_CORRUPT at the end of a layer
   * that does not match, so the disk is never finished); null when the disk is already built or being built (pull
   * then falls back to rootDisk(), and the fetch checks the diff_ids itself).
   */
  private diskWhileFetching(plan: LayerPlan, what: string, onProgress?: ImageProgress): Promise<RootDisk> | null {
    const fstype = this.rootfs;
    const key = `${digestHex(chainId(plan.diffIds))}.${fstype}`;
    const final = path.join(this.disksDir, key);
    if (existsSync(final) || this.building.has(key)) return null;
    const n = plan.layers.length;
    const inputs = plan.layers.map((l, i) => ({
      name: `${i + 1}/${n} ${l.digest}`,
      open: () => {
        const out = new PassThrough();
        plan.ready[i]!.then(
          () => {
            const label = `layer ${i + 1}/${n} ${l.digest}`;
            const check = digestCheck(
              plan.diffIds[i]!,
              (got) =>
                new BosonError(
                  'IMAGE_CORRUPT',
                  `${what}: ${label} uncompresses to ${got}, but the config's diff_id is ${plan.diffIds[i]}`,
                  {
                    details: { digest: l.digest, diffId: plan.diffIds[i], actual: got },
                  },
                ),
            );
            pipeline(
              uncompressedLayer(l.mediaType, this.content.open(l.digest), {
                compressedSize: l.size,
                limits: this.layerLimits,
                what: `${what}: ${label}`,
              }),
              check,
              out,
            ).catch((e: Error) => out.destroy(e));
          },
          (e: Error) => out.destroy(e),
        );
        return out;
      },
    }));
    const p = this.flattenToDisk(inputs, fstype, final, estimateTreeBytes(plan.layers), onProgress).finally(() =>
      this.building.delete(key),
    );
    p.catch(() => undefined);
    this.building.set(key, p);
    return p;
  }

  /**
   * The image's flattened root filesystem as a read-only disk, built once per (layer chain id, fstype) and cached
   * under disks/. Concurrent callers share one build in-process; across processes each builds into a temporary
   * name and renames it atomically. `fstype` defaults to BOSON_ROOTFS or erofs.
   */
  async rootDisk(image: ImageRecord, opts: { onProgress?: ImageProgress; fstype?: RootFsType } = {}): Promise<RootDisk> {
    const fstype = opts.fstype ?? this.rootfs;
    await this.ensureDirs();
    await this.sweepStale();
    const config = await this.content.readJson<ConfigBlob>(image.id);
    const diffIds = strArr(config.rootfs?.diff_ids);
    if (diffIds === null || diffIds.length !== image.layers.length)
      throw new BosonError('IMAGE_CORRUPT', `image ${image.id}: config diff_ids do not match its layers`);
    const key = `${digestHex(chainId(diffIds))}.${fstype}`;
    const final = path.join(this.disksDir, key);
    try {
      const st = await fs.stat(final);
      return { path: final, fstype, sizeBytes: st.size };
    } catch {
      /* not built yet */
    }
    let p = this.building.get(key);
    if (!p) {
      p = this.buildDisk(image, fstype, final, opts.onProgress).finally(() => this.building.delete(key));
      this.building.set(key, p);
    }
    return p;
  }

  /**
   * Flattens the image's layers into `dir` (made if missing, empty): a writable copy of its root filesystem, as a
   * container of a pod gets it (the host shares it into the pod's micro-VM). Needs root, as the owners of the
   * image's files are kept; IMAGE_CORRUPT when a layer blob is missing.
   */
  async unpack(image: ImageRecord, dir: string): Promise<void> {
    if (this.rootless) throw new BosonError('ROOTLESS_UNSUPPORTED', 'unpacking an image into a directory keeps its owners: it needs root');
    for (const l of image.layers) {
      if (!(await this.content.has(l.digest)))
        throw new BosonError('IMAGE_CORRUPT', `image ${image.id}: layer blob ${l.digest} is missing from the store`, {
          details: { digest: l.digest },
        });
    }
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    const { flattenLayers } = await import('./flatten.ts');
    await flattenLayers(
      image.layers.map((l, i) => ({
        name: `${i + 1}/${image.layers.length} ${l.digest}`,
        open: () =>
          uncompressedLayer(l.mediaType, this.content.open(l.digest), {
            compressedSize: l.size,
            limits: this.layerLimits,
            what: `image ${image.id}: layer ${i + 1} ${l.digest}`,
          }),
      })),
      dir,
    );
  }

  private async buildDisk(image: ImageRecord, fstype: RootFsType, final: string, onProgress?: ImageProgress): Promise<RootDisk> {
    for (const l of image.layers) {
      if (!(await this.content.has(l.digest)))
        throw new BosonError('IMAGE_CORRUPT', `image ${image.id}: layer blob ${l.digest} is missing from the store`, {
          details: { digest: l.digest },
        });
    }
    return this.flattenToDisk(
      image.layers.map((l, i) => ({
        name: `${i + 1}/${image.layers.length} ${l.digest}`,
        open: () =>
          uncompressedLayer(l.mediaType, this.content.open(l.digest), {
            compressedSize: l.size,
            limits: this.layerLimits,
            what: `image ${image.id}: layer ${i + 1} ${l.digest}`,
          }),
      })),
      fstype,
      final,
      estimateTreeBytes(image.layers),
      onProgress,
    );
  }

  /**
   * Flattens `layers` into a staging tree (in a tmpfs when it has room, see staging.ts; built again in the store's
   * tmp directory if the tmpfs fills up), packs it with mkfs into a temporary file and renames that to `final`.
   */
  private async flattenToDisk(
    layers: LayerInput[],
    fstype: RootFsType,
    final: string,
    estimate: number,
    onProgress?: ImageProgress,
  ): Promise<RootDisk> {
    if (this.rootless) return flattenToDiskInUserNamespace(layers, fstype, final, this.tmpDir, estimate, this.stagingDir, onProgress);
    const { flattenLayers } = await import('./flatten.ts');
    const out = path.join(this.tmpDir, tempName('disk', fstype));
    await privateDir(this.tmpDir);
    let parent = await stagingParent(estimate, this.stagingDir);
    try {
      for (;;) {
        // stage-<pid>-<hex> (0700, ours, in a private directory) holds the image's root as rootfs/: the image's
        // "./" entry (any mode or owner) is applied to rootfs/ (flatten.ts), never to a directory others can reach.
        const stage = path.join(parent ?? this.tmpDir, tempName('stage'));
        const rootfs = path.join(stage, 'rootfs');
        await fs.mkdir(stage, { mode: 0o700 });
        await fs.mkdir(rootfs, { mode: 0o700 });
        try {
          try {
            await flattenLayers(layers, rootfs, { onProgress });
          } catch (err) {
            if (parent !== null && isNoSpace(err)) {
              parent = null; // the staging filesystem is full: again, on the store's filesystem
              continue;
            }
            throw err;
          }
          onProgress?.({ phase: 'mkfs', detail: fstype });
          const sizeBytes = await makeRootFs(rootfs, out, fstype);
          await fs.rename(out, final);
          onProgress?.({ phase: 'done', detail: final });
          return { path: final, fstype, sizeBytes };
        } finally {
          // Synchronous: Node's async recursive rm is several times slower on a tree of many small files.
          rmSync(stage, { recursive: true, force: true });
        }
      }
    } finally {
      await fs.rm(out, { force: true });
    }
  }
}

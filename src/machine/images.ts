/**
 * The image half of the machine port (MachineImages) over this host's ImageStore. The composition root builds it
 * beside the runtime (which owns it); the REST routes, the CLI without a daemon and the Docker personality call it,
 * and nothing else of theirs opens the store. What the store needs to know of containers (which images they use)
 * it is told through `imagesInUse`, so that a pull never opens the container state.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { BosonError, isBosonError } from '../common/index.ts';
import type { ImageStore } from '../image/index.ts';
import type { ImageImportSource, ImageProgressListener, MachineImages } from './port/machine.ts';
import type {
  Image,
  ImageInspect,
  ImagePruneResult,
  ImagePullRequest,
  ImagePullResult,
  ImageRemoveResult,
  RequestContext,
} from './port/schemas.ts';

/** What the image service is built from. */
export interface ImageServiceOptions {
  /**
   * The ids of the images containers use (any state); asked before an image is removed or pruned. Without it the
   * service serves pulls, imports, lists and inspection only, and refuses to remove or prune.
   */
  imagesInUse?: () => Promise<Set<string>>;
  /** Where an imported tar stream is spooled before it is read (a directory on the state disk). */
  spoolDir: string;
}

/** MachineImages on this host (see the module comment). */
export class ImageService implements MachineImages {
  constructor(
    readonly store: ImageStore,
    private readonly options: ImageServiceOptions,
  ) {}

  async pull(_ctx: RequestContext, request: ImagePullRequest, onProgress?: ImageProgressListener): Promise<ImagePullResult> {
    const opts = {
      platform: request.platform,
      insecure: request.insecure,
      onProgress: onProgress
        ? (e: Parameters<ImageProgressListener>[0]) => {
            try {
              onProgress(e);
            } catch {
              /* a listener never fails a pull */
            }
          }
        : undefined,
      // null: anonymous (none of the machine's stored credentials); absent: the machine's own.
      registry: request.auth !== undefined ? { credentials: async () => request.auth ?? null } : undefined,
    };
    if (request.ifMissing) {
      // docker run's pull: an image already here is the answer; resolveOrPull turns "found nowhere" into IMAGE_NOT_FOUND.
      const here = await this.store.resolve(request.reference).catch((err: unknown) => {
        if (isBosonError(err, 'IMAGE_NOT_FOUND')) return null;
        throw err;
      });
      if (here) return { image: here, reference: request.reference, digest: here.manifestDigest, upToDate: true };
      const image = await this.store.resolveOrPull(request.reference, opts);
      const digest = image.repoDigests?.at(-1)?.split('@')[1] ?? image.manifestDigest;
      return { image, reference: request.reference, digest, upToDate: false };
    }
    return this.store.pull(request.reference, opts);
  }

  async import(
    _ctx: RequestContext,
    source: ImageImportSource,
    options: { tag?: string; onProgress?: ImageProgressListener } = {},
  ): Promise<Image[]> {
    if ('path' in source) return this.store.importPath(source.path, options);
    await mkdir(this.options.spoolDir, { recursive: true });
    const work = await mkdtemp(path.join(this.options.spoolDir, 'import-'));
    try {
      const file = path.join(work, 'image.tar');
      await pipeline(Readable.from(source.tar), createWriteStream(file));
      return await this.store.importPath(file, options);
    } catch (err) {
      // The store names the file it read; the caller sent a stream.
      if (err instanceof BosonError && err.message.includes(work))
        throw new BosonError(err.code, err.message.replaceAll(path.join(work, 'image.tar'), 'the uploaded archive'), {
          cause: err,
          details: err.details,
        });
      throw err;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async list(_ctx: RequestContext): Promise<Image[]> {
    return this.store.list();
  }

  async inspect(_ctx: RequestContext, ref: string): Promise<ImageInspect> {
    const image = await this.store.resolve(ref);
    return { ...image, configBlob: await this.store.configBlob(image) };
  }

  async tag(_ctx: RequestContext, ref: string, name: string): Promise<Image> {
    return this.store.tag(ref, name);
  }

  async remove(_ctx: RequestContext, ref: string, options: { force?: boolean } = {}): Promise<ImageRemoveResult> {
    return this.store.remove(ref, { force: options.force, inUse: await this.inUse() });
  }

  async prune(_ctx: RequestContext): Promise<ImagePruneResult> {
    return this.store.prune({ inUse: await this.inUse() });
  }

  /** A check of "does a container use this image", from one snapshot of the containers. */
  private async inUse(): Promise<(id: string) => Promise<boolean>> {
    const { imagesInUse } = this.options;
    if (!imagesInUse) throw new BosonError('INTERNAL', 'this image service does not know the containers: it cannot remove or prune images');
    let used: Promise<Set<string>> | undefined;
    return async (id) => (await (used ??= imagesInUse())).has(id);
  }
}

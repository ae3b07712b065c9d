/**
 * CRI's ImageService over the machine port's images: PullImage (with the request's credentials), ListImages (with
 * its filter), ImageStatus (verbose: the image's config), RemoveImage and ImageFsInfo. Messages are the proto's, as
 * src/cri/proto.ts loads them.
 */
import { Buffer } from 'node:buffer';
import { isBosonError } from '../common/index.ts';
import type { Image, Machine, RequestContext } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';
import type { CriHandler } from './handler.ts';
import * as grpc from '@grpc/grpc-js';

/** CRI's Image message of a port Image. */
export function criImage(image: Image): Record<string, unknown> {
  const user = image.config.user.split(':')[0] ?? '';
  const uid = /^\d+$/.test(user) ? { value: user } : null;
  return {
    id: image.id,
    repoTags: image.references,
    repoDigests: image.repoDigests ?? [],
    size: String(image.size),
    uid,
    username: uid || user === '' ? '' : user,
    spec: { image: image.id, annotations: {} },
    pinned: false,
  };
}

/** Credentials of a PullImage's AuthConfig, as the port takes them; undefined when it has none. */
export function pullCredentials(auth: Record<string, string> | null | undefined): { username: string; password: string } | undefined {
  if (!auth) return undefined;
  if (auth.identityToken || auth.registryToken)
    throw new CriRefusal(
      grpc.status.INVALID_ARGUMENT,
      'identity and registry tokens in AuthConfig are not supported: give a username and password (or auth)',
    );
  if (auth.username || auth.password) return { username: auth.username ?? '', password: auth.password ?? '' };
  if (auth.auth) {
    const text = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'AuthConfig.auth is not base64 of "username:password"');
    return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  return undefined;
}

/** The image a CRI ImageSpec names, or null when there is none here. */
async function find(machine: Machine, ctx: RequestContext, spec: { image?: string } | null | undefined): Promise<Image | null> {
  const ref = spec?.image ?? '';
  if (ref === '') throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'an ImageSpec with an empty image reference');
  try {
    return await machine.images.inspect(ctx, ref);
  } catch (err) {
    if (isBosonError(err, 'IMAGE_NOT_FOUND')) return null;
    throw err;
  }
}

type Handler = CriHandler;

/** The ImageService handlers, by RPC name; `imageFsDir` is where the machine keeps its images. */
export function imageHandlers(machine: Machine, imageFsDir: string): Record<string, Handler> {
  return {
    ListImages: async (ctx, req) => {
      let images = await machine.images.list(ctx);
      const wanted = req.filter?.image?.image ?? '';
      if (wanted !== '') {
        const match = await find(machine, ctx, { image: wanted });
        images = match ? images.filter((i) => i.id === match.id) : [];
      }
      return { images: images.map(criImage) };
    },
    ImageStatus: async (ctx, req) => {
      const image = await find(machine, ctx, req.image);
      if (!image) return { image: null, info: {} };
      const info: Record<string, string> = {};
      if (req.verbose) {
        const full = await machine.images.inspect(ctx, image.id);
        info.info = JSON.stringify({
          id: full.id,
          manifestDigest: full.manifestDigest,
          references: full.references,
          architecture: full.architecture,
          os: full.os,
          created: full.created,
          config: full.config,
          layers: full.layers,
          imageSpec: full.configBlob,
        });
      }
      return { image: criImage(image), info };
    },
    PullImage: async (ctx, req) => {
      const reference = req.image?.image ?? '';
      if (reference === '') throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'PullImage needs an image reference');
      const auth = pullCredentials(req.auth);
      const result = await machine.images.pull(ctx, { reference, ...(auth ? { auth } : {}) });
      return { imageRef: result.image.id };
    },
    RemoveImage: async (ctx, req) => {
      const image = await find(machine, ctx, req.image);
      // Removing an image that is not here is success (CRI: idempotent).
      if (image) await machine.images.remove(ctx, image.id);
      return {};
    },
    ImageFsInfo: async (ctx) => {
      const images = await machine.images.list(ctx);
      const used = images.reduce((sum, i) => sum + i.size, 0);
      const layers = new Set(images.flatMap((i) => i.layers.map((l) => l.digest)));
      return {
        imageFilesystems: [
          {
            timestamp: String(BigInt(Date.now()) * 1_000_000n),
            fsId: { mountpoint: imageFsDir },
            usedBytes: { value: String(used) },
            inodesUsed: { value: String(layers.size + images.length) },
          },
        ],
        containerFilesystems: [],
      };
    },
  };
}

/**
 * Image routes: list, pull (`POST /images/create`), inspect, history, tag, remove and prune, over the machine
 * port's images.
 */
import { localContext, type Image, type Machine } from '../../machine/port/index.ts';
import { badRequest, notSupported } from '../errors.ts';
import { familiarName, withSha } from '../format.ts';
import { flag, parseFilters, sendEmpty, sendJson, type Ctx } from '../http.ts';
import { imageInspect, imageSummary, pullReference, pullStream, registryAuth } from '../images.ts';
import { normalizeDockerRepo } from '../repo-name.ts';
import type { RouteDeps, Router } from '../router.ts';

const LOCAL = localContext('docker');

/** Registers the image routes. */
export function registerImageRoutes(router: Router, { machine }: RouteDeps): void {
  const { images } = machine;
  router.on('GET', '/images/json', (ctx) => listImages(machine, ctx));
  router.on('POST', '/images/create', async ({ req, res, query }) => {
    if (query.get('fromSrc'))
      throw notSupported('docker import', 'images come from registries, OCI layouts and docker-save archives (boson image import)');
    const reference = pullReference(query.get('fromImage') ?? '', query.get('tag') ?? '');
    await pullStream(images, res, reference, {
      platform: query.get('platform') ?? undefined,
      auth: registryAuth(req.headers['x-registry-auth']),
    });
  });
  router.on('POST', '/images/prune', async ({ res }) => {
    const r = await images.prune(LOCAL);
    sendJson(res, 200, { ImagesDeleted: r.images.map((id) => ({ Deleted: withSha(id) })), SpaceReclaimed: r.bytes });
  });
  router.on('GET', '/images/(.+)/json', async ({ res, params }) =>
    sendJson(res, 200, imageInspect(await images.inspect(LOCAL, params[0]!))),
  );
  router.on('GET', '/images/(.+)/history', async ({ res, params }) =>
    sendJson(res, 200, imageHistory(await images.inspect(LOCAL, params[0]!))),
  );
  router.on('POST', '/images/(.+)/tag', async ({ res, params, query }) => {
    const repo = query.get('repo');
    if (!repo) throw badRequest('repository name (repo) is required');
    const tag = query.get('tag') || 'latest';
    await images.tag(LOCAL, params[0]!, `${normalizeDockerRepo(repo)}:${tag}`);
    sendEmpty(res, 201);
  });
  router.on('POST', '/images/(.+)/push', () => {
    throw notSupported('docker push', 'Boson keeps flattened micro-VM root disks, not pushable layers');
  });
  router.on('DELETE', '/images/(.+)', async ({ res, params, query }) => {
    const r = await images.remove(LOCAL, params[0]!, { force: flag(query, 'force') });
    sendJson(res, 200, [
      ...r.untagged.map((u) => ({ Untagged: familiarName(u) })),
      ...(r.deleted ? [{ Deleted: withSha(r.deleted) }] : []),
    ]);
  });
}

/** `GET /images/json`, with Docker's reference, dangling and label filters and each image's container count. */
async function listImages({ containers, images: machineImages }: Machine, { res, query }: Ctx): Promise<void> {
  const filters = parseFilters(query, ['dangling', 'reference', 'label', 'before', 'since']);
  let images = await machineImages.list(LOCAL);
  const refs = filters.get('reference') ?? [];
  if (refs.length > 0) images = images.filter((i) => i.references.some((r) => refs.some((f) => referenceMatches(familiarName(r), f))));
  const dangling = filters.get('dangling')?.[0];
  if (dangling !== undefined) images = images.filter((i) => (i.references.length === 0) === (dangling === 'true' || dangling === '1'));
  const labels = filters.get('label') ?? [];
  if (labels.length > 0) images = images.filter((i) => labels.every((l) => labelMatches(i.config.labels ?? {}, l)));
  const counts = new Map<string, number>();
  for (const c of await containers.list(LOCAL, { all: true })) counts.set(c.imageId, (counts.get(c.imageId) ?? 0) + 1);
  sendJson(
    res,
    200,
    images.map((i) => imageSummary(i, counts.get(i.id) ?? 0)),
  );
}

/** `GET /images/{name}/history`: one entry per layer, newest first (Boson keeps no build history). */
export function imageHistory(img: Image): Array<Record<string, unknown>> {
  const created = img.created ? Math.floor(Date.parse(img.created) / 1000) : 0;
  const last = img.layers.length - 1;
  return img.layers
    .map((l, i) => ({
      Id: i === last ? withSha(img.id) : '<missing>',
      Created: created,
      CreatedBy: '',
      Tags: i === last ? img.references.map(familiarName) : null,
      Size: l.size,
      Comment: '',
    }))
    .reverse();
}

/** A `label` filter value ("key" or "key=value") against labels. */
export function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf('=');
  return eq < 0 ? filter in labels : labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

/** A `reference` filter (with `*` within a path component) against a familiar name, with or without its tag. */
export function referenceMatches(ref: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  const colon = ref.lastIndexOf(':');
  const repo = colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
  return re.test(ref) || re.test(repo);
}

/** Volume routes: list, create, inspect, remove and prune ("local" ext4 disks), over the machine port's volumes. */
import { isBosonError } from '../../common/index.ts';
import { parseMemory } from '../../machine/client/index.ts';
import { DEFAULT_VOLUME_BYTES, localContext, type MachineVolumes } from '../../machine/port/index.ts';
import { DockerError, badRequest, notSupported } from '../errors.ts';
import { compareVersions, jsonBody, parseFilters, sendEmpty, sendJson, type Ctx } from '../http.ts';
import type { RouteDeps, Router } from '../router.ts';
import { labelMatches } from './images.ts';

const LOCAL = localContext('docker');

/** Registers the volume routes. */
export function registerVolumeRoutes(router: Router, { machine: { volumes } }: RouteDeps): void {
  router.on('GET', '/volumes', (ctx) => listVolumes(volumes, ctx));
  router.on('POST', '/volumes/create', async (ctx) => {
    const { name, labels, sizeBytes } = volumeCreateOf(await jsonBody(ctx));
    sendJson(
      ctx.res,
      201,
      volumeJson(await volumes.create(LOCAL, { name, ...(labels ? { labels } : {}), ...(sizeBytes ? { sizeBytes } : {}) })),
    );
  });
  router.on('POST', '/volumes/prune', async ({ res, query, version }) => {
    const filters = parseFilters(query, ['all', 'label']);
    // Below API 1.42 a prune removed unused named volumes too: Docker adds all=true for those clients.
    const all = ['true', '1'].includes(filters.get('all')?.[0] ?? '') || compareVersions(version, '1.42') < 0;
    const deleted: string[] = [];
    let bytes = 0;
    for (const v of await volumes.list(LOCAL)) {
      if (!v.anonymous && !all) continue;
      if (!(filters.get('label') ?? []).every((l) => labelMatches(v.labels, l))) continue;
      const { usedBy, usageBytes } = await volumes.inspect(LOCAL, v.name);
      if (usedBy.length > 0) continue;
      try {
        await volumes.remove(LOCAL, v.name);
      } catch (err) {
        // Taken by a container meanwhile: it stays, as it would have had the container come first.
        if (isBosonError(err, 'VOLUME_IN_USE')) continue;
        throw err;
      }
      deleted.push(v.name);
      bytes += usageBytes;
    }
    sendJson(res, 200, { VolumesDeleted: deleted, SpaceReclaimed: bytes });
  });
  router.on('GET', '/volumes/([^/]+)', async ({ res, params }) => {
    const v = await volumes.inspect(LOCAL, params[0]!);
    sendJson(res, 200, { ...volumeJson(v), UsageData: { Size: v.usageBytes, RefCount: v.usedBy.length } });
  });
  router.on('DELETE', '/volumes/([^/]+)', async ({ res, params }) => {
    const name = params[0]!;
    const { usedBy } = await volumes.inspect(LOCAL, name);
    if (usedBy.length > 0) throw new DockerError(409, `remove ${name}: volume is in use - [${usedBy.join(', ')}]`);
    await volumes.remove(LOCAL, name);
    sendEmpty(res, 204);
  });
}

/** `GET /volumes`, with Docker's name, dangling, label and driver filters. */
async function listVolumes(volumes: MachineVolumes, { res, query }: Ctx): Promise<void> {
  const filters = parseFilters(query, ['name', 'dangling', 'label', 'driver']);
  const names = filters.get('name') ?? [];
  const dangling = filters.get('dangling')?.[0];
  const labels = filters.get('label') ?? [];
  const drivers = filters.get('driver') ?? [];
  const out = [];
  for (const v of await volumes.list(LOCAL)) {
    if (names.length > 0 && !names.some((n) => v.name.includes(n))) continue;
    if (
      dangling !== undefined &&
      ((await volumes.inspect(LOCAL, v.name)).usedBy.length === 0) !== (dangling === 'true' || dangling === '1')
    )
      continue;
    if (!labels.every((l) => labelMatches(v.labels, l))) continue;
    if (drivers.length > 0 && !drivers.includes('local')) continue;
    out.push(volumeJson(v));
  }
  sendJson(res, 200, { Volumes: out, Warnings: null });
}

/** What `POST /volumes/create` asks for; only the "local" driver and its `size` option. */
export function volumeCreateOf(b: Record<string, unknown>): { name: string; labels?: Record<string, string>; sizeBytes?: number } {
  const driver = typeof b.Driver === 'string' ? b.Driver : '';
  if (driver !== '' && driver !== 'local')
    throw notSupported(`volume driver "${driver}"`, 'Boson volumes are ext4 disks of the "local" driver');
  let sizeBytes: number | undefined;
  const opts = b.DriverOpts && typeof b.DriverOpts === 'object' ? (b.DriverOpts as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(opts)) {
    if (k !== 'size') throw badRequest(`invalid option key: "${k}" (Boson volumes take only size)`);
    try {
      sizeBytes = parseMemory(String(v)) * 1024 * 1024;
    } catch {
      throw badRequest(`invalid size option: ${String(v)}`);
    }
  }
  const labels = b.Labels && typeof b.Labels === 'object' ? (b.Labels as Record<string, string>) : undefined;
  return { name: typeof b.Name === 'string' ? b.Name : '', labels, sizeBytes };
}

/** Docker's volume JSON: `Options` holds the size only when it is not the default (as the `-o size=…` it came from; compose compares them with its driver_opts). */
export function volumeJson(v: {
  name: string;
  created: string;
  labels: Record<string, string>;
  mountpoint: string;
  sizeBytes: number;
}): Record<string, unknown> {
  return {
    CreatedAt: v.created,
    Driver: 'local',
    Labels: v.labels,
    Mountpoint: v.mountpoint,
    Name: v.name,
    Options: v.sizeBytes === DEFAULT_VOLUME_BYTES ? null : { size: String(v.sizeBytes) },
    Scope: 'local',
  };
}

/**
 * Container lifecycle routes: list, create, inspect, start, stop, restart, kill, wait, rename, resize, remove and
 * prune, each a call of the machine port with Docker's JSON translated by ../containers.ts.
 */
import { isBosonError } from '../../common/index.ts';
import { localContext, type Container, type MachineImages, type RestartPolicy, type WaitCondition } from '../../machine/port/index.ts';
import { hostCpuCount, parseRestartPolicy, parseSignal } from '../../machine/client/index.ts';
import {
  CONTAINER_FILTERS,
  checkContainerName,
  containerInspect,
  containerSpecOf,
  containerSummary,
  matchesFilters,
  networkLookup,
  volumePathOf,
} from '../containers.ts';
import { DockerError, badRequest, notSupported } from '../errors.ts';
import { withSha } from '../format.ts';
import { flag, jsonBody, parseFilters, pruneMatcher, sendEmpty, sendJson, type Ctx } from '../http.ts';
import { ID, type RouteDeps, type Router } from '../router.ts';

const LOCAL = localContext('docker');

/** Registers the container lifecycle routes. */
export function registerContainerRoutes(router: Router, deps: RouteDeps): void {
  const { containers: m, images, volumes, networks } = deps.machine;
  router.on('GET', '/containers/json', (ctx) => listContainers(deps, ctx));
  router.on('POST', '/containers/create', (ctx) => createContainer(deps, ctx));
  router.on('POST', '/containers/prune', async ({ res, query }) => {
    const { matches } = pruneMatcher(query);
    const deleted: string[] = [];
    for (const c of await m.list(LOCAL, { all: true })) {
      if (c.state !== 'exited' && c.state !== 'created' && c.state !== 'dead') continue;
      if (!matches(c.config.labels ?? {}, c.created)) continue;
      await m.remove(LOCAL, c.id, { force: false }).then(
        () => deleted.push(c.id),
        () => undefined,
      );
    }
    sendJson(res, 200, { ContainersDeleted: deleted, SpaceReclaimed: 0 });
  });
  router.on('GET', `/containers/${ID}/json`, async ({ res, params, version }) => {
    const c = await m.inspect(LOCAL, params[0]!);
    const [entrypoint, volumeList, nets] = await Promise.all([imageEntrypoint(images, c), volumes.list(LOCAL), networkLookup(networks)]);
    sendJson(res, 200, containerInspect(c, entrypoint, volumePathOf(volumeList), nets, version));
  });
  router.on('POST', `/containers/${ID}/update`, (ctx) => updateContainer(deps, ctx));
  router.on('POST', `/containers/${ID}/start`, (ctx) => startContainer(deps, ctx));
  router.on('POST', `/containers/${ID}/stop`, async ({ res, params, query }) => {
    const c = await m.inspect(LOCAL, params[0]!);
    if (c.state !== 'running' && c.state !== 'restarting' && c.state !== 'suspended') return sendEmpty(res, 304);
    await m.stop(LOCAL, c.id, stopTimeout(query));
    sendEmpty(res, 204);
  });
  router.on('POST', `/containers/${ID}/restart`, async ({ res, params, query }) => {
    await m.restart(LOCAL, (await m.inspect(LOCAL, params[0]!)).id, stopTimeout(query));
    sendEmpty(res, 204);
  });
  router.on('POST', `/containers/${ID}/kill`, (ctx) => killContainer(deps, ctx));
  router.on('POST', `/containers/${ID}/wait`, (ctx) => waitContainer(deps, ctx));
  router.on('POST', `/containers/${ID}/rename`, async ({ res, params, query }) => {
    const name = query.get('name');
    if (!name) throw badRequest('a new name is required');
    await m.rename(LOCAL, (await m.inspect(LOCAL, params[0]!)).id, checkContainerName(name));
    sendEmpty(res, 204);
  });
  router.on('POST', `/containers/${ID}/resize`, async ({ res, params, query }) => {
    const { h, w } = terminalSize(query);
    await m.resize(LOCAL, (await m.inspect(LOCAL, params[0]!)).id, h, w);
    sendEmpty(res, 200);
  });
  router.on('DELETE', `/containers/${ID}`, (ctx) => removeContainer(deps, ctx));
}

/** `GET /containers/json` (docker ps). */
async function listContainers(
  { machine: { containers: m, images, volumes, networks } }: RouteDeps,
  { res, query, version }: Ctx,
): Promise<void> {
  const filters = parseFilters(query, CONTAINER_FILTERS);
  const all = flag(query, 'all') || filters.has('status') || filters.has('exited');
  let list = await m.list(LOCAL, { all });
  const nets = await networkLookup(networks);
  if (filters.size > 0) {
    const ancestors = new Map<string, string | null>();
    for (const v of filters.get('ancestor') ?? []) {
      ancestors.set(
        v,
        await images.inspect(LOCAL, v).then(
          (i) => withSha(i.id),
          () => null,
        ),
      );
    }
    list = list.filter((c) => matchesFilters(c, filters, (ref) => ancestors.get(ref) ?? null, nets));
  }
  const limit = Number(query.get('limit') ?? -1);
  if (Number.isInteger(limit) && limit > 0) list = list.slice(0, limit);
  const now = Date.now();
  const volumePath = volumePathOf(await volumes.list(LOCAL));
  sendJson(
    res,
    200,
    list.map((c) => containerSummary(c, volumePath, now, nets, version)),
  );
}

/** `POST /containers/create`. */
async function createContainer({ machine: { containers: m } }: RouteDeps, ctx: Ctx): Promise<void> {
  const body = await jsonBody(ctx);
  const name = ctx.query.get('name');
  const platform = ctx.query.get('platform');
  if (platform && !/^linux(\/(amd64|x86_64))?$/.test(platform)) {
    throw badRequest(`image platform ${platform} is not supported by Boson (linux/amd64 micro-VMs)`);
  }
  const container = await m.create(LOCAL, containerSpecOf(body, name || null, hostCpuCount()));
  sendJson(ctx.res, 201, { Id: container.id, Warnings: [] });
}

/** `POST /containers/{id}/start`: 304 when running; a container with AutoRemove that cannot start is removed. */
async function startContainer({ machine: { containers: m } }: RouteDeps, { res, params }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  if (c.state === 'running') return sendEmpty(res, 304);
  try {
    await m.start(LOCAL, c.id);
  } catch (err) {
    if (c.autoRemove) await m.remove(LOCAL, c.id, { force: true }).catch(() => undefined);
    throw err;
  }
  sendEmpty(res, 204);
}

/**
 * `POST /containers/{id}/update`: the restart policy changes (in any state); memory, CPUs and the other resources of
 * a micro-VM are fixed when it boots, so a body that sets any of them is refused as a whole.
 */
async function updateContainer({ machine: { containers: m } }: RouteDeps, ctx: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, ctx.params[0]!);
  const body = await jsonBody(ctx);
  const set = (v: unknown): boolean =>
    v === true ||
    (typeof v === 'number' && v !== 0 && v !== -1) ||
    (typeof v === 'string' && v !== '') ||
    (Array.isArray(v) && v.length > 0) ||
    (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0);
  const fixed = Object.entries(body)
    .filter(([k, v]) => k !== 'RestartPolicy' && set(v))
    .map(([k]) => k);
  if (fixed.length > 0) throw notSupported('docker update', "a micro-VM's memory and CPUs are fixed when it boots");
  const rp = body.RestartPolicy;
  if (rp !== undefined && rp !== null) {
    if (typeof rp !== 'object' || Array.isArray(rp))
      throw badRequest('json: cannot unmarshal into Go struct field UpdateConfig.RestartPolicy of type container.RestartPolicy');
    const { Name, MaximumRetryCount } = rp as { Name?: unknown; MaximumRetryCount?: unknown };
    const name = typeof Name === 'string' && Name !== '' ? Name : 'no';
    const count = typeof MaximumRetryCount === 'number' ? MaximumRetryCount : 0;
    if (count > 0 && name !== 'on-failure')
      throw badRequest(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
    if (count < 0) throw badRequest('invalid restart policy: maximum retry count cannot be negative');
    let restartPolicy: RestartPolicy;
    try {
      restartPolicy = parseRestartPolicy(name === 'on-failure' && count > 0 ? `on-failure:${count}` : name);
    } catch (err) {
      if (isBosonError(err, 'INVALID_ARGUMENT')) throw badRequest(err.message);
      throw err;
    }
    if (c.autoRemove && restartPolicy.name !== 'no')
      throw badRequest('Restart policy cannot be updated because AutoRemove is enabled for the container');
    await m.update(LOCAL, c.id, { restartPolicy });
  }
  sendJson(ctx.res, 200, { Warnings: [] });
}

/** `POST /containers/{id}/kill`: Docker's 400 for an unknown signal and 409 for a container that is not running. */
async function killContainer({ machine: { containers: m } }: RouteDeps, { res, params, query }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  const signal = query.get('signal') || 'KILL';
  try {
    parseSignal(signal);
  } catch {
    throw badRequest(`Invalid signal: ${signal}`);
  }
  try {
    await m.kill(LOCAL, c.id, signal);
  } catch (err) {
    if (isBosonError(err, 'CONTAINER_NOT_RUNNING'))
      throw new DockerError(409, `Cannot kill container: ${params[0]}: container ${c.id} is not running`);
    throw err;
  }
  sendEmpty(res, 204);
}

/** `POST /containers/{id}/wait`: the headers go out at once (the CLI waits for them before it starts the container). */
async function waitContainer({ machine: { containers: m } }: RouteDeps, { req, res, params, query }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  const condition = (query.get('condition') || 'not-running') as WaitCondition;
  if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw badRequest(`invalid condition: "${condition}"`);
  const result = m.wait(LOCAL, c.id, condition);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const closed = new Promise<null>((resolve) => req.socket.once('close', () => resolve(null)));
  const r = await Promise.race([result, closed]);
  if (r) res.end(JSON.stringify({ StatusCode: r.statusCode, Error: null }) + '\n');
}

/** `DELETE /containers/{id}`. */
async function removeContainer({ machine: { containers: m } }: RouteDeps, { res, params, query }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  try {
    await m.remove(LOCAL, c.id, { force: flag(query, 'force'), volumes: flag(query, 'v') });
  } catch (err) {
    if (isBosonError(err, 'CONTAINER_RUNNING')) {
      throw new DockerError(
        409,
        `cannot remove container "/${c.name}": container is running: stop the container before removing or force remove`,
      );
    }
    throw err;
  }
  sendEmpty(res, 204);
}

/** The image's Entrypoint, when the image is still in the store (inspect splits argv into Entrypoint and Cmd). */
async function imageEntrypoint(images: MachineImages, c: Container): Promise<string[] | null> {
  return images.inspect(LOCAL, c.imageId).then(
    (i) => i.config.entrypoint,
    () => null,
  );
}

/** The stop timeout of `t` (or `timeout`): none given is the machine's default; a negative one waits for ever. */
export function stopTimeout(q: URLSearchParams): number | undefined {
  const t = q.get('t') ?? q.get('timeout');
  if (t === null || t === '') return undefined;
  const n = Number(t);
  if (!Number.isInteger(n)) throw badRequest(`invalid value for t: ${t}`);
  return n < 0 ? 365 * 24 * 3600 : n;
}

/** A terminal size from `h` and `w`. */
export function terminalSize(q: URLSearchParams): { h: number; w: number } {
  const h = Number(q.get('h') ?? 0);
  const w = Number(q.get('w') ?? 0);
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h > 65535 || w > 65535) {
    throw badRequest(`invalid terminal size: ${q.get('h')}x${q.get('w')}`);
  }
  return { h, w };
}

/**
 * Network routes: list, inspect, create, remove and prune (bridges only), over the machine port's networks; and
 * connect/disconnect, which for Boson are configuration: a micro-VM has one network card, chosen when it boots, so
 * a container that is not running changes the network (and aliases) its next start joins, and a running one is
 * refused.
 */
import { isBosonError } from '../../common/index.ts';
import { localContext, type Container, type Network, type NetworkInspect } from '../../machine/port/index.ts';
import { endpointConfigOf, endpointId, networkLookup, networkOf, type NetworkLookup } from '../containers.ts';
import { DockerError, badRequest, notSupported } from '../errors.ts';
import { jsonBody, parseFilters, pruneMatcher, sendEmpty, sendJson, type Ctx } from '../http.ts';
import { ID, type RouteDeps, type Router } from '../router.ts';

const LOCAL = localContext('docker');

/** Registers the network routes. */
export function registerNetworkRoutes(router: Router, deps: RouteDeps): void {
  const { networks } = deps.machine;
  router.on('GET', '/networks', async ({ res, query }) => {
    const match = networkFilter(query);
    sendJson(
      res,
      200,
      (await networks.list(LOCAL)).filter(match).map((n) => networkJson(n)),
    );
  });
  router.on('GET', `/networks/${ID}`, async ({ res, params }) => {
    const n = await networks.inspect(LOCAL, params[0]!);
    sendJson(res, 200, networkJson(n, attached(n)));
  });
  router.on('POST', '/networks/create', (ctx) => createNetwork(deps, ctx));
  router.on('DELETE', `/networks/${ID}`, async ({ res, params }) => {
    await forbiddenInUse(() => networks.remove(LOCAL, params[0]!));
    sendEmpty(res, 204);
  });
  router.on('POST', '/networks/prune', async ({ res, query }) => {
    const { matches } = pruneMatcher(query);
    const deleted: string[] = [];
    for (const n of await networks.list(LOCAL)) {
      if (n.builtin || !matches(n.labels, n.created)) continue;
      try {
        await networks.remove(LOCAL, n.id);
        deleted.push(n.name);
      } catch (err) {
        if (!isBosonError(err, 'NETWORK_IN_USE')) throw err;
      }
    }
    sendJson(res, 200, { NetworksDeleted: deleted });
  });
  router.on('POST', `/networks/${ID}/connect`, (ctx) => connect(deps, ctx));
  router.on('POST', `/networks/${ID}/disconnect`, (ctx) => disconnect(deps, ctx));
}

/** Docker answers 403 for a network it may not remove (libnetwork's ActiveEndpointsError, a predefined network). */
async function forbiddenInUse(remove: () => Promise<void>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    if (isBosonError(err, 'NETWORK_IN_USE')) throw new DockerError(403, err.message);
    throw err;
  }
}

/** `GET /networks` filters: name and id (substring or regexp, as Docker matches), label, driver, type, scope, dangling. */
function networkFilter(q: URLSearchParams): (n: Network) => boolean {
  const filters = parseFilters(q, ['name', 'id', 'label', 'driver', 'type', 'scope', 'dangling']);
  const like = (v: string, s: string): boolean => {
    if (s.includes(v)) return true;
    try {
      return new RegExp(v).test(s);
    } catch {
      return false;
    }
  };
  for (const t of filters.get('type') ?? []) if (t !== 'custom' && t !== 'builtin') throw badRequest(`invalid filter: 'type'='${t}'`);
  if (filters.has('dangling'))
    throw notSupported("the network filter 'dangling'", 'Boson does not track which networks containers last used');
  return (n) => {
    const one = (key: string, test: (v: string) => boolean): boolean => {
      const values = filters.get(key) ?? [];
      return values.length === 0 || values.some(test);
    };
    return (
      one('name', (v) => like(v, n.name)) &&
      one('id', (v) => like(v, n.id)) &&
      (filters.get('label') ?? []).every((l) => {
        const eq = l.indexOf('=');
        return eq < 0 ? l in n.labels : n.labels[l.slice(0, eq)] === l.slice(eq + 1);
      }) &&
      one('driver', (v) => v === 'bridge') &&
      one('type', (v) => (v === 'builtin') === n.builtin) &&
      one('scope', (v) => v === 'local')
    );
  };
}

/** The running containers on network `n`, as `Containers` of its inspect. */
function attached(n: NetworkInspect): Record<string, unknown> {
  const prefix = n.subnet.split('/')[1] ?? '';
  const out: Record<string, unknown> = {};
  for (const c of n.containers) {
    if (c.address === null) continue;
    out[c.id] = {
      Name: c.name,
      EndpointID: endpointId(c.id, n.id),
      MacAddress: c.mac ?? '',
      IPv4Address: `${c.address}/${prefix}`,
      IPv6Address: '',
    };
  }
  return out;
}

/** The container and network of a connect/disconnect body, and the network the container is on now. */
async function parties(
  { machine: { containers: m, networks } }: RouteDeps,
  ctx: Ctx,
): Promise<{ body: Record<string, unknown>; c: Container; n: Network; on: ReturnType<NetworkLookup> }> {
  const n = await networks.inspect(LOCAL, ctx.params[0]!);
  const body = await jsonBody(ctx);
  const ref = typeof body.Container === 'string' ? body.Container : '';
  if (!ref) throw badRequest('a container is required: set Container');
  const c = await m.inspect(LOCAL, ref);
  return { body, c, n, on: networkOf(c, await networkLookup(networks)) };
}

const running = (c: Container): boolean => c.state === 'running' || c.state === 'restarting';

/**
 * `POST /networks/{id}/connect`. A container that is not running joins the network at its next start, with the
 * endpoint's aliases, static address and links (on the network it is on already: they replace the old ones). It leaves the
 * default bridge for it (Docker would attach both); from another user network it must be disconnected first.
 */
async function connect(deps: RouteDeps, ctx: Ctx): Promise<void> {
  const { body, c, n, on } = await parties(deps, ctx);
  const { aliases, ipv4Address, links } = endpointConfigOf(body.EndpointConfig);
  const same = on !== undefined && on.id === n.id;
  if (running(c)) {
    if (same) throw new DockerError(403, `endpoint with name ${c.name} already exists in network ${n.name}`);
    throw new DockerError(
      409,
      `cannot connect running container ${c.name} to network ${n.name}: a Boson micro-VM has one network card, chosen when it boots, and a running micro-VM cannot have one hot-plugged; stop the container, connect it, then start it`,
    );
  }
  if (!same && on !== undefined && !on.builtin) {
    throw new DockerError(
      409,
      `container ${c.name} is connected to network ${on.name}: a Boson micro-VM has one network card, so a container is on one network; disconnect it from ${on.name} first`,
    );
  }
  await deps.machine.networks.connect(LOCAL, n.id, c.id, {
    aliases,
    ...(ipv4Address ? { ipv4Address } : {}),
    ...(links.length > 0 ? { links } : {}),
  });
  sendEmpty(ctx.res, 200);
}

/** `POST /networks/{id}/disconnect`: a container that is not running is left with no network (as `--network none`). */
async function disconnect(deps: RouteDeps, ctx: Ctx): Promise<void> {
  const { c, n, on } = await parties(deps, ctx);
  if (on === undefined || on.id !== n.id) throw new DockerError(409, `container ${c.id} is not connected to network ${n.name}`);
  if (running(c)) {
    throw new DockerError(
      409,
      `cannot disconnect running container ${c.name} from network ${n.name}: a Boson micro-VM has one network card, chosen when it boots, and a running micro-VM cannot have it removed; stop the container, disconnect it, then start it`,
    );
  }
  await deps.machine.networks.disconnect(LOCAL, n.id, c.id);
  sendEmpty(ctx.res, 200);
}

/** `POST /networks/create`: a bridge, with the first IPAM config's subnet and gateway. */
async function createNetwork({ machine: { networks } }: RouteDeps, ctx: Ctx): Promise<void> {
  const b = await jsonBody(ctx);
  const name = typeof b.Name === 'string' ? b.Name : '';
  if (!name) throw badRequest('network name is required');
  const driver = typeof b.Driver === 'string' ? b.Driver : 'bridge';
  if (driver !== '' && driver !== 'bridge') throw notSupported(`network driver "${driver}"`, 'Boson networks are bridges');
  const ipam = b.IPAM as { Config?: Array<{ Subnet?: string; Gateway?: string }> } | undefined;
  const cfg = ipam?.Config?.[0];
  const n = await networks.create(LOCAL, {
    name,
    ...(cfg?.Subnet ? { subnet: cfg.Subnet } : {}),
    ...(cfg?.Gateway ? { gateway: cfg.Gateway } : {}),
    internal: b.Internal === true,
    labels: (b.Labels ?? {}) as Record<string, string>,
  });
  sendJson(ctx.res, 201, { Id: n.id, Warning: '' });
}

/** Docker's network JSON for a Boson network (`containers`: the inspect's attached containers). */
export function networkJson(
  n: {
    id: string;
    name: string;
    created: string;
    subnet: string;
    gateway: string;
    internal: boolean;
    labels: Record<string, string>;
  },
  containers: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: n.subnet, Gateway: n.gateway }] },
    Internal: n.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: {},
    Labels: n.labels,
  };
}

/** Network routes: list, inspect, create, remove and prune (bridges only), over the machine's network manager. */
import { isBosonError } from '../../common/index.ts';
import { badRequest, notSupported } from '../errors.ts';
import { jsonBody, sendEmpty, sendJson, type Ctx } from '../http.ts';
import type { DockerNetworks } from '../machine-access.ts';
import { ID, type RouteDeps, type Router } from '../router.ts';

/** Registers the network routes. */
export function registerNetworkRoutes(router: Router, { machine: { extras } }: RouteDeps): void {
  // The network manager is looked up per request: a runtime without networking answers each call with its error.
  const nets = (): DockerNetworks => extras.networks;
  router.on('GET', '/networks', async ({ res }) => sendJson(res, 200, (await nets().list()).map(networkJson)));
  router.on('GET', `/networks/${ID}`, async ({ res, params }) => sendJson(res, 200, networkJson(await nets().get(params[0]!))));
  router.on('POST', '/networks/create', (ctx) => createNetwork(nets, ctx));
  router.on('DELETE', `/networks/${ID}`, async ({ res, params }) => {
    await nets().remove(params[0]!);
    sendEmpty(res, 204);
  });
  router.on('POST', '/networks/prune', async ({ res }) => {
    const deleted: string[] = [];
    for (const n of await nets().list()) {
      if (n.builtin) continue;
      try {
        await nets().remove(n.id);
        deleted.push(n.name);
      } catch (err) {
        if (!isBosonError(err, 'NETWORK_IN_USE')) throw err;
      }
    }
    sendJson(res, 200, { NetworksDeleted: deleted });
  });
}

/** `POST /networks/create`: a bridge, with the first IPAM config's subnet and gateway. */
async function createNetwork(nets: () => DockerNetworks, ctx: Ctx): Promise<void> {
  const b = await jsonBody(ctx);
  const name = typeof b.Name === 'string' ? b.Name : '';
  if (!name) throw badRequest('network name is required');
  const driver = typeof b.Driver === 'string' ? b.Driver : 'bridge';
  if (driver !== '' && driver !== 'bridge') throw notSupported(`network driver "${driver}"`, 'Boson networks are bridges');
  const ipam = b.IPAM as { Config?: Array<{ Subnet?: string; Gateway?: string }> } | undefined;
  const cfg = ipam?.Config?.[0];
  const n = await nets().create(name, {
    subnet: cfg?.Subnet || undefined,
    gateway: cfg?.Gateway || undefined,
    internal: b.Internal === true,
    labels: (b.Labels ?? {}) as Record<string, string>,
  });
  sendJson(ctx.res, 201, { Id: n.id, Warning: '' });
}

/** Docker's network JSON for a Boson network. */
export function networkJson(n: {
  id: string;
  name: string;
  created: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  labels: Record<string, string>;
}): Record<string, unknown> {
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
    Containers: {},
    Options: {},
    Labels: n.labels,
  };
}

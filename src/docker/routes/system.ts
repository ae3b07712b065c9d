/** System routes: `/_ping`, `/version`, `/info`, `/system/df`, `/events` and `/auth`. */
import { isBosonError } from '../../common/index.ts';
import { localContext } from '../../machine/port/index.ts';
import { DockerError, badRequest } from '../errors.ts';
import { API_VERSION, jsonBody, sendJson, type Ctx } from '../http.ts';
import { checkLogin } from '../images.ts';
import type { Handler, RouteDeps, Router } from '../router.ts';
import { diskUsage, eventStream, systemInfo, versionInfo } from '../system.ts';
import { volumePathOf } from '../containers.ts';

const LOCAL = localContext('docker');

/** Registers the system routes. */
export function registerSystemRoutes(router: Router, deps: RouteDeps): void {
  const { containers, images, volumes, events } = deps.machine;
  router.on('GET', '/_ping', ping);
  router.on('HEAD', '/_ping', ping);
  router.on('GET', '/version', ({ res }) => sendJson(res, 200, versionInfo()));
  router.on('GET', '/info', async ({ res }) => {
    const [all, imageList] = await Promise.all([containers.list(LOCAL, { all: true }), images.list(LOCAL)]);
    sendJson(
      res,
      200,
      systemInfo({ containers: all, imageCount: imageList.length, eventListeners: deps.eventStreams.open, paths: deps.paths }),
    );
  });
  router.on('GET', '/system/df', async ({ res }) => {
    const [all, imageList, volumeList] = await Promise.all([
      containers.list(LOCAL, { all: true }),
      images.list(LOCAL),
      volumes.list(LOCAL),
    ]);
    const sized = await Promise.all(
      volumeList.map(async (volume) => ({ volume, size: (await volumes.inspect(LOCAL, volume.name)).usageBytes })),
    );
    sendJson(res, 200, diskUsage({ containers: all, images: imageList, volumes: sized, volumePath: volumePathOf(volumeList) }));
  });
  router.on('GET', '/events', ({ req, res, query }) => eventStream(events, deps.eventStreams, req, res, query));
  router.on('POST', '/auth', (ctx) => login(ctx, deps.registry));
}

const ping: Handler = ({ req, res }) => {
  res.writeHead(200, {
    'Api-Version': API_VERSION,
    Ostype: 'linux',
    'Docker-Experimental': 'false',
    Swarm: 'inactive',
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Pragma: 'no-cache',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': req.method === 'HEAD' ? 0 : 2,
  });
  res.end(req.method === 'HEAD' ? undefined : 'OK');
};

/** `POST /auth`: checks credentials against the registry (no identity tokens). */
async function login(ctx: Ctx, registry: RouteDeps['registry']): Promise<void> {
  const b = await jsonBody(ctx);
  const username = typeof b.username === 'string' ? b.username : '';
  const password = typeof b.password === 'string' ? b.password : '';
  if (!username || !password) throw badRequest('a user name and a password are required (identity tokens are not supported by Boson)');
  try {
    await checkLogin(typeof b.serveraddress === 'string' ? b.serveraddress : '', username, password, registry);
  } catch (err) {
    if (isBosonError(err, 'REGISTRY_AUTH_FAILED')) throw new DockerError(401, `login attempt failed: ${err.message}`);
    throw err;
  }
  sendJson(ctx.res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
}

/**
 * The Docker Engine API personality of the machine daemon: a node:http server with Docker's plumbing (the `/vX.Y`
 * prefix, request bodies, error answers through errors.ts, connection upgrades for attach and exec start) over
 * routes that each resource registers (src/docker/routes/*.ts). The routes speak the machine port (`Machine`: its
 * containers, images, volumes, networks and events) and nothing else of the machine. What Boson cannot do answers
 * 501 with Docker's `{"message"}`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { BosonPaths } from '../common/index.ts';
import type { RegistryClientOptions } from '../image/index.ts';
import { DockerError, notSupported } from './errors.ts';
import { sendError, socketError, splitVersion, writeUpgraded } from './http.ts';
import type { Machine } from '../machine/port/index.ts';
import { ExecResizers, Router, type RouteDeps } from './router.ts';
import { registerContainerRoutes } from './routes/containers.ts';
import { registerContainerIoRoutes } from './routes/container-io.ts';
import { registerExecRoutes } from './routes/exec.ts';
import { registerImageRoutes } from './routes/images.ts';
import { registerNetworkRoutes } from './routes/networks.ts';
import { registerSystemRoutes } from './routes/system.ts';
import { registerVolumeRoutes } from './routes/volumes.ts';

/** The Docker API over one machine. */
export class DockerApi {
  private readonly router = new Router();
  /** Hijacked connections (not tracked by the HTTP server once upgraded). */
  private readonly hijacked = new Set<Duplex>();

  /** Print each request on stderr (BOSON_DOCKER_TRACE, passed down by the composition root). */
  private readonly trace: boolean;

  constructor(machine: Machine, paths: BosonPaths, opts: { registry?: RegistryClientOptions; trace?: boolean } = {}) {
    this.trace = opts.trace ?? false;
    const deps: RouteDeps = { machine, paths, execs: new ExecResizers(), eventStreams: { open: 0 }, registry: opts.registry ?? {} };
    for (const register of [
      registerSystemRoutes,
      registerContainerRoutes,
      registerContainerIoRoutes,
      registerExecRoutes,
      registerImageRoutes,
      registerNetworkRoutes,
      registerVolumeRoutes,
    ]) {
      register(this.router, deps);
    }
  }

  /** A node:http server with this API's request and upgrade handlers. */
  createServer(): http.Server {
    const server = http.createServer({ keepAliveTimeout: 30_000, requestTimeout: 0 }, (req, res) => void this.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    server.on('clientError', (_err, socket) => {
      if (socket.writable)
        socket.end(
          'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 32\r\nConnection: close\r\n\r\n{"message":"malformed request"}\n',
        );
      else socket.destroy();
    });
    return server;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.trace) {
      const t0 = performance.now();
      process.stderr.write(`${Date.now() % 100000} > ${req.method} ${req.url}\n`);
      res.on('finish', () =>
        process.stderr.write(
          `${Date.now() % 100000} < ${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(1)} ms\n`,
        ),
      );
    }
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    try {
      const url = new URL(req.url ?? '/', 'http://docker');
      const { version, path } = splitVersion(url.pathname);
      const method = req.method === 'HEAD' && path !== '/_ping' && !/\/archive$/.test(path) ? 'GET' : (req.method ?? 'GET');
      const route = this.router.match(method, path);
      if (route) {
        await route.handler({ req, res, params: route.params, query: url.searchParams, version });
        return;
      }
      const unsupported = unsupportedRoute(path);
      if (unsupported) throw unsupported;
      if (this.router.knowsPath(path)) throw new DockerError(405, `method ${req.method} is not allowed on ${path}`);
      throw new DockerError(404, 'page not found');
    } catch (err) {
      sendError(res, err);
    }
  }

  /** Ends every hijacked connection (daemon shutdown). */
  closeStreams(): void {
    for (const s of this.hijacked) s.destroy();
    this.hijacked.clear();
  }

  /** Connection upgrades (attach and exec start): an error before the 101 is an HTTP answer, after it the end of the socket. */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    this.hijacked.add(socket);
    socket.once('close', () => this.hijacked.delete(socket));
    socket.pause();
    let upgraded = false;
    try {
      const url = new URL(req.url ?? '/', 'http://docker');
      const { version, path } = splitVersion(url.pathname);
      const route = this.router.matchUpgrade(req.method ?? 'GET', path);
      if (!route) throw unsupportedRoute(path) ?? new DockerError(404, 'page not found');
      const accept = (tty: boolean): void => {
        writeUpgraded(socket, !tty && Number(version.split('.')[1] ?? 0) >= 42);
        upgraded = true;
      };
      await route.handler({ req, socket, head, params: route.params, query: url.searchParams, version, accept });
      socket.end();
    } catch (err) {
      if (!upgraded) socketError(socket, err);
      else socket.end();
    }
  }
}

/** Docker endpoints Boson knows it does not have: a clear 501 instead of "page not found". */
function unsupportedRoute(path: string): DockerError | null {
  const rules: Array<[RegExp, () => DockerError]> = [
    [
      /^\/build(\/|$)/,
      () =>
        notSupported(
          'docker build',
          'Boson runs images built elsewhere; build with BuildKit or another builder and pull or import the result',
        ),
    ],
    [/^\/commit$/, () => notSupported('docker commit', "a container's writable layer is a disk inside its micro-VM")],
    [
      /^\/containers\/[^/]+\/(pause|unpause)$/,
      () => notSupported('pausing containers', 'a micro-VM is not frozen through a cgroup freezer'),
    ],
    [/^\/containers\/[^/]+\/export$/, () => notSupported('docker export')],
    [/^\/containers\/[^/]+\/changes$/, () => notSupported('docker diff')],
    [/^\/containers\/[^/]+\/checkpoints/, () => notSupported('checkpoints')],
    [
      /^\/images\/(get|load|search)$/,
      () => notSupported('docker save/load/search', 'use boson image import for OCI layouts and docker-save archives'),
    ],
    [/^\/images\/.+\/get$/, () => notSupported('docker save')],
    [/^\/(swarm|services|nodes|tasks|secrets|configs)(\/|$)/, () => notSupported('swarm mode')],
    [/^\/plugins(\/|$)/, () => notSupported('plugins')],
    [/^\/(session|grpc)$/, () => notSupported('BuildKit sessions')],
    [/^\/distribution\//, () => notSupported('distribution inspect')],
  ];
  for (const [re, make] of rules) if (re.test(path)) return make();
  return null;
}

/** Where the Docker API socket lives: `<run dir>/docker.sock`. */
export function dockerSocketPath(paths: BosonPaths): string {
  return `${paths.runDir}/docker.sock`;
}

/**
 * The controller's composition: its state store (SQLite, `<stateDir>/controller.db`, a file of its own beside the
 * machine's machine.db; through the promise form of the store contract, as etcd will serve it), the model, the
 * bootstrap (the default tenant and project, the admin user), and its REST API on a UNIX socket (0660, where the
 * socket's permissions are the authentication: no token means the local system admin) and optionally on TCP (the
 * rules of every Boson TCP endpoint: TLS with client certificates, or plain on loopback with --insecure-tcp; a
 * bearer token on top). Used by `boson controller` (alone) and `boson up --controller` (in the daemon's process).
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import {
  asyncStore,
  BosonError,
  ensurePrivateDir,
  resolveTcpEndpoint,
  serveTcpEndpoint,
  silentLogger,
  type BosonPaths,
  type Logger,
  type TcpEndpointRequest,
} from '../common/index.ts';
import { buildControllerApi, Controller, ControllerClient, openFleet } from '../controller/index.ts';
import { loadConfig } from './config.ts';
import { openStateStore } from '../machine/index.ts';
import { controllerSocketPath } from './root.ts';

/** The controller's database file in the state directory. */
export const CONTROLLER_DB = 'controller.db';

/** What a controller is started with. */
export interface ControllerRequest {
  paths: BosonPaths;
  /** Default: controllerSocketPath(paths). */
  socketPath?: string;
  tcp?: TcpEndpointRequest;
  log?: Logger;
  /** The host's own machine, registered as the fleet's first (boson up --controller): its socket and capacity. */
  localMachine?: { socketPath: string; capacity: { cpus: number; memoryBytes: number; diskBytes: number } };
  /** The projects' Docker endpoint (TLS required; client certificates from boson project docker-env). */
  dockerTcp?: TcpEndpointRequest;
  /** The fleet's health checks (default: the BOSON_FLEET_CHECK_INTERVAL_MS, BOSON_FLEET_CHECK_TIMEOUT_MS and BOSON_FLEET_LOST_AFTER_MS settings). */
  fleet?: { checkIntervalMs: number; checkTimeoutMs: number; lostAfterMs: number };
}

/** A running controller. */
export interface RunningController {
  socketPath: string;
  tcp?: { host: string; port: number; tls: boolean };
  controller: Controller;
  close(): Promise<void>;
}

/** Starts the controller; resolves once it listens. Another controller answering on the socket is refused. */
export async function startController(request: ControllerRequest): Promise<RunningController> {
  const { paths } = request;
  const log = request.log ?? silentLogger;
  const socketPath = request.socketPath ?? controllerSocketPath(paths);
  // Unsafe or unreadable TCP endpoints are refused before anything is opened.
  const tcp = request.tcp ? await resolveTcpEndpoint(request.tcp, '--listen') : undefined;
  const dockerTcp = request.dockerTcp ? await resolveTcpEndpoint(request.dockerTcp, '--docker-listen') : undefined;
  if (dockerTcp && !dockerTcp.tls)
    throw new BosonError('INVALID_ARGUMENT', '--docker-listen needs --tlsverify: the project is chosen by the client certificate');
  if (paths.rootless) await ensurePrivateDir(path.dirname(socketPath));
  else await mkdir(path.dirname(socketPath), { recursive: true });
  try {
    await new ControllerClient({ url: `unix://${socketPath}` }).request('GET', '/healthz');
    throw new BosonError('DAEMON_ALREADY_RUNNING', `a Boson controller is already running on ${socketPath}`);
  } catch (err) {
    if (!(err instanceof BosonError && err.code === 'CONTROLLER_UNAVAILABLE')) throw err;
  }
  await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
  const sqlite = openStateStore(paths.stateDir, { file: CONTROLLER_DB });
  const store = asyncStore(sqlite);
  const controller = new Controller(store, log.child({ component: 'controller' }));
  let tcpServer: net.Server | undefined;
  let docker: { close(): void } | undefined;
  const settings =
    request.fleet ??
    ((c) => ({ checkIntervalMs: c.fleetCheckIntervalMs, checkTimeoutMs: c.fleetCheckTimeoutMs, lostAfterMs: c.fleetLostAfterMs }))(
      loadConfig(),
    );
  // The fleet: machines join over TCP (a join token, no client certificate yet), and are checked over mutual TLS.
  const fleet = await openFleet(store, controller.tenants, {
    ...settings,
    ...(tcp?.tls ? { serverCaPem: tcp.tls.ca.toString('utf8') } : {}),
    ...(dockerTcp ? { dockerHost: `tcp://${dockerTcp.host}:${dockerTcp.port}` } : {}),
    log,
  }).catch((err: unknown) => {
    sqlite.close();
    throw err;
  });
  const { app } = await buildControllerApi(controller, log.child({ component: 'controller-api' }), fleet.routes);
  try {
    await controller.bootstrap();
    controller.start();
    if (request.localMachine)
      await fleet.fleet.registerLocal(`unix://${request.localMachine.socketPath}`, request.localMachine.capacity, { local: 'true' });
    await rm(socketPath, { force: true });
    await app.listen({ path: socketPath });
    await chmod(socketPath, 0o660);
    // A client certificate is optional on the controller's TCP endpoint: bearer tokens (and, to join, join tokens)
    // authenticate there; a joining machine has no certificate yet.
    if (tcp) tcpServer = await serveTcpEndpoint(tcp, app.server, log, [], 'optional');
    if (dockerTcp) {
      const { serveProjectDocker } = await import('./project-docker.ts');
      docker = await serveProjectDocker(fleet, dockerTcp, paths, log.child({ component: 'project-docker' }));
    }
  } catch (err) {
    tcpServer?.close();
    await controller.close().catch(() => undefined);
    await fleet.close().catch(() => undefined);
    await app.close().catch(() => undefined);
    sqlite.close();
    throw err;
  }
  log.info({ socket: socketPath, tcp: tcp ? `${tcp.host}:${tcp.port}` : null, tls: Boolean(tcp?.tls) }, 'controller ready');
  return {
    socketPath,
    tcp: tcp ? { host: tcp.host, port: tcp.port, tls: Boolean(tcp.tls) } : undefined,
    controller,
    close: async () => {
      tcpServer?.close();
      docker?.close();
      await controller.close();
      await fleet.close();
      await app.close();
      await rm(socketPath, { force: true });
      sqlite.close();
    },
  };
}

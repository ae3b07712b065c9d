/**
 * The controller's composition: its state store (SQLite, `<stateDir>/controller.db`, a file of its own beside the
 * machine's machine.db, through the promise form of the store contract; or etcd, with BOSON_CONTROLLER_ETCD or
 * `boson controller --etcd`, where several controllers can share one state), the model, the
 * bootstrap (the default tenant and project, the admin user), and its REST API on a UNIX socket (0660, where the
 * socket's permissions are the authentication: no token means the local system admin) and optionally on TCP (the
 * rules of every Boson TCP endpoint: TLS with client certificates, or plain on loopback with --insecure-tcp; a
 * bearer token on top). Used by `boson controller` (alone) and `boson up --controller` (in the daemon's process).
 */
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import {
  asyncStore,
  BosonError,
  ensurePrivateDir,
  resolveTcpEndpoint,
  serveTcpEndpoint,
  silentLogger,
  type AsyncStateStore,
  type BosonPaths,
  type Logger,
  type TcpEndpointRequest,
} from '../common/index.ts';
import { buildControllerApi, Controller, ControllerClient, openFleet, projectMachineUpgrades } from '../controller/index.ts';
import { loadConfig, type ControllerEtcd, type HostConfig } from './config.ts';
import {
  acquireFileLock,
  buildPortApi,
  openEtcdStateStore,
  openStateStore,
  type DaemonLock,
  type EtcdStateStore,
} from '../machine/index.ts';
import { CONTROLLER_DB, controllerSocketPath } from './root.ts';

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
  /** Keep the state in etcd instead of <stateDir>/controller.db (default: the BOSON_CONTROLLER_ETCD settings; unset: SQLite). */
  etcd?: ControllerEtcd;
}

/** The controller's store as opened: the store, where it is (for the log), and how to close it. */
interface OpenedStore {
  store: AsyncStateStore;
  where: string;
  close(): Promise<void>;
}

/** Reads one PEM file named by a setting; INVALID_ARGUMENT naming the setting when it cannot be read. */
async function pemFile(file: string | undefined, setting: string): Promise<Buffer | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file);
  } catch (err) {
    throw new BosonError('INVALID_ARGUMENT', `${setting}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The record a migration into etcd keeps while it copies (`boson controller migrate`, controller-migrate.ts): a
 * controller refuses to start on a store that holds it, since the copy is not complete there.
 */
export const MIGRATION_MARKER = { kind: 'ctl.migration', key: 'in-progress' } as const;

/** The lock file a controller holds while it uses the SQLite file `db` (one process per file: a controller, or a migration copying it). */
export const sqliteLockFile = (db: string): string => `${db}.lock`;

/**
 * Holds the lock of the SQLite file `db` for this process's use of it; DAEMON_ALREADY_RUNNING naming the holder
 * (a controller, or a migration copying it) otherwise.
 */
export async function lockControllerDb(db: string): Promise<DaemonLock> {
  return acquireFileLock(
    sqliteLockFile(db),
    (pid) => `a Boson controller or migration${pid ? ` (pid ${pid})` : ''} is using ${db} (it holds ${sqliteLockFile(db)})`,
  );
}

/**
 * Opens the controller's etcd store as `etcd` says (TLS files read here, so that a missing one is INVALID_ARGUMENT
 * naming its setting), checked by one read: a wrong or unreachable etcd is STORE_UNAVAILABLE, naming the endpoints.
 * Used by the controller and by `boson controller migrate`, so that both reach etcd the same way.
 */
export async function openControllerEtcd(etcd: ControllerEtcd): Promise<{ store: EtcdStateStore; where: string }> {
  const [ca, cert, key] = [
    await pemFile(etcd.caFile, 'BOSON_CONTROLLER_ETCD_CA'),
    await pemFile(etcd.certFile, 'BOSON_CONTROLLER_ETCD_CERT'),
    await pemFile(etcd.keyFile, 'BOSON_CONTROLLER_ETCD_KEY'),
  ];
  if (Boolean(cert) !== Boolean(key))
    throw new BosonError('INVALID_ARGUMENT', 'BOSON_CONTROLLER_ETCD_CERT and BOSON_CONTROLLER_ETCD_KEY go together');
  const tls = etcd.endpoints.some((e) => e.startsWith('https:'));
  if (!tls && (ca || cert)) throw new BosonError('INVALID_ARGUMENT', 'etcd TLS files are given but the etcd URLs are not https://');
  const store = await openEtcdStateStore({
    endpoints: etcd.endpoints,
    prefix: etcd.prefix,
    // https:// with no files: the system's CAs (etcd3's default); a client certificate without a CA file: the same.
    ...(ca || cert ? { credentials: { rootCertificate: ca as Buffer, ...(cert && key ? { certChain: cert, privateKey: key } : {}) } } : {}),
  });
  const where = `etcd ${etcd.endpoints.join(',')} (prefix ${etcd.prefix})`;
  try {
    await store.revision();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw new BosonError('STORE_UNAVAILABLE', `the controller cannot use its state store, ${where}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { store, where };
}

/**
 * Opens the controller's store: etcd when `etcd` is given (refused while a migration into it has not completed),
 * else SQLite in the state directory, whose lock this controller holds until close.
 */
async function openControllerStore(paths: BosonPaths, etcd: ControllerEtcd | undefined): Promise<OpenedStore> {
  if (!etcd) {
    await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
    const db = path.join(paths.stateDir, CONTROLLER_DB);
    const lock = await lockControllerDb(db);
    try {
      const sqlite = openStateStore(paths.stateDir, { file: CONTROLLER_DB });
      return {
        store: asyncStore(sqlite),
        where: db,
        close: async () => {
          sqlite.close();
          lock.release();
        },
      };
    } catch (err) {
      lock.release();
      throw err;
    }
  }
  const { store, where } = await openControllerEtcd(etcd);
  const marker = await store
    .get<{ from?: string; startedAt?: string }>(MIGRATION_MARKER.kind, MIGRATION_MARKER.key)
    .catch(async (err: unknown) => {
      await store.close().catch(() => undefined);
      throw err;
    });
  if (marker) {
    await store.close().catch(() => undefined);
    throw new BosonError(
      'STORE_MIGRATION_INCOMPLETE',
      `${where} holds a migration that has not completed (from ${marker.value.from ?? '?'}, started ${marker.value.startedAt ?? '?'}): ` +
        `wait for it, or if it failed, remove the prefix (etcdctl del --prefix ${etcd.prefix}) and run boson controller migrate again`,
      { details: { ...marker.value } },
    );
  }
  return { store, where, close: () => store.close() };
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
  let config: HostConfig | undefined;
  const settings = (): HostConfig => (config ??= loadConfig());
  const opened = await openControllerStore(paths, request.etcd ?? settings().controllerEtcd);
  const { store } = opened;
  const controller = new Controller(store, log.child({ component: 'controller' }));
  let tcpServer: net.Server | undefined;
  let docker: { close(): void } | undefined;
  const fleetSettings =
    request.fleet ??
    ((c) => ({ checkIntervalMs: c.fleetCheckIntervalMs, checkTimeoutMs: c.fleetCheckTimeoutMs, lostAfterMs: c.fleetLostAfterMs }))(
      settings(),
    );
  // The fleet: machines join over TCP (a join token, no client certificate yet), and are checked over mutual TLS.
  const fleet = await openFleet(store, controller.tenants, {
    ...fleetSettings,
    ...(tcp?.tls ? { serverCaPem: tcp.tls.ca.toString('utf8') } : {}),
    ...(dockerTcp ? { dockerHost: `tcp://${dockerTcp.host}:${dockerTcp.port}` } : {}),
    replicaId: controller.tasks.replicaId,
    machineApi: async (machine) => {
      const api = await buildPortApi(machine, log.child({ component: 'project-machine-api' }));
      return { server: api.server, close: () => api.close() };
    },
    log,
  }).catch(async (err: unknown) => {
    await opened.close();
    throw err;
  });
  const { app } = await buildControllerApi(controller, log.child({ component: 'controller-api' }), fleet.routes);
  // Upgraded streams of the projects' machine APIs (run, exec, attach), checked as their routes are.
  if (fleet.projectMachineServers) app.server.on('upgrade', projectMachineUpgrades(controller.identity, fleet.projectMachineServers));
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
    await opened.close();
    throw err;
  }
  log.info(
    { socket: socketPath, store: opened.where, tcp: tcp ? `${tcp.host}:${tcp.port}` : null, tls: Boolean(tcp?.tls) },
    'controller ready',
  );
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
      await opened.close();
    },
  };
}

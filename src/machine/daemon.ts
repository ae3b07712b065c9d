/**
 * The machine daemon process: opens state, re-attaches to running micro-VMs, and serves the REST API on a UNIX
 * socket (mode 0660) and optionally on TCP. Stopping it (SIGTERM, SIGINT) leaves every micro-VM running.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import net from 'node:net';
import path from 'node:path';
import {
  BosonError,
  ensurePrivateDir,
  type BosonPaths,
  serveTcpEndpoint,
  silentLogger,
  type Logger,
  type ResolvedTcpEndpoint,
} from '../common/index.ts';
import type { MachineRuntime } from './runtime.ts';
import { buildApi } from './api/server.ts';
import { MachineClient } from './api/client.ts';
import { acquireDaemonLock } from './daemon-lock.ts';
import { killOrphanedVms } from './orphans.ts';

const execFileAsync = promisify(execFile);

/** Where and how the daemon listens. */
export interface DaemonOptions {
  paths: BosonPaths;
  /** The runtime to serve, built by the composition root (not yet initialised). */
  runtime: MachineRuntime;
  /** The daemon's structured log. */
  log?: Logger;
  socketPath: string;
  /** A TCP endpoint for the REST API, already checked (see resolveTcpEndpoint): TLS with client certificates, or plain on loopback. */
  tcp?: ResolvedTcpEndpoint;
  pidFile?: string;
  /**
   * Further API personalities served next to the REST API (the Docker Engine API): each is started with the
   * service once it is ready, and closed before it.
   */
  personalities?: DaemonPersonality[];
}

/** Starts one more API on the daemon's service (plugged in by the command that starts the daemon). */
export type DaemonPersonality = (service: MachineRuntime) => Promise<{ close(): Promise<void> }>;

/** A running daemon. */
export interface RunningDaemon {
  service: MachineRuntime;
  /** Stops serving and detaches from the VMs (which keep running). */
  close(): Promise<void>;
}

/** Starts the daemon; DAEMON_UNAVAILABLE-style conflicts if another daemon already answers on the socket. */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const { socketPath } = options;
  // A rootless run directory may sit in a shared /tmp: it must be ours alone before a socket goes there.
  if (options.paths.rootless) await ensurePrivateDir(path.dirname(socketPath));
  else await mkdir(path.dirname(socketPath), { recursive: true });
  await mkdir(options.paths.runDir, { recursive: true });
  // Private state: the state directory is the daemon user's alone; the run directory only lets others reach the
  // sockets in it (which are 0660, for the group that may use Boson).
  await mkdir(options.paths.stateDir, { recursive: true });
  // What an older Boson (or another tool) left readable: taken back once at start (the process umask keeps it so).
  await execFileAsync('chmod', ['-R', 'go-rwx', '--', options.paths.stateDir]).catch(() => undefined);
  await chmod(options.paths.stateDir, 0o700);
  await chmod(options.paths.runDir, 0o711);
  const lock = await acquireDaemonLock(options.paths.runDir); // one daemon per run directory, before the socket is touched
  try {
    await new MachineClient(socketPath).request('GET', '/healthz');
    throw new BosonError('INVALID_ARGUMENT', `a Boson daemon is already running on ${socketPath}`);
  } catch (err) {
    if (err instanceof BosonError && err.code !== 'DAEMON_UNAVAILABLE') {
      lock.release();
      throw err;
    }
  }
  await rm(socketPath, { force: true });
  const service = options.runtime;
  const log = options.log ?? silentLogger;
  await service.init();
  const runningIds = (await service.registry.list()).filter((r) => r.state === 'running' || r.state === 'restarting').map((r) => r.id);
  for (const o of await killOrphanedVms(options.paths.runDir, [...service.liveIds(), ...runningIds]))
    log.warn({ vmDir: o.dir, qemuPid: o.pid }, 'killed an orphaned micro-VM: no running container owns it');
  await service.cleanupStaleVms();
  // Only now: a warm VM booting during the sweep would have been taken for an orphan.
  service.startWarmPool();
  const app = await buildApi(service, log);
  log.info(
    {
      socket: socketPath,
      tcp: options.tcp ? `${options.tcp.host}:${options.tcp.port}` : null,
      tls: Boolean(options.tcp?.tls),
      running: service.liveIds().size,
    },
    'daemon ready',
  );
  await app.listen({ path: socketPath });
  await chmod(socketPath, 0o660);
  let tcpServer: net.Server | undefined;
  if (options.tcp) {
    tcpServer = await serveTcpEndpoint(options.tcp, app.server, log);
    if (!options.tcp.tls)
      log.warn(
        { tcp: `${options.tcp.host}:${options.tcp.port}` },
        "the REST API listens on TCP without TLS (--insecure-tcp): every local user can use it as this daemon's user",
      );
  }
  const personalities: Array<{ close(): Promise<void> }> = [];
  try {
    for (const start of options.personalities ?? []) personalities.push(await start(service));
  } catch (err) {
    for (const p of personalities) await p.close().catch(() => undefined);
    tcpServer?.close();
    await app.close();
    await service.close();
    await rm(socketPath, { force: true });
    lock.release();
    throw err;
  }
  if (options.pidFile && path.resolve(options.pidFile) !== lock.path) await writeFile(options.pidFile, `${process.pid}\n`);
  return {
    service,
    close: async () => {
      for (const p of personalities) await p.close().catch(() => undefined);
      tcpServer?.close();
      await app.close();
      await service.close();
      if (lock.held()) await rm(socketPath, { force: true }); // only the lock holder's socket is ours to remove
      if (options.pidFile && path.resolve(options.pidFile) !== lock.path) await rm(options.pidFile, { force: true });
      lock.release();
    },
  };
}

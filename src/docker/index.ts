/**
 * Public surface of src/docker: the Docker Engine API personality of the machine daemon, served on
 * `<run dir>/docker.sock` (and optionally on TCP) over the daemon's machine, through the machine port.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { BosonError, serveTcpEndpoint, type BosonPaths, type Logger, type ResolvedTcpEndpoint } from '../common/index.ts';
import type { RegistryClientOptions } from '../image/index.ts';
import type { Machine } from '../machine/port/index.ts';
import { DockerApi, dockerSocketPath } from './server.ts';

export { dockerSocketPath, DockerApi };
export { API_VERSION, MIN_API_VERSION } from './http.ts';

/** Where the Docker API listens. */
export interface DockerApiOptions {
  paths: BosonPaths;
  socketPath: string;
  /** A checked TCP endpoint (see resolveTcpEndpoint): TLS with client certificates, or plain on loopback. */
  tcp?: ResolvedTcpEndpoint;
  /** The daemon's structured log. */
  log?: Logger;
  /** How `POST /auth` reaches registries (insecure hosts, CAs); default: HTTPS with the system CAs. */
  registry?: RegistryClientOptions;
  /** Print each request on stderr (BOSON_DOCKER_TRACE). */
  trace?: boolean;
}

async function listen(server: Server, how: { path: string } | { port: number; host: string }): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in how) server.listen(how.path, resolve);
    else server.listen(how.port, how.host, resolve);
  });
}

/** Starts the Docker API on `socketPath` (mode 0660) and optionally TCP; close() stops both. */
export async function startDockerApi(machine: Machine, options: DockerApiOptions): Promise<{ close(): Promise<void> }> {
  const api = new DockerApi(machine, options.paths, { registry: options.registry, trace: options.trace });
  await mkdir(path.dirname(options.socketPath), { recursive: true });
  // A socket file left by a daemon that died: nobody answers on it.
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(options.socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
  if (alive) throw new BosonError('INVALID_ARGUMENT', `something already answers on ${options.socketPath}`);
  await rm(options.socketPath, { force: true });
  const servers: Server[] = [];
  const unix = api.createServer();
  await listen(unix, { path: options.socketPath });
  servers.push(unix);
  await chmod(options.socketPath, 0o660);
  if (options.tcp) {
    try {
      servers.push((await serveTcpEndpoint(options.tcp, unix, options.log)) as Server);
    } catch (err) {
      unix.close();
      throw err;
    }
  }
  return {
    close: async () => {
      api.closeStreams();
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      await rm(options.socketPath, { force: true });
    },
  };
}

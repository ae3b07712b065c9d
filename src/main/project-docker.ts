/**
 * The projects' Docker endpoint of a controller (VIC's virtual container host, one per project): one TCP listener
 * with TLS that requires a client certificate from the controller's project Docker CA (`boson project docker-env`
 * issues it); the certificate's subject (O=<tenant>, OU=<project>) chooses the project, and the request goes to
 * the Docker personality (src/docker, unchanged) over that project's Machine (ProjectMachine: containers placed on
 * the fleet through the controller). One DockerApi per project, made on its first request.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { PRINCIPAL_HEADER, serveTcpEndpoint, type BosonPaths, type Logger, type ResolvedTcpEndpoint } from '../common/index.ts';
import type { OpenFleet } from '../controller/index.ts';
import { DockerApi } from '../docker/index.ts';

/** The tenant and project a verified client certificate's subject names ("O=acme,OU=web,CN=alice"), or null. */
export function projectOfSubject(subject: string | undefined): { tenant: string; project: string } | null {
  if (!subject) return null;
  const parts = new Map(subject.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
  const tenant = parts.get('O');
  const project = parts.get('OU');
  return tenant && project ? { tenant, project } : null;
}

/** Serves the projects' Docker endpoint on `endpoint` (its CA replaced by the project Docker CA). */
export async function serveProjectDocker(
  fleet: OpenFleet,
  endpoint: ResolvedTcpEndpoint,
  paths: BosonPaths,
  log: Logger,
): Promise<{ close(): void }> {
  const servers = new Map<string, { api: DockerApi; server: http.Server }>();
  const serverOf = (req: IncomingMessage): http.Server | null => {
    const p = projectOfSubject(req.headers[PRINCIPAL_HEADER] as string | undefined);
    if (!p) return null;
    const key = `${p.tenant}/${p.project}`;
    let s = servers.get(key);
    if (!s) {
      const api = new DockerApi(fleet.projectMachine(p.tenant, p.project), paths);
      s = { api, server: api.createServer() };
      servers.set(key, s);
    }
    return s.server;
  };
  const refuse = 'a client certificate for a project (boson project docker-env TENANT/PROJECT) is needed';
  const dispatcher = http.createServer();
  dispatcher.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const target = serverOf(req);
    if (!target) {
      res.writeHead(403, { 'Content-Type': 'application/json' }).end(JSON.stringify({ message: refuse }));
      return;
    }
    target.emit('request', req, res);
  });
  dispatcher.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = serverOf(req);
    if (!target) {
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message: refuse })}`,
      );
      return;
    }
    target.emit('upgrade', req, socket, head);
  });
  const tls = endpoint.tls ? { ...endpoint.tls, ca: Buffer.from(fleet.dockerCa.cert) } : null;
  const listener: net.Server = await serveTcpEndpoint({ ...endpoint, tls }, dispatcher, log);
  return {
    close: () => {
      listener.close();
      for (const s of servers.values()) s.api.closeStreams();
    },
  };
}

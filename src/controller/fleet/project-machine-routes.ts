/**
 * A project's machine API on the controller: the machine's own REST API (its routes, streams and upgrades) served
 * for the project as one machine (ProjectMachine), under /v1/tenants/:tenant/projects/:project/machine, so that
 * `boson --project TENANT/PROJECT run|exec|logs|ps|…` works through the controller with the machine's client
 * unchanged. The controller authenticates and authorizes (viewer to read, member for anything else; another
 * tenant's project is 404) and hands the request on, body unread, to the project's machine API, which the
 * composition root builds (`serverOf`). Upgraded streams (run, exec, attach) pass the same checks.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { BosonError, problemOf } from '../../common/index.ts';
import { principalOfCredentials } from '../api/policy.ts';
import type { Identity } from '../model/identity.ts';
import { notFoundCode, requireRole, type Scope } from '../model/policy.ts';
import type { Role } from '../model/schemas.ts';

/** The route pattern of a project's machine API (all of it: the machine's paths follow). */
export const PROJECT_MACHINE_ROUTE = '/v1/tenants/:tenant/projects/:project/machine/*';

/** The HTTP server of a project's machine API (built once per project by the composition root). */
export type ProjectMachineServers = (tenant: string, project: string) => Promise<Server>;

const PATH = /^\/v1\/tenants\/([^/?]+)\/projects\/([^/?]+)\/machine(\/[^?]*)?(\?.*)?$/;

/** The tenant, project and machine path of a URL under a project's machine API, or null. */
function split(url: string): { tenant: string; project: string; rest: string } | null {
  const m = PATH.exec(url);
  if (!m) return null;
  try {
    return { tenant: decodeURIComponent(m[1]!), project: decodeURIComponent(m[2]!), rest: `${m[3] || '/'}${m[4] ?? ''}` };
  } catch {
    return null;
  }
}

/** The role a request to the machine API needs: viewer to read, member for anything else. */
function roleFor(method: string): Role {
  return method === 'GET' || method === 'HEAD' ? 'viewer' : 'member';
}

/** The routes of the projects' machine APIs. */
export function projectMachineRoutes(serverOf: ProjectMachineServers): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // The body stays unread: the machine API reads (and bounds) it.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    const forward = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const target = split(req.raw.url ?? '');
      if (!target) throw new BosonError('INVALID_ARGUMENT', `not a project machine path: ${req.raw.url}`);
      const server = await serverOf(target.tenant, target.project);
      void reply.hijack();
      req.raw.url = target.rest;
      server.emit('request', req.raw, reply.raw);
    };
    const schema = {
      tags: ['containers'],
      summary:
        "A project's machine API (the machine's own routes after /machine, e.g. /machine/v1/containers): its containers wherever the fleet placed them",
    };
    app.route({
      method: 'GET',
      url: PROJECT_MACHINE_ROUTE,
      schema,
      config: { policy: { allow: 'viewer', scope: 'params' } },
      handler: forward,
    });
    app.route({
      method: ['POST', 'PUT', 'DELETE'],
      url: PROJECT_MACHINE_ROUTE,
      schema,
      config: { policy: { allow: 'member', scope: 'params', note: 'run, exec and attach (upgraded streams) need member too' } },
      handler: forward,
    });
  };
}

/**
 * Handles an upgrade request to the controller's server: a project's machine API stream (run, exec, attach) after
 * the same authentication and policy as its routes; anything else, or a refusal, is answered with problem JSON and
 * the connection closed.
 */
export function projectMachineUpgrades(
  identity: Identity,
  serverOf: ProjectMachineServers,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on('error', () => undefined);
    void (async () => {
      const target = split(req.url ?? '');
      if (!target) throw new BosonError('INVALID_ARGUMENT', `nothing to upgrade at ${req.url}`);
      const principal = await principalOfCredentials(identity, req.headers.authorization, req.socket.remoteAddress === undefined);
      if (!principal) throw new BosonError('UNAUTHENTICATED', 'this needs a bearer token (Authorization: Bearer …)');
      const scope: Scope = { kind: 'project', tenant: target.tenant, project: target.project };
      requireRole(
        principal,
        roleFor(req.method ?? 'POST'),
        scope,
        () => new BosonError(notFoundCode(scope), `no such project: ${target.tenant}/${target.project}`),
      );
      const server = await serverOf(target.tenant, target.project);
      req.url = target.rest;
      server.emit('upgrade', req, socket, head);
    })().catch((err: unknown) => {
      const { status, body } = problemOf(err);
      const text = JSON.stringify(body);
      socket.end(
        `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Error'}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    });
  };
}

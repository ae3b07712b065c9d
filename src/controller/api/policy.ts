/**
 * Every route of the controller's API declares its policy (`config.policy`); this module is the one place that
 * enforces it. Authentication first (onRequest): a bearer token names the principal; on the local UNIX socket a
 * request without one is the host's system admin (the socket's file permissions are the authentication, as with the
 * machine's socket); anything else is UNAUTHENTICATED. Then (preHandler) the declared policy:
 *
 * - `public`: no principal needed (health, the OpenAPI document).
 * - `authenticated`: any principal; the handler shows only what the principal may see (listings).
 * - a role over the route's scope, taken from the route's `:tenant` / `:project` params (`scope: 'params'`), the
 *   whole system (`'system'`), or an object the handler loads first (`'object'`: the request body's grant, a user,
 *   a token, a task), for which the handler calls `req.authorize` (and a route that forgets to is a 500, not a
 *   success: see onSend).
 *
 * A route without a policy cannot be registered, and a test walks every route. No standing in a tenant or project
 * is 404 (names of other tenants never leak); standing without the role is 403.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BosonError } from '../../common/index.ts';
import { LOCAL_ADMIN, type Identity } from '../model/identity.ts';
import { requireRole, notFoundCode, type Scope } from '../model/policy.ts';
import type { Principal, Role } from '../model/schemas.ts';

/** What a route declares about who may call it. */
export interface RoutePolicy {
  /** Who: nobody needs to be known, any principal (answers filtered to what it sees), or a role over the scope. */
  allow: 'public' | 'authenticated' | Role;
  /** Where the scope comes from (for a role): the system, the route's params, or an object the handler loads. */
  scope?: 'system' | 'params' | 'object';
  /** One line for the policy table of docs/controller.md: who may do it, beyond the role. */
  note?: string;
  /**
   * The answer carries a secret shown once (a new token): an Idempotency-Key is honoured (the write is done once)
   * but the answer is not kept, so a repeat is refused instead of replayed.
   */
  secretAnswer?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    policy?: RoutePolicy;
  }
  interface FastifyRequest {
    /** The authenticated principal (undefined only on public routes without credentials). */
    principal?: Principal;
    /** Set once the request's policy has been checked (by the preHandler, or by the handler for object scopes). */
    authorized?: boolean;
  }
}

/** The principal of a request, or throws UNAUTHENTICATED. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new BosonError('UNAUTHENTICATED', 'this needs a bearer token (Authorization: Bearer …)');
  return req.principal;
}

/**
 * Checks `role` over `scope` for an object-scoped route (and marks the request authorized). `notFound` is the
 * error the object's absence gives; `hide` answers it for a lack of role too (users and tokens: their names are not
 * shown to those who may not manage them). `self` lets the principal through when the object is its own.
 */
export function authorize(
  req: FastifyRequest,
  role: Role,
  scope: Scope,
  notFound: () => BosonError,
  opts: { hide?: boolean; self?: boolean } = {},
): void {
  const principal = principalOf(req);
  if (!opts.self) {
    try {
      requireRole(principal, role, scope, notFound);
    } catch (err) {
      if (opts.hide && (err as BosonError).code === 'PERMISSION_DENIED') throw notFound();
      throw err;
    }
  }
  req.authorized = true;
}

/**
 * The principal a request's credentials name: its bearer token's; without one, the host's system admin on the local
 * UNIX socket and nobody (undefined) elsewhere. UNAUTHENTICATED for a malformed header or a token that is not valid.
 * The one authentication of the controller's API, its routes and its upgraded streams alike.
 */
export async function principalOfCredentials(
  identity: Identity,
  authorization: string | undefined,
  localSocket: boolean,
): Promise<Principal | undefined> {
  if (authorization === undefined) return localSocket ? LOCAL_ADMIN : undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw new BosonError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  return identity.authenticate(m[1]!);
}

/** True when the request came over a UNIX socket (no remote address), where the socket's permissions authenticate. */
function onLocalSocket(req: FastifyRequest): boolean {
  return req.raw.socket.remoteAddress === undefined;
}

/** The scope of a params-scoped route. */
function paramsScope(req: FastifyRequest): Scope {
  const p = req.params as { tenant?: string; project?: string };
  if (p.tenant !== undefined && p.project !== undefined) return { kind: 'project', tenant: p.tenant, project: p.project };
  if (p.tenant !== undefined) return { kind: 'tenant', tenant: p.tenant };
  return { kind: 'system' };
}

/** Installs authentication and policy enforcement on `app` (before any route is added). */
export function installPolicy(
  app: FastifyInstance,
  identity: Identity,
  routes: Array<{ method: string; url: string; policy?: RoutePolicy }>,
): void {
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.every((m) => m === 'HEAD')) return;
    const policy = route.config?.policy;
    for (const method of methods) routes.push({ method, url: route.url, policy });
    if (!policy) throw new Error(`route ${methods.join(',')} ${route.url} declares no policy (config.policy)`);
    if (policy.allow !== 'public' && policy.allow !== 'authenticated' && !policy.scope)
      throw new Error(`route ${methods.join(',')} ${route.url}: a role policy needs a scope`);
  });

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      req.principal = await principalOfCredentials(identity, req.headers.authorization, onLocalSocket(req));
    } catch (err) {
      void reply.header(
        'WWW-Authenticate',
        /^Bearer\s+\S+\s*$/i.test(req.headers.authorization ?? '') ? 'Bearer error="invalid_token"' : 'Bearer',
      );
      throw err;
    }
  });

  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const policy = req.routeOptions.config.policy;
    if (!policy && req.is404) return; // no such route: fastify's 404 answers
    if (!policy) throw new BosonError('INTERNAL', `route ${req.method} ${req.routeOptions.url} has no policy`);
    if (policy.allow === 'public') {
      req.authorized = true;
      return;
    }
    if (!req.principal) {
      void reply.header('WWW-Authenticate', 'Bearer');
      throw new BosonError('UNAUTHENTICATED', 'this needs a bearer token (Authorization: Bearer …)');
    }
    if (policy.allow === 'authenticated') {
      req.authorized = true;
      return;
    }
    if (policy.scope === 'object') return; // the handler authorizes against the object it loads
    const scope = policy.scope === 'params' ? paramsScope(req) : ({ kind: 'system' } as const);
    requireRole(req.principal, policy.allow, scope, () => {
      const s = scope as Exclude<Scope, { kind: 'system' }>;
      const name = s.kind === 'project' ? `${s.tenant}/${s.project}` : s.tenant;
      return new BosonError(notFoundCode(scope), `no such ${s.kind}: ${name}`);
    });
    req.authorized = true;
  });

  // A success from a route that never checked its policy is a bug: it leaves as INTERNAL, not as the answer.
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (reply.statusCode < 400 && !req.authorized && req.routeOptions.config?.policy && !req.idempotentReplay) {
      reply.code(500).type('application/problem+json');
      return JSON.stringify({
        type: 'urn:boson:error:INTERNAL',
        title: 'a bug in Boson',
        status: 500,
        detail: `route ${req.method} ${req.routeOptions.url} answered without checking its policy`,
        code: 'INTERNAL',
      });
    }
    return payload;
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the answer is a stored one, replayed for a repeated Idempotency-Key. */
    idempotentReplay?: boolean;
  }
}

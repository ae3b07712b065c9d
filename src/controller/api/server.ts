/**
 * The controller's REST API (fastify + TypeBox + @fastify/swagger), with the machine API's conventions: request
 * and response schemas on every route (so /openapi.json documents it), errors as problem JSON through the one
 * kind-to-status table (problemOf, src/common), bearer-token authentication and a declared policy on every route
 * (policy.ts), and idempotency keys on writes (idempotency.ts).
 */
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import swagger from '@fastify/swagger';
import { BosonError, problemOf, silentLogger, type Logger } from '../../common/index.ts';
import type { Controller } from '../model/controller.ts';
import { flavorRoutes, systemRoutes, taskRoutes } from './catalog.ts';
import { identityRoutes } from './identity.ts';
import { installIdempotency } from './idempotency.ts';
import { installPolicy, type RoutePolicy } from './policy.ts';
import { tenantRoutes } from './tenants.ts';

/** A route as registered, with its declared policy (for the policy walk and the docs' table). */
export interface RouteEntry {
  method: string;
  url: string;
  policy?: RoutePolicy;
}

/** The API app, and every route it registered. */
export interface ControllerApi {
  app: FastifyInstance;
  routes: RouteEntry[];
}

/** Builds the controller's fastify app over `ctl`. */
export async function buildControllerApi(
  ctl: Controller,
  log: Logger = silentLogger,
  more: FastifyPluginAsync[] = [],
): Promise<ControllerApi> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, ajv: { customOptions: { removeAdditional: false } } });
  const routes: RouteEntry[] = [];
  installPolicy(app, ctl.identity, routes);
  installIdempotency(app, ctl.store);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Boson controller API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'tenants' },
        { name: 'identity' },
        { name: 'flavors' },
        { name: 'tasks' },
        { name: 'machines' },
        { name: 'containers' },
        { name: 'system' },
      ],
    },
  });

  app.addHook('onResponse', async (req, reply) => {
    log.debug(
      {
        reqId: req.id,
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        user: req.principal?.user,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    const problem =
      e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500 && !(err instanceof BosonError))
        ? problemOf(new BosonError('INVALID_ARGUMENT', e.message))
        : problemOf(err);
    if (problem.status >= 500)
      log.error({ reqId: req.id, method: req.method, url: req.url, code: problem.body.code }, String(problem.body.detail));
    void reply.code(problem.status).type('application/problem+json').send(problem.body);
  });

  await app.register(systemRoutes());
  await app.register(tenantRoutes(ctl));
  await app.register(identityRoutes(ctl));
  await app.register(flavorRoutes(ctl));
  await app.register(taskRoutes(ctl));
  for (const plugin of more) await app.register(plugin);
  return { app, routes };
}

/** The flavor, task and system routes of the controller's API. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { BosonError } from '../../common/index.ts';
import type { Controller } from '../model/controller.ts';
import { canSee, type Scope } from '../model/policy.ts';
import { Flavor, Limits, Name, Task, type Task as TaskT } from '../model/schemas.ts';
import { errors, IdempotencyHeaders, noContent } from './common.ts';
import { authorize, principalOf } from './policy.ts';

const FlavorParams = Type.Object({ name: Name });
const FlavorCreate = Type.Object(
  {
    name: Name,
    cpus: Type.Integer({ minimum: 1, maximum: 256 }),
    memoryBytes: Type.Integer({ minimum: 1 }),
    diskBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    kernel: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    cost: Type.Optional(Limits),
  },
  { additionalProperties: false },
);
const TaskParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) });
const WaitQuery = Type.Object({
  timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 300, description: 'seconds to wait at most (default 60)' })),
});

/** The scope a task belongs to (for visibility). */
export function taskScope(t: TaskT): Scope {
  if (t.tenant === undefined) return { kind: 'system' };
  if (t.project === undefined) return { kind: 'tenant', tenant: t.tenant };
  return { kind: 'project', tenant: t.tenant, project: t.project };
}

/** The flavor routes over `ctl`. */
export function flavorRoutes(ctl: Controller): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['flavors'];
    app.get(
      '/v1/flavors',
      {
        schema: { tags, summary: 'List flavors', response: { 200: Type.Array(Flavor), ...errors } },
        config: { policy: { allow: 'authenticated', note: 'flavors are global' } },
      },
      async () => ctl.flavors.list(),
    );
    app.post<{ Body: Static<typeof FlavorCreate> }>(
      '/v1/flavors',
      {
        schema: { tags, summary: 'Create a flavor', headers: IdempotencyHeaders, body: FlavorCreate, response: { 201: Flavor, ...errors } },
        config: { policy: { allow: 'system-admin', scope: 'system' } },
      },
      async (req, reply) => reply.code(201).send(await ctl.flavors.create({ ...req.body, diskBytes: req.body.diskBytes ?? 0 })),
    );
    app.get<{ Params: Static<typeof FlavorParams> }>(
      '/v1/flavors/:name',
      {
        schema: { tags, summary: 'Inspect a flavor and its cost', params: FlavorParams, response: { 200: Flavor, ...errors } },
        config: { policy: { allow: 'authenticated', note: 'flavors are global' } },
      },
      async (req) => ctl.flavors.get(req.params.name),
    );
    app.delete<{ Params: Static<typeof FlavorParams> }>(
      '/v1/flavors/:name',
      {
        schema: {
          tags,
          summary: 'Remove a flavor',
          headers: IdempotencyHeaders,
          params: FlavorParams,
          response: { 204: noContent, ...errors },
        },
        config: { policy: { allow: 'system-admin', scope: 'system' } },
      },
      async (req, reply) => {
        await ctl.flavors.remove(req.params.name);
        return reply.code(204).send();
      },
    );
  };
}

/** The task routes over `ctl`. */
export function taskRoutes(ctl: Controller): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['tasks'];
    const missing = (id: string) => (): BosonError => new BosonError('TASK_NOT_FOUND', `no such task: ${id}`);
    app.get(
      '/v1/tasks',
      {
        schema: { tags, summary: 'List the tasks the principal can see, newest first', response: { 200: Type.Array(Task), ...errors } },
        config: { policy: { allow: 'authenticated', note: 'each sees the tasks of what it can see' } },
      },
      async (req) => (await ctl.tasks.list()).filter((t) => canSee(principalOf(req), taskScope(t))),
    );
    app.get<{ Params: Static<typeof TaskParams> }>(
      '/v1/tasks/:id',
      {
        schema: { tags, summary: 'Inspect a task: its state, steps and error', params: TaskParams, response: { 200: Task, ...errors } },
        config: { policy: { allow: 'viewer', scope: 'object', note: "of the task's tenant or project" } },
      },
      async (req) => {
        const t = await ctl.tasks.get(req.params.id);
        authorize(req, 'viewer', taskScope(t), missing(t.id), { hide: true });
        return t;
      },
    );
    app.get<{ Params: Static<typeof TaskParams>; Querystring: Static<typeof WaitQuery> }>(
      '/v1/tasks/:id/wait',
      {
        schema: {
          tags,
          summary: 'Wait until a task succeeds or fails (at most `timeout` seconds); answers the task as it then is',
          params: TaskParams,
          querystring: WaitQuery,
          response: { 200: Task, ...errors },
        },
        config: { policy: { allow: 'viewer', scope: 'object', note: "of the task's tenant or project" } },
      },
      async (req) => {
        const t = await ctl.tasks.get(req.params.id);
        authorize(req, 'viewer', taskScope(t), missing(t.id), { hide: true });
        return ctl.tasks.wait(t.id, (req.query.timeout ?? 60) * 1000);
      },
    );
  };
}

/** /healthz and /openapi.json. */
export function systemRoutes(): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['system'];
    app.get(
      '/healthz',
      {
        schema: { tags, summary: 'Whether the controller answers', response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
        config: { policy: { allow: 'public' } },
      },
      async () => ({ status: 'ok' as const }),
    );
    app.get(
      '/openapi.json',
      {
        schema: {
          tags,
          summary: 'This document',
          response: {
            200: {
              description: 'the OpenAPI 3 document of this API',
              content: { 'application/json': { schema: Type.Object({}, { additionalProperties: true }) } },
            },
          },
        },
        config: { policy: { allow: 'public' } },
      },
      async () => app.swagger(),
    );
  };
}

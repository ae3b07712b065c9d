/**
 * The exec routes of the machine's REST API, over the port's MachineContainers: create an exec instance in a
 * running container, and inspect one. Starting it is a connection upgrade (upgrades.ts).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { MachineContainers } from '../port/machine.ts';
import { ExecInstance, ExecSpec } from '../port/schemas.ts';
import { errors, type ContextOf } from './routing.ts';

const RefParams = Type.Object({ ref: Type.String({ description: 'container name, id or id prefix' }) });
const IdParams = Type.Object({ id: Type.String({ description: 'exec instance id' }) });

/** The exec routes over `containers`; `context` makes a request's RequestContext. */
export function execRoutes(containers: Pick<MachineContainers, 'createExec' | 'inspectExec'>, context: ContextOf): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.post<{ Params: Static<typeof RefParams>; Body: ExecSpec }>(
      '/v1/containers/:ref/execs',
      {
        schema: {
          tags: ['exec'],
          summary: 'Create an exec instance in a running container',
          params: RefParams,
          body: ExecSpec,
          response: { 201: ExecInstance, ...errors },
        },
      },
      async (req, reply) => reply.code(201).send(await containers.createExec(context(req), req.params.ref, req.body)),
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/execs/:id',
      {
        schema: { tags: ['exec'], summary: 'Inspect an exec instance', params: IdParams, response: { 200: ExecInstance, ...errors } },
      },
      async (req) => containers.inspectExec(context(req), req.params.id),
    );
  };
}

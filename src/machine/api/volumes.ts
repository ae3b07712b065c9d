/** The volume routes of the machine's REST API, over the port's MachineVolumes. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { MachineVolumes } from '../port/machine.ts';
import { Volume, VolumeCreateRequest, VolumeInspect, VolumePruneResult } from '../port/schemas.ts';
import { boolQuery, errors, noContent, type ContextOf } from './routing.ts';

const NameParams = Type.Object({ name: Type.String({ description: 'volume name' }) });
const PruneQuery = Type.Object({ all: Type.Optional(Type.String({ description: '1 or true: unused named volumes too' })) });

/** The volume routes over `volumes`; `context` makes a request's RequestContext. */
export function volumeRoutes(volumes: MachineVolumes, context: ContextOf): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['volumes'];
    app.get('/v1/volumes', { schema: { tags, summary: 'List volumes', response: { 200: Type.Array(Volume), ...errors } } }, async (req) =>
      volumes.list(context(req)),
    );

    app.post<{ Body: VolumeCreateRequest }>(
      '/v1/volumes',
      {
        schema: {
          tags,
          summary: 'Create a volume (an existing name is returned as it is)',
          body: VolumeCreateRequest,
          response: { 201: Volume, ...errors },
        },
      },
      async (req, reply) => reply.code(201).send(await volumes.create(context(req), req.body)),
    );

    app.post<{ Querystring: Static<typeof PruneQuery> }>(
      '/v1/volumes/prune',
      {
        schema: {
          tags,
          summary: 'Remove unused anonymous volumes (with all, unused named ones too)',
          querystring: PruneQuery,
          response: { 200: VolumePruneResult, ...errors },
        },
      },
      async (req) => volumes.prune(context(req), { all: boolQuery(req.query.all) }),
    );

    app.get<{ Params: Static<typeof NameParams> }>(
      '/v1/volumes/:name',
      {
        schema: {
          tags,
          summary: 'Inspect a volume: its disk usage and the containers that mount it',
          params: NameParams,
          response: { 200: VolumeInspect, ...errors },
        },
      },
      async (req) => volumes.inspect(context(req), req.params.name),
    );

    app.delete<{ Params: Static<typeof NameParams> }>(
      '/v1/volumes/:name',
      {
        schema: { tags, summary: 'Remove a volume no container refers to', params: NameParams, response: { 204: noContent, ...errors } },
      },
      async (req, reply) => {
        await volumes.remove(context(req), req.params.name);
        return reply.code(204).send();
      },
    );
  };
}

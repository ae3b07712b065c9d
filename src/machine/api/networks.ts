/**
 * The network routes of the machine's REST API, over the port's MachineNetworks. Connect and disconnect change the
 * network a stopped container joins at its next start (a running one is refused: CONTAINER_RUNNING).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { MachineNetworks } from '../port/machine.ts';
import { Network, NetworkConnectOptions, NetworkCreateRequest, NetworkInspect, NetworkPruneResult } from '../port/schemas.ts';
import { errors, noContent, type ContextOf } from './routing.ts';

const NameParams = Type.Object({ name: Type.String({ description: 'network name, id or id prefix' }) });
const DisconnectBody = Type.Object(
  { container: Type.String({ minLength: 1, description: 'container name, id or id prefix' }) },
  { additionalProperties: false },
);
const ConnectBody = Type.Object(
  {
    container: Type.String({ minLength: 1, description: 'container name, id or id prefix' }),
    options: Type.Optional(NetworkConnectOptions),
  },
  { additionalProperties: false },
);

/** The network routes over `networks`; `context` makes a request's RequestContext. */
export function networkRoutes(networks: MachineNetworks, context: ContextOf): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['networks'];
    app.get(
      '/v1/networks',
      { schema: { tags, summary: 'List networks', response: { 200: Type.Array(Network), ...errors } } },
      async (req) => networks.list(context(req)),
    );

    app.post<{ Body: NetworkCreateRequest }>(
      '/v1/networks',
      {
        schema: {
          tags,
          summary: 'Create a network (a bridge with its own subnet)',
          body: NetworkCreateRequest,
          response: { 201: Network, ...errors },
        },
      },
      async (req, reply) => reply.code(201).send(await networks.create(context(req), req.body)),
    );

    app.post(
      '/v1/networks/prune',
      {
        schema: { tags, summary: 'Remove the networks no container joins', response: { 200: NetworkPruneResult, ...errors } },
      },
      async (req) => networks.prune(context(req)),
    );

    app.get<{ Params: Static<typeof NameParams> }>(
      '/v1/networks/:name',
      {
        schema: {
          tags,
          summary: 'Inspect a network and the containers that join it',
          params: NameParams,
          response: { 200: NetworkInspect, ...errors },
        },
      },
      async (req) => networks.inspect(context(req), req.params.name),
    );

    app.delete<{ Params: Static<typeof NameParams> }>(
      '/v1/networks/:name',
      {
        schema: { tags, summary: 'Remove a network', params: NameParams, response: { 204: noContent, ...errors } },
      },
      async (req, reply) => {
        await networks.remove(context(req), req.params.name);
        return reply.code(204).send();
      },
    );

    app.post<{ Params: Static<typeof NameParams>; Body: Static<typeof ConnectBody> }>(
      '/v1/networks/:name/connect',
      {
        schema: {
          tags,
          summary: 'Make a stopped container join this network (with aliases and a static address)',
          params: NameParams,
          body: ConnectBody,
          response: { 204: noContent, ...errors },
        },
      },
      async (req, reply) => {
        await networks.connect(context(req), req.params.name, req.body.container, req.body.options);
        return reply.code(204).send();
      },
    );

    app.post<{ Params: Static<typeof NameParams>; Body: Static<typeof DisconnectBody> }>(
      '/v1/networks/:name/disconnect',
      {
        schema: {
          tags,
          summary: 'Take a stopped container off this network',
          params: NameParams,
          body: DisconnectBody,
          response: { 204: noContent, ...errors },
        },
      },
      async (req, reply) => {
        await networks.disconnect(context(req), req.params.name, req.body.container);
        return reply.code(204).send();
      },
    );
  };
}

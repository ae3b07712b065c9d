/**
 * The fleet's routes of the controller's API: machines (join with a join token; list, inspect, drain, undrain and
 * remove for the system admin; join tokens) and a project's containers, placed on the fleet (viewer of the project
 * to read, member to change). Every route declares its policy, as every controller route does.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { ContainerSpec } from '../../machine/port/index.ts';
import { Name } from '../model/schemas.ts';
import { errors, IdempotencyHeaders, noContent } from '../api/common.ts';
import type { Fleet } from './fleet.ts';
import { parseLabelFilters, type FleetContainers } from './containers.ts';
import { LEASE_NONCE_HEADER, LEASE_TTL } from './leases.ts';
import type { FleetCa } from './ca.ts';
import { principalOf } from '../api/policy.ts';

const Resources = Type.Object({ cpus: Type.Number(), memoryBytes: Type.Number(), diskBytes: Type.Number() });
const MachineInfo = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('READY'), Type.Literal('MAINTENANCE'), Type.Literal('LOST')]),
  address: Type.String(),
  capacity: Resources,
  allocated: Resources,
  containers: Type.Integer(),
  labels: Type.Record(Type.String(), Type.String()),
  zone: Type.String(),
  drained: Type.Boolean(),
  joinedAt: Type.String(),
  lastSeen: Type.String(),
  lastError: Type.Optional(Type.String()),
});
const MachineParams = Type.Object({ id: Type.String({ pattern: '^m-[0-9a-f]{12}$' }) });
const JoinBody = Type.Object(
  {
    token: Type.String(),
    address: Type.String(),
    capacity: Type.Object({
      cpus: Type.Number({ exclusiveMinimum: 0 }),
      memoryBytes: Type.Integer({ minimum: 1 }),
      diskBytes: Type.Integer({ minimum: 0 }),
    }),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    zone: Type.Optional(Type.String()),
    publicKey: Type.String(),
  },
  { additionalProperties: false },
);
const JoinAnswer = Type.Object({ id: Type.String(), cert: Type.String(), ca: Type.String() });
const TokenBody = Type.Object(
  { ttlSeconds: Type.Optional(Type.Integer({ minimum: 1 })), description: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
const TokenCreated = Type.Object({ id: Type.String(), token: Type.String(), expiresAt: Type.String() });
const TokenInfo = Type.Object({ id: Type.String(), description: Type.String(), createdAt: Type.String(), expiresAt: Type.String() });
const TokenParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12}$' }) });
const ForceQuery = Type.Object({ force: Type.Optional(Type.Boolean()) });

const ProjectParams = Type.Object({ tenant: Name, project: Name });
const ContainerParams = Type.Object({ tenant: Name, project: Name, ref: Type.String({ minLength: 1, maxLength: 128 }) });
const ContainerCreate = Type.Object(
  {
    spec: ContainerSpec,
    policy: Type.Optional(Type.Union([Type.Literal('spread'), Type.Literal('binpack')])),
    start: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** A container as the controller shows it: the machine's Container, with the controller's id and name, and machineId. */
const FleetContainer = Type.Object({ id: Type.String(), name: Type.String(), machineId: Type.String() }, { additionalProperties: true });
const LeaseHeaders = Type.Object({
  [LEASE_NONCE_HEADER]: Type.Optional(
    Type.String({ maxLength: 128, description: "the nonce of the container's lease, when one holds it" }),
  ),
});
const LeaseInfo = Type.Object({ owner: Type.String(), description: Type.String(), createdAt: Type.String(), expiresAt: Type.String() });
const LeaseGranted = Type.Object({
  nonce: Type.String({
    description: 'shown once: every change of the container carries it (header Boson-Lease-Nonce) while the lease holds',
  }),
  owner: Type.String(),
  description: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.String(),
});
const LeaseBody = Type.Object(
  {
    ttlSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: LEASE_TTL.maxSeconds, description: `default ${LEASE_TTL.defaultSeconds}` }),
    ),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
const ListQuery = Type.Object({
  label: Type.Optional(Type.Array(Type.String({ maxLength: 512 }), { description: 'key=value or key; repeatable, all must match' })),
});
const WaitQuery = Type.Object({
  state: Type.Union([Type.Literal('running'), Type.Literal('stopped'), Type.Literal('removed')]),
  timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 300, description: 'seconds (default 60)' })),
});
const WaitAnswer = Type.Object({ state: Type.String(), container: Type.Optional(FleetContainer) });
const LogLineOut = Type.Object({ stream: Type.String(), time: Type.String(), data: Type.String({ description: 'base64' }) });
const StopQuery = Type.Object({ t: Type.Optional(Type.Integer({ minimum: 0 })) });

/** The machine routes over `fleet`. */
export function machineRoutes(fleet: Fleet): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['machines'];
    const admin = { policy: { allow: 'system-admin' as const, scope: 'system' as const } };
    app.get(
      '/v1/machines/ca',
      {
        schema: {
          tags,
          summary: "The CA of the controller's endpoint (a joining machine checks it against its join token)",
          response: { 200: Type.Object({ ca: Type.String() }), ...errors },
        },
        config: { policy: { allow: 'public', note: 'a CA certificate, public by nature' } },
      },
      async () => ({ ca: fleet.opts.serverCaPem ?? fleet.ca.cert }),
    );
    app.post<{ Body: Static<typeof JoinBody> }>(
      '/v1/machines/join',
      {
        schema: {
          tags,
          summary: 'Join a machine to the fleet (the join token authenticates)',
          body: JoinBody,
          response: { 201: JoinAnswer, ...errors },
        },
        config: { policy: { allow: 'public', note: 'the join token in the body authenticates' } },
      },
      async (req, reply) => reply.code(201).send(await fleet.join(req.body)),
    );
    app.get(
      '/v1/machines',
      { schema: { tags, summary: 'List the machines of the fleet', response: { 200: Type.Array(MachineInfo), ...errors } }, config: admin },
      async () => fleet.list(),
    );
    app.get<{ Params: Static<typeof MachineParams> }>(
      '/v1/machines/:id',
      { schema: { tags, summary: 'Inspect a machine', params: MachineParams, response: { 200: MachineInfo, ...errors } }, config: admin },
      async (req) => fleet.get(req.params.id),
    );
    for (const [verb, drained] of [
      ['drain', true],
      ['undrain', false],
    ] as const)
      app.post<{ Params: Static<typeof MachineParams> }>(
        `/v1/machines/:id/${verb}`,
        {
          schema: {
            tags,
            summary: drained
              ? 'Drain a machine: MAINTENANCE, no new placements, its containers stay'
              : 'Take a machine back into placement',
            headers: IdempotencyHeaders,
            params: MachineParams,
            response: { 200: MachineInfo, ...errors },
          },
          config: admin,
        },
        async (req) => fleet.setDrained(req.params.id, drained),
      );
    app.delete<{ Params: Static<typeof MachineParams>; Querystring: Static<typeof ForceQuery> }>(
      '/v1/machines/:id',
      {
        schema: {
          tags,
          summary: 'Remove a machine from the fleet',
          params: MachineParams,
          querystring: ForceQuery,
          response: { 204: noContent, ...errors },
        },
        config: admin,
      },
      async (req, reply) => {
        await fleet.remove(req.params.id, req.query.force ?? false);
        return reply.code(204).send();
      },
    );
    app.post<{ Body: Static<typeof TokenBody> }>(
      '/v1/machine-tokens',
      {
        schema: {
          tags,
          summary: 'Create a join token (its secret is shown once)',
          body: TokenBody,
          response: { 201: TokenCreated, ...errors },
        },
        config: admin,
      },
      async (req, reply) => reply.code(201).send(await fleet.createJoinToken(req.body)),
    );
    app.delete<{ Params: Static<typeof TokenParams> }>(
      '/v1/machine-tokens/:id',
      {
        schema: {
          tags,
          summary: 'Revoke a join token (machines that joined with it stay)',
          params: TokenParams,
          response: { 204: noContent, ...errors },
        },
        config: admin,
      },
      async (req, reply) => {
        await fleet.revokeJoinToken(req.params.id);
        return reply.code(204).send();
      },
    );
    app.get(
      '/v1/machine-tokens',
      {
        schema: { tags, summary: 'List the join tokens (never their secrets)', response: { 200: Type.Array(TokenInfo), ...errors } },
        config: admin,
      },
      async () => fleet.listJoinTokens(),
    );
  };
}

/** The routes of a project's containers over `containers`. */
export function containerRoutes(containers: FleetContainers): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['containers'];
    const base = '/v1/tenants/:tenant/projects/:project/containers';
    const viewer = { policy: { allow: 'viewer' as const, scope: 'params' as const } };
    const member = { policy: { allow: 'member' as const, scope: 'params' as const } };
    app.get<{ Params: Static<typeof ProjectParams>; Querystring: Static<typeof ListQuery> }>(
      base,
      {
        schema: {
          tags,
          summary: "List a project's containers, wherever they run (?label=k=v filters, repeatable: all must match)",
          params: ProjectParams,
          querystring: ListQuery,
          response: { 200: Type.Array(FleetContainer), ...errors },
        },
        config: viewer,
      },
      async (req) => containers.list(req.params.tenant, req.params.project, { labels: parseLabelFilters(req.query.label ?? []) }),
    );
    app.post<{ Params: Static<typeof ProjectParams>; Body: Static<typeof ContainerCreate> }>(
      base,
      {
        schema: {
          tags,
          summary: 'Create (and start) a container: quota, placement on the fleet, then its machine',
          params: ProjectParams,
          body: ContainerCreate,
          response: { 201: FleetContainer, ...errors },
        },
        config: member,
      },
      async (req, reply) => {
        const { spec, policy, start } = req.body;
        const opts = { ...(policy ? { policy } : {}), ...(start === undefined ? {} : { start }) };
        return reply.code(201).send(await containers.create(req.params.tenant, req.params.project, spec, opts));
      },
    );
    app.get<{ Params: Static<typeof ContainerParams> }>(
      `${base}/:ref`,
      {
        schema: { tags, summary: 'Inspect a container', params: ContainerParams, response: { 200: FleetContainer, ...errors } },
        config: viewer,
      },
      async (req) => containers.inspect(req.params.tenant, req.params.project, req.params.ref),
    );
    app.get<{ Params: Static<typeof ContainerParams> }>(
      `${base}/:ref/logs`,
      {
        schema: {
          tags,
          summary: "A container's log so far",
          params: ContainerParams,
          response: { 200: Type.Array(LogLineOut), ...errors },
        },
        config: viewer,
      },
      async (req) =>
        (await containers.logs(req.params.tenant, req.params.project, req.params.ref, { stdout: true, stderr: true })).map((l) => ({
          stream: l.stream,
          time: String(l.timeNs),
          data: l.data.toString('base64'),
        })),
    );
    app.post<{ Params: Static<typeof ContainerParams>; Headers: Static<typeof LeaseHeaders> }>(
      `${base}/:ref/start`,
      {
        schema: {
          tags,
          summary: 'Start a container (with the nonce of its lease, when one holds it)',
          params: ContainerParams,
          headers: LeaseHeaders,
          response: { 204: noContent, ...errors },
        },
        config: member,
      },
      async (req, reply) => {
        await containers.start(req.params.tenant, req.params.project, req.params.ref, req.headers[LEASE_NONCE_HEADER]);
        return reply.code(204).send();
      },
    );
    app.post<{ Params: Static<typeof ContainerParams>; Querystring: Static<typeof StopQuery>; Headers: Static<typeof LeaseHeaders> }>(
      `${base}/:ref/stop`,
      {
        schema: {
          tags,
          summary: 'Stop a container (with the nonce of its lease, when one holds it)',
          params: ContainerParams,
          querystring: StopQuery,
          headers: LeaseHeaders,
          response: { 204: noContent, ...errors },
        },
        config: member,
      },
      async (req, reply) => {
        await containers.stop(req.params.tenant, req.params.project, req.params.ref, req.query.t, req.headers[LEASE_NONCE_HEADER]);
        return reply.code(204).send();
      },
    );
    app.delete<{ Params: Static<typeof ContainerParams>; Querystring: Static<typeof ForceQuery>; Headers: Static<typeof LeaseHeaders> }>(
      `${base}/:ref`,
      {
        schema: {
          tags,
          summary: 'Remove a container (its quota comes back; with the nonce of its lease, when one holds it)',
          params: ContainerParams,
          querystring: ForceQuery,
          headers: LeaseHeaders,
          response: { 204: noContent, ...errors },
        },
        config: member,
      },
      async (req, reply) => {
        const { tenant, project, ref } = req.params;
        await containers.remove(tenant, project, ref, req.query.force ?? false, req.headers[LEASE_NONCE_HEADER]);
        return reply.code(204).send();
      },
    );
    app.get<{ Params: Static<typeof ContainerParams>; Querystring: Static<typeof WaitQuery> }>(
      `${base}/:ref/wait`,
      {
        schema: {
          tags,
          summary:
            'Wait until a container is running, stopped or removed (at most `timeout` seconds; 408 CONTAINER_WAIT_TIMEOUT with its state after that)',
          params: ContainerParams,
          querystring: WaitQuery,
          response: { 200: WaitAnswer, ...errors },
        },
        config: viewer,
      },
      async (req) =>
        containers.wait(req.params.tenant, req.params.project, req.params.ref, req.query.state, (req.query.timeout ?? 60) * 1000),
    );
    app.post<{ Params: Static<typeof ContainerParams>; Body: Static<typeof LeaseBody>; Headers: Static<typeof LeaseHeaders> }>(
      `${base}/:ref/lease`,
      {
        schema: {
          tags,
          summary:
            "Lease a container: while the lease holds, its changes need the lease's nonce (Boson-Lease-Nonce); with the nonce, extends the lease",
          params: ContainerParams,
          body: LeaseBody,
          headers: LeaseHeaders,
          response: { 201: LeaseGranted, ...errors },
        },
        // The answer holds the nonce: an Idempotency-Key is honoured but the answer is not kept in the store.
        config: { policy: { ...member.policy, secretAnswer: true } },
      },
      async (req, reply) => {
        const { tenant, project, ref } = req.params;
        const nonce = req.headers[LEASE_NONCE_HEADER];
        const granted = await containers.lease(tenant, project, ref, {
          owner: principalOf(req).user,
          ...(req.body?.ttlSeconds !== undefined ? { ttlSeconds: req.body.ttlSeconds } : {}),
          ...(req.body?.description !== undefined ? { description: req.body.description } : {}),
          ...(nonce !== undefined ? { nonce } : {}),
        });
        return reply.code(201).send(granted);
      },
    );
    app.get<{ Params: Static<typeof ContainerParams> }>(
      `${base}/:ref/lease`,
      {
        schema: {
          tags,
          summary: "A container's lease (never its nonce); LEASE_NOT_FOUND when none holds",
          params: ContainerParams,
          response: { 200: LeaseInfo, ...errors },
        },
        config: viewer,
      },
      async (req) => containers.getLease(req.params.tenant, req.params.project, req.params.ref),
    );
    app.delete<{ Params: Static<typeof ContainerParams>; Headers: Static<typeof LeaseHeaders> }>(
      `${base}/:ref/lease`,
      {
        schema: {
          tags,
          summary: "Release a container's lease (with its nonce, header Boson-Lease-Nonce)",
          params: ContainerParams,
          headers: LeaseHeaders,
          response: { 204: noContent, ...errors },
        },
        config: member,
      },
      async (req, reply) => {
        await containers.releaseLease(req.params.tenant, req.params.project, req.params.ref, req.headers[LEASE_NONCE_HEADER]);
        return reply.code(204).send();
      },
    );
  };
}

/** The fleet's routes among all of an API's (for the fleet's policy table in docs/controller.md). */
export function fleetRouteEntries<T extends { url: string }>(routes: T[]): T[] {
  return routes.filter(
    (r) =>
      r.url.startsWith('/v1/machine') ||
      r.url.includes('/containers') ||
      r.url.includes('/docker-certs') ||
      r.url.includes('/projects/:project/machine/'),
  );
}

const DockerCertBody = Type.Object({ publicKey: Type.String({ maxLength: 4096 }) }, { additionalProperties: false });
const DockerCert = Type.Object({
  cert: Type.String(),
  ca: Type.String({ description: "the CA of the Docker endpoint's server certificate (DOCKER_CERT_PATH/ca.pem)" }),
  dockerHost: Type.Optional(Type.String({ description: 'tcp://host:port of the Docker endpoint, when the controller serves one' })),
});

/** The route that gives a user a client certificate for a project's Docker endpoint (boson project docker-env). */
export function dockerCertRoutes(dockerCa: FleetCa, serverCaPem: string | undefined, dockerHost: string | undefined): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.post<{ Params: Static<typeof ProjectParams>; Body: Static<typeof DockerCertBody> }>(
      '/v1/tenants/:tenant/projects/:project/docker-certs',
      {
        schema: {
          tags: ['containers'],
          summary: "Issue the caller a client certificate for the project's Docker endpoint (30 days)",
          params: ProjectParams,
          body: DockerCertBody,
          response: { 201: DockerCert, ...errors },
        },
        config: { policy: { allow: 'member', scope: 'params' } },
      },
      async (req, reply) => {
        const user = principalOf(req).user;
        const cert = await dockerCa.issueProjectClientCert(req.body.publicKey, {
          tenant: req.params.tenant,
          project: req.params.project,
          user,
        });
        return reply.code(201).send({ cert, ca: serverCaPem ?? dockerCa.cert, ...(dockerHost ? { dockerHost } : {}) });
      },
    );
  };
}

/**
 * The container routes of the machine's REST API, over the port's MachineContainers: list, create, inspect, the
 * lifecycle actions (start, stop, restart, kill, rename, resize, wait), remove, stats and logs (NDJSON, followed
 * with `follow=1` until the container ends or the client goes away). A reference in a path is a name, an id or an
 * id prefix. Attach and the one-request exec and run are connection upgrades (upgrades.ts).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { BosonError, writableReady } from '../../common/index.ts';
import type { LogLine, MachineContainers } from '../port/machine.ts';
import {
  Container,
  ContainerSpec,
  ContainerStats,
  ContainerUpdate,
  LogEntry,
  SuspendResult,
  WaitCondition,
  WaitResult,
  type RequestContext,
} from '../port/schemas.ts';
import { boolQuery, errors, noContent, nsFromTime, type ContextOf } from './routing.ts';

const RefParams = Type.Object({ ref: Type.String({ description: 'container name, id or id prefix' }) });
type Ref = { Params: Static<typeof RefParams> };
const ListQuery = Type.Object({ all: Type.Optional(Type.String({ description: '1 or true: stopped containers too' })) });
const TimeoutQuery = Type.Object({ t: Type.Optional(Type.String({ description: 'seconds before the VM is killed (default 10)' })) });
const KillQuery = Type.Object({ signal: Type.Optional(Type.String({ description: 'a signal name or number (default KILL)' })) });
const RenameQuery = Type.Object({ name: Type.Optional(Type.String({ description: 'the new name' })) });
const ResizeQuery = Type.Object({
  h: Type.Optional(Type.String({ description: 'rows (default 24)' })),
  w: Type.Optional(Type.String({ description: 'columns (default 80)' })),
});
const WaitQuery = Type.Object({ condition: Type.Optional(Type.String({ description: 'not-running (default), next-exit or removed' })) });
const RemoveQuery = Type.Object({
  force: Type.Optional(Type.String({ description: '1 or true: kill a running container first' })),
  v: Type.Optional(Type.String({ description: '1 or true: remove its anonymous volumes too' })),
});
const LogsQuery = Type.Object({
  stdout: Type.Optional(Type.String()),
  stderr: Type.Optional(Type.String()),
  since: Type.Optional(Type.String({ description: 'RFC 3339 or unix seconds' })),
  sinceNs: Type.Optional(Type.String({ description: 'nanoseconds since the epoch (a reconnecting follower)' })),
  until: Type.Optional(Type.String({ description: 'RFC 3339 or unix seconds' })),
  tail: Type.Optional(Type.String({ description: 'the last N lines, or all' })),
  follow: Type.Optional(Type.String({ description: '1 or true: follow until the container ends' })),
});
const WAIT_CONDITIONS: readonly string[] = ['not-running', 'next-exit', 'removed'];

/** Seconds of a timeout query value. */
function seconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new BosonError('INVALID_ARGUMENT', `invalid timeout: ${v}`);
  return n;
}

/** The container routes over `containers`; `context` makes a request's RequestContext. */
export function containerRoutes(containers: MachineContainers, context: ContextOf): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['containers'];
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/containers',
      {
        schema: {
          tags,
          summary: 'List containers (running ones unless all)',
          querystring: ListQuery,
          response: { 200: Type.Array(Container), ...errors },
        },
      },
      async (req) => containers.list(context(req), { all: boolQuery(req.query.all) }),
    );

    app.post<{ Body: ContainerSpec }>(
      '/v1/containers',
      {
        schema: { tags, summary: 'Create a container (not started)', body: ContainerSpec, response: { 201: Container, ...errors } },
      },
      async (req, reply) => reply.code(201).send(await containers.create(context(req), req.body)),
    );

    app.get<Ref>(
      '/v1/containers/:ref',
      { schema: { tags, summary: 'Inspect a container', params: RefParams, response: { 200: Container, ...errors } } },
      async (req) => containers.inspect(context(req), req.params.ref),
    );

    /** A lifecycle action without an answer body. */
    const action = <Q extends Record<string, string | undefined>>(
      name: string,
      summary: string,
      querystring: ReturnType<typeof Type.Object>,
      run: (c: RequestContext, ref: string, q: Q) => Promise<void>,
    ): void => {
      app.post<{ Params: Static<typeof RefParams>; Querystring: Q }>(
        `/v1/containers/:ref/${name}`,
        {
          schema: { tags, summary, params: RefParams, querystring, response: { 204: noContent, ...errors } },
        },
        async (req, reply) => {
          await run(context(req), req.params.ref, req.query as Q);
          return reply.code(204).send();
        },
      );
    };
    action('start', 'Start a container', Type.Object({}), (c, ref) => containers.start(c, ref));
    action<Static<typeof TimeoutQuery>>(
      'stop',
      'Stop a container (SIGTERM, then the VM is killed after t seconds)',
      TimeoutQuery,
      (c, ref, q) => containers.stop(c, ref, seconds(q.t)),
    );
    action<Static<typeof TimeoutQuery>>('restart', 'Restart a container', TimeoutQuery, (c, ref, q) =>
      containers.restart(c, ref, seconds(q.t)),
    );
    action<Static<typeof KillQuery>>('kill', "Send a signal to a container's process", KillQuery, (c, ref, q) =>
      containers.kill(c, ref, q.signal ?? 'KILL'),
    );
    action<Static<typeof RenameQuery>>('rename', 'Rename a container', RenameQuery, async (c, ref, q) => {
      if (!q.name) throw new BosonError('INVALID_ARGUMENT', 'rename needs a name');
      await containers.rename(c, ref, q.name);
    });
    for (const [name, summary] of [
      ['suspend', 'Suspend a running container to a file (its micro-VM ends; resume continues it)'],
      ['resume', 'Resume a suspended container from its saved state'],
    ] as const) {
      app.post<Ref>(
        `/v1/containers/:ref/${name}`,
        { schema: { tags, summary, params: RefParams, response: { 200: SuspendResult, ...errors } } },
        async (req) =>
          name === 'suspend' ? containers.suspend(context(req), req.params.ref) : containers.resume(context(req), req.params.ref),
      );
    }
    action<Static<typeof ResizeQuery>>('resize', "Resize a container's pty", ResizeQuery, (c, ref, q) =>
      containers.resize(c, ref, Number(q.h ?? 24), Number(q.w ?? 80)),
    );

    app.post<Ref & { Body: ContainerUpdate }>(
      '/v1/containers/:ref/update',
      {
        schema: {
          tags,
          summary: "Change a container's settings after create (its restart policy)",
          params: RefParams,
          body: ContainerUpdate,
          response: { 200: Container, ...errors },
        },
      },
      async (req) => containers.update(context(req), req.params.ref, req.body),
    );

    app.post<Ref & { Querystring: Static<typeof WaitQuery> }>(
      '/v1/containers/:ref/wait',
      {
        schema: {
          tags,
          summary: 'Wait for a container to reach a condition; its exit status',
          params: RefParams,
          querystring: WaitQuery,
          response: { 200: WaitResult, ...errors },
        },
      },
      async (req) => {
        const condition = req.query.condition ?? 'not-running';
        if (!WAIT_CONDITIONS.includes(condition)) throw new BosonError('INVALID_ARGUMENT', `invalid wait condition: ${condition}`);
        return containers.wait(context(req), req.params.ref, condition as WaitCondition);
      },
    );

    app.delete<Ref & { Querystring: Static<typeof RemoveQuery> }>(
      '/v1/containers/:ref',
      {
        schema: {
          tags,
          summary: 'Remove a container',
          params: RefParams,
          querystring: RemoveQuery,
          response: { 204: noContent, ...errors },
        },
      },
      async (req, reply) => {
        await containers.remove(context(req), req.params.ref, { force: boolQuery(req.query.force), volumes: boolQuery(req.query.v) });
        return reply.code(204).send();
      },
    );

    app.get<Ref>(
      '/v1/containers/:ref/stats',
      { schema: { tags, summary: "A container's resource usage", params: RefParams, response: { 200: ContainerStats, ...errors } } },
      async (req) => containers.stats(context(req), req.params.ref),
    );

    app.get<Ref & { Querystring: Static<typeof LogsQuery> }>(
      '/v1/containers/:ref/logs',
      {
        schema: {
          tags,
          summary: "A container's output; a stream of NDJSON lines",
          params: RefParams,
          querystring: LogsQuery,
          response: {
            200: { description: 'one line per output record', content: { 'application/x-ndjson': { schema: LogEntry } } },
            ...errors,
          },
        },
      },
      async (req, reply) => {
        const q = req.query;
        const tail = q.tail === undefined || q.tail === 'all' ? undefined : Number(q.tail);
        if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
          throw new BosonError('INVALID_ARGUMENT', `invalid --tail: ${q.tail}`);
        if (q.sinceNs !== undefined && !/^\d+$/.test(q.sinceNs)) throw new BosonError('INVALID_ARGUMENT', `invalid sinceNs: ${q.sinceNs}`);
        const sinceNs = q.sinceNs !== undefined ? BigInt(q.sinceNs) : nsFromTime(q.since);
        const query = {
          stdout: q.stdout === undefined ? true : boolQuery(q.stdout),
          stderr: q.stderr === undefined ? true : boolQuery(q.stderr),
          sinceNs,
          untilNs: nsFromTime(q.until),
          tail,
        };
        const ctx = context(req);
        await containers.inspect(ctx, req.params.ref); // 404 before the stream starts
        const abort = new AbortController();
        req.raw.on('close', () => abort.abort());
        reply.raw.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
        const write = (l: LogLine): void => {
          const entry: LogEntry = { stream: l.stream, time: l.timeNs.toString(), data: l.data.toString('base64') };
          reply.raw.write(JSON.stringify(entry) + '\n');
        };
        await containers.logs(ctx, req.params.ref, query, boolQuery(q.follow), write, abort.signal, writableReady(reply.raw));
        reply.raw.end();
        return reply;
      },
    );
  };
}

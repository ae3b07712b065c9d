/**
 * The machine daemon's REST API (fastify): containers, exec, logs, events, stats, /healthz, Prometheus /metrics
 * and its own OpenAPI 3 document at /openapi.json. Errors leave as problem JSON (RFC 9457) with the catalogue's
 * `code`, translated here and nowhere else. Attach and exec-start upgrade the connection (HTTP 101) to a raw
 * stream: output in Docker's 8-byte frames (stream 1 stdout, 2 stderr) or raw with a TTY, stdin the other way,
 * and a half-close from the client is stdin's EOF. `POST /v1/containers/{ref}/exec` does a whole exec in one
 * upgrade (the spec as its JSON body): output always framed, then a status frame, then the server closes.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import client from 'prom-client';
import { BosonError, ERROR_CATALOGUE, KIND_TRANSLATION, PRINCIPAL_HEADER, readUpgradeBody, streamFrame, silentLogger, toBosonError, type Logger } from '../../common/index.ts';
import type { MachineRuntime } from '../runtime.ts';
import { Container, ContainerSpec, ExecSpec, localContext, type LogLine, type RequestContext, type StreamSink } from '../port/index.ts';
import { imageRoutes } from './images.ts';
import { EXEC_STATUS_STREAM, RUN_CREATED_STREAM, RUN_NOTICE_STREAM, pipeClientStdin, type ExecStatus } from './exec-stream.ts';

/** The problem JSON body for an error. */
export function problemOf(err: unknown): { status: number; body: Record<string, unknown> } {
  const e = toBosonError(err);
  const status = KIND_TRANSLATION[e.kind].rest;
  return { status, body: { type: `urn:boson:error:${e.code}`, title: ERROR_CATALOGUE[e.code].summary, status, detail: e.message, code: e.code } };
}

const RefParams = Type.Object({ ref: Type.String() });
const IdParams = Type.Object({ id: Type.String() });

/** The last frame of a one-request exec. */
export function execStatusFrame(status: ExecStatus): Buffer {
  return streamFrame(EXEC_STATUS_STREAM, Buffer.from(JSON.stringify(status)));
}

/** Docker's stream frame (one writer for every edge: src/common/stream-frame.ts). */
export { streamFrame };

function boolQuery(v: unknown): boolean {
  return v === true || v === '1' || v === 'true';
}

function nsFromTime(v: unknown): bigint | undefined {
  if (v === undefined || v === '') return undefined;
  const s = String(v);
  if (/^\d+(\.\d+)?$/.test(s)) return BigInt(Math.round(Number(s) * 1e9));
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new BosonError('INVALID_ARGUMENT', `invalid time: ${s}`);
  return BigInt(ms) * 1_000_000n;
}

/** Builds the fastify app for `service`. */
export async function buildApi(service: MachineRuntime, log: Logger = silentLogger): Promise<FastifyInstance> {
  // The principal a TCP endpoint authenticated (its client certificate's subject); on the UNIX socket, the local user.
  const ctx = (req: { id: string; headers: Record<string, string | string[] | undefined> }): RequestContext => {
    const principal = req.headers[PRINCIPAL_HEADER];
    return typeof principal === 'string' ? { requestId: req.id, principal } : localContext(req.id);
  };
  // Unknown fields are refused (fastify's default would silently drop them).
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, ajv: { customOptions: { removeAdditional: false } } });
  await app.register(swagger, {
    openapi: { openapi: '3.0.3', info: { title: 'Boson machine API', version: '1' }, tags: [{ name: 'containers' }, { name: 'exec' }, { name: 'volumes' }, { name: 'networks' }, { name: 'system' }] },
  });

  // One line per request at debug level, with the request id that the request context carries too.
  app.addHook('onResponse', async (req, reply) => {
    log.debug({ reqId: req.id, method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    const problem = e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500 && !(err instanceof BosonError))
      ? problemOf(new BosonError('INVALID_ARGUMENT', e.message))
      : problemOf(err);
    if (problem.status >= 500) log.error({ reqId: req.id, method: req.method, url: req.url, code: problem.body.code }, String(problem.body.detail));
    void reply.code(problem.status).type('application/problem+json').send(problem.body);
  });

  // Metrics: live VM count, boot and stop durations, failures.
  const registry = new client.Registry();
  const bootHist = new client.Histogram({ name: 'boson_vm_boot_seconds', help: 'Time to start a container (boot to process start)', buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30], registers: [registry] });
  const stopHist = new client.Histogram({ name: 'boson_vm_stop_seconds', help: 'Time to stop a container', buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: [registry] });
  const failures = new client.Counter({ name: 'boson_vm_failures_total', help: 'Micro-VMs that failed to boot or start', registers: [registry] });
  let failuresSeen = 0;
  new client.Gauge({ name: 'boson_vms_running', help: 'Running micro-VMs', registers: [registry], collect() { this.set(service.liveIds().size); } });

  app.get('/healthz', { schema: { tags: ['system'] } }, async () => ({ status: 'ok' }));
  app.get('/metrics', { schema: { tags: ['system'], hide: true } }, async (_req, reply) => {
    for (const v of service.metrics.boots.splice(0)) bootHist.observe(v / 1000);
    for (const v of service.metrics.stops.splice(0)) stopHist.observe(v / 1000);
    failures.inc(service.metrics.failures - failuresSeen);
    failuresSeen = service.metrics.failures;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(imageRoutes(service.imageService, ctx));

  app.get<{ Querystring: { all?: string } }>('/v1/containers', {
    schema: { tags: ['containers'], querystring: Type.Object({ all: Type.Optional(Type.String()) }), response: { 200: Type.Array(Container) } },
  }, async (req) => service.list(ctx(req), { all: boolQuery(req.query.all) }));

  app.post<{ Body: ContainerSpec }>('/v1/containers', { schema: { tags: ['containers'], body: ContainerSpec, response: { 201: Container } } }, async (req, reply) =>
    reply.code(201).send(await service.create(ctx(req), req.body)));

  app.get<{ Params: Static<typeof RefParams> }>('/v1/containers/:ref', { schema: { tags: ['containers'], params: RefParams, response: { 200: Container } } }, async (req) =>
    service.inspect(ctx(req), req.params.ref));

  const action = (name: string, run: (c: RequestContext, ref: string, q: Record<string, string | undefined>) => Promise<unknown>): void => {
    app.post<{ Params: Static<typeof RefParams>; Querystring: Record<string, string | undefined> }>(`/v1/containers/:ref/${name}`, { schema: { tags: ['containers'], params: RefParams } }, async (req, reply) => {
      const result = await run(ctx(req), req.params.ref, req.query);
      return result === undefined ? reply.code(204).send() : result;
    });
  };
  const seconds = (v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new BosonError('INVALID_ARGUMENT', `invalid timeout: ${v}`);
    return n;
  };
  action('start', (c, ref) => service.start(c, ref));
  action('stop', (c, ref, q) => service.stop(c, ref, seconds(q.t)));
  action('restart', (c, ref, q) => service.restart(c, ref, seconds(q.t)));
  action('kill', (c, ref, q) => service.kill(c, ref, q.signal ?? 'KILL'));
  action('rename', async (c, ref, q) => {
    if (!q.name) throw new BosonError('INVALID_ARGUMENT', 'rename needs a name');
    await service.rename(c, ref, q.name);
  });
  action('resize', async (c, ref, q) => service.resize(c, ref, Number(q.h ?? 24), Number(q.w ?? 80)));
  action('wait', async (c, ref, q) => {
    const condition = (q.condition ?? 'not-running') as 'not-running' | 'next-exit' | 'removed';
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new BosonError('INVALID_ARGUMENT', `invalid wait condition: ${condition}`);
    return service.wait(c, ref, condition);
  });

  app.delete<{ Params: Static<typeof RefParams>; Querystring: { force?: string; v?: string } }>('/v1/containers/:ref', { schema: { tags: ['containers'], params: RefParams } }, async (req, reply) => {
    await service.remove(ctx(req), req.params.ref, { force: boolQuery(req.query.force), volumes: boolQuery(req.query.v) });
    return reply.code(204).send();
  });

  const VolumeBody = Type.Object({ name: Type.Optional(Type.String()), labels: Type.Optional(Type.Record(Type.String(), Type.String())), sizeBytes: Type.Optional(Type.Integer({ minimum: 16 * 1024 * 1024 })) }, { additionalProperties: false });
  const NameParams = Type.Object({ name: Type.String() });
  app.get('/v1/volumes', { schema: { tags: ['volumes'] } }, async () => service.volumes.list());
  app.post<{ Body: Static<typeof VolumeBody> }>('/v1/volumes', { schema: { tags: ['volumes'], body: VolumeBody } }, async (req, reply) =>
    reply.code(201).send(await service.volumes.create(req.body.name ?? '', { labels: req.body.labels, sizeBytes: req.body.sizeBytes })));
  app.get<{ Params: Static<typeof NameParams> }>('/v1/volumes/:name', { schema: { tags: ['volumes'], params: NameParams } }, async (req) => ({
    ...service.volumes.get(req.params.name), usageBytes: await service.volumes.usage(req.params.name), usedBy: await service.volumeUsers(req.params.name),
  }));
  app.delete<{ Params: Static<typeof NameParams> }>('/v1/volumes/:name', { schema: { tags: ['volumes'], params: NameParams } }, async (req, reply) => {
    await service.volumes.remove(req.params.name, await service.volumeUsers(req.params.name));
    return reply.code(204).send();
  });
  const NetworkBody = Type.Object({
    name: Type.String({ minLength: 1 }), subnet: Type.Optional(Type.String()), gateway: Type.Optional(Type.String()),
    internal: Type.Optional(Type.Boolean()), labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  }, { additionalProperties: false });
  app.get('/v1/networks', { schema: { tags: ['networks'] } }, async () => service.networks.list());
  app.post<{ Body: Static<typeof NetworkBody> }>('/v1/networks', { schema: { tags: ['networks'], body: NetworkBody } }, async (req, reply) => {
    const { name, ...opts } = req.body;
    return reply.code(201).send(await service.networks.create(name, opts));
  });
  app.get<{ Params: Static<typeof NameParams> }>('/v1/networks/:name', { schema: { tags: ['networks'], params: NameParams } }, async (req) => service.networks.get(req.params.name));
  app.delete<{ Params: Static<typeof NameParams> }>('/v1/networks/:name', { schema: { tags: ['networks'], params: NameParams } }, async (req, reply) => {
    await service.networks.remove(req.params.name);
    return reply.code(204).send();
  });

  app.post<{ Querystring: { all?: string } }>('/v1/volumes/prune', { schema: { tags: ['volumes'] } }, async (req) => {
    const removed: string[] = [];
    for (const v of service.volumes.list()) {
      if (!v.anonymous && !boolQuery(req.query.all)) continue;
      if ((await service.volumeUsers(v.name)).length > 0) continue;
      await service.volumes.remove(v.name, []);
      removed.push(v.name);
    }
    return { removed };
  });

  app.get<{ Params: Static<typeof RefParams> }>('/v1/containers/:ref/stats', { schema: { tags: ['containers'], params: RefParams } }, async (req) => service.stats(ctx(req), req.params.ref));

  app.get<{ Params: Static<typeof RefParams>; Querystring: Record<string, string | undefined> }>('/v1/containers/:ref/logs', { schema: { tags: ['containers'], params: RefParams } }, async (req, reply) => {
    const q = req.query;
    const tail = q.tail === undefined || q.tail === 'all' ? undefined : Number(q.tail);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new BosonError('INVALID_ARGUMENT', `invalid --tail: ${q.tail}`);
    if (q.sinceNs !== undefined && !/^\d+$/.test(q.sinceNs)) throw new BosonError('INVALID_ARGUMENT', `invalid sinceNs: ${q.sinceNs}`);
    const sinceNs = q.sinceNs !== undefined ? BigInt(q.sinceNs) : nsFromTime(q.since);
    const query = { stdout: q.stdout === undefined ? true : boolQuery(q.stdout), stderr: q.stderr === undefined ? true : boolQuery(q.stderr), sinceNs, untilNs: nsFromTime(q.until), tail };
    service.record(req.params.ref); // 404 before the stream starts
    const abort = new AbortController();
    req.raw.on('close', () => abort.abort());
    reply.raw.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    const write = (l: LogLine): void => {
      reply.raw.write(JSON.stringify({ stream: l.stream, time: l.timeNs.toString(), data: l.data.toString('base64') }) + '\n');
    };
    await service.logs(ctx(req), req.params.ref, query, boolQuery(q.follow), write, abort.signal);
    reply.raw.end();
    return reply;
  });

  app.post<{ Params: Static<typeof RefParams>; Body: ExecSpec }>('/v1/containers/:ref/execs', { schema: { tags: ['exec'], params: RefParams, body: ExecSpec } }, async (req, reply) =>
    reply.code(201).send(await service.createExec(ctx(req), req.params.ref, req.body)));
  app.get<{ Params: Static<typeof IdParams> }>('/v1/execs/:id', { schema: { tags: ['exec'], params: IdParams } }, async (req) => service.inspectExec(ctx(req), req.params.id));

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/events', { schema: { tags: ['system'] } }, async (req, reply) => {
    const since = nsFromTime(req.query.since);
    const until = nsFromTime(req.query.until);
    reply.raw.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
    const send = (e: { seq: number; timeNano: bigint; type: string; action: string; actorId: string; attributes: Record<string, string> }): void => {
      reply.raw.write(JSON.stringify({ ...e, timeNano: e.timeNano.toString() }) + '\n');
    };
    let last = 0;
    if (since !== undefined) for (const e of service.pastEvents(0, since, until)) {
      send(e);
      last = e.seq;
    }
    if (until !== undefined && until <= BigInt(Date.now()) * 1_000_000n) {
      reply.raw.end();
      return reply;
    }
    const onEvent = (e: { seq: number; timeNano: bigint; type: string; action: string; actorId: string; attributes: Record<string, string> }): void => {
      if (e.seq > last && (until === undefined || e.timeNano <= until)) send(e);
    };
    service.events.on('event', onEvent);
    await new Promise<void>((resolve) => req.raw.on('close', resolve));
    service.events.off('event', onEvent);
    return reply;
  });

  // Connection upgrades: attach and exec start.
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleUpgrade(service, req, socket, head);
  });
  return app;
}

async function handleUpgrade(service: MachineRuntime, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const ctx = localContext();
  const url = new URL(req.url ?? '/', 'http://boson');
  const fail = (err: unknown): void => {
    const { status, body } = problemOf(err);
    const text = JSON.stringify(body);
    socket.end(`HTTP/1.1 ${status} Error\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  };
  const attachMatch = /^\/v1\/containers\/([^/]+)\/attach$/.exec(url.pathname);
  const execMatch = /^\/v1\/execs\/([^/]+)\/start$/.exec(url.pathname);
  const execNowMatch = /^\/v1\/containers\/([^/]+)\/exec$/.exec(url.pathname);
  try {
    if (url.pathname === '/v1/run') {
      await runUpgrade(service, ctx, req, socket, head);
    } else if (attachMatch) {
      const record = service.record(decodeURIComponent(attachMatch[1]!));
      if (record.state !== 'running') throw new BosonError('CONTAINER_NOT_RUNNING', `container ${record.name} is not running`);
      const tty = record.config.tty;
      upgraded(socket);
      const abort = new AbortController();
      socket.on('close', () => abort.abort());
      const sink = sinkFor(socket, tty);
      const session = await service.attach(ctx, record.id, sink, abort.signal);
      pipeClientStdin(socket, session, true, head);
      await session.done;
      socket.end();
    } else if (execMatch) {
      const exec = service.getExec(decodeURIComponent(execMatch[1]!));
      upgraded(socket);
      const ctl = await service.startExec(ctx, exec.id, sinkFor(socket, exec.tty));
      pipeClientStdin(socket, ctl, true, head);
      await ctl.exit;
      socket.end();
    } else if (execNowMatch) {
      // One request for a whole exec: create, start, stream, and the exit status in-band (see execStatusFrame).
      socket.pause();
      const { body, rest } = await readUpgradeBody(req, socket, head, UPGRADE_BODY_MAX);
      const exec = service.newExec(decodeURIComponent(execNowMatch[1]!), parseUpgradeBody(ExecSpec, body, 'exec'));
      upgraded(socket);
      try {
        // Output always in frames, with or without a TTY, so that the status frame can follow it.
        const ctl = await service.startExec(ctx, exec.id, sinkFor(socket, false));
        pipeClientStdin(socket, ctl, exec.stdin, rest);
        socket.end(execStatusFrame({ exitCode: await ctl.exit }));
      } catch (err) {
        // After the upgrade an error can only travel in-band.
        const { body: problem } = problemOf(err);
        socket.end(execStatusFrame({ exitCode: null, error: { code: problem.code as string, detail: problem.detail as string } }));
      } finally {
        service.forgetExec(exec.id);
      }
    } else {
      throw new BosonError('INVALID_ARGUMENT', `no upgrade at ${url.pathname}`);
    }
  } catch (err) {
    if (socket.writable && !(socket as Duplex & { upgradedFlag?: boolean }).upgradedFlag) fail(err);
    else socket.end();
  }
}

function upgraded(socket: Duplex): void {
  socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
  (socket as Duplex & { upgradedFlag?: boolean }).upgradedFlag = true;
}

/** Largest JSON body of a one-request exec or run. */
const UPGRADE_BODY_MAX = 1024 * 1024;

/** An upgrade request's JSON body checked against `schema`; INVALID_ARGUMENT naming the first fault. */
function parseUpgradeBody<T extends TSchema>(schema: T, body: Buffer, what: string): Static<T> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new BosonError('INVALID_ARGUMENT', `invalid JSON in the ${what} request: ${(cause as Error).message}`, { cause });
  }
  const fault = Value.Errors(schema, value).First();
  if (fault) throw new BosonError('INVALID_ARGUMENT', `invalid ${what} request: ${fault.path || 'body'} ${fault.message}`);
  return value as Static<T>;
}

/** The body of a one-request run. */
const RunBody = Type.Object({
  spec: ContainerSpec,
  winsize: Type.Optional(Type.Object({ rows: Type.Integer({ minimum: 1 }), cols: Type.Integer({ minimum: 1 }) })),
}, { additionalProperties: false });

/**
 * `POST /v1/run` (upgraded): a whole foreground run in one request, {spec, winsize} as its JSON body. Frames:
 * first RUN_CREATED_STREAM with the container's {id, name} (resize and signals go to the usual routes by id),
 * then its output (always framed, also with a TTY), then the status frame; stdin flows the other way, a
 * half-close being its EOF.
 */
async function runUpgrade(service: MachineRuntime, ctx: RequestContext, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.pause();
  const { body, rest } = await readUpgradeBody(req, socket, head, UPGRADE_BODY_MAX);
  const parsed = parseUpgradeBody(RunBody, body, 'run');
  upgraded(socket);
  try {
    const session = await service.run(ctx, parsed.spec, sinkFor(socket, false), {
      winsize: parsed.winsize,
      onCreated: (c) => void socket.write(streamFrame(RUN_CREATED_STREAM, Buffer.from(JSON.stringify({ id: c.id, name: c.name })))),
      onNotice: (text) => void socket.write(streamFrame(RUN_NOTICE_STREAM, Buffer.from(text))),
    });
    pipeClientStdin(socket, session, parsed.spec.process?.stdin ?? false, rest);
    const result = await session.exit;
    socket.end(execStatusFrame({ exitCode: result.statusCode }));
  } catch (err) {
    // After the upgrade an error can only travel in-band.
    const { body: problem } = problemOf(err);
    socket.end(execStatusFrame({ exitCode: null, error: { code: problem.code as string, detail: problem.detail as string } }));
  }
}

function sinkFor(socket: Duplex, tty: boolean): StreamSink {
  return {
    stdout: (d) => void socket.write(tty ? d : streamFrame(1, d)),
    stderr: (d) => void socket.write(tty ? d : streamFrame(2, d)),
  };
}

/**
 * The routes of the machine's REST API that upgrade the connection (HTTP 101) to a raw stream, over the port's
 * MachineContainers: attach (`POST /v1/containers/{ref}/attach`), exec start (`POST /v1/execs/{id}/start`), a whole
 * exec in one request (`POST /v1/containers/{ref}/exec`, the ExecSpec as its JSON body) and a whole run in one
 * request (`POST /v1/run`, {spec, winsize}). Output goes in Docker's 8-byte frames (stream 1 stdout, 2 stderr), or
 * raw with a TTY on attach and exec start; stdin flows the other way, and a half-close from the client is stdin's
 * EOF. The one-request exec and run always frame their output and end with a status frame (EXEC_STATUS_STREAM:
 * the exit code, or the typed error once the upgrade has happened); a run's first frame (RUN_CREATED_STREAM) names
 * the container it made. They are served by the HTTP server's 'upgrade' event; the fastify routes at the same paths
 * document them in /openapi.json and refuse a request that does not ask for the upgrade.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { BosonError, readUpgradeBody, streamFrame, writableReady } from '../../common/index.ts';
import type { MachineContainers, StreamSink } from '../port/machine.ts';
import { ContainerSpec, ExecSpec, type RequestContext } from '../port/schemas.ts';
import { EXEC_STATUS_STREAM, RUN_CREATED_STREAM, RUN_NOTICE_STREAM, pipeClientStdin, type ExecStatus } from './exec-stream.ts';
import { errors, problemOf, type ContextOf } from './routing.ts';

/** What the upgrades use: the port's container calls, and (optionally) dropping a one-request exec once it ended. */
export type UpgradeContainers = MachineContainers & { forgetExec?(id: string): void };

/** The last frame of a one-request exec or run. */
export function execStatusFrame(status: ExecStatus): Buffer {
  return streamFrame(EXEC_STATUS_STREAM, Buffer.from(JSON.stringify(status)));
}

/** Largest JSON body of a one-request exec or run. */
const UPGRADE_BODY_MAX = 1024 * 1024;

/** The body of a one-request run. */
export const RunBody = Type.Object(
  {
    spec: ContainerSpec,
    winsize: Type.Optional(Type.Object({ rows: Type.Integer({ minimum: 1 }), cols: Type.Integer({ minimum: 1 }) })),
  },
  { additionalProperties: false },
);
export type RunBody = Static<typeof RunBody>;

const RAW_STREAM = 'application/vnd.docker.raw-stream';
const switched = (description: string): Record<string, unknown> => ({
  description,
  content: { [RAW_STREAM]: { schema: Type.String({ description: 'the raw stream' }) } },
});

/** Documents the upgrade routes (a request without `Connection: Upgrade` is refused). */
export function upgradeRoutes(): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const refuse = async (): Promise<never> => {
      throw new BosonError('INVALID_ARGUMENT', 'this route upgrades the connection: send Connection: Upgrade and Upgrade: tcp');
    };
    const RefParams = Type.Object({ ref: Type.String({ description: 'container name, id or id prefix' }) });
    const IdParams = Type.Object({ id: Type.String({ description: 'exec instance id' }) });
    app.post(
      '/v1/containers/:ref/attach',
      {
        schema: {
          tags: ['containers'],
          summary: "Attach to a running container's output and stdin (upgrade)",
          params: RefParams,
          response: { 101: switched('its output from now on, framed unless it has a TTY'), ...errors },
        },
      },
      refuse,
    );
    app.post(
      '/v1/execs/:id/start',
      {
        schema: {
          tags: ['exec'],
          summary: 'Start an exec instance (upgrade)',
          params: IdParams,
          response: { 101: switched("the exec's output, framed unless it has a TTY"), ...errors },
        },
      },
      refuse,
    );
    app.post(
      '/v1/containers/:ref/exec',
      {
        schema: {
          tags: ['exec'],
          summary: 'Run a further process in a running container in one request (upgrade)',
          params: RefParams,
          body: ExecSpec,
          response: { 101: switched('framed output, then a status frame (0x80) with the exit code or the error'), ...errors },
        },
      },
      refuse,
    );
    app.post(
      '/v1/run',
      {
        schema: {
          tags: ['containers'],
          summary: 'Create, attach, start and wait for a container in one request (upgrade)',
          body: RunBody,
          response: {
            101: switched('a created frame (0x81) with {id, name}, framed output, notices (0x82), then a status frame (0x80)'),
            ...errors,
          },
        },
      },
      refuse,
    );
  };
}

/** Serves one upgrade request of the HTTP server (see the module comment). */
export async function handleUpgrade(
  containers: UpgradeContainers,
  context: ContextOf,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  socket.on('error', () => undefined);
  const ctx = context({ id: `upgrade-${nextUpgrade++}`, headers: req.headers });
  const url = new URL(req.url ?? '/', 'http://boson');
  const fail = (err: unknown): void => {
    const { status, body } = problemOf(err);
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} Error\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  };
  const attachMatch = /^\/v1\/containers\/([^/]+)\/attach$/.exec(url.pathname);
  const execMatch = /^\/v1\/execs\/([^/]+)\/start$/.exec(url.pathname);
  const execNowMatch = /^\/v1\/containers\/([^/]+)\/exec$/.exec(url.pathname);
  try {
    if (url.pathname === '/v1/run') {
      await runUpgrade(containers, ctx, req, socket, head);
    } else if (attachMatch) {
      const container = await containers.inspect(ctx, decodeURIComponent(attachMatch[1]!));
      // A created container may be attached to (docker run attaches, then starts: the port's attach delivers its
      // output from the start); a stopped one may not, as with Docker.
      if (container.state === 'exited' || container.state === 'dead')
        throw new BosonError('CONTAINER_NOT_RUNNING', `container ${container.name} is not running`);
      upgraded(socket);
      const abort = new AbortController();
      socket.on('close', () => abort.abort());
      const session = await containers.attach(ctx, container.id, sinkFor(socket, container.config.tty), abort.signal);
      pipeClientStdin(socket, session, true, head);
      await session.done;
      socket.end();
    } else if (execMatch) {
      const exec = await containers.inspectExec(ctx, decodeURIComponent(execMatch[1]!));
      upgraded(socket);
      const ctl = await containers.startExec(ctx, exec.id, sinkFor(socket, exec.tty));
      pipeClientStdin(socket, ctl, true, head);
      await ctl.exit;
      socket.end();
    } else if (execNowMatch) {
      // One request for a whole exec: create, start, stream, and the exit status in-band (see execStatusFrame).
      socket.pause();
      const { body, rest } = await readUpgradeBody(req, socket, head, UPGRADE_BODY_MAX);
      const exec = await containers.createExec(ctx, decodeURIComponent(execNowMatch[1]!), parseUpgradeBody(ExecSpec, body, 'exec'));
      upgraded(socket);
      try {
        // Output always in frames, with or without a TTY, so that the status frame can follow it.
        const ctl = await containers.startExec(ctx, exec.id, sinkFor(socket, false));
        pipeClientStdin(socket, ctl, exec.stdin, rest);
        socket.end(execStatusFrame({ exitCode: await ctl.exit }));
      } catch (err) {
        // After the upgrade an error can only travel in-band.
        const { body: problem } = problemOf(err);
        socket.end(execStatusFrame({ exitCode: null, error: { code: problem.code as string, detail: problem.detail as string } }));
      } finally {
        containers.forgetExec?.(exec.id);
      }
    } else {
      throw new BosonError('INVALID_ARGUMENT', `no upgrade at ${url.pathname}`);
    }
  } catch (err) {
    if (socket.writable && !(socket as Duplex & { upgradedFlag?: boolean }).upgradedFlag) fail(err);
    else socket.end();
  }
}

let nextUpgrade = 1;

function upgraded(socket: Duplex): void {
  socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${RAW_STREAM}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
  (socket as Duplex & { upgradedFlag?: boolean }).upgradedFlag = true;
}

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

/**
 * `POST /v1/run` (upgraded): a whole foreground run in one request, {spec, winsize} as its JSON body. Frames:
 * first RUN_CREATED_STREAM with the container's {id, name} (resize and signals go to the usual routes by id),
 * then its output (always framed, also with a TTY), then the status frame; stdin flows the other way, a
 * half-close being its EOF.
 */
async function runUpgrade(
  containers: MachineContainers,
  ctx: RequestContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  socket.pause();
  const { body, rest } = await readUpgradeBody(req, socket, head, UPGRADE_BODY_MAX);
  const parsed = parseUpgradeBody(RunBody, body, 'run');
  upgraded(socket);
  try {
    const session = await containers.run(ctx, parsed.spec, sinkFor(socket, false), {
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
    // A client that does not read holds the container's output back in its log file, not in this process.
    ready: writableReady(socket),
  };
}

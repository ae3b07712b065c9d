/** Exec routes: create, inspect, resize and start (detached, as the response body, or on an upgraded connection). */
import { localContext, type ExecInstance, type ExecSpec } from '../../machine/port/index.ts';
import { pipeClientStdin } from '../../machine/client/index.ts';
import { DockerError, badRequest, notSupported } from '../errors.ts';
import { jsonBody, parseJsonObject, readUpgradeBody, sendEmpty, sendJson, type Ctx } from '../http.ts';
import { ID, type RouteDeps, type Router, type UpgradeCtx } from '../router.ts';
import { frameSink } from '../streams.ts';
import { terminalSize } from './containers.ts';
import { writableReady } from '../../common/index.ts';
import { settleTimeFor, settledWriter } from '../upgrade-settle.ts';

const LOCAL = localContext('docker');

/** Registers the exec routes. */
export function registerExecRoutes(router: Router, deps: RouteDeps): void {
  const m = deps.machine.containers;
  router.on('POST', `/containers/${ID}/exec`, async (ctx) => {
    const body = await jsonBody(ctx);
    const c = await m.inspect(LOCAL, ctx.params[0]!);
    const spec = execSpecOf(body);
    if (c.state !== 'running') throw new DockerError(409, `container ${c.id} is not running`);
    const exec = await m.createExec(LOCAL, c.id, spec);
    sendJson(ctx.res, 201, { Id: exec.id });
  });
  router.on('GET', `/exec/${ID}/json`, async ({ res, params }) => sendJson(res, 200, execInspect(await m.inspectExec(LOCAL, params[0]!))));
  router.on('POST', `/exec/${ID}/resize`, async ({ res, params, query }) => {
    await m.inspectExec(LOCAL, params[0]!);
    const { h, w } = terminalSize(query);
    deps.execs.resize(params[0]!, h, w);
    sendEmpty(res, 200);
  });
  router.on('POST', `/exec/${ID}/start`, (ctx) => startExec(deps, ctx));
  router.upgrade('POST', `/exec/${ID}/start`, (ctx) => upgradedExec(deps, ctx));
}

/** The port's ExecSpec of Docker's exec create body; refuses an empty command and `--privileged`. */
export function execSpecOf(b: Record<string, unknown>): ExecSpec {
  const cmd = Array.isArray(b.Cmd) ? b.Cmd : typeof b.Cmd === 'string' ? [b.Cmd] : [];
  if (cmd.length === 0 || !cmd.every((c) => typeof c === 'string')) throw badRequest('No exec command specified');
  if (b.Privileged === true) throw notSupported('exec --privileged', 'a micro-VM has no host privileges to grant');
  const env = Array.isArray(b.Env) ? b.Env.filter((e): e is string => typeof e === 'string') : [];
  return {
    argv: cmd as string[],
    env,
    cwd: typeof b.WorkingDir === 'string' && b.WorkingDir ? b.WorkingDir : undefined,
    user: typeof b.User === 'string' && b.User ? b.User : undefined,
    tty: b.Tty === true,
    stdin: b.AttachStdin === true,
  };
}

/** Docker's `GET /exec/{id}/json` document. */
export function execInspect(e: ExecInstance): Record<string, unknown> {
  return {
    CanRemove: false,
    ContainerID: e.containerId,
    DetachKeys: '',
    ExitCode: e.exitCode,
    ID: e.id,
    OpenStderr: true,
    OpenStdin: e.stdin,
    OpenStdout: true,
    ProcessConfig: { arguments: e.argv.slice(1), entrypoint: e.argv[0], privileged: false, tty: e.tty, user: e.user ?? '' },
    Running: e.running,
    Pid: e.pid ?? 0,
  };
}

function checkNotStarted(exec: ExecInstance): void {
  if (exec.running || exec.exitCode !== null) throw new DockerError(409, `exec ${exec.id} has already run`);
}

/** `POST /exec/{id}/start` without an upgrade: detached, or the output as the response body. */
async function startExec({ machine: { containers: m }, execs }: RouteDeps, ctx: Ctx): Promise<void> {
  const b = await jsonBody(ctx);
  const exec = await m.inspectExec(LOCAL, ctx.params[0]!);
  checkNotStarted(exec);
  if (b.Detach === true) {
    const ctl = await m.startExec(LOCAL, exec.id, { stdout: () => undefined, stderr: () => undefined });
    execs.track(exec.id, ctl.resize, ctl.exit);
    return sendEmpty(ctx.res, 200);
  }
  const { res } = ctx;
  res.writeHead(200, { 'Content-Type': exec.tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
  res.flushHeaders();
  const ctl = await m.startExec(LOCAL, exec.id, { ...frameSink((d) => void res.write(d), exec.tty), ready: writableReady(res) });
  execs.track(exec.id, ctl.resize, ctl.exit);
  if (exec.stdin) ctl.closeStdin();
  await ctl.exit;
  res.end();
}

/** `POST /exec/{id}/start` on an upgraded connection; the JSON body may come with the head or in the first data. */
async function upgradedExec(
  { machine: { containers: m }, execs }: RouteDeps,
  { req, socket, head, params, accept }: UpgradeCtx,
): Promise<void> {
  await m.inspectExec(LOCAL, params[0]!);
  const { body, rest } = await readUpgradeBody(req, socket, head);
  const b = parseJsonObject(body);
  const exec = await m.inspectExec(LOCAL, params[0]!);
  checkNotStarted(exec);
  if ((await m.inspect(LOCAL, exec.containerId)).state !== 'running')
    throw new DockerError(409, `container ${exec.containerId} is not running`);
  accept(exec.tty || b.Tty === true);
  const out = settledWriter(socket, settleTimeFor(req));
  const ctl = await m.startExec(LOCAL, exec.id, { ...frameSink(out.write, exec.tty), ready: writableReady(socket) });
  execs.track(exec.id, ctl.resize, ctl.exit);
  pipeClientStdin(socket, ctl, exec.stdin, rest);
  await ctl.exit;
  await out.flushed();
}

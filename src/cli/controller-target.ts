/**
 * Which controller a command talks to, and as whom: `--controller URL --token T` on the command line, else the
 * current context (`boson context use NAME`), else this host's controller on its local socket (no token: the
 * socket's permissions make the caller the system admin, as `boson up --controller` sets it up). Contexts live in
 * <config dir>/contexts.json (directory 0700, file 0600: tokens are secrets), written whole to a temporary file and
 * renamed, like `boson login`'s credentials.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { BosonError, ERROR_CATALOGUE, type ErrorCode } from '../common/index.ts';
import { ControllerClient, type Task } from '../controller/index.ts';
import { controllerSocketPath, loadConfig } from '../main/index.ts';
import { StatusLine } from './output.ts';

/** A saved way to reach a controller. */
export interface ControllerContext {
  controller: string;
  token?: string;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
}

/** The contexts file. */
export interface ContextsFile {
  current?: string;
  contexts: Record<string, ControllerContext>;
}

/** The name of the implicit context: this host's controller on its local socket. */
export const LOCAL_CONTEXT = 'local';

/** The contexts file of this user. */
export function contextsPath(): string {
  return path.join(loadConfig().configDir, 'contexts.json');
}

/** Reads the contexts (none yet: an empty file). */
export async function readContexts(): Promise<ContextsFile> {
  try {
    const parsed = JSON.parse(await readFile(contextsPath(), 'utf8')) as ContextsFile;
    return { current: parsed.current, contexts: parsed.contexts ?? {} };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { contexts: {} };
    throw new BosonError('INVALID_ARGUMENT', `cannot read ${contextsPath()}: ${(err as Error).message}`, { cause: err });
  }
}

/** Writes the contexts (0600 in a 0700 directory, replaced whole). */
export async function writeContexts(file: ContextsFile): Promise<void> {
  const target = contextsPath();
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, target);
}

/** The local context: this host's controller socket. */
export function localContext(): ControllerContext {
  return { controller: `unix://${controllerSocketPath(loadConfig().paths)}` };
}

/** The flags every controller command takes. */
export interface TargetFlags {
  controller?: string;
  token?: string;
}

/** Adds --controller and --token to a command. */
export function withTarget(cmd: Command): Command {
  return cmd
    .option('--controller <url>', 'the controller: unix:///path, https://host:port (default: the current context, else this host)')
    .option('--token <token>', "the bearer token to use (default: the current context's)");
}

/** The TLS files of an https context (default: boson tls init's client files in <config dir>/tls). */
function tlsOf(ctx: ControllerContext): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const dir = path.join(loadConfig().configDir, 'tls');
  const read = (file: string | undefined, fallback: string): Buffer | undefined => {
    const f = file ?? path.join(dir, fallback);
    try {
      return readFileSync(f);
    } catch (err) {
      if (file !== undefined) throw new BosonError('INVALID_ARGUMENT', `cannot read ${f}: ${(err as Error).message}`);
      return undefined;
    }
  };
  return { ca: read(ctx.tlscacert, 'ca.pem'), cert: read(ctx.tlscert, 'cert.pem'), key: read(ctx.tlskey, 'key.pem') };
}

/** The client for a command's flags (see the module comment for the order). */
export async function controllerClient(flags: TargetFlags): Promise<ControllerClient> {
  let ctx: ControllerContext;
  if (flags.controller !== undefined) ctx = { controller: flags.controller };
  else {
    const file = await readContexts();
    const name = file.current ?? LOCAL_CONTEXT;
    ctx = name === LOCAL_CONTEXT ? localContext() : (file.contexts[name] ?? localContext());
  }
  if (flags.token !== undefined) ctx = { ...ctx, token: flags.token };
  return new ControllerClient({ url: ctx.controller, token: ctx.token, tls: ctx.controller.startsWith('https:') ? tlsOf(ctx) : undefined });
}

/** Splits TENANT/PROJECT; USAGE otherwise. */
export function splitProject(ref: string): { tenant: string; project: string } {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(ref);
  if (!m) throw new BosonError('USAGE', `expected TENANT/PROJECT, got ${JSON.stringify(ref)}`);
  return { tenant: m[1]!, project: m[2]! };
}

/** Collects a repeatable option. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * Waits for a task to end (showing its current step on a terminal), at most `timeoutSeconds`; resolves with the
 * finished task; its typed error when it failed; TASK_TIMEOUT when it did not end in time.
 */
export async function waitForTask(client: ControllerClient, task: Task, timeoutSeconds = 300): Promise<Task> {
  const status = new StatusLine();
  const end = Date.now() + timeoutSeconds * 1000;
  let t = task;
  try {
    while (t.state !== 'succeeded' && t.state !== 'failed') {
      const step = t.steps.find((s) => s.state === 'running') ?? t.steps.find((s) => s.state === 'queued');
      status.update(`${t.kind} ${t.target}: ${step?.name ?? t.state}`);
      const left = Math.ceil((end - Date.now()) / 1000);
      if (left <= 0)
        throw new BosonError('TASK_TIMEOUT', `task ${t.id} (${t.kind} ${t.target}) is still ${t.state} after ${timeoutSeconds}s`, {
          details: { task: t.id, state: t.state },
        });
      t = await client.waitTask(t.id, Math.min(left, 30));
    }
  } finally {
    status.clear();
  }
  return t;
}

/** The error a failed task ended with, as the typed error it was. */
export function taskError(t: Task): BosonError {
  const e = t.error ?? { code: 'INTERNAL', message: `task ${t.id} failed` };
  return new BosonError(
    e.code in ERROR_CATALOGUE ? (e.code as ErrorCode) : 'INTERNAL',
    `task ${t.id} (${t.kind} ${t.target}) failed: ${e.message}`,
    { details: { task: t.id, ...(e.details ?? {}) } },
  );
}

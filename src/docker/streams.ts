/**
 * Attach, exec and processes in the guest, for the Docker API: output in Docker's 8-byte frames (raw with a TTY),
 * stdin (held by the port until the container's process runs: `docker run` attaches before it starts), and a helper that
 * runs a command in a running micro-VM to completion (for `top` and `cp`).
 */
import type { Duplex } from 'node:stream';
import { frameSink } from '../common/index.ts';
import { localContext, type Container, type Machine, type MachineContainers } from '../machine/port/index.ts';

export { frameSink };

/** Calls on behalf of the Docker API's clients (no authentication on this personality yet). */
const LOCAL = localContext('docker');

/** Which streams an attach wants. */
export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  logs: boolean;
  stream: boolean;
}

/**
 * Attaches to a container (created or running): replays its log with `logs`, then follows its output with
 * `stream` until it exits or `signal` aborts; stdin from `input` when asked for and the container keeps it open.
 */
export async function runAttach(
  machine: Machine,
  record: Container,
  opts: AttachOptions,
  out: (b: Buffer) => void,
  input: Duplex | null,
  signal: AbortSignal,
  ready?: () => Promise<void>,
): Promise<void> {
  const { containers: service } = machine;
  const tty = record.config.tty;
  const sink = frameSink(out, tty, opts);
  if (opts.logs) {
    await service.logs(
      LOCAL,
      record.id,
      { stdout: opts.stdout, stderr: opts.stderr },
      false,
      (l) => (l.stream === 'stdout' ? sink.stdout(l.data) : sink.stderr(l.data)),
      signal,
      ready,
    );
  }
  if (!opts.stream || signal.aborted) return;
  // The port's attach: output from now on, read to the end once the micro-VM is gone (its follower holds the log
  // file open, so an auto-removed container's last output is read too), paced by the client (`ready`), plus stdin
  // and resize.
  const session = await service.attach(LOCAL, record.id, ready ? { ...sink, ready } : sink, signal);
  const output = session.done;
  if (input && opts.stdin && record.config.openStdin) {
    // The port holds stdin until the container's process runs (docker run attaches before it starts).
    input.on('data', (d: Buffer) => session.stdin(d));
    input.on('end', () => session.closeStdin());
    input.resume();
  } else if (input) {
    input.on('data', () => undefined);
    input.resume();
  }
  await output;
}

/** What a command run in the guest produced. */
export interface GuestResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `argv` as root in a running container's micro-VM to completion; stdout goes to `onStdout` when given
 * (otherwise it is collected), stdin comes from `stdin` when given.
 */
export async function guestExec(
  service: MachineContainers,
  id: string,
  argv: string[],
  opts: { stdin?: AsyncIterable<Buffer>; onStdout?: (d: Buffer) => void; offline?: boolean } = {},
): Promise<GuestResult> {
  const exec = await service.createExec(LOCAL, id, {
    argv,
    env: [],
    user: '0',
    cwd: '/',
    tty: false,
    stdin: opts.stdin !== undefined,
    ...(opts.offline ? { offline: true } : {}),
  });
  const out: Buffer[] = [];
  let err = '';
  const ctl = await service.startExec(LOCAL, exec.id, {
    stdout: (d) => (opts.onStdout ? opts.onStdout(d) : out.push(d)),
    stderr: (d) => {
      if (err.length < 65536) err += d.toString('utf8');
    },
  });
  if (opts.stdin) {
    let ended = false;
    void ctl.exit.then(() => (ended = true));
    // Read to the end even once the process is gone: breaking off would destroy the request and its socket.
    for await (const chunk of opts.stdin) if (!ended) ctl.stdin(chunk);
    if (!ended) ctl.closeStdin();
  }
  const code = await ctl.exit;
  return { code, stdout: Buffer.concat(out), stderr: err };
}

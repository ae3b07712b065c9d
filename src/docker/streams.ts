/**
 * Attach, exec and processes in the guest, for the Docker API: output in Docker's 8-byte frames (raw with a TTY),
 * stdin held back until the container's process runs (`docker run` attaches before it starts), and a helper that
 * runs a command in a running micro-VM to completion (for `top` and `cp`).
 */
import { openSync, closeSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { Duplex } from 'node:stream';
import { frameSink } from '../common/index.ts';
import { localContext, type Container, type MachineContainers, type MachineEvent, type StreamSink } from '../machine/index.ts';
import type { DockerMachine, MachineExtras } from './machine-access.ts';

export { frameSink };

/** How much of a log a follower delivers before it waits for its client (sink.ready). */
const FOLLOW_BATCH_BYTES = 1 << 20;

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
 * Holds stdin for a container until its process runs (the `start` event), then passes it on in order; EOF too.
 */
export function gatedStdin(
  extras: MachineExtras,
  id: string,
  send: (d: Buffer) => void,
  eof: () => void,
): { write(d: Buffer): void; end(): void; dispose(): void } {
  const queue: Array<Buffer | null> = [];
  let open = extras.isLive(id);
  const flush = (): void => {
    for (const item of queue.splice(0)) {
      if (item === null) eof();
      else send(item);
    }
  };
  const onEvent = (e: MachineEvent): void => {
    if (e.actorId !== id || e.action !== 'start') return;
    // The service marks the VM live right after it emits 'start'.
    setImmediate(() => {
      open = true;
      flush();
    });
  };
  const unsubscribe = open ? () => undefined : extras.onEvent(onEvent);
  return {
    write: (d) => {
      if (open) send(d);
      else queue.push(d);
    },
    end: () => {
      if (open) eof();
      else queue.push(null);
    },
    dispose: unsubscribe,
  };
}

/**
 * Attaches to a container (created or running): replays its log with `logs`, then follows its output with
 * `stream` until it exits or `signal` aborts; stdin from `input` when asked for and the container keeps it open.
 */
export async function runAttach(
  machine: DockerMachine,
  record: Container,
  opts: AttachOptions,
  out: (b: Buffer) => void,
  input: Duplex | null,
  signal: AbortSignal,
  ready?: () => Promise<void>,
): Promise<void> {
  const { containers: service, extras } = machine;
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
  const stop = new AbortController();
  const output = followOutput(extras, record.id, ready ? { ...sink, ready } : sink, signal).finally(() => stop.abort());
  signal.addEventListener('abort', () => stop.abort(), { once: true });
  // The service's attach gives stdin and resize; its own output follower is not used (ours ends at 'die').
  const session = await service.attach(LOCAL, record.id, { stdout: () => undefined, stderr: () => undefined }, stop.signal);
  if (input && opts.stdin && record.config.openStdin) {
    const gate = gatedStdin(
      extras,
      record.id,
      (d) => session.stdin(d),
      () => session.closeStdin(),
    );
    input.on('data', (d: Buffer) => gate.write(d));
    input.on('end', () => gate.end());
    signal.addEventListener('abort', () => gate.dispose(), { once: true });
    void output.finally(() => gate.dispose());
    input.resume();
  } else if (input) {
    input.on('data', () => undefined);
    input.resume();
  }
  await output;
  await session.done;
}

/**
 * Follows a container's output from now until it exits ('die' or 'destroy') or `signal` aborts. The log file is
 * read through a descriptor held open, so that the last output is still read when `--rm` has removed the file;
 * at 'die' the micro-VM has ended, so the file is complete and the stream ends at once.
 */
export function followOutput(extras: MachineExtras, id: string, sink: StreamSink, signal: AbortSignal): Promise<void> {
  const file = extras.logFile(id);
  let fd: number | null = null;
  let pos = 0;
  try {
    pos = statSync(file).size;
  } catch {
    pos = 0;
  }
  let watcher: FSWatcher | undefined;
  const open = (): void => {
    if (fd !== null) return;
    try {
      fd = openSync(file, 'r');
      watcher = watch(file, () => void pump());
      watcher.on('error', () => undefined);
    } catch {
      // Not created yet: QEMU creates it when the micro-VM boots.
    }
  };
  let chain: Promise<void> = Promise.resolve();
  const pump = (): Promise<void> => {
    chain = chain
      .then(async () => {
        open();
        if (fd === null) return;
        // Batch by batch, each once the client has taken the one before (sink.ready): a client that does not read
        // holds the output back in the log file, not in this process.
        for (;;) {
          const { lines, end } = await extras.readLog(`/proc/self/fd/${fd}`, pos, FOLLOW_BATCH_BYTES);
          const progressed = end > pos;
          pos = end;
          for (const l of lines) l.stream === 'stdout' ? sink.stdout(l.data) : sink.stderr(l.data);
          if (!progressed || fd === null) break;
          await sink.ready?.();
        }
      })
      .catch(() => undefined);
    return chain;
  };
  if (signal.aborted) return Promise.resolve();
  open();
  return new Promise<void>((resolve) => {
    let done = false;
    const timer = setInterval(() => void pump(), 250);
    let unsubscribe = (): void => undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      unsubscribe();
      void pump().then(() => {
        watcher?.close();
        if (fd !== null) closeSync(fd);
        fd = null;
        resolve();
      });
    };
    const onEvent = (e: MachineEvent): void => {
      if (e.actorId !== id) return;
      if (e.action === 'start') void pump();
      else if (e.action === 'die' || e.action === 'destroy') {
        open(); // synchronously, before an auto-remove deletes the file
        finish();
      }
    };
    unsubscribe = extras.onEvent(onEvent);
    signal.addEventListener(
      'abort',
      () => {
        if (done) return;
        done = true;
        clearInterval(timer);
        unsubscribe();
        watcher?.close();
        void chain.then(() => {
          if (fd !== null) closeSync(fd);
          fd = null;
          resolve();
        });
      },
      { once: true },
    );
  });
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
  opts: { stdin?: AsyncIterable<Buffer>; onStdout?: (d: Buffer) => void } = {},
): Promise<GuestResult> {
  const exec = await service.createExec(LOCAL, id, { argv, env: [], user: '0', cwd: '/', tty: false, stdin: opts.stdin !== undefined });
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

/**
 * `boson run`: one container in its own micro-VM, in the foreground, with Docker's flags and exit status. It is a
 * client of the one runtime: through the daemon when one answers (one upgraded request that streams the output and
 * ends with the exit status), otherwise the same runtime embedded in this process. Either way the container is a
 * container like any other: `boson ps`, `docker stop` and `docker kill` act on it, and `boson run` exits with its
 * status. Ctrl-C is forwarded to the container as SIGINT (with -t the guest's terminal makes it from the ^C byte);
 * a second Ctrl-C stops the micro-VM (137).
 */
import type { Command } from 'commander';
import type { Duplex } from 'node:stream';
import { BosonError } from '../../common/index.ts';
import { MachineClient, RemoteImages, StreamDemuxer, execStatusError, type ExecStatus } from '../../machine/client/index.ts';
import { localContext, type ContainerSpec, type MachineImages } from '../../machine/port/index.ts';
import { daemonAnswers, pullRequest, pullSteps } from '../machine.ts';
import { machineClient } from '../target-machine.ts';
import { loadEmbedded } from '../embedded.ts';
import { addContainerFlags, containerSpecOf, type ContainerFlags } from '../container-flags.ts';
import { StatusLine, flushOutput } from '../output.ts';

interface RunFlags extends ContainerFlags {
  detach?: boolean;
}

const FORWARDED_SIGNALS: Array<[NodeJS.Signals, number]> = [
  ['SIGTERM', 15],
  ['SIGHUP', 1],
  ['SIGQUIT', 3],
  ['SIGUSR1', 10],
  ['SIGUSR2', 12],
];

/** Adds `run` to the program. */
export function registerRun(program: Command): void {
  const run = program
    .command('run')
    .description('Run a command in a new container, in its own micro-VM')
    .argument('<image>', 'image reference (e.g. busybox)')
    .argument('[command...]', "command and arguments (default: the image's)")
    .option('-d, --detach', 'run in the background under the daemon; prints the container id')
    .passThroughOptions();
  addContainerFlags(run).action(async (image: string, command: string[], flags: RunFlags) => {
    const spec = await containerSpecOf(image, command, flags);
    if (flags.detach) {
      await runDetached(spec);
      return;
    }
    process.exit(await runForeground(spec));
  });
}

/**
 * Pulls the image if it is not here (as docker run does), with the status line and its warnings: through the
 * daemon when the run goes through it, else with this host's images in this process.
 */
async function pullIfMissing(image: string, client: MachineClient | null): Promise<void> {
  // This host's images are built (and their modules loaded) only when there is no daemon to ask.
  const machine = client
    ? { images: new RemoteImages(client) as MachineImages, remote: true, ctx: localContext() }
    : { images: (await loadEmbedded()).buildImages() as MachineImages, remote: false, ctx: localContext() };
  const status = new StatusLine();
  try {
    const request = await pullRequest(machine, { reference: image, ifMissing: true });
    await machine.images.pull(
      machine.ctx,
      request,
      pullSteps(
        (step) => status.update(step),
        (warning) => status.warn(warning),
      ),
    );
  } finally {
    status.clear();
  }
}

/** `run -d`: create and start under the daemon, and print the id. */
async function runDetached(spec: ContainerSpec): Promise<void> {
  const client = machineClient();
  await pullIfMissing(spec.image, client);
  const created = await client.request<{ id: string }>('POST', '/v1/containers', spec);
  try {
    await client.request('POST', `/v1/containers/${created.id}/start`);
  } catch (err) {
    if (spec.autoRemove) await client.request('DELETE', `/v1/containers/${created.id}?force=1`).catch(() => undefined);
    throw err;
  }
  process.stdout.write(`${created.id}\n`);
}

/** What the terminal wiring needs of a running container, wherever its runtime is. */
interface ForegroundRun {
  stdin(data: Buffer): void;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  /** Sends a signal to the container's process. */
  signal(signo: number): void;
  /** Stops the micro-VM at once (the second Ctrl-C). */
  stop(): void;
  /** The container's exit status. */
  exit: Promise<number>;
}

async function runForeground(spec: ContainerSpec): Promise<number> {
  const tty = Boolean(spec.process?.tty);
  const interactive = Boolean(spec.process?.stdin);
  if (tty && interactive && !process.stdin.isTTY)
    throw new BosonError('INVALID_ARGUMENT', 'the input device is not a TTY (drop -t, or run from a terminal)');
  const winsize = tty ? terminalSize() : undefined;
  // The container is removed by whoever runs it only once it has ended; it is never left half-made.
  const client = machineClient();
  const viaDaemon = await daemonAnswers(client);
  let run: ForegroundRun | undefined;
  let interrupts = 0;
  // Signals arriving while the VM boots: remember them and act once the process exists.
  const onInterrupt = (): void => {
    interrupts++;
    if (!run) return;
    if (interrupts === 1) run.signal(2);
    else run.stop();
  };
  process.on('SIGINT', onInterrupt);
  for (const [sig, num] of FORWARDED_SIGNALS) process.on(sig, () => run?.signal(num));
  await pullIfMissing(spec.image, viaDaemon ? client : null);
  run = viaDaemon ? await runThroughDaemon(client, spec, winsize) : await runEmbedded(spec, winsize);
  const started = run;
  // Ctrl-C pressed while the VM booted: one is a SIGINT for the process, two mean "stop".
  if (interrupts === 1) started.signal(2);
  else if (interrupts > 1) started.stop();
  const restoreTerminal = attachTerminal(started, tty, interactive);
  try {
    return await started.exit;
  } finally {
    restoreTerminal();
    await flushOutput();
  }
}

/** Output to this process's stdout and stderr, waiting for them when they are slow. */
function terminalSink(): { stdout(d: Buffer): void; stderr(d: Buffer): void } {
  return { stdout: (d) => void process.stdout.write(d), stderr: (d) => void process.stderr.write(d) };
}

/** The whole run in one upgraded request to the daemon (POST /v1/run); resize and signals by the container's id. */
async function runThroughDaemon(
  client: MachineClient,
  spec: ContainerSpec,
  winsize: { rows: number; cols: number } | undefined,
): Promise<ForegroundRun> {
  const stream: Duplex = await client.upgrade('/v1/run', { spec, winsize });
  let id: string | undefined;
  const pending: Array<() => void> = [];
  const byId = (fn: (id: string) => Promise<unknown>): void => {
    const go = (): void => void fn(id!).catch(() => undefined);
    if (id) go();
    else pending.push(go);
  };
  let status: ExecStatus | undefined;
  const sink = terminalSink();
  const demux = new StreamDemuxer(
    sink.stdout,
    sink.stderr,
    (s) => (status = s),
    (created) => {
      id = (JSON.parse(created.toString('utf8')) as { id: string }).id;
      for (const go of pending.splice(0)) go();
    },
    (notice) => new StatusLine().warn(notice),
  );
  stream.on('data', (d: Buffer) => demux.push(d));
  const exit = new Promise<number>((resolve, reject) => {
    const done = (): void => {
      if (!status) reject(new BosonError('DAEMON_UNAVAILABLE', 'lost the connection to the Boson daemon before the container ended'));
      else if (status.exitCode === null) reject(execStatusError(status));
      else resolve(status.exitCode);
    };
    stream.on('close', done);
    stream.on('error', () => undefined);
  });
  exit.catch(() => undefined);
  return {
    stdin: (d) => void stream.write(d),
    closeStdin: () => stream.end(),
    resize: (rows, cols) => byId((cid) => client.request('POST', `/v1/containers/${cid}/resize?h=${rows}&w=${cols}`)),
    signal: (signo) => byId((cid) => client.request('POST', `/v1/containers/${cid}/kill?signal=${signo}`)),
    stop: () => byId((cid) => client.request('POST', `/v1/containers/${cid}/stop?t=0`)),
    exit,
  };
}

/** No daemon: the same runtime, embedded in this process (its micro-VM dies with this process). */
async function runEmbedded(spec: ContainerSpec, winsize: { rows: number; cols: number } | undefined): Promise<ForegroundRun> {
  const { buildRuntime } = await loadEmbedded();
  const runtime = buildRuntime('embedded');
  await runtime.init();
  const ctx = localContext();
  let session;
  try {
    session = await runtime.run(ctx, spec, terminalSink(), { winsize, onNotice: (notice) => new StatusLine().warn(notice) });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const id = session.container.id;
  return {
    stdin: session.stdin,
    closeStdin: session.closeStdin,
    resize: session.resize,
    signal: session.signal,
    stop: () => void runtime.stop(ctx, id, 0).catch(() => undefined),
    exit: session.exit.then((r) => r.statusCode).finally(() => runtime.close()),
  };
}

/**
 * The size of this process's terminal, or undefined when stdout is not one or it has no size (a pty that nobody
 * sized, as script(1) or a CI runner makes, says 0×0): the guest's terminal then keeps its default, as docker run's
 * does.
 */
function terminalSize(): { rows: number; cols: number } | undefined {
  if (!process.stdout.isTTY) return undefined;
  const { rows, columns } = process.stdout;
  return rows > 0 && columns > 0 ? { rows, cols: columns } : undefined;
}

/** Wires this process's stdin and terminal to the container; returns a function that undoes it. */
function attachTerminal(run: ForegroundRun, tty: boolean, interactive: boolean): () => void {
  const raw = tty && interactive && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const onResize = (): void => {
    const size = terminalSize();
    if (size) run.resize(size.rows, size.cols);
  };
  if (tty && process.stdout.isTTY) process.stdout.on('resize', onResize);
  if (interactive) {
    process.stdin.on('data', (chunk: Buffer) => run.stdin(chunk));
    process.stdin.on('end', () => run.closeStdin());
    process.stdin.on('error', () => run.closeStdin());
  }
  return () => {
    if (raw) process.stdin.setRawMode(false);
    process.stdout.off('resize', onResize);
    if (interactive) process.stdin.pause();
  };
}

/**
 * `boson run`: one container in its own micro-VM, in the foreground, with Docker's flags and exit status.
 * Ctrl-C is forwarded to the container as SIGINT (with -t the guest's terminal makes it from the ^C byte); a second
 * Ctrl-C stops the VM. The exit status is the container's.
 */
import type { Command } from 'commander';
import { BosonError, bosonPaths } from '../../common/index.ts';
import { ImageStore } from '../../image/index.ts';
import { ContainerRunner, MachineClient, daemonSocketPath, hostCpuCount, parseCpus, parseMemory, type RunningContainer } from '../../machine/index.ts';
import { addContainerFlags, createBody, diskSizeBytes, envFromFlags, type ContainerFlags } from '../container-flags.ts';
import { StatusLine } from '../output.ts';

interface RunFlags extends ContainerFlags {
  detach?: boolean;
}

const FORWARDED_SIGNALS: Array<[NodeJS.Signals, number]> = [['SIGTERM', 15], ['SIGHUP', 1], ['SIGQUIT', 3], ['SIGUSR1', 10], ['SIGUSR2', 12]];

/** Adds `run` to the program. */
export function registerRun(program: Command): void {
  const run = program
    .command('run')
    .description('Run a command in a new container, in its own micro-VM')
    .argument('<image>', 'image reference (e.g. busybox)')
    .argument('[command...]', 'command and arguments (default: the image\'s)')
    .option('-d, --detach', 'run in the background under the daemon; prints the container id')
    .passThroughOptions();
  addContainerFlags(run).action(async (image: string, command: string[], flags: RunFlags) => {
    if (flags.detach) {
      await runDetached(image, command, flags);
      return;
    }
    process.exit(await runCommand(image, command, flags));
  });
}

/**
 * `run -d`: pull the image if it is not here (like `docker run`; in this process, since the daemon shares the
 * store), then create and start under the daemon, and print the id.
 */
async function runDetached(image: string, args: string[], flags: RunFlags): Promise<void> {
  const paths = bosonPaths();
  const client = new MachineClient(daemonSocketPath(paths));
  const status = new StatusLine();
  try {
    await new ImageStore(paths.stateDir, { rootless: paths.rootless }).resolveOrPull(image, {
      onStep: (step) => status.update(step),
      onProgress: (e) => {
        if (e.phase === 'warning' && e.detail) status.warn(e.detail);
      },
    });
  } finally {
    status.clear();
  }
  const created = await client.request<{ id: string }>('POST', '/v1/containers', await createBody(image, args, flags));
  try {
    await client.request('POST', `/v1/containers/${created.id}/start`);
  } catch (err) {
    if (flags.rm) await client.request('DELETE', `/v1/containers/${created.id}?force=1`).catch(() => undefined);
    throw err;
  }
  process.stdout.write(`${created.id}\n`);
}

async function runCommand(image: string, args: string[], flags: RunFlags): Promise<number> {
  if (flags.restart !== undefined) throw new BosonError('INVALID_ARGUMENT', '--restart applies to daemon-managed containers: add -d');
  if ((flags.volume ?? []).length > 0 || (flags.publish ?? []).length > 0 || flags.publishAll || flags.network !== undefined) {
    throw new BosonError('INVALID_ARGUMENT', 'volumes, networks and published ports are set up by the daemon: run with -d (with boson up running), then boson logs or attach');
  }
  const env = await envFromFlags(flags);
  const memoryMiB = flags.memory === undefined ? undefined : parseMemory(flags.memory);
  const cpus = flags.cpus === undefined ? undefined : parseCpus(flags.cpus, hostCpuCount());
  const tty = Boolean(flags.tty);
  const interactive = Boolean(flags.interactive);
  const stdinIsTerminal = Boolean(process.stdin.isTTY);
  if (tty && interactive && !stdinIsTerminal) throw new BosonError('INVALID_ARGUMENT', 'the input device is not a TTY (drop -t, or run from a terminal)');

  const status = new StatusLine();
  const runner = new ContainerRunner(bosonPaths());
  let container: RunningContainer | undefined;
  let interrupts = 0;
  // Signals arriving while the VM boots: remember them and act once the process exists.
  const onInterrupt = (): void => {
    interrupts++;
    if (!container) return;
    if (interrupts === 1) container.session.signal(2);
    else void container.stop(0);
  };
  process.on('SIGINT', onInterrupt);
  for (const [sig, num] of FORWARDED_SIGNALS) process.on(sig, () => container?.session.signal(num));

  try {
    container = await runner.run(
      {
        image, args, env, workdir: flags.workdir, user: flags.user, entrypoint: flags.entrypoint, hostname: flags.hostname,
        name: flags.name, autoRemove: Boolean(flags.rm), tty, interactive, memoryMiB, cpus, diskSizeBytes: diskSizeBytes(flags),
        winsize: tty && process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
      },
      { stdout: process.stdout, stderr: process.stderr },
      {
        onStep: (step) => status.update(step),
        onRetry: (attempt) => process.stderr.write(`boson: micro-VM boot hung, retrying (attempt ${attempt})\n`),
        onWarning: (text) => status.warn(text),
      },
    );
  } finally {
    status.clear();
  }
  const running = container;
  // Ctrl-C pressed while the VM booted: one is a SIGINT for the process, two mean "stop".
  if (interrupts === 1) running.session.signal(2);
  else if (interrupts > 1) void running.stop(0);

  const restoreTerminal = attachTerminal(running, tty, interactive);
  try {
    const exit = await running.exit;
    if (process.env.BOSON_TIMINGS) process.stderr.write(`boson-timings ${JSON.stringify({ ...running.timings, settled: Math.round(performance.now() - running.timings.startup) })}\n`);
    return exit.status;
  } finally {
    restoreTerminal();
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  }
}

/** Wires this process's stdin and terminal to the container; returns a function that undoes it. */
function attachTerminal(container: RunningContainer, tty: boolean, interactive: boolean): () => void {
  const { session } = container;
  const raw = tty && interactive && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const onResize = (): void => session.resize(process.stdout.rows, process.stdout.columns);
  if (tty && process.stdout.isTTY) process.stdout.on('resize', onResize);
  if (interactive) {
    process.stdin.on('data', (chunk: Buffer) => {
      if (!session.writeStdin(chunk)) {
        process.stdin.pause();
        session.stream.once('drain', () => process.stdin.resume());
      }
    });
    process.stdin.on('end', () => session.closeStdin());
    process.stdin.on('error', () => session.closeStdin());
  }
  return () => {
    if (raw) process.stdin.setRawMode(false);
    process.stdout.off('resize', onResize);
    if (interactive) process.stdin.pause();
  };
}

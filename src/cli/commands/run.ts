/**
 * `boson run`: one container in its own micro-VM, in the foreground, with Docker's flags and exit status.
 * Ctrl-C is forwarded to the container as SIGINT (with -t the guest's terminal makes it from the ^C byte); a second
 * Ctrl-C stops the VM. The exit status is the container's.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BosonError, bosonPaths } from '../../common/index.ts';
import { ContainerRunner, hostCpuCount, parseCpus, parseEnvFile, parseMemory, type RunningContainer } from '../../machine/index.ts';
import { StatusLine } from '../output.ts';

interface RunFlags {
  rm?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  interactive?: boolean;
  tty?: boolean;
  memory?: string;
  cpus?: string;
  hostname?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

const FORWARDED_SIGNALS: Array<[NodeJS.Signals, number]> = [['SIGTERM', 15], ['SIGHUP', 1], ['SIGQUIT', 3], ['SIGUSR1', 10], ['SIGUSR2', 12]];

/** Adds `run` to the program. */
export function registerRun(program: Command): void {
  program
    .command('run')
    .description('Run a command in a new container, in its own micro-VM')
    .argument('<image>', 'image reference (e.g. busybox)')
    .argument('[command...]', 'command and arguments (default: the image\'s)')
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'name the container')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable; KEY alone copies it from this shell)', collect, [])
    .option('--env-file <file>', 'read environment variables from a file (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user to run as (name or uid, optional group)')
    .option('--entrypoint <cmd>', 'override the image\'s entrypoint ("" clears it)')
    .option('-i, --interactive', 'keep stdin open and forward it')
    .option('-t, --tty', 'allocate a pseudo-terminal in the guest')
    .option('-m, --memory <size>', 'memory of the micro-VM (e.g. 512m, 1g; default 256m)')
    .option('--cpus <n>', 'vCPUs of the micro-VM (default 1)')
    .option('-h, --hostname <name>', 'hostname inside the container')
    .passThroughOptions()
    .helpOption('--help', 'display help for command')
    .action(async (image: string, command: string[], flags: RunFlags) => {
      process.exit(await runCommand(image, command, flags));
    });
}

async function runCommand(image: string, args: string[], flags: RunFlags): Promise<number> {
  const env = [...flags.env];
  for (const file of flags.envFile) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      throw new BosonError('INVALID_ARGUMENT', `cannot read env file ${file}: ${(cause as Error).message}`, { cause });
    }
    env.push(...parseEnvFile(text, process.env, file));
  }
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
        name: flags.name, autoRemove: Boolean(flags.rm), tty, interactive, memoryMiB, cpus,
        winsize: tty && process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
      },
      { stdout: process.stdout, stderr: process.stderr },
      {
        onStep: (step) => status.update(step),
        onRetry: (attempt) => process.stderr.write(`boson: micro-VM boot hung, retrying (attempt ${attempt})\n`),
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
    if (process.env.BOSON_TIMINGS) process.stderr.write(`boson-timings ${JSON.stringify(running.timings)}\n`);
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

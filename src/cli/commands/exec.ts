/** `boson attach` and `boson exec`: this terminal on a daemon container's process, through the typed client. */
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { execStatusError, type ExecStatus } from '../../machine/client/index.ts';
import type { ExecSpec } from '../../machine/port/index.ts';
import { envFromFlags } from '../container-flags.ts';
import { ctx, machine, pump } from '../daemon.ts';
import { flushOutput } from '../output.ts';

/** Adds `attach` and `exec`. */
export function registerExecCommands(program: Command): void {
  program
    .command('attach')
    .description('Attach this terminal to a running container')
    .argument('<container>')
    .option('--no-stdin', 'do not forward stdin')
    .action(async (ref: string, flags: { stdin: boolean }) => {
      const m = machine();
      const container = await m.inspect(ctx, ref);
      const stream = await m.openAttach(ctx, container.id);
      await pump(stream, container.config.tty, flags.stdin && container.config.openStdin);
      const result = await m.wait(ctx, container.id);
      await flushOutput();
      process.exit(result.statusCode);
    });

  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  program
    .command('exec')
    .description('Run a further command in a running container')
    .argument('<container>')
    .argument('<command...>')
    .option('-i, --interactive', 'forward stdin')
    .option('-t, --tty', 'allocate a pty')
    .option('-d, --detach', 'run in the background')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', 'user to run as')
    .passThroughOptions()
    .helpOption('--help', 'display help for command')
    .action(
      async (
        ref: string,
        command: string[],
        flags: { interactive?: boolean; tty?: boolean; detach?: boolean; env: string[]; workdir?: string; user?: string },
      ) => {
        const m = machine();
        const env = await envFromFlags({ env: flags.env, envFile: [], label: [] });
        const spec: ExecSpec = {
          argv: command,
          env,
          cwd: flags.workdir,
          user: flags.user,
          tty: Boolean(flags.tty),
          stdin: Boolean(flags.interactive) && !flags.detach,
        };
        if (flags.detach) {
          const { id } = await m.createExec(ctx, ref, spec);
          (await m.openExecStart(ctx, id)).destroy();
          return;
        }
        // One request: the exit status comes at the end of the stream.
        const stream = await m.openExec(ctx, ref, spec);
        let status: ExecStatus | undefined;
        await pump(stream, Boolean(flags.tty), Boolean(flags.interactive), true, (s) => (status = s));
        if (!status) throw new BosonError('DAEMON_UNAVAILABLE', 'lost the connection to the Boson daemon before the exec ended');
        if (status.exitCode === null) throw execStatusError(status);
        await flushOutput();
        process.exit(status.exitCode);
      },
    );
}

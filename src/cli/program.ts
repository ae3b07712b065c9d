/**
 * The commander program every entry point of the CLI shares (src/cli/main.ts for all commands, src/cli/light.ts
 * for the few that must start fastest), and the one place where an error becomes a message and an exit status
 * (see docs/api.md).
 */
import { Command, CommanderError } from 'commander';
import { ERROR_CATALOGUE } from '../common/index.ts';

/** A new `boson` program with Boson's description, version, output and error conventions. */
export function createProgram(): Command {
  const program = new Command('boson')
    .description('Run every container in its own micro-VM')
    .version('0.1.0')
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `boson: ${s}` : s) });
  return program;
}

/**
 * How a failure becomes a message and an exit status: output.ts's reportError, which each entry point passes as it
 * loads modules (main.ts loads output.ts on the first failure; light.ts, one file, has it already).
 */
export type ErrorReporter = (err: unknown, json: boolean) => number | Promise<number>;

/** Registers commands with `register`, parses argv and runs; every failure ends the process with its exit status. */
export async function runProgram(register: (program: Command) => Promise<void> | void, report: ErrorReporter): Promise<void> {
  // Boson's state is private (containers' environment often holds secrets; logs, blobs and disks are the user's
  // data): everything this process creates is for its own user only. Sockets meant for a group are opened up
  // explicitly where they are made.
  process.umask(0o077);
  const program = createProgram();
  try {
    await register(program);
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version requests end with exit 0; every other commander error is a usage error it already printed.
      const helpOrVersion = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code);
      process.exit(helpOrVersion ? 0 : ERROR_CATALOGUE.USAGE.exit);
    }
    process.exit(await report(err, process.argv.includes('--json')));
  }
}

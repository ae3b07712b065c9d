/**
 * The `boson` command line. Each command lives in its own file under commands/; this file wires them into
 * commander and turns every error into one message and a distinct exit status (see docs/api.md).
 *
 * Start-up: only the modules of the command asked for are loaded (dynamic imports, which the esbuild bundle of
 * bin/boson turns into chunks): `boson pull` does not load the machine, the VMM or the table printer. Help,
 * version and anything unrecognised register every command.
 */
import { Command, CommanderError } from 'commander';
import { ERROR_CATALOGUE } from '../common/index.ts';

const program = new Command('boson')
  .description('Run every container in its own micro-VM')
  .version('0.1.0')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();
program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `boson: ${s}` : s) });

/** Commands whose module registers exactly the top-level names listed (and nothing that another module needs). */
const LIGHT: Record<string, () => Promise<(program: Command) => void>> = {
  pull: async () => (await import('./commands/pull.ts')).registerPullCommands,
  login: async () => (await import('./commands/pull.ts')).registerPullCommands,
  logout: async () => (await import('./commands/pull.ts')).registerPullCommands,
};

async function registerAll(): Promise<void> {
  const [run, info, images, up, containers, pull] = await Promise.all([
    import('./commands/run.ts'),
    import('./commands/info.ts'),
    import('./commands/images.ts'),
    import('./commands/up.ts'),
    import('./commands/containers.ts'),
    import('./commands/pull.ts'),
  ]);
  run.registerRun(program);
  info.registerInfo(program);
  images.registerImageCommands(program);
  up.registerUp(program);
  containers.registerContainerCommands(program);
  containers.registerVolumeCommands(program);
  containers.registerNetworkCommands(program);
  pull.registerPullCommands(program);
}

try {
  const light = LIGHT[process.argv[2] ?? ''];
  if (light) (await light())(program);
  else await registerAll();
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version requests end with exit 0; every other commander error is a usage error it already printed.
    const helpOrVersion = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code);
    process.exit(helpOrVersion ? 0 : ERROR_CATALOGUE.USAGE.exit);
  }
  process.exit((await import('./output.ts')).reportError(err, process.argv.includes('--json')));
}

/**
 * The `boson` command line. Each command lives in its own file under commands/; this file wires them into
 * commander and turns every error into one message and a distinct exit status (see docs/api.md).
 */
import { Command, CommanderError } from 'commander';
import { ERROR_CATALOGUE } from '../common/index.ts';
import { reportError } from './output.ts';
import { registerRun } from './commands/run.ts';
import { registerInfo } from './commands/info.ts';
import { registerImageCommands } from './commands/images.ts';
import { registerUp } from './commands/up.ts';
import { registerContainerCommands, registerNetworkCommands, registerVolumeCommands } from './commands/containers.ts';
import { registerPullCommands } from './commands/pull.ts';

const program = new Command('boson')
  .description('Run every container in its own micro-VM')
  .version('0.1.0')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();
program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `boson: ${s}` : s) });

registerRun(program);
registerInfo(program);
registerImageCommands(program);
registerUp(program);
registerContainerCommands(program);
registerVolumeCommands(program);
registerNetworkCommands(program);
registerPullCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version requests end with exit 0; every other commander error is a usage error it already printed.
    const helpOrVersion = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code);
    process.exit(helpOrVersion ? 0 : ERROR_CATALOGUE.USAGE.exit);
  }
  process.exit(reportError(err, process.argv.includes('--json')));
}


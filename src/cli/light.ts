/**
 * The entry point of `pull`, `login` and `logout` (a cached pull has a 100 ms budget, half of which is Node's own
 * start). bin/boson runs its bundle, build/cli/light.mjs, for those commands. One file: Node's ESM loader costs
 * about a millisecond per module, and the split bundle of main.ts would load several. It carries this host's images
 * (a pull without a daemon is done in this process), not the containers or the VMM. `run` has its own one-file
 * entry, run-light.ts; everything else (and help for the whole CLI) goes through main.ts.
 */
import { registerLoginCommands } from './commands/login.ts';
import { registerPullCommands } from './commands/pull.ts';
import { reportError } from './output.ts';
import { runProgram } from './program.ts';

await runProgram((program) => {
  registerPullCommands(program);
  registerLoginCommands(program);
}, reportError);

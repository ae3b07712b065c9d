/**
 * The entry point of the commands that must start fastest: `run` (the start of every container) and `pull` (a cached
 * pull has a 100 ms budget, half of which is Node's own start). bin/boson runs its bundle for those commands.
 *
 * It is bundled as one file (build/cli/light.mjs), tree-shaken to what these commands need when a daemon answers:
 * Node's ESM loader costs about a millisecond per module, and a module's source is compiled whether or not its code
 * runs. Without a daemon the command goes whole to the full CLI (see embedded-light.ts), which the bundle does not
 * carry. Everything else (and help for the whole CLI) goes through main.ts.
 */
import { registerPullCommands } from './commands/pull.ts';
import { registerRun } from './commands/run.ts';
import { reportError } from './output.ts';
import { runProgram } from './program.ts';

await runProgram((program) => {
  registerRun(program);
  registerPullCommands(program);
}, reportError);

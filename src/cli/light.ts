/**
 * The entry point for the commands that must start fastest: `pull`, `login` and `logout` (a cached pull has a
 * 100 ms budget, half of which is Node's own start). bin/boson runs it for those commands. It is bundled as one
 * file: Node's ESM loader costs about a millisecond per module, and the split bundle of main.ts would load six.
 * Everything else (and help for the whole CLI) goes through main.ts.
 */
import { registerPullCommands } from './commands/pull.ts';
import { runProgram } from './program.ts';

await runProgram(registerPullCommands);

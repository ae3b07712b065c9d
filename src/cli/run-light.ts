/**
 * The entry point of `boson run`, the start of every container. bin/boson runs its bundle, build/cli/run.mjs: one
 * file (Node's ESM loader costs about a millisecond per module, and a module's source is compiled whether or not its
 * code runs), tree-shaken to what a run through the daemon needs. It carries no machine: a run that finds no daemon
 * is handed whole to the full CLI (embedded-light.ts), which embeds one.
 */
import { registerRun } from './commands/run.ts';
import { reportError } from './output.ts';
import { runProgram } from './program.ts';

await runProgram(registerRun, reportError);

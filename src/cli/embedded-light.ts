/**
 * embedded.ts as the one-file bundle of `run` has it (src/cli/run-light.ts; scripts/bundle-cli.mjs swaps it in). That
 * bundle carries no machine: a run that finds no daemon is handed whole to the full CLI beside it
 * (build/cli/boson.mjs), which parses the same arguments again and embeds the machine. Its callers ask for the
 * embedded machine before they print anything, so the hand-over is not seen.
 */
export async function loadEmbedded(): Promise<never> {
  await import(new URL('./boson.mjs', import.meta.url).href);
  // The full CLI has run the command (a failure ends the process there, with its exit status).
  process.exit(process.exitCode ?? 0);
}

/**
 * This process's own machine, for a command that finds no daemon: the composition root (src/main), loaded only
 * then. Every command loads it through here, never by a static import of its builders, so that a command that
 * finds a daemon does not load them. The one-file bundle of `run` (src/cli/run-light.ts) is built with
 * embedded-light.ts in place of this module.
 */
export function loadEmbedded(): Promise<typeof import('../main/index.ts')> {
  return import('../main/index.ts');
}

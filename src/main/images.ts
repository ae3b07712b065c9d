/**
 * The composition root's builder of this host's images alone, for the commands that need nothing else (a pull in
 * a CLI process without a daemon): it opens neither the container state nor anything of the VMM, and it is kept
 * apart from root.ts so that the CLI's one-file pull bundle does not load them.
 */
import path from 'node:path';
import { bosonPaths, type BosonPaths } from '../common/index.ts';
import { ImageStore } from '../image/index.ts';
import { ImageService, openStateStore } from '../machine/index.ts';

/**
 * This host's images for pulls, lists and inspection. It does not know which images containers use, so removal
 * and prune are refused: those take the runtime's image service (buildRuntime(...).imageService).
 */
export function buildImages(paths: BosonPaths = bosonPaths()): ImageService {
  return new ImageService(new ImageStore(openStateStore(paths.stateDir), paths.stateDir, { rootless: paths.rootless }), {
    spoolDir: path.join(paths.stateDir, 'tmp'),
  });
}

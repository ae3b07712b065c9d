/**
 * Where Boson keeps its files. Every directory can be moved with one environment variable, so tests and CI run
 * in private trees and never touch a user's real state.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository (package) root, found from this file's location. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The directories Boson uses, resolved from the environment. */
export interface BosonPaths {
  /** Persistent state: images, blobs, root disks, containers. BOSON_STATE_DIR, default /var/lib/boson. */
  readonly stateDir: string;
  /** Runtime files that do not survive a reboot. BOSON_RUN_DIR, default /run/boson. */
  readonly runDir: string;
  /** Built guest artifacts (boson-init, initramfs). BOSON_GUEST_DIR, default <package>/build/guest. */
  readonly guestDir: string;
}

/** Resolves Boson's directories from `env` (defaults to process.env). */
export function bosonPaths(env: NodeJS.ProcessEnv = process.env): BosonPaths {
  return {
    stateDir: path.resolve(env.BOSON_STATE_DIR ?? '/var/lib/boson'),
    runDir: path.resolve(env.BOSON_RUN_DIR ?? '/run/boson'),
    guestDir: path.resolve(env.BOSON_GUEST_DIR ?? path.join(PACKAGE_ROOT, 'build', 'guest')),
  };
}

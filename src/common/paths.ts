/**
 * Where Boson keeps its files. Every directory can be moved with one environment variable, so tests and CI run
 * in private trees and never touch a user's real state.
 *
 * A daemon run by root uses the system directories (/var/lib/boson, /run/boson). Any other user runs Boson in
 * **rootless mode** (user-mode networking by passt, root disks built in a user namespace) with per-user directories
 * that follow XDG, as rootless Docker and Podman do: $XDG_DATA_HOME/boson (~/.local/share/boson) and
 * $XDG_RUNTIME_DIR/boson (or /tmp/boson-<uid> when there is no runtime directory).
 */
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

/** The repository (package) root, found from this file's location. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The directories Boson uses, resolved from the environment. */
export interface BosonPaths {
  /**
   * Persistent state: images, blobs, root disks, containers. BOSON_STATE_DIR, default /var/lib/boson
   * (rootless: $XDG_DATA_HOME/boson, else ~/.local/share/boson).
   */
  readonly stateDir: string;
  /**
   * Runtime files that do not survive a reboot. BOSON_RUN_DIR, default /run/boson (rootless: $XDG_RUNTIME_DIR/boson,
   * else /tmp/boson-<uid>).
   */
  readonly runDir: string;
  /** Built guest artifacts (boson-init, initramfs). BOSON_GUEST_DIR, default <package>/build/guest. */
  readonly guestDir: string;
  /** True when this process is not root: rootless mode (see rootlessMode()). */
  readonly rootless: boolean;
}

/** True when Boson runs in rootless mode: the effective user is not root. */
export function rootlessMode(): boolean {
  return (process.geteuid?.() ?? 0) !== 0;
}

/**
 * Resolves Boson's directories from `env` (the composition root's loadConfig passes the process's environment);
 * `rootless` defaults to rootlessMode().
 */
export function bosonPaths(env: NodeJS.ProcessEnv, rootless = rootlessMode()): BosonPaths {
  const home = (): string => env.HOME || os.homedir();
  const uid = process.geteuid?.() ?? 0;
  const stateDefault = rootless ? path.join(env.XDG_DATA_HOME || path.join(home(), '.local', 'share'), 'boson') : '/var/lib/boson';
  const runDefault = rootless ? (env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, 'boson') : `/tmp/boson-${uid}`) : '/run/boson';
  return {
    stateDir: path.resolve(env.BOSON_STATE_DIR || stateDefault),
    runDir: path.resolve(env.BOSON_RUN_DIR || runDefault),
    guestDir: path.resolve(env.BOSON_GUEST_DIR ?? path.join(PACKAGE_ROOT, 'build', 'guest')),
    rootless,
  };
}

/** The daemon socket for `paths`; `host` (the BOSON_HOST setting: unix:///path or a path) overrides. */
export function daemonSocketPath(paths: BosonPaths, host?: string): string {
  if (host) return host.replace(/^unix:\/\//, '');
  return path.join(paths.runDir, 'boson.sock');
}

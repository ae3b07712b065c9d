/**
 * What a client process (a CLI command that talks to a daemon) needs of this host's settings, read on their own:
 * the daemon's socket, the terminal settings and the user's credential files. loadConfig reads the same variables
 * through these functions. This module loads no schema library and builds nothing, so that the one-file bundle of
 * the CLI's fastest commands (src/cli/light.ts) stays small; every export is re-exported by src/main/index.ts.
 */
import os from 'node:os';
import path from 'node:path';
import { bosonPaths, daemonSocketPath } from '../common/index.ts';
import { CredentialStore } from '../image/index.ts';

/** Boson's configuration directory: BOSON_CONFIG_DIR, else $XDG_CONFIG_HOME/boson, else ~/.config/boson. */
export function bosonConfigDir(env: NodeJS.ProcessEnv): string {
  if (env.BOSON_CONFIG_DIR) return path.resolve(env.BOSON_CONFIG_DIR);
  const xdg = env.XDG_CONFIG_HOME;
  return path.join(xdg ? path.resolve(xdg) : path.join(env.HOME ?? os.homedir(), '.config'), 'boson');
}

/** Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  const dir = env.DOCKER_CONFIG ? path.resolve(env.DOCKER_CONFIG) : path.join(env.HOME ?? os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/**
 * The CLI's terminal settings (BOSON_QUIET, BOSON_DEBUG), read on their own and never refused, so that showing
 * progress or reporting an error (a malformed setting included) cannot fail; loadConfig reads them the same way.
 */
export function terminalSettings(env: NodeJS.ProcessEnv = process.env): { quiet: boolean; debug: boolean } {
  return { quiet: Boolean(env.BOSON_QUIET), debug: Boolean(env.BOSON_DEBUG) };
}

/** The daemon socket a client of this host talks to (BOSON_HOST, else <run dir>/boson.sock); hostSocketPath's. */
export function clientSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return daemonSocketPath(bosonPaths(env), hostSetting(env));
}

/** BOSON_HOST: the daemon socket (unix:///path or a path) instead of <run dir>/boson.sock; undefined if unset. */
export function hostSetting(env: NodeJS.ProcessEnv): string | undefined {
  return env.BOSON_HOST || undefined;
}

/** This user's registry credentials (Boson's auth.json, then Docker's config.json), as the CLI sends them along. */
export function clientCredentialStore(env: NodeJS.ProcessEnv = process.env): CredentialStore {
  return new CredentialStore({ configDir: bosonConfigDir(env), dockerConfigFile: dockerConfigPath(env) });
}

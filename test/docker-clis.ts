/**
 * The docker CLIs the Docker suites drive Boson with. Debian's /usr/bin/docker (docker.io 20.10, API 1.41) is
 * what the setup command installs, so it is always tested. A newer CLI (Docker's own builds, e.g. 28.x in
 * /usr/local/bin) is tested too where one is installed; where none is, its suite is skipped with a message.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { collect, type BosonResult } from './helpers.ts';

/** One docker CLI binary. */
export interface DockerCli {
  /** Absolute path of the binary. */
  path: string;
  /** Its client version, e.g. "20.10.24+dfsg1". */
  version: string;
}

/** Debian's docker CLI (package docker.io). */
export const DEBIAN_DOCKER_PATH = '/usr/bin/docker';

function probe(file: string): DockerCli | null {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    return null;
  }
  // `docker --version` needs no daemon: "Docker version 20.10.24+dfsg1, build 297e128".
  const text = execFileSync(file, ['--version'], { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent' } });
  const version = /Docker version ([^\s,]+)/.exec(text)?.[1];
  if (!version) throw new Error(`${file} --version printed no version: ${text}`);
  return { path: file, version };
}

const major = (cli: DockerCli): number => Number(cli.version.split('.')[0]);

/** Debian's CLI; throws a clear error when it is missing (run the setup command). */
export function debianDocker(): DockerCli {
  const cli = probe(DEBIAN_DOCKER_PATH);
  if (!cli) throw new Error(`${DEBIAN_DOCKER_PATH} is missing: the setup command installs Debian's docker.io`);
  return cli;
}

/** A docker CLI newer than Debian's (major version above 20) on PATH or in /usr/local/bin, or why there is none. */
export function newerDocker(): DockerCli | { missing: string } {
  const candidates = [
    ...(process.env.PATH ?? '')
      .split(':')
      .filter(Boolean)
      .map((d) => path.join(d, 'docker')),
    '/usr/local/bin/docker',
  ];
  for (const file of new Set(candidates.map((c) => path.resolve(c)))) {
    if (file === DEBIAN_DOCKER_PATH) continue;
    const cli = probe(file);
    if (cli && major(cli) > 20) return cli;
  }
  return {
    missing: "no docker CLI newer than Debian's 20.10 is installed (e.g. Docker's own build in /usr/local/bin/docker): its run is skipped",
  };
}

/**
 * A runner of `cli` against the Docker socket in a test daemon's run directory, with its own client config
 * directory (both read when it runs: the daemon and the directory may come later, in before()).
 */
export function dockerOn(cli: DockerCli, runDir: () => string, configDir: () => string): (args: string[]) => Promise<BosonResult> {
  return (args) =>
    collect(
      spawn(cli.path, args, {
        env: { ...process.env, DOCKER_HOST: `unix://${runDir()}/docker.sock`, DOCKER_CONFIG: configDir(), DOCKER_CLI_HINTS: 'false' },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
      undefined,
      90_000,
      [cli.path, ...args],
    );
}

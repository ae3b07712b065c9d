/**
 * Turning what a user asked for (flags) and what the image says (its config) into the one container
 * configuration the guest runs, with Docker's precedence rules. Pure functions; validation errors are
 * INVALID_ARGUMENT and name the offending value.
 */
import { BosonError } from '../common/index.ts';
import type { ImageConfig } from '../image/index.ts';
import type { LogOptions, ProcessSpec, RestartPolicy } from './port/index.ts';

/** The parts of an image config that shape a container's process. */
export type ImageDefaults = Pick<ImageConfig, 'entrypoint' | 'cmd' | 'env' | 'workingDir' | 'user'>;

/** The resolved configuration of a container's process. */
export interface ProcessConfig {
  argv: string[];
  env: string[];
  cwd: string;
  user: string;
  hostname: string;
}

/** Default PATH, as Docker sets it when an image has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const ENV_KEY = /^[^=\0]+$/;

/** Merges env lists: later entries replace earlier ones with the same key, order of first appearance kept. */
export function mergeEnv(...lists: string[][]): string[] {
  const map = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf('=');
      map.set(eq < 0 ? kv : kv.slice(0, eq), kv);
    }
  }
  return [...map.values()];
}

/** Expands "-e KEY" (no '=') from the host environment, dropping it when the host has no such variable. */
export function expandEnvArgs(values: string[], hostEnv: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const value of values) {
    const eq = value.indexOf('=');
    const key = eq < 0 ? value : value.slice(0, eq);
    if (!ENV_KEY.test(key) || /\s/.test(key))
      throw new BosonError('INVALID_ARGUMENT', `invalid environment variable: ${JSON.stringify(value)}`);
    if (eq >= 0) out.push(value);
    else if (hostEnv[key] !== undefined) out.push(`${key}=${hostEnv[key]}`);
  }
  return out;
}

/** Parses an --env-file's text: KEY=value or KEY lines, '#' comments and blank lines ignored (Docker's format). */
export function parseEnvFile(text: string, hostEnv: NodeJS.ProcessEnv, fileName = 'env file'): string[] {
  const values: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('=')) throw new BosonError('INVALID_ARGUMENT', `${fileName}:${i + 1}: variable name is empty`);
    values.push(line);
  });
  return expandEnvArgs(values, hostEnv);
}

/**
 * Resolves the process configuration with Docker's rules (an entrypoint given replaces the image's and drops its
 * Cmd; args replace the Cmd). `proc.env` holds KEY=value entries; a bare KEY (not expanded by the caller) is dropped.
 */
export function resolveProcessConfig(image: ImageDefaults, proc: ProcessSpec, defaultHostname: string): ProcessConfig {
  let entrypoint = image.entrypoint ?? [];
  let cmd = image.cmd ?? [];
  if (proc.entrypoint !== undefined) {
    entrypoint = proc.entrypoint.length === 1 && proc.entrypoint[0] === '' ? [] : proc.entrypoint;
    cmd = [];
  }
  if (proc.args !== undefined && proc.args.length > 0) cmd = proc.args;
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'no command specified (the image has no Entrypoint or Cmd)');
  const hostname = proc.hostname || defaultHostname;
  validateHostname(hostname);
  // A bare KEY was for the caller to expand from its own environment; what is left of it here has no value.
  const userEnv = expandEnvArgs(proc.env ?? [], {});
  const env = mergeEnv([`PATH=${DEFAULT_PATH}`], image.env, [`HOSTNAME=${hostname}`], userEnv);
  const cwd = proc.cwd || image.workingDir || '/';
  if (!cwd.startsWith('/')) throw new BosonError('INVALID_ARGUMENT', `working directory must be an absolute path: ${JSON.stringify(cwd)}`);
  const user = proc.user || image.user || '0';
  if (!/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(user)) throw new BosonError('INVALID_ARGUMENT', `invalid user: ${JSON.stringify(user)}`);
  return { argv, env, cwd, user, hostname };
}

/** Throws INVALID_ARGUMENT unless `name` is a valid RFC 1123 hostname of at most 63 characters. */
export function validateHostname(name: string): void {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(name)) {
    throw new BosonError('INVALID_ARGUMENT', `invalid hostname: ${JSON.stringify(name)}`);
  }
}

/** Parses a size ("512m", "1g", "268435456", "64MiB") into MiB; INVALID_ARGUMENT below `minMiB` or unparseable. */
export function parseSizeMiB(value: string, what: string, minMiB: number): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new BosonError('INVALID_ARGUMENT', `invalid ${what} size: ${JSON.stringify(value)} (use e.g. 512m or 1g)`);
  const unit = m[2]!.toLowerCase();
  const factor = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit]!;
  const mib = Math.floor((Number(m[1]) * factor) / 1024 ** 2);
  if (mib < minMiB) throw new BosonError('INVALID_ARGUMENT', `${what} ${value} is too small: at least ${minMiB}m`);
  return mib;
}

/**
 * Docker's json-file log options (`--log-opt max-size=10m --log-opt max-file=3`; sizes in binary units as Docker's
 * RAMInBytes) as the port's LogOptions. INVALID_ARGUMENT for an unknown option or a bad value.
 */
export function parseLogOptions(opts: Record<string, string>): LogOptions {
  const out: LogOptions = {};
  for (const [key, value] of Object.entries(opts)) {
    if (key === 'max-size') {
      if (value === '-1') continue;
      const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
      const bytes = m ? Math.floor(Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()]!) : NaN;
      if (!(bytes >= 1)) throw new BosonError('INVALID_ARGUMENT', `invalid max-size log option: ${JSON.stringify(value)} (use e.g. 10m)`);
      out.maxSizeBytes = bytes;
    } else if (key === 'max-file') {
      if (!/^\d+$/.test(value) || Number(value) < 1)
        throw new BosonError('INVALID_ARGUMENT', `invalid max-file log option: ${JSON.stringify(value)} (a whole number, at least 1)`);
      out.maxFiles = Number(value);
    } else if (key === 'compress' && value === 'false') continue;
    else
      throw new BosonError(
        'INVALID_ARGUMENT',
        `unknown log opt '${key}' for the json-file log driver (max-size and max-file are supported)`,
      );
  }
  if ((out.maxFiles ?? 1) > 1 && out.maxSizeBytes === undefined)
    throw new BosonError('INVALID_ARGUMENT', 'max-file can only be set together with max-size');
  return out;
}

/** Parses a memory size into MiB; a micro-VM needs at least 64 MiB. */
export function parseMemory(value: string): number {
  return parseSizeMiB(value, 'memory', 64);
}

/** Parses --cpus (a positive number, fractions rounded up to whole vCPUs) bounded by `hostCpus`. */
export function parseCpus(value: string, hostCpus: number): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new BosonError('INVALID_ARGUMENT', `invalid --cpus value: ${JSON.stringify(value)}`);
  const vcpus = Math.ceil(n);
  if (vcpus > hostCpus) throw new BosonError('INVALID_ARGUMENT', `--cpus ${value} is more than the ${hostCpus} CPUs of this host`);
  return vcpus;
}

/** Default memory of a micro-VM, in MiB. */
export const DEFAULT_MEMORY_MIB = 256;

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  KILL: 9,
  USR1: 10,
  USR2: 12,
  TERM: 15,
  CONT: 18,
  STOP: 19,
  WINCH: 28,
};

/** Parses a signal name or number ("TERM", "SIGTERM", "15"); INVALID_ARGUMENT otherwise. */
export function parseSignal(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (n >= 1 && n <= 64) return n;
  }
  const n = SIGNALS[value.toUpperCase().replace(/^SIG/, '')];
  if (n === undefined) throw new BosonError('INVALID_ARGUMENT', `invalid signal: ${value}`);
  return n;
}

/** Parses a restart policy ("no", "always", "unless-stopped", "on-failure[:N]"). */
export function parseRestartPolicy(value: string): RestartPolicy {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(value);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure'))
    throw new BosonError('INVALID_ARGUMENT', `invalid restart policy: ${value} (no, always, unless-stopped, on-failure[:N])`);
  return { name: m[1] as RestartPolicy['name'], maximumRetryCount: m[2] === undefined ? 0 : Number(m[2]) };
}

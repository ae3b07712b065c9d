/** The flags `boson run` and `boson create` share, and how they become a request. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BosonError } from '../common/index.ts';
import {
  hostCpuCount,
  parseCpus,
  parseEnvFile,
  parseMemory,
  parseLogOptions,
  parsePortSpec,
  parseRestartPolicy,
  parseSizeMiB,
  parseVolumeSpec,
  expandEnvArgs,
} from '../machine/client/index.ts';
import type { ContainerSpec } from '../machine/port/index.ts';

/** Parsed container flags. */
export interface ContainerFlags {
  rm?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  interactive?: boolean;
  tty?: boolean;
  memory?: string;
  cpus?: string;
  hostname?: string;
  restart?: string;
  label: string[];
  volume?: string[];
  publish?: string[];
  publishAll?: boolean;
  network?: string;
  diskSize?: string;
  logOpt?: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Adds the shared flags to a command. */
export function addContainerFlags(cmd: Command): Command {
  return cmd
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'name the container')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable; KEY alone copies it from this shell)', collect, [])
    .option('--env-file <file>', 'read environment variables from a file (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user to run as (name or uid, optional group)')
    .option('--entrypoint <cmd>', 'override the image\'s entrypoint ("" clears it)')
    .option('-i, --interactive', 'keep stdin open and forward it')
    .option('-t, --tty', 'allocate a pseudo-terminal in the guest')
    .option('-m, --memory <size>', 'memory of the micro-VM (e.g. 512m, 1g; default 256m)')
    .option('--cpus <n>', 'vCPUs of the micro-VM (default 1)')
    .option('-h, --hostname <name>', 'hostname inside the container')
    .option('--restart <policy>', 'restart policy: no, on-failure[:N], always, unless-stopped (daemon-managed containers)')
    .option('-l, --label <key=value>', 'set a label (repeatable)', collect, [])
    .option('-p, --publish <spec>', 'publish a port: [ip:][hostPort:]containerPort[/udp] (repeatable)', collect, [])
    .option('-P, --publish-all', 'publish every port the image exposes, on free host ports')
    .option('--disk-size <size>', 'size of the writable layer (sparse; e.g. 20g; default 8g)')
    .option('--network <name>', 'network to join (default: the default bridge; "none" for no network)')
    .option('--log-opt <key=value>', 'log rotation, as Docker json-file: max-size=10m, max-file=3 (repeatable)', collect, [])
    .option(
      '-v, --volume <spec>',
      'mount a volume or host directory: name:/path[:ro], /host/path:/path[:ro], /path (repeatable)',
      collect,
      [],
    )
    .helpOption('--help', 'display help for command');
}

/** Expands -e and --env-file into KEY=value entries (host lookups done here, on the client). */
export async function envFromFlags(flags: ContainerFlags): Promise<string[]> {
  const env = expandEnvArgs(flags.env, process.env);
  for (const file of flags.envFile) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      throw new BosonError('INVALID_ARGUMENT', `cannot read env file ${file}: ${(cause as Error).message}`, { cause });
    }
    env.push(...parseEnvFile(text, process.env, file));
  }
  return env;
}

/** Parses --label values into a map. */
export function labelsFromFlags(values: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    if (!key) throw new BosonError('INVALID_ARGUMENT', `invalid label: ${JSON.stringify(v)}`);
    labels[key] = eq < 0 ? '' : v.slice(eq + 1);
  }
  return labels;
}

/** --disk-size in bytes (at least 64 MiB), or undefined for the default. */
export function diskSizeBytes(flags: ContainerFlags): number | undefined {
  return flags.diskSize === undefined ? undefined : parseSizeMiB(flags.diskSize, 'disk', 64) * 1024 * 1024;
}

/**
 * The port's ContainerSpec for these flags: CLI syntax (-v, -p, --restart, sizes) is parsed here, at the edge, and
 * -e KEY is expanded from this shell's environment.
 */
export async function containerSpecOf(image: string, args: string[], flags: ContainerFlags): Promise<ContainerSpec> {
  return {
    image,
    name: flags.name,
    process: {
      args,
      entrypoint: flags.entrypoint === undefined ? undefined : flags.entrypoint === '' ? [] : [flags.entrypoint],
      env: await envFromFlags(flags),
      cwd: flags.workdir,
      user: flags.user,
      hostname: flags.hostname,
      tty: Boolean(flags.tty),
      stdin: Boolean(flags.interactive),
    },
    resources: {
      memoryMiB: flags.memory === undefined ? undefined : parseMemory(flags.memory),
      cpus: flags.cpus === undefined ? undefined : parseCpus(flags.cpus, hostCpuCount()),
      diskBytes: diskSizeBytes(flags),
    },
    labels: labelsFromFlags(flags.label),
    restartPolicy: flags.restart === undefined ? undefined : parseRestartPolicy(flags.restart),
    autoRemove: Boolean(flags.rm),
    mounts: (flags.volume ?? []).map(parseVolumeSpec),
    ports: (flags.publish ?? []).flatMap(parsePortSpec),
    publishAll: Boolean(flags.publishAll),
    network: flags.network,
    ...((flags.logOpt ?? []).length > 0 ? { log: logOptionsOf(flags.logOpt!) } : {}),
  };
}

/** --log-opt key=value pairs as the port's LogOptions. */
function logOptionsOf(items: string[]): ContainerSpec['log'] {
  const opts: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BosonError('INVALID_ARGUMENT', `invalid --log-opt ${JSON.stringify(item)}: use key=value`);
    opts[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return parseLogOptions(opts);
}

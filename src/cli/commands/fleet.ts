/**
 * `boson machine join|ls|show|drain|undrain|rm` and `boson machine token create|ls`: the machines of a controller's
 * fleet. `join` runs on the machine's host: it joins the controller (the join token pins the controller's CA), keeps
 * the machine's key, certificate and the fleet CA in <state dir>/fleet (key 0600), and prints how to serve the
 * machine's REST API on TCP with them, where the controller reaches it over mutual TLS.
 */
import { mkdir, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { BosonError } from '../../common/index.ts';
import { formatQuotaValue, joinController, makeKeyPair, parseByteSize, type MachineInfo } from '../../controller/index.ts';
import { loadConfig } from '../../main/index.ts';
import { collect, controllerClient, splitProject, withTarget, type TargetFlags } from '../controller-target.ts';
import { printJson, printTable } from '../output.ts';
import { registerFleetContainerCommands } from './fleet-containers.ts';

const bytes = (n: number): string => formatQuotaValue({ value: n, unit: 'bytes' });

/** Parses k=v labels; USAGE otherwise. */
function labelsOf(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BosonError('USAGE', `invalid --label ${JSON.stringify(item)} (use key=value)`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const machineRow = (m: MachineInfo): string[] => [
  m.id,
  m.state,
  m.address,
  `${m.allocated.cpus}/${m.capacity.cpus}`,
  `${bytes(m.allocated.memoryBytes)}/${bytes(m.capacity.memoryBytes)}`,
  String(m.containers),
  m.zone,
  Object.entries(m.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(','),
  m.lastSeen,
];
const HEAD = ['ID', 'STATE', 'ADDRESS', 'CPUS', 'MEMORY', 'CONTAINERS', 'ZONE', 'LABELS', 'LAST SEEN'];

interface JoinFlags {
  token: string;
  address: string;
  cpus?: string;
  memory?: string;
  disk?: string;
  label: string[];
  zone?: string;
  controllerCa?: string;
  dir?: string;
  json?: boolean;
}

/** Adds `machine`, `container` (a project's containers on the fleet) and `project docker-env` to the program. */
export function registerFleetCommands(program: Command): void {
  registerFleetContainerCommands(program);
  const project = program.commands.find((c) => c.name() === 'project') ?? program.command('project').description('Projects');
  withTarget(
    project
      .command('docker-env')
      .description(
        "Write a client certificate for the project's Docker endpoint and print DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH",
      )
      .argument('<tenant/project>'),
  )
    .option('--dir <dir>', 'where to write ca.pem, cert.pem, key.pem (default <config dir>/docker/<tenant>-<project>)')
    .option('--json', 'print the values as JSON')
    .action(async (ref: string, flags: TargetFlags & { dir?: string; json?: boolean }) => {
      const { tenant, project: name } = splitProject(ref);
      const dir = path.resolve(flags.dir ?? path.join(loadConfig().configDir, 'docker', `${tenant}-${name}`));
      const { key, publicKey } = await makeKeyPair();
      const issued = await (
        await controllerClient(flags)
      ).request<{ cert: string; ca: string; dockerHost?: string }>(
        'POST',
        `/v1/tenants/${encodeURIComponent(tenant)}/projects/${encodeURIComponent(name)}/docker-certs`,
        { publicKey },
      );
      if (!issued.dockerHost)
        throw new BosonError(
          'INVALID_ARGUMENT',
          'the controller serves no Docker endpoint (start it with --docker-listen host:port --tlsverify)',
        );
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(path.join(dir, 'key.pem'), key, { mode: 0o600 });
      await writeFile(path.join(dir, 'cert.pem'), issued.cert);
      await writeFile(path.join(dir, 'ca.pem'), issued.ca);
      const env = { DOCKER_HOST: issued.dockerHost, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: dir };
      if (flags.json) printJson(env);
      else
        process.stdout.write(
          Object.entries(env)
            .map(([k, v]) => `export ${k}=${v}`)
            .join('\n') + `\n# Run this command to configure your shell:\n# eval "$(boson project docker-env ${ref})"\n`,
        );
    });

  const machine = program.command('machine').description("The machines of a controller's fleet");
  machine
    .command('join')
    .description("Join this host's machine to a controller's fleet (run on the machine's host)")
    .argument('<url>', 'the controller: https://host:port')
    .requiredOption('--token <token>', 'a join token (boson machine token create, on the controller)')
    .requiredOption('--address <host:port>', "where the controller reaches this machine's REST API (serve it there: boson up --tcp)")
    .option('--cpus <n>', 'CPUs offered to the fleet (default: all of this host)')
    .option('--memory <size>', 'memory offered (default: all of this host)')
    .option('--disk <size>', 'disk offered (default: the free space of the state directory)')
    .option('--label <key=value>', 'a label placement constraints can select (repeatable)', collect, [])
    .option('--zone <zone>', 'the failure zone of this machine')
    .option('--controller-ca <file>', "the controller's CA, when the token does not pin it")
    .option('--dir <dir>', 'where to keep the certificate and key (default <state dir>/fleet)')
    .option('--json', 'print the outcome as JSON')
    .action(async (url: string, flags: JoinFlags) => {
      const config = loadConfig();
      const dir = path.resolve(flags.dir ?? path.join(config.paths.stateDir, 'fleet'));
      const cpus = flags.cpus === undefined ? os.cpus().length : Number(flags.cpus);
      if (!(cpus > 0)) throw new BosonError('USAGE', `invalid --cpus: ${flags.cpus}`);
      const memoryBytes = flags.memory === undefined ? os.totalmem() : parseByteSize(flags.memory);
      let diskBytes: number;
      if (flags.disk !== undefined) diskBytes = parseByteSize(flags.disk);
      else {
        await mkdir(config.paths.stateDir, { recursive: true });
        const s = await statfs(config.paths.stateDir);
        diskBytes = s.bavail * s.bsize;
      }
      const joined = await joinController({
        url,
        token: flags.token,
        address: flags.address,
        capacity: { cpus, memoryBytes, diskBytes },
        labels: labelsOf(flags.label),
        ...(flags.zone ? { zone: flags.zone } : {}),
        ...(flags.controllerCa ? { controllerCa: await readFile(flags.controllerCa, 'utf8') } : {}),
      });
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const files = { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
      await writeFile(files.key, joined.key, { mode: 0o600 });
      await writeFile(files.cert, joined.cert);
      await writeFile(files.ca, joined.ca);
      await writeFile(path.join(dir, 'controller-ca.pem'), joined.controllerCa);
      await writeFile(
        path.join(dir, 'machine.json'),
        JSON.stringify({ id: joined.id, controller: url, address: flags.address }, null, 2) + '\n',
      );
      const up = `boson up --tcp ${flags.address} --tlsverify --tlscacert ${files.ca} --tlscert ${files.cert} --tlskey ${files.key}`;
      if (flags.json) printJson({ id: joined.id, dir, ...files, serve: up });
      else process.stdout.write(`Joined as ${joined.id}. Serve this machine's API to the controller with:\n  ${up}\n`);
    });

  withTarget(machine.command('ls').description('List the machines of the fleet (system admins)'))
    .option('--json', 'print JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (await controllerClient(flags)).request<MachineInfo[]>('GET', '/v1/machines');
      if (flags.json) printJson(list);
      else printTable(HEAD, list.map(machineRow));
    });
  withTarget(machine.command('show').description('Show one machine').argument('<id>'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: TargetFlags & { json?: boolean }) => {
      const m = await (await controllerClient(flags)).request<MachineInfo>('GET', `/v1/machines/${encodeURIComponent(id)}`);
      if (flags.json) printJson(m);
      else printTable(HEAD, [machineRow(m)]);
    });
  for (const [verb, text] of [
    ['drain', 'Drain machines: MAINTENANCE, no new placements; their containers stay'],
    ['undrain', 'Take drained machines back into placement'],
  ] as const)
    withTarget(machine.command(verb).description(text).argument('<id...>'))
      .option('--json', 'print the machines as JSON')
      .action(async (ids: string[], flags: TargetFlags & { json?: boolean }) => {
        const client = await controllerClient(flags);
        const out: MachineInfo[] = [];
        for (const id of ids) out.push(await client.request<MachineInfo>('POST', `/v1/machines/${encodeURIComponent(id)}/${verb}`));
        if (flags.json) printJson(out);
        else for (const m of out) process.stdout.write(`${m.id} ${m.state}\n`);
      });
  withTarget(machine.command('rm').description('Remove machines from the fleet').argument('<id...>'))
    .option('-f, --force', 'even with containers placed on it (a machine gone for good)')
    .option('--json', 'print the removed ids as JSON')
    .action(async (ids: string[], flags: TargetFlags & { force?: boolean; json?: boolean }) => {
      const client = await controllerClient(flags);
      for (const id of ids) await client.request('DELETE', `/v1/machines/${encodeURIComponent(id)}${flags.force ? '?force=true' : ''}`);
      if (flags.json) printJson(ids);
      else for (const id of ids) process.stdout.write(`${id}\n`);
    });

  const token = machine.command('token').description('Join tokens (system admins)');
  withTarget(token.command('create').description('Create a join token (its secret is shown once)'))
    .option('--ttl <seconds>', 'how long it is valid', '86400')
    .option('--description <text>', 'what it is for')
    .option('--json', 'print JSON')
    .action(async (flags: TargetFlags & { ttl: string; description?: string; json?: boolean }) => {
      if (!/^\d+$/.test(flags.ttl)) throw new BosonError('USAGE', `invalid --ttl: ${flags.ttl}`);
      const made = await (
        await controllerClient(flags)
      ).request<{ id: string; token: string; expiresAt: string }>('POST', '/v1/machine-tokens', {
        ttlSeconds: Number(flags.ttl),
        ...(flags.description ? { description: flags.description } : {}),
      });
      if (flags.json) printJson(made);
      else process.stdout.write(`${made.token}\n`);
    });
  withTarget(token.command('rm').description('Revoke join tokens (machines that joined with them stay)').argument('<id...>'))
    .option('--json', 'print the revoked ids as JSON')
    .action(async (ids: string[], flags: TargetFlags & { json?: boolean }) => {
      const client = await controllerClient(flags);
      for (const id of ids) await client.request('DELETE', `/v1/machine-tokens/${encodeURIComponent(id)}`);
      if (flags.json) printJson(ids);
      else for (const id of ids) process.stdout.write(`${id}\n`);
    });
  withTarget(token.command('ls').description('List the join tokens (never their secrets)'))
    .option('--json', 'print JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (
        await controllerClient(flags)
      ).request<Array<{ id: string; description: string; createdAt: string; expiresAt: string }>>('GET', '/v1/machine-tokens');
      if (flags.json) printJson(list);
      else
        printTable(
          ['ID', 'DESCRIPTION', 'CREATED', 'EXPIRES'],
          list.map((t) => [t.id, t.description, t.createdAt, t.expiresAt]),
        );
    });
}

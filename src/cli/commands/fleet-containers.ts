/**
 * `boson container ls|start|stop|rm|wait|lease|lease-info|release`: a project's containers through the controller
 * (wherever the fleet placed them), with Fly-style leases (a nonce that every change must carry while the lease
 * holds), waits for an explicit state, and label filters. Every command takes TENANT/PROJECT and has `--json`.
 */
import type { Command } from 'commander';
import { BosonError, isBosonError } from '../../common/index.ts';
import type { FleetContainer, WaitState } from '../../controller/index.ts';
import { collect, controllerClient, splitProject, withTarget, type TargetFlags } from '../controller-target.ts';
import { printJson, printTable } from '../output.ts';

const path = (tenant: string, project: string, ref?: string): string =>
  `/v1/tenants/${encodeURIComponent(tenant)}/projects/${encodeURIComponent(project)}/containers${ref === undefined ? '' : `/${encodeURIComponent(ref)}`}`;

const nonceHeader = (nonce: string | undefined): { headers?: Record<string, string> } =>
  nonce ? { headers: { 'Boson-Lease-Nonce': nonce } } : {};

function seconds(flag: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new BosonError('USAGE', `invalid ${flag}: ${v} (whole seconds)`);
  return Number(v);
}

const row = (c: FleetContainer): string[] => [
  c.id,
  c.name,
  c.image,
  c.state,
  c.machineId,
  c.lease ? `${c.lease.owner} until ${c.lease.expiresAt}` : '',
  Object.entries(c.config?.labels ?? {})
    .filter(([k]) => !k.startsWith('boson.'))
    .map(([k, v]) => `${k}=${v}`)
    .join(','),
];

/** Adds `container` to the program. */
export function registerFleetContainerCommands(program: Command): void {
  const container = program.command('container').description("A project's containers through the controller, on the fleet");

  withTarget(container.command('ls').description("List a project's containers").argument('<tenant/project>'))
    .option('--label <key=value>', 'only containers with this label (key=value, or key); repeatable, all must match', collect, [])
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: TargetFlags & { label: string[]; json?: boolean }) => {
      const { tenant, project } = splitProject(ref);
      const list = await (await controllerClient(flags)).listContainers(tenant, project, flags.label);
      if (flags.json) printJson(list);
      else printTable(['ID', 'NAME', 'IMAGE', 'STATE', 'MACHINE', 'LEASE', 'LABELS'], list.map(row));
    });

  for (const [verb, text] of [
    ['start', 'Start a container'],
    ['stop', 'Stop a container'],
    ['rm', 'Remove a container (its quota comes back)'],
  ] as const) {
    const cmd = withTarget(container.command(verb).description(text).argument('<tenant/project>').argument('<container>')).option(
      '--nonce <nonce>',
      "the nonce of the container's lease, when one holds it",
    );
    if (verb === 'rm') cmd.option('-f, --force', 'stop it first; remove it even if its machine is gone');
    cmd
      .option('--json', 'print the container as JSON')
      .action(async (ref: string, name: string, flags: TargetFlags & { nonce?: string; force?: boolean; json?: boolean }) => {
        const { tenant, project } = splitProject(ref);
        const client = await controllerClient(flags);
        const opts = nonceHeader(flags.nonce);
        if (verb === 'rm')
          await client.request('DELETE', `${path(tenant, project, name)}${flags.force ? '?force=true' : ''}`, undefined, opts);
        else await client.request('POST', `${path(tenant, project, name)}/${verb}`, undefined, opts);
        if (flags.json) printJson({ container: name });
        else process.stdout.write(`${name}\n`);
      });
  }

  withTarget(
    container
      .command('wait')
      .description('Wait until a container is running, stopped or removed (CONTAINER_WAIT_TIMEOUT, exit 132, after --timeout)')
      .argument('<tenant/project>')
      .argument('<container>'),
  )
    .requiredOption('--state <state>', 'running, stopped or removed')
    .option('--timeout <seconds>', 'give up after', '60')
    .option('--json', 'print the state and the container as JSON')
    .action(async (ref: string, name: string, flags: TargetFlags & { state: string; timeout: string; json?: boolean }) => {
      const { tenant, project } = splitProject(ref);
      if (!['running', 'stopped', 'removed'].includes(flags.state))
        throw new BosonError('USAGE', `invalid --state ${flags.state}: running, stopped or removed`);
      const client = await controllerClient(flags);
      const deadline = Date.now() + seconds('--timeout', flags.timeout) * 1000;
      // One request waits at most 300 s (the server's bound): longer waits are several requests.
      for (;;) {
        const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        try {
          const out = await client.waitContainer(tenant, project, name, flags.state as WaitState, Math.min(300, left));
          if (flags.json) printJson(out);
          else process.stdout.write(`${out.state}\n`);
          return;
        } catch (err) {
          if (!(isBosonError(err, 'CONTAINER_WAIT_TIMEOUT') && left > 300)) throw err;
        }
      }
    });

  withTarget(
    container
      .command('lease')
      .description('Lease a container: until it expires or is released, its changes need the nonce printed (--nonce)')
      .argument('<tenant/project>')
      .argument('<container>'),
  )
    .option('--ttl <seconds>', 'how long the lease holds', '300')
    .option('--description <text>', 'what it is for (shown to others)')
    .option('--nonce <nonce>', 'extend the lease this nonce holds instead of taking a new one')
    .option('--json', 'print the lease (with its nonce) as JSON')
    .action(
      async (ref: string, name: string, flags: TargetFlags & { ttl: string; description?: string; nonce?: string; json?: boolean }) => {
        const { tenant, project } = splitProject(ref);
        const lease = await (
          await controllerClient(flags)
        ).leaseContainer(tenant, project, name, {
          ttlSeconds: seconds('--ttl', flags.ttl),
          ...(flags.description ? { description: flags.description } : {}),
          ...(flags.nonce ? { nonce: flags.nonce } : {}),
        });
        if (flags.json) printJson(lease);
        else process.stdout.write(`${lease.nonce}\n`);
      },
    );

  withTarget(
    container
      .command('lease-info')
      .description("Show a container's lease (never its nonce)")
      .argument('<tenant/project>')
      .argument('<container>'),
  )
    .option('--json', 'print JSON')
    .action(async (ref: string, name: string, flags: TargetFlags & { json?: boolean }) => {
      const { tenant, project } = splitProject(ref);
      const lease = await (await controllerClient(flags)).getContainerLease(tenant, project, name);
      if (flags.json) printJson(lease);
      else printTable(['OWNER', 'EXPIRES', 'DESCRIPTION'], [[lease.owner, lease.expiresAt, lease.description]]);
    });

  withTarget(container.command('release').description("Release a container's lease").argument('<tenant/project>').argument('<container>'))
    .requiredOption('--nonce <nonce>', "the lease's nonce")
    .option('--json', 'print the container as JSON')
    .action(async (ref: string, name: string, flags: TargetFlags & { nonce: string; json?: boolean }) => {
      const { tenant, project } = splitProject(ref);
      await (await controllerClient(flags)).releaseContainerLease(tenant, project, name, flags.nonce);
      if (flags.json) printJson({ container: name, released: true });
      else process.stdout.write(`${name}\n`);
    });
}

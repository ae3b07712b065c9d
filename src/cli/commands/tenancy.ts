/**
 * `boson tenant create|ls|show|limits|rm` and `boson project create|ls|show|limits|rm`, through the controller's
 * client. Limits are `--limit key=value` line items (vm.count=4, vm.memory=2GiB, custom keys); a project's are
 * carved from its tenant's. Removals are tasks, waited for (their steps shown on a terminal).
 */
import type { Command } from 'commander';
import { formatLimits, formatQuotaValue, parseQuotaItem, type Limits, type Project } from '../../controller/index.ts';
import { collect, controllerClient, splitProject, taskError, waitForTask, withTarget, type TargetFlags } from '../controller-target.ts';
import { printJson, printTable } from '../output.ts';

type Flags = TargetFlags & { json?: boolean; limit?: string[] };

const limitsOf = (flags: Flags): Limits => (flags.limit ?? []).map(parseQuotaItem);

/** Prints a project's limits and usage as a table (one row per key). */
function printProject(p: Project): void {
  const used = new Map(p.usage.map((u) => [u.key, u]));
  const keys = [...new Set([...p.limits.map((l) => l.key), ...p.usage.map((u) => u.key)])].sort();
  process.stdout.write(`Project ${p.tenant}/${p.name} (created ${p.createdAt})\n`);
  printTable(
    ['KEY', 'LIMIT', 'USED'],
    keys.map((k) => {
      const l = p.limits.find((x) => x.key === k);
      const u = used.get(k);
      return [k, l ? formatQuotaValue(l) : 'unlimited', u ? formatQuotaValue(u) : '0'];
    }),
  );
}

/** Adds `tenant` and `project` to the program. */
export function registerTenancyCommands(program: Command): void {
  const tenant = program.command('tenant').description('Manage tenants of the controller (system admins)');
  withTarget(tenant.command('create').description('Create a tenant').argument('<name>'))
    .option('--limit <key=value>', 'a quota limit (repeatable): vm.count=10, vm.memory=16GiB, disk.capacity=1TiB, custom keys', collect, [])
    .option('--json', 'print the tenant as JSON')
    .action(async (name: string, flags: Flags) => {
      const t = await (await controllerClient(flags)).createTenant(name, limitsOf(flags));
      if (flags.json) printJson(t);
      else process.stdout.write(`${t.name}\n`);
    });
  withTarget(tenant.command('ls').description('List tenants'))
    .option('--json', 'print as JSON')
    .action(async (flags: Flags) => {
      const list = await (await controllerClient(flags)).listTenants();
      if (flags.json) printJson(list);
      else
        printTable(
          ['NAME', 'LIMITS', 'CARVED', 'CREATED'],
          list.map((t) => [t.name, formatLimits(t.limits) || 'unlimited', formatLimits(t.allocated), t.createdAt]),
        );
    });
  withTarget(tenant.command('show').description('Show a tenant').argument('<name>'))
    .option('--json', 'print as JSON')
    .action(async (name: string, flags: Flags) => {
      const t = await (await controllerClient(flags)).getTenant(name);
      if (flags.json) printJson(t);
      else
        printTable(
          ['NAME', 'LIMITS', 'CARVED', 'CREATED'],
          [[t.name, formatLimits(t.limits) || 'unlimited', formatLimits(t.allocated), t.createdAt]],
        );
    });
  withTarget(
    tenant.command('limits').description("Set a tenant's limits (all of them: a key left out is no longer limited)").argument('<name>'),
  )
    .option('--limit <key=value>', 'a quota limit (repeatable)', collect, [])
    .option('--json', 'print the tenant as JSON')
    .action(async (name: string, flags: Flags) => {
      const t = await (await controllerClient(flags)).setTenantLimits(name, limitsOf(flags));
      if (flags.json) printJson(t);
      else process.stdout.write(`${t.name}: ${formatLimits(t.limits) || 'unlimited'}\n`);
    });
  withTarget(tenant.command('rm').description('Remove a tenant without projects (and its users and tokens)').argument('<name>'))
    .option('--json', 'print the finished task as JSON')
    .action(async (name: string, flags: Flags) => {
      const client = await controllerClient(flags);
      const task = await waitForTask(client, await client.deleteTenant(name));
      if (flags.json) printJson(task);
      if (task.state === 'failed') throw taskError(task);
      if (!flags.json) process.stdout.write(`${name}\n`);
    });

  const project = program.command('project').description("Manage projects: a tenant's units of quota and isolation");
  withTarget(project.command('create').description("Create a project, carving its limits from its tenant's").argument('<tenant/project>'))
    .option('--limit <key=value>', 'a quota limit (repeatable): vm.count=4, vm.memory=2GiB ...', collect, [])
    .option('--json', 'print the project as JSON')
    .action(async (ref: string, flags: Flags) => {
      const { tenant: t, project: p } = splitProject(ref);
      const made = await (await controllerClient(flags)).createProject(t, p, limitsOf(flags));
      if (flags.json) printJson(made);
      else process.stdout.write(`${made.tenant}/${made.name}\n`);
    });
  withTarget(project.command('ls').description('List projects (of one tenant, or of every tenant you can see)').argument('[tenant]'))
    .option('--json', 'print as JSON')
    .action(async (tenantName: string | undefined, flags: Flags) => {
      const client = await controllerClient(flags);
      const tenants = tenantName !== undefined ? [tenantName] : (await client.listTenants()).map((t) => t.name);
      const list: Project[] = [];
      for (const t of tenants) list.push(...(await client.listProjects(t)));
      if (flags.json) printJson(list);
      else
        printTable(
          ['PROJECT', 'LIMITS', 'USED'],
          list.map((p) => [`${p.tenant}/${p.name}`, formatLimits(p.limits) || 'unlimited', formatLimits(p.usage)]),
        );
    });
  withTarget(project.command('show').description("Show a project's limits and usage").argument('<tenant/project>'))
    .option('--json', 'print as JSON')
    .action(async (ref: string, flags: Flags) => {
      const { tenant: t, project: p } = splitProject(ref);
      const got = await (await controllerClient(flags)).getProject(t, p);
      if (flags.json) printJson(got);
      else printProject(got);
    });
  withTarget(
    project.command('limits').description("Set a project's limits (all of them), carved from its tenant's").argument('<tenant/project>'),
  )
    .option('--limit <key=value>', 'a quota limit (repeatable)', collect, [])
    .option('--json', 'print the project as JSON')
    .action(async (ref: string, flags: Flags) => {
      const { tenant: t, project: p } = splitProject(ref);
      const got = await (await controllerClient(flags)).setProjectLimits(t, p, limitsOf(flags));
      if (flags.json) printJson(got);
      else printProject(got);
    });
  withTarget(
    project
      .command('rm')
      .description('Remove a project that uses no quota, giving its limits back to the tenant')
      .argument('<tenant/project>'),
  )
    .option('--json', 'print the finished task as JSON')
    .action(async (ref: string, flags: Flags) => {
      const { tenant: t, project: p } = splitProject(ref);
      const client = await controllerClient(flags);
      const task = await waitForTask(client, await client.deleteProject(t, p));
      if (flags.json) printJson(task);
      if (task.state === 'failed') throw taskError(task);
      if (!flags.json) process.stdout.write(`${ref}\n`);
    });
}

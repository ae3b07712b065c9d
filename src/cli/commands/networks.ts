/** `boson network create|ls|inspect|rm|prune|connect|disconnect`, through the daemon's typed client. */
import type { Command } from 'commander';
import { labelsFromFlags } from '../container-flags.ts';
import { ctx, inspectEach, machine, removeEach } from '../daemon.ts';
import { printJson, printTable } from '../output.ts';

/** Adds `network create|ls|inspect|rm|prune|connect|disconnect`. */
export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('Manage networks (bridges with their own subnets, isolated from each other)');
  network
    .command('create')
    .description('Create a network')
    .argument('<name>')
    .option('--subnet <cidr>', 'subnet (default: a free /24)')
    .option('--gateway <ip>', 'gateway address')
    .option('--internal', 'no access to the outside')
    .option('-l, --label <key=value>', 'set a label', (v: string, p: string[]) => [...p, v], [] as string[])
    .action(async (name: string, flags: { subnet?: string; gateway?: string; internal?: boolean; label: string[] }) => {
      const n = await machine().networks.create(ctx, {
        name,
        subnet: flags.subnet,
        gateway: flags.gateway,
        internal: flags.internal,
        labels: labelsFromFlags(flags.label),
      });
      process.stdout.write(`${n.id}\n`);
    });
  network
    .command('ls')
    .description('List networks')
    .option('-q, --quiet', 'only ids')
    .option('--json', 'print as JSON')
    .action(async (flags: { quiet?: boolean; json?: boolean }) => {
      const list = await machine().networks.list(ctx);
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((n) => `${n.id.slice(0, 12)}\n`).join(''));
      else
        printTable(
          ['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET'],
          list.map((n) => [n.id.slice(0, 12), n.name, n.driver, n.subnet]),
        );
    });
  network
    .command('inspect')
    .description('Show networks as JSON')
    .argument('<names...>')
    .action((names: string[]) => inspectEach(names, (n) => machine().networks.inspect(ctx, n)));
  network
    .command('rm')
    .description('Remove networks')
    .argument('<names...>')
    .action((names: string[]) => removeEach(names, (n) => machine().networks.remove(ctx, n)));
  network
    .command('prune')
    .description('Remove the networks no container joins')
    .option('-f, --force', 'do not ask')
    .action(async () => {
      const r = await machine().networks.prune(ctx);
      process.stdout.write(r.removed.map((n) => `${n}\n`).join('') + `Deleted ${r.removed.length} network(s)\n`);
    });
  network
    .command('connect')
    .description('Make a stopped container join a network (at its next start)')
    .argument('<network>')
    .argument('<container>')
    .option('--alias <name>', 'a further DNS name of the container on the network', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--ip <address>', 'a static IPv4 address (user-defined networks)')
    .option(
      '--link <name:alias>',
      'a legacy link: the alias this container knows another by',
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .action(async (name: string, container: string, flags: { alias: string[]; ip?: string; link: string[] }) => {
      const links = flags.link.map((l) => {
        const [target = '', alias = target] = l.split(':');
        return { container: target, alias };
      });
      const endpoint = {
        ...(flags.alias.length > 0 ? { aliases: flags.alias } : {}),
        ...(flags.ip !== undefined ? { ipv4Address: flags.ip } : {}),
        ...(links.length > 0 ? { links } : {}),
      };
      await machine().networks.connect(ctx, name, container, Object.keys(endpoint).length > 0 ? endpoint : undefined);
    });
  network
    .command('disconnect')
    .description('Take a stopped container off a network')
    .argument('<network>')
    .argument('<container>')
    .action(async (name: string, container: string) => machine().networks.disconnect(ctx, name, container));
}

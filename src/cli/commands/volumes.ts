/** `boson volume create|ls|inspect|rm|prune`, through the daemon's typed client. */
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { labelsFromFlags } from '../container-flags.ts';
import { ctx, inspectEach, machine, removeEach } from '../daemon.ts';
import { printJson, printTable } from '../output.ts';

/** A size such as 512m or 1g, in bytes. */
function parseSize(value: string): number {
  const m = /^(\d+)([kmgt]?)b?$/i.exec(value.trim());
  if (!m) throw new BosonError('INVALID_ARGUMENT', `invalid size: ${value}`);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 } as Record<string, number>)[m[2]!.toLowerCase()]!;
}

/** Adds `volume create|ls|inspect|rm|prune`. */
export function registerVolumeCommands(program: Command): void {
  const volume = program.command('volume').description('Manage volumes (ext4 disks that outlive containers)');
  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  volume
    .command('create')
    .description('Create a volume')
    .argument('[name]')
    .option('-l, --label <key=value>', 'set a label', collect, [])
    .option('--size <bytes>', 'disk size (e.g. 1g; default 16g, sparse)')
    .action(async (name: string | undefined, flags: { label: string[]; size?: string }) => {
      const sizeBytes = flags.size === undefined ? undefined : parseSize(flags.size);
      const v = await machine().volumes.create(ctx, { name, labels: labelsFromFlags(flags.label), sizeBytes });
      process.stdout.write(`${v.name}\n`);
    });
  volume
    .command('ls')
    .description('List volumes')
    .option('-q, --quiet', 'only names')
    .option('--json', 'print as JSON')
    .action(async (flags: { quiet?: boolean; json?: boolean }) => {
      const list = await machine().volumes.list(ctx);
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((v) => `${v.name}\n`).join(''));
      else
        printTable(
          ['DRIVER', 'VOLUME NAME'],
          list.map((v) => ['local', v.name]),
        );
    });
  volume
    .command('inspect')
    .description('Show volumes as JSON')
    .argument('<names...>')
    .action((names: string[]) => inspectEach(names, (n) => machine().volumes.inspect(ctx, n)));
  volume
    .command('rm')
    .description('Remove volumes')
    .argument('<names...>')
    .action((names: string[]) => removeEach(names, (n) => machine().volumes.remove(ctx, n)));
  volume
    .command('prune')
    .description('Remove unused anonymous volumes (all unused with -a)')
    .option('-a, --all', 'named volumes too')
    .option('-f, --force', 'do not ask')
    .action(async (flags: { all?: boolean }) => {
      const r = await machine().volumes.prune(ctx, { all: flags.all });
      process.stdout.write(r.removed.map((n) => `${n}\n`).join('') + `Deleted ${r.removed.length} volume(s)\n`);
    });
}

/** `boson ps|inspect|stats`: what the daemon's containers are and use, through the typed client. */
import type { Command } from 'commander';
import { humanDuration, statusText } from '../../machine/client/index.ts';
import type { Container, ContainerStats } from '../../machine/port/index.ts';
import { ctx, forEach, machine } from '../daemon.ts';
import { formatBytes, printJson, printTable } from '../output.ts';

/** Adds `ps` and `inspect`. */
export function registerListCommands(program: Command): void {
  program
    .command('ps')
    .description('List containers')
    .option('-a, --all', 'include stopped containers')
    .option('-q, --quiet', 'only ids')
    .option('--json', 'print as JSON')
    .action(async (flags: { all?: boolean; quiet?: boolean; json?: boolean }) => {
      const list = await machine().list(ctx, { all: flags.all });
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((r) => `${r.id.slice(0, 12)}\n`).join(''));
      else {
        printTable(
          ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'],
          list.map((r) => {
            const cmd = JSON.stringify(r.config.argv.join(' ')).slice(0, 22);
            return [r.id.slice(0, 12), r.image, cmd, `${humanDuration(Date.now() - Date.parse(r.created))} ago`, statusText(r), r.name];
          }),
        );
      }
    });

  program
    .command('inspect')
    .description('Show containers as JSON')
    .argument('<containers...>')
    .action(async (refs: string[]) => {
      const out: Container[] = [];
      await forEach(refs, async (ref) => {
        out.push(await machine().inspect(ctx, ref));
      });
      printJson(out);
    });
}

/** Adds `stats`. */
export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('Resource usage of running containers')
    .argument('[containers...]')
    .option('--no-stream', 'print once and exit (the default here)')
    .option('--json', 'print as JSON')
    .action(async (refs: string[], flags: { json?: boolean }) => {
      const m = machine();
      const targets = refs.length > 0 ? refs : (await m.list(ctx)).map((r) => r.id);
      const stats: ContainerStats[] = [];
      for (const ref of targets) stats.push(await m.stats(ctx, ref));
      if (flags.json) printJson(stats);
      else
        printTable(
          ['CONTAINER ID', 'NAME', 'CPU TIME', 'MEM USAGE / LIMIT', 'PIDS'],
          stats.map((s) => [
            s.id.slice(0, 12),
            s.name,
            `${(s.cpuNs / 1e9).toFixed(2)}s`,
            `${formatBytes(s.memoryBytes)} / ${formatBytes(s.memoryLimitBytes)}`,
            String(s.pids),
          ]),
        );
    });
}

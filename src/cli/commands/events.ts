/** `boson events`: the daemon's lifecycle events, through the typed client. */
import type { Command } from 'commander';
import { nsFromTime } from '../../machine/client/index.ts';
import { ctx, machine } from '../daemon.ts';

/** Adds `events`. */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('Stream lifecycle events')
    .option('--since <time>', 'start from this time')
    .option('--until <time>', 'stop at this time')
    .option('--json', 'one JSON object per line')
    .action(async (flags: { since?: string; until?: string; json?: boolean }) => {
      const query = { sinceNs: nsFromTime(flags.since), untilNs: nsFromTime(flags.until) };
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      await machine().events.follow(
        ctx,
        query,
        (e) => {
          if (flags.json) process.stdout.write(JSON.stringify(e) + '\n');
          else {
            const t = new Date(Number(BigInt(e.timeNano) / 1_000_000n)).toISOString();
            const attrs = Object.entries(e.attributes)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ');
            process.stdout.write(`${t} ${e.type} ${e.action} ${e.actorId} (${attrs})\n`);
          }
        },
        abort.signal,
      );
    });
}

/** `boson logs`: a daemon container's output, followed across daemon restarts, through the typed client. */
import type { Command } from 'commander';
import { BosonError, isBosonError } from '../../common/index.ts';
import { nsFromTime } from '../../machine/client/index.ts';
import { ctx, machine } from '../daemon.ts';

/** Adds `logs`. */
export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("Show a container's output")
    .argument('<container>')
    .option('-f, --follow', 'keep following the output')
    .option('-n, --tail <n>', 'only the last n lines', 'all')
    .option('--since <time>', 'only lines since (RFC 3339 or unix seconds)')
    .option('--until <time>', 'only lines until')
    .option('-t, --timestamps', 'show timestamps')
    .action(async (ref: string, flags: { follow?: boolean; tail: string; since?: string; until?: string; timestamps?: boolean }) => {
      const tail = flags.tail === 'all' ? undefined : Number(flags.tail);
      if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
        throw new BosonError('INVALID_ARGUMENT', `invalid --tail: ${flags.tail}`);
      const sinceNs = nsFromTime(flags.since);
      const untilNs = nsFromTime(flags.until);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      // With -f, a daemon that restarts does not end the stream: reconnect and go on from the last line shown
      // (lines are skipped by timestamp and by how many with that timestamp were shown, so none repeats).
      let lastNs: bigint | undefined;
      let shownAtLast = 0;
      let giveUpAt = 0;
      for (;;) {
        const query = lastNs === undefined ? { tail, sinceNs, untilNs } : { sinceNs: lastNs, untilNs };
        let skip = lastNs === undefined ? 0 : shownAtLast;
        try {
          await machine().logs(
            ctx,
            ref,
            query,
            Boolean(flags.follow),
            (line) => {
              const ns = line.timeNs;
              giveUpAt = 0;
              if (lastNs !== undefined && ns === lastNs && skip > 0) {
                skip--;
                return;
              }
              shownAtLast = ns === lastNs ? shownAtLast + 1 : 1;
              lastNs = ns;
              let data = line.data;
              if (flags.timestamps) {
                const iso = new Date(Number(ns / 1_000_000n))
                  .toISOString()
                  .replace(/\.\d+Z$/, `.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`);
                data = Buffer.concat([Buffer.from(`${iso} `), data]);
              }
              (line.stream === 'stderr' ? process.stderr : process.stdout).write(data);
            },
            abort.signal,
          );
          return;
        } catch (err) {
          if (!flags.follow || abort.signal.aborted || !isBosonError(err, 'DAEMON_UNAVAILABLE')) throw err;
          giveUpAt ||= Date.now() + 120_000;
          if (Date.now() > giveUpAt) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    });
}

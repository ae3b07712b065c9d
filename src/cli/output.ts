/**
 * Terminal output shared by every command: JSON for --json, tables for people, progress lines only on a terminal,
 * and the one place where errors become a message and an exit status.
 */
import { createRequire } from 'node:module';
import type TableModule from 'cli-table3';
import { ERROR_CATALOGUE, toBosonError } from '../common/index.ts';
import { terminalSettings } from '../main/index.ts';

/** cli-table3, loaded by the first table printed: commands that print none (run, pull) do not load it. */
function tableModule(): typeof TableModule {
  return createRequire(import.meta.url)('cli-table3') as typeof TableModule;
}

/** Prints `value` as pretty JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Prints rows as a borderless table with a header, like docker's listings. */
export function printTable(head: string[], rows: string[][]): void {
  const Table = tableModule();
  const table = new Table({
    head,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '   ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  table.push(...rows);
  process.stdout.write(
    table
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n') + '\n',
  );
}

/** A one-line status on stderr that rewrites itself on a terminal and stays silent otherwise. */
export class StatusLine {
  private shown = false;
  private readonly enabled = Boolean(process.stderr.isTTY) && !terminalSettings().quiet;

  /** Shows `text` as the current step. */
  update(text: string): void {
    if (!this.enabled) return;
    process.stderr.write(`\r\x1b[2K${text}…`);
    this.shown = true;
  }

  /** Removes the line. */
  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }

  /** Prints "Warning: text" on a line of its own (on a terminal too: the status line gives way). */
  warn(text: string): void {
    this.clear();
    process.stderr.write(`Warning: ${text}\n`);
  }
}

/** Formats a byte count as docker does (e.g. "4.3MB"). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}

/**
 * Reports `err` on stderr (one line, or JSON with --json) and returns the exit status for it. This is the CLI's
 * only translation of errors.
 */
export function reportError(err: unknown, json: boolean): number {
  const e = toBosonError(err);
  if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, kind: e.kind, message: e.message, details: e.details } }) + '\n');
  else process.stderr.write(`boson: ${e.message}\n`);
  if (e.code === 'INTERNAL' && terminalSettings().debug) process.stderr.write(`${(e.cause as Error | undefined)?.stack ?? e.stack}\n`);
  return ERROR_CATALOGUE[e.code].exit;
}

/**
 * Resolves once everything written to stdout and stderr has left this process: writes to a pipe can be queued,
 * and process.exit() would drop them.
 */
export async function flushOutput(): Promise<void> {
  const drained = async (stream: NodeJS.WriteStream): Promise<void> => {
    while (stream.writableLength > 0) await new Promise((resolve) => stream.once('drain', resolve));
  };
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
}

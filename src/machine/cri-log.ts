/**
 * A container's log in the CRI format that kubelet reads (`kubectl logs`): one record per line,
 * `<RFC3339Nano time> <stdout|stderr> <F|P> <content>\n`. A line longer than MAX_RECORD_BYTES is cut into partial
 * records (P) before its full one (F); output without its newline waits for the rest of its line, and is written as
 * the line's end (F) when the process ends.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { StreamSink } from './port/index.ts';

/** The longest content of one record; longer lines become partial records (containerd's default is 16 KiB). */
export const MAX_RECORD_BYTES = 16 * 1024;

const NS_AT_LOAD = BigInt(Date.now()) * 1_000_000n;
const HR_AT_LOAD = process.hrtime.bigint();

/** Now, in nanoseconds since the epoch (the wall clock at load, advanced by the monotonic clock). */
export function nowNs(): bigint {
  return NS_AT_LOAD + (process.hrtime.bigint() - HR_AT_LOAD);
}

/** RFC 3339 with nanoseconds, in UTC (Go's time.RFC3339Nano as kubelet parses it). */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}

/** The CRI log records of `data` written on `stream`, with `pending` the unfinished line before it; returns what stays pending. */
export function criRecords(
  stream: 'stdout' | 'stderr',
  pending: Buffer,
  data: Buffer,
  time: string,
): { records: Buffer[]; pending: Buffer } {
  const records: Buffer[] = [];
  let buf = pending.length > 0 ? Buffer.concat([pending, data]) : data;
  const record = (tag: 'F' | 'P', content: Buffer): void => {
    records.push(Buffer.concat([Buffer.from(`${time} ${stream} ${tag} `), content, Buffer.from('\n')]));
  };
  for (;;) {
    const nl = buf.indexOf(0x0a);
    if (nl >= 0 && nl <= MAX_RECORD_BYTES) {
      record('F', buf.subarray(0, nl));
      buf = buf.subarray(nl + 1);
    } else if (buf.length > MAX_RECORD_BYTES) {
      record('P', buf.subarray(0, MAX_RECORD_BYTES));
      buf = buf.subarray(MAX_RECORD_BYTES);
    } else break;
  }
  return { records, pending: Buffer.from(buf) };
}

/** Writes one container's output to its CRI log file (appending; reopened after kubelet rotates it). */
export class CriLogWriter {
  private fd: number | null;
  private readonly pending: Record<'stdout' | 'stderr', Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };

  /** Opens (creates) `file` for appending; its directory is made if missing. */
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.fd = openSync(file, 'a', 0o640);
  }

  /** Adds output of `stream`. */
  write(stream: 'stdout' | 'stderr', data: Buffer): void {
    const { records, pending } = criRecords(stream, this.pending[stream], data, rfc3339Nano(nowNs()));
    this.pending[stream] = pending;
    if (this.fd === null) return;
    for (const r of records) writeSync(this.fd, r);
  }

  /** A sink that writes here. */
  sink(): StreamSink {
    return { stdout: (d) => this.write('stdout', d), stderr: (d) => this.write('stderr', d) };
  }

  /** Opens the file again (kubelet renamed it away to rotate it). */
  reopen(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = openSync(this.file, 'a', 0o640);
  }

  /** Writes what is left of unfinished lines as full records, and closes the file. */
  close(): void {
    if (this.fd === null) return;
    const time = rfc3339Nano(nowNs());
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.pending[stream].length > 0)
        writeSync(this.fd, Buffer.concat([Buffer.from(`${time} ${stream} F `), this.pending[stream], Buffer.from('\n')]));
      this.pending[stream] = Buffer.alloc(0);
    }
    closeSync(this.fd);
    this.fd = null;
  }
}

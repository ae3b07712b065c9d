/**
 * A container's log file: the guest's `boson.log` port, appended to by QEMU itself, so it survives the daemon.
 * It holds timestamped STDOUT/STDERR records plus STARTED, ERROR and EXIT (docs/guest-protocol.md, version 2).
 * This module reads it: all records with Docker's filters (since, until, tail), follow mode, and the last exit.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { watch } from 'node:fs';
import { FrameType, HEADER_SIZE, MAX_PAYLOAD, type Frame } from '../guest/index.ts';
import type { RotationFeed } from './log-rotation.ts';
import type { LogLine, LogQuery } from './port/index.ts';

export type { LogLine, LogQuery };

/** A lifecycle record found in the log. */
export interface LogLifecycle {
  kind: 'started' | 'exit' | 'error';
  timeNs: bigint;
  status?: number;
  signal?: number;
  reason?: number;
  message?: string;
}

/** The whole frames at the start of `data`, how many bytes they took, and whether a damaged header follows them. */
function splitFrames(data: Buffer): { frames: Frame[]; consumed: number; damaged: boolean } {
  const frames: Frame[] = [];
  let off = 0;
  while (data.length - off >= HEADER_SIZE) {
    const length = data.readUInt32BE(off + 4);
    if (length > MAX_PAYLOAD + 8) return { frames, consumed: off, damaged: true };
    if (data.length - off < HEADER_SIZE + length) break;
    frames.push({
      type: data.readUInt8(off),
      session: data.readUInt16BE(off + 2),
      payload: data.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length),
    });
    off += HEADER_SIZE + length;
  }
  return { frames, consumed: off, damaged: false };
}

/** Parses whole records from `frames`; output is split into lines so that tail and timestamps work per line. */
function toRecords(
  frames: Frame[],
  lines: LogLine[],
  lifecycle: LogLifecycle[],
  partial: Map<string, { timeNs: bigint; data: Buffer }>,
): void {
  for (const f of frames) {
    if (f.payload.length < 8) continue;
    const timeNs = f.payload.readBigUInt64BE(0);
    const body = f.payload.subarray(8);
    if (f.type === FrameType.STDOUT || f.type === FrameType.STDERR) {
      const stream = f.type === FrameType.STDOUT ? 'stdout' : 'stderr';
      let data = body;
      const pending = partial.get(stream);
      if (pending) data = Buffer.concat([pending.data, data]);
      const start = pending?.timeNs ?? timeNs;
      let off = 0;
      for (let nl = data.indexOf(10, off); nl >= 0; nl = data.indexOf(10, off)) {
        lines.push({ stream, timeNs: off === 0 ? start : timeNs, data: data.subarray(off, nl + 1) });
        off = nl + 1;
      }
      if (off < data.length) partial.set(stream, { timeNs: off === 0 ? start : timeNs, data: data.subarray(off) });
      else partial.delete(stream);
    } else if (f.type === FrameType.EXIT && body.length >= 8) {
      lifecycle.push({ kind: 'exit', timeNs, status: body.readInt32BE(0), signal: body.readUInt32BE(4) });
    } else if (f.type === FrameType.STARTED) {
      lifecycle.push({ kind: 'started', timeNs });
    } else if (f.type === FrameType.ERROR && body.length >= 1) {
      lifecycle.push({ kind: 'error', timeNs, reason: body.readUInt8(0), message: body.subarray(1).toString('utf8') });
    }
  }
}

/**
 * Reads a log file from `offset`; returns its lines, lifecycle records and the offset after the last whole record.
 * A corrupted file (a record header no writer could have made) is read up to the damage, which `corruptAt` gives:
 * one damaged log must never make its container, or the daemon, unusable.
 */
export async function readLog(
  file: string,
  offset = 0,
  maxBytes = Infinity,
): Promise<{ lines: LogLine[]; lifecycle: LogLifecycle[]; end: number; corruptAt?: number }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch {
    return { lines: [], lifecycle: [], end: offset };
  }
  try {
    return await readLogFrom(handle, offset, maxBytes);
  } finally {
    await handle.close();
  }
}

/** readLog on an open file (a follower keeps its file open, so that it reads to the end after an unlink). */
async function readLogFrom(
  handle: FileHandle,
  offset: number,
  maxBytes = Infinity,
): Promise<{ lines: LogLine[]; lifecycle: LogLifecycle[]; end: number; corruptAt?: number }> {
  const lines: LogLine[] = [];
  const lifecycle: LogLifecycle[] = [];
  const partial = new Map<string, { timeNs: bigint; data: Buffer }>();
  const buf = Buffer.alloc(1 << 20);
  let pos = offset;
  let carry: Buffer = Buffer.alloc(0);
  const flushPartial = (): void => {
    // A line without its newline yet (the process is still writing it) is still output.
    for (const [stream, p] of partial) lines.push({ stream: stream as LogLine['stream'], timeNs: p.timeNs, data: p.data });
  };
  for (;;) {
    const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : Buffer.from(buf.subarray(0, bytesRead));
    const { frames, consumed, damaged } = splitFrames(data);
    toRecords(frames, lines, lifecycle, partial);
    if (damaged) {
      flushPartial();
      const at = pos - carry.length + consumed;
      return { lines, lifecycle, end: at, corruptAt: at };
    }
    carry = data.subarray(consumed);
    pos += bytesRead;
    // A batch (what a follower delivers before it waits for its reader) ends at a whole record.
    if (pos - offset >= maxBytes && consumed > 0) break;
  }
  flushPartial();
  return { lines, lifecycle, end: pos - carry.length };
}

/** Applies a LogQuery to lines. */
export function filterLines(lines: LogLine[], q: LogQuery): LogLine[] {
  let out = lines.filter((l) => (l.stream === 'stdout' ? q.stdout !== false : q.stderr !== false));
  if (q.sinceNs !== undefined) out = out.filter((l) => l.timeNs >= q.sinceNs!);
  if (q.untilNs !== undefined) out = out.filter((l) => l.timeNs <= q.untilNs!);
  if (q.tail !== undefined && q.tail >= 0) out = q.tail === 0 ? [] : out.slice(-q.tail);
  return out;
}

/** The last EXIT recorded in a log file, if any (how a container that died while no daemon ran ended). */
export async function lastExit(file: string): Promise<LogLifecycle | undefined> {
  const { lifecycle } = await readLog(file);
  const lastStart = lifecycle.map((l) => l.kind).lastIndexOf('started');
  const exits = lifecycle.filter((l, i) => l.kind === 'exit' && i > lastStart);
  return exits.at(-1);
}

/** How much of a log a follower reads and delivers before it asks its reader whether it keeps up. */
export const FOLLOW_BATCH_BYTES = 1 << 20;

/**
 * Follows a log file from `offset`, calling `onLine` for each new line as the guest writes it, until `signal`
 * aborts, or until `drain` aborts: then what the file holds is read to its end first (abort `drain` once the writer,
 * QEMU, is gone, and no byte is lost). Uses fs.watch with a polling fallback (QEMU appends from another process).
 * With `rotations`, it follows the log across rotations (log-rotation.ts): what it had not read yet when the file
 * was rotated is read from the rotated copy first (kept open), then the current file from its new start.
 */
export async function followLog(
  file: string,
  offset: number,
  q: LogQuery,
  onLine: (line: LogLine) => void,
  onLifecycle: (l: LogLifecycle) => void,
  signal: AbortSignal,
  drain?: AbortSignal,
  ready?: () => Promise<void>,
  rotations?: RotationFeed,
): Promise<void> {
  let pos = offset;
  let busy = false;
  let again = false;
  // Rotated copies still to be read (oldest first), a rotation in progress, and the read it waits for.
  const segments: Array<{ handle: FileHandle; pos: number }> = [];
  let held: { promise: Promise<void>; release: () => void } | undefined;
  let reading: Promise<unknown> | undefined;
  const unsubscribe = rotations?.subscribe({
    hold: async () => {
      let release!: () => void;
      held = { promise: new Promise<void>((r) => (release = r)), release };
      await reading?.catch(() => undefined);
    },
    rotated: async (copy, boundary) => {
      if (pos >= boundary) pos -= boundary;
      else {
        const h = copy === null ? undefined : await open(copy, 'r').catch(() => undefined);
        if (h) segments.push({ handle: h, pos });
        pos = 0;
        // Beyond max-file the data is gone by policy: a follower that far behind skips it.
        while (segments.length > Math.max(rotations.maxFiles - 1, 0)) await segments.shift()!.handle.close();
      }
      const h = held;
      held = undefined;
      h?.release();
      void pump();
    },
  });
  /** One read, never while a rotation moves the file's bytes. */
  const readAt = async (h: FileHandle, at: number): ReturnType<typeof readLogFrom> => {
    while (held) await held.promise;
    const r = readLogFrom(h, at, FOLLOW_BATCH_BYTES);
    reading = r;
    try {
      return await r;
    } finally {
      reading = undefined;
    }
  };
  // The file is opened once (it may not exist yet when an attach begins before the start) and kept open, so that a
  // container removed right after it ends (--rm) still has its last output read; watched once it exists.
  let handle: FileHandle | undefined;
  let watcher: ReturnType<typeof watch> | undefined;
  const pump = async (): Promise<void> => {
    if (busy) {
      again = true;
      return;
    }
    if (stopped) return;
    busy = true;
    try {
      do {
        again = false;
        if (!handle) {
          handle = await open(file, 'r').catch(() => undefined);
          if (!handle) continue;
          try {
            watcher = watch(file, () => void pump());
          } catch {
            // No inotify for this file: polling alone.
          }
        }
        const seg = segments[0];
        if (seg) {
          const { size } = await seg.handle.stat();
          const { lines, lifecycle, end } = await readAt(seg.handle, seg.pos);
          if (segments[0] === seg) seg.pos = end;
          for (const l of filterLines(lines, { ...q, tail: undefined })) onLine(l);
          for (const l of lifecycle) onLifecycle(l);
          if ((end >= size || lines.length + lifecycle.length === 0) && segments[0] === seg) await segments.shift()!.handle.close();
          if (ready) await ready();
          again = true;
          continue;
        }
        while (held) await held.promise;
        const { size } = await handle.stat();
        if (size <= pos) continue;
        const from = pos;
        const { lines, lifecycle, end } = await readAt(handle, pos);
        // A rotation between the stat and the read: read again from where it left this follower.
        if (pos !== from) {
          again = true;
          continue;
        }
        pos = end;
        for (const l of filterLines(lines, { ...q, tail: undefined })) onLine(l);
        for (const l of lifecycle) onLifecycle(l);
        // A slow reader holds the rest back in the file (not in memory); then the rest of the file, batch by batch.
        if (ready) await ready();
        if (end > from && end < size) again = true;
      } while (again && !signal.aborted);
    } finally {
      busy = false;
    }
  };
  // Until the file exists look every 50 ms; then every 250 ms as a fallback to inotify (QEMU appends from another
  // process).
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = (): void => {
    if (!stopped) timer = setTimeout(() => void pump().finally(tick), handle ? 250 : 50);
  };
  await pump();
  tick();
  const drainToEnd = async (): Promise<void> => {
    while (busy) await new Promise((r) => setTimeout(r, 2));
    await pump();
  };
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
    if (drain?.aborted) void drainToEnd().finally(resolve);
    else drain?.addEventListener('abort', () => void drainToEnd().finally(resolve), { once: true });
  });
  stopped = true;
  clearTimeout(timer);
  unsubscribe?.();
  held?.release();
  while (busy) await new Promise((r) => setTimeout(r, 2));
  for (const seg of segments.splice(0)) await seg.handle.close();
  const closing = handle;
  handle = undefined;
  timer = undefined;
  watcher?.close();
  await closing?.close();
}

/** Size of the main process's EXIT record in a log: frame header, timestamp, status and signal. */
const EXIT_RECORD_BYTES = 8 + 8 + 8;

/** True when the log's last record is the main process's EXIT (the guest writes nothing to the log after it). */
export async function logEndsWithExit(file: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return false;
  }
  try {
    const { size } = await handle.stat();
    if (size < EXIT_RECORD_BYTES) return false;
    const tail = Buffer.alloc(EXIT_RECORD_BYTES);
    await handle.read(tail, 0, EXIT_RECORD_BYTES, size - EXIT_RECORD_BYTES);
    return tail[0] === FrameType.EXIT && tail.readUInt16BE(2) === 0 && tail.readUInt32BE(4) === 16;
  } finally {
    await handle.close();
  }
}

/**
 * Waits (up to `timeoutMs`) until QEMU has written the EXIT record to the log. boson-init writes the record on its
 * log port, then EXIT on the control port; the control frame can reach the host while output records are still in
 * the log port's queue inside QEMU, and quitting QEMU then would lose them.
 */
export async function waitForLogExit(file: string, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await logEndsWithExit(file)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
}

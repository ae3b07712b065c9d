/**
 * Host side of the boson-init wire protocol (docs/guest-protocol.md): frame encoding, an incremental frame
 * decoder, and the SPEC record encoder. Pure functions over bytes; no I/O.
 */
import { BosonError } from '../common/index.ts';

/** Protocol version this host speaks. */
export const PROTOCOL_VERSION = 1;
/** Largest payload either side may send in one frame. */
export const MAX_PAYLOAD = 1024 * 1024;
/** Size of the fixed frame header. */
export const HEADER_SIZE = 8;

/** Frame types, as numbered in docs/guest-protocol.md. */
export const FrameType = {
  HELLO: 0x01,
  STARTED: 0x02,
  STDOUT: 0x03,
  STDERR: 0x04,
  EXIT: 0x05,
  ERROR: 0x06,
  LOG: 0x07,
  SPEC: 0x81,
  STDIN: 0x82,
  STDIN_EOF: 0x83,
  SIGNAL: 0x84,
  RESIZE: 0x85,
} as const;

/** Reasons in an ERROR frame. */
export const GuestErrorReason = {
  SPEC_INVALID: 1,
  MOUNT_FAILED: 2,
  USER_UNKNOWN: 3,
  CWD_FAILED: 4,
  NOT_FOUND: 5,
  NOT_EXECUTABLE: 6,
  INTERNAL: 7,
} as const;

/** One decoded frame. */
export interface Frame {
  type: number;
  session: number;
  payload: Buffer;
}

/** Encodes one frame; throws GUEST_PROTOCOL if the payload is too large. */
export function encodeFrame(type: number, payload: Uint8Array = Buffer.alloc(0), session = 0): Buffer {
  if (payload.length > MAX_PAYLOAD) {
    throw new BosonError('GUEST_PROTOCOL', `frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt8(0, 1);
  frame.writeUInt16BE(session, 2);
  frame.writeUInt32BE(payload.length, 4);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** Splits `data` into frames of at most MAX_PAYLOAD bytes each (for STDIN). */
export function encodeChunked(type: number, data: Buffer, session = 0): Buffer[] {
  const frames: Buffer[] = [];
  for (let off = 0; off < data.length; off += MAX_PAYLOAD) {
    frames.push(encodeFrame(type, data.subarray(off, off + MAX_PAYLOAD), session));
  }
  return frames;
}

/**
 * Incremental decoder: feed it chunks as they arrive, get back every complete frame. Throws GUEST_PROTOCOL on a
 * header announcing a payload larger than MAX_PAYLOAD.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Adds `chunk` and returns the frames it completed, in order. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const length = buf.readUInt32BE(off + 4);
      if (length > MAX_PAYLOAD) {
        throw new BosonError('GUEST_PROTOCOL', `guest announced a ${length}-byte frame (limit ${MAX_PAYLOAD})`);
      }
      if (buf.length - off < HEADER_SIZE + length) break;
      frames.push({
        type: buf.readUInt8(off),
        session: buf.readUInt16BE(off + 2),
        payload: buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length),
      });
      off += HEADER_SIZE + length;
    }
    buf = buf.subarray(off);
    this.pending = buf.length > 0 ? [buf] : [];
    this.pendingBytes = buf.length;
    return frames;
  }

  /** Bytes received that do not yet form a whole frame. */
  get buffered(): number {
    return this.pendingBytes;
  }
}

/** What the guest needs to run the container's process. */
export interface RunSpec {
  argv: string[];
  env: string[];
  cwd?: string;
  user?: string;
  hostname?: string;
  tty?: boolean;
  stdin?: boolean;
  winsize?: { rows: number; cols: number };
  rootDisk: string;
  rootFstype?: string;
  scratchDisk?: string;
}

const SpecTag = {
  ARG: 1, ENV: 2, CWD: 3, USER: 4, HOSTNAME: 5, TTY: 6, STDIN: 7, WINSIZE: 8, ROOT_DISK: 9, ROOT_FSTYPE: 10,
  SCRATCH_DISK: 11,
} as const;

/** Encodes a RunSpec as SPEC records; throws INVALID_ARGUMENT if argv is empty or a string holds a NUL. */
export function encodeSpec(spec: RunSpec): Buffer {
  if (spec.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'no command given and the image has none');
  const records: Buffer[] = [];
  const add = (tag: number, value: Buffer): void => {
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(tag, 0);
    head.writeUInt32BE(value.length, 1);
    records.push(head, value);
  };
  const addString = (tag: number, value: string): void => {
    if (value.includes('\0')) throw new BosonError('INVALID_ARGUMENT', `value contains a NUL byte: ${JSON.stringify(value)}`);
    add(tag, Buffer.from(value, 'utf8'));
  };
  for (const arg of spec.argv) addString(SpecTag.ARG, arg);
  for (const kv of spec.env) addString(SpecTag.ENV, kv);
  if (spec.cwd !== undefined) addString(SpecTag.CWD, spec.cwd);
  if (spec.user !== undefined) addString(SpecTag.USER, spec.user);
  if (spec.hostname !== undefined) addString(SpecTag.HOSTNAME, spec.hostname);
  if (spec.tty) add(SpecTag.TTY, Buffer.from([1]));
  if (spec.stdin) add(SpecTag.STDIN, Buffer.from([1]));
  if (spec.winsize) add(SpecTag.WINSIZE, encodeWinsize(spec.winsize.rows, spec.winsize.cols));
  addString(SpecTag.ROOT_DISK, spec.rootDisk);
  if (spec.rootFstype !== undefined) addString(SpecTag.ROOT_FSTYPE, spec.rootFstype);
  if (spec.scratchDisk !== undefined) addString(SpecTag.SCRATCH_DISK, spec.scratchDisk);
  return Buffer.concat(records);
}

/** Encodes a window size (RESIZE payload, WINSIZE record), clamping to u16. */
export function encodeWinsize(rows: number, cols: number): Buffer {
  const clamp = (n: number): number => Math.max(0, Math.min(0xffff, Math.trunc(n) || 0));
  const buf = Buffer.allocUnsafe(4);
  buf.writeUInt16BE(clamp(rows), 0);
  buf.writeUInt16BE(clamp(cols), 2);
  return buf;
}

/** Decoded HELLO payload. */
export interface Hello {
  version: number;
  boottimeNs: bigint;
}

/** Decoded EXIT payload. */
export interface ExitReport {
  status: number;
  signal: number;
}

/** Decoded ERROR payload. */
export interface GuestErrorReport {
  reason: number;
  message: string;
}

function need(frame: Frame, bytes: number, what: string): void {
  if (frame.payload.length < bytes) {
    throw new BosonError('GUEST_PROTOCOL', `${what} frame too short (${frame.payload.length} < ${bytes} bytes)`);
  }
}

/** Decodes a HELLO frame. */
export function decodeHello(frame: Frame): Hello {
  need(frame, 12, 'HELLO');
  return { version: frame.payload.readUInt32BE(0), boottimeNs: frame.payload.readBigUInt64BE(4) };
}

/** Decodes an EXIT frame. */
export function decodeExit(frame: Frame): ExitReport {
  need(frame, 8, 'EXIT');
  return { status: frame.payload.readInt32BE(0), signal: frame.payload.readUInt32BE(4) };
}

/** Decodes an ERROR frame. */
export function decodeError(frame: Frame): GuestErrorReport {
  need(frame, 1, 'ERROR');
  return { reason: frame.payload.readUInt8(0), message: frame.payload.subarray(1).toString('utf8') };
}

/** Decodes a STARTED frame's pid. */
export function decodeStarted(frame: Frame): number {
  need(frame, 4, 'STARTED');
  return frame.payload.readUInt32BE(0);
}

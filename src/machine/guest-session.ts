/**
 * One conversation with boson-init over the control channel: wait for HELLO, send SPEC, stream output out and
 * input in, and end with the container's exit status (or a typed error if it could not start or the guest died).
 */
import type { Duplex, Writable } from 'node:stream';
import { BosonError, type ErrorCode } from '../common/index.ts';
import {
  FrameDecoder, FrameType, GuestErrorReason, PROTOCOL_VERSION, decodeError, decodeExit, decodeHello, decodeStarted,
  encodeChunked, encodeFrame, encodeSpec, encodeWinsize, type Frame, type Hello, type RunSpec,
} from '../guest/index.ts';

/** How the container's process ended. */
export interface ProcessExit {
  /** Exit status as Docker reports it: the code, or 128+N for signal N. */
  status: number;
  /** The signal that killed it, or 0. */
  signal: number;
}

const REASON_CODES: Record<number, ErrorCode> = {
  [GuestErrorReason.SPEC_INVALID]: 'GUEST_PROTOCOL',
  [GuestErrorReason.MOUNT_FAILED]: 'CONTAINER_START_FAILED',
  [GuestErrorReason.USER_UNKNOWN]: 'CONTAINER_USER_UNKNOWN',
  [GuestErrorReason.CWD_FAILED]: 'CONTAINER_START_FAILED',
  [GuestErrorReason.NOT_FOUND]: 'COMMAND_NOT_FOUND',
  [GuestErrorReason.NOT_EXECUTABLE]: 'COMMAND_NOT_EXECUTABLE',
  [GuestErrorReason.INTERNAL]: 'INTERNAL',
};

/** Where the container's output goes. Writes apply back-pressure to the guest. */
export interface SessionOutput {
  stdout: Writable;
  stderr: Writable;
}

/** The host end of a guest's control channel. */
export class GuestSession {
  private readonly decoder = new FrameDecoder();
  private helloWaiter: { resolve: (h: Hello) => void; reject: (e: Error) => void } | undefined;
  private hello: Hello | undefined;
  private output: SessionOutput | undefined;
  private guestError: BosonError | undefined;
  private exitReport: ProcessExit | undefined;
  private finish!: { resolve: (e: ProcessExit) => void; reject: (e: Error) => void };
  /** Resolves with the process's exit, or rejects with a typed error (start failure, crash, protocol). */
  readonly done: Promise<ProcessExit>;
  /** The container process's pid in the guest, once started. */
  pid: number | undefined;
  private stopped = false;

  constructor(private readonly channel: Duplex) {
    this.done = new Promise((resolve, reject) => (this.finish = { resolve, reject }));
    this.done.catch(() => undefined);
    channel.on('data', (chunk: Buffer) => this.onData(chunk));
    // EOF from the guest end and a closed socket both mean the guest is gone.
    channel.on('end', () => this.onClose());
    channel.on('close', () => this.onClose());
    channel.on('error', () => undefined);
  }

  /** Resolves when the guest has said HELLO (the "booted" signal). */
  waitForHello(): Promise<Hello> {
    if (this.hello) return Promise.resolve(this.hello);
    return new Promise((resolve, reject) => (this.helloWaiter = { resolve, reject }));
  }

  /** Sends the run specification and starts forwarding output to `output`. */
  start(spec: RunSpec, output: SessionOutput): void {
    this.output = output;
    this.channel.write(encodeFrame(FrameType.SPEC, encodeSpec(spec)));
  }

  /** Forwards stdin bytes; returns false when the caller should wait for 'drain' on the channel. */
  writeStdin(data: Buffer): boolean {
    let ok = true;
    for (const frame of encodeChunked(FrameType.STDIN, data)) ok = this.channel.write(frame);
    return ok;
  }

  /** The channel, for waiting on 'drain'. */
  get stream(): Duplex {
    return this.channel;
  }

  /** Closes the process's stdin. */
  closeStdin(): void {
    this.channel.write(encodeFrame(FrameType.STDIN_EOF));
  }

  /** Sends signal number `signo` to the process. */
  signal(signo: number): void {
    if (!this.exitReport) this.channel.write(encodeFrame(FrameType.SIGNAL, u32(signo)));
  }

  /** Resizes the process's pty. */
  resize(rows: number, cols: number): void {
    this.channel.write(encodeFrame(FrameType.RESIZE, encodeWinsize(rows, cols)));
  }

  /** Marks the session as ended by the host (a forced stop): closing the channel then reports `exit` instead of a crash. */
  markStopped(exit: ProcessExit): void {
    this.stopped = true;
    this.exitReport ??= exit;
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    try {
      for (const frame of frames) this.onFrame(frame);
    } catch (err) {
      // A malformed frame (e.g. too short for its type) ends the session with GUEST_PROTOCOL.
      this.fail(err as Error);
    }
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.HELLO: {
        const hello = decodeHello(frame);
        if (hello.version !== PROTOCOL_VERSION) {
          this.fail(new BosonError('GUEST_PROTOCOL', `guest speaks protocol ${hello.version}, host speaks ${PROTOCOL_VERSION} (rebuild boson-init)`));
          return;
        }
        this.hello = hello;
        this.helloWaiter?.resolve(hello);
        return;
      }
      case FrameType.STARTED:
        this.pid = decodeStarted(frame);
        return;
      case FrameType.STDOUT:
      case FrameType.STDERR: {
        const sink = frame.type === FrameType.STDOUT ? this.output?.stdout : this.output?.stderr;
        if (sink && !sink.write(frame.payload)) {
          this.channel.pause();
          sink.once('drain', () => this.channel.resume());
        }
        return;
      }
      case FrameType.ERROR: {
        const { reason, message } = decodeError(frame);
        this.guestError = new BosonError(REASON_CODES[reason] ?? 'INTERNAL', message, { details: { guestReason: reason } });
        return;
      }
      case FrameType.EXIT:
        this.exitReport = decodeExit(frame);
        if (this.guestError) this.finish.reject(this.guestError);
        else this.finish.resolve(this.exitReport);
        return;
      case FrameType.LOG:
        if (process.env.BOSON_DEBUG) process.stderr.write(`[boson-init] ${frame.payload.toString('utf8')}\n`);
        return;
      default:
        // Unknown guest frames are ignored, so that newer inits can add frame types.
        return;
    }
  }

  private onClose(): void {
    if (this.stopped && this.exitReport) {
      this.finish.resolve(this.exitReport);
      return;
    }
    if (!this.exitReport) this.fail(new BosonError('GUEST_CRASHED', 'the micro-VM ended without reporting an exit status'));
  }

  private fail(err: Error): void {
    this.helloWaiter?.reject(err);
    this.finish.reject(err);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

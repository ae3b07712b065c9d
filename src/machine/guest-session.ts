/**
 * One foreground conversation with boson-init (`boson run`): wait for HELLO, send SPEC, stream the main process's
 * output out and its input in, and end with its exit status (or a typed error if it could not start or the guest
 * died). Built on the ControlChannel the daemon uses too; here the output arrives on the control channel itself.
 */
import type { Duplex, Writable } from 'node:stream';
import { BosonError, isBosonError, type ErrorCode } from '../common/index.ts';
import { FrameType, GuestErrorReason, decodeError, decodeExit, decodeStarted, encodeSpec, type Frame, type Hello, type RunSpec } from '../guest/index.ts';
import { ControlChannel } from './control-channel.ts';

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

/** The catalogue error for a guest ERROR frame. */
export function guestError(frame: Frame): BosonError {
  const { reason, message } = decodeError(frame);
  return new BosonError(REASON_CODES[reason] ?? 'INTERNAL', message, { details: { guestReason: reason } });
}

/** Where the container's output goes. Writes apply back-pressure to the guest. */
export interface SessionOutput {
  stdout: Writable;
  stderr: Writable;
}

/** The host end of a foreground guest's control channel. */
export class GuestSession {
  private readonly ctl: ControlChannel;
  private output: SessionOutput | undefined;
  private startError: BosonError | undefined;
  private exitReport: ProcessExit | undefined;
  private finish!: { resolve: (e: ProcessExit) => void; reject: (e: Error) => void };
  /** Resolves with the process's exit, or rejects with a typed error (start failure, crash, protocol). */
  readonly done: Promise<ProcessExit>;
  /** The container process's pid in the guest, once started. */
  pid: number | undefined;
  private stopped = false;

  constructor(channel: Duplex) {
    this.done = new Promise((resolve, reject) => (this.finish = { resolve, reject }));
    this.done.catch(() => undefined);
    this.ctl = new ControlChannel(channel);
    this.ctl.onSession(0, (frame) => this.onFrame(frame));
    this.ctl.onClose((reason) => this.onClose(reason));
  }

  /** Resolves when the guest has said HELLO (the "booted" signal). */
  waitForHello(): Promise<Hello> {
    return this.ctl.waitForHello();
  }

  /** Sends the run specification and starts forwarding output to `output`. */
  start(spec: RunSpec, output: SessionOutput): void {
    this.output = output;
    this.ctl.send(FrameType.SPEC, encodeSpec(spec));
  }

  /** Forwards stdin bytes; returns false when the caller should wait for 'drain' on the channel. */
  writeStdin(data: Buffer): boolean {
    return this.ctl.sendStdin(data);
  }

  /** The channel, for waiting on 'drain'. */
  get stream(): Duplex {
    return this.ctl.raw;
  }

  /** Closes the process's stdin. */
  closeStdin(): void {
    this.ctl.send(FrameType.STDIN_EOF);
  }

  /** Sends signal number `signo` to the process. */
  signal(signo: number): void {
    if (!this.exitReport) this.ctl.sendSignal(signo);
  }

  /** Resizes the process's pty. */
  resize(rows: number, cols: number): void {
    this.ctl.sendResize(rows, cols);
  }

  /** Marks the session as ended by the host (a forced stop): closing the channel then reports `exit` instead of a crash. */
  markStopped(exit: ProcessExit): void {
    this.stopped = true;
    this.exitReport ??= exit;
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.STARTED:
        this.pid = decodeStarted(frame);
        return;
      case FrameType.STDOUT:
      case FrameType.STDERR: {
        const sink = frame.type === FrameType.STDOUT ? this.output?.stdout : this.output?.stderr;
        if (sink && !sink.write(frame.payload)) {
          this.ctl.raw.pause();
          sink.once('drain', () => this.ctl.raw.resume());
        }
        return;
      }
      case FrameType.ERROR:
        this.startError = guestError(frame);
        return;
      case FrameType.EXIT:
        this.exitReport = decodeExit(frame);
        if (this.startError) this.finish.reject(this.startError);
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

  private onClose(reason: Error): void {
    if (this.stopped && this.exitReport) this.finish.resolve(this.exitReport);
    else if (!this.exitReport) this.finish.reject(isBosonError(reason, 'GUEST_PROTOCOL') ? reason : new BosonError('GUEST_CRASHED', 'the micro-VM ended without reporting an exit status'));
  }
}

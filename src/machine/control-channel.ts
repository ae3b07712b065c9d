/**
 * The control channel of a daemon-managed micro-VM (port boson.ctl): HELLO, then frames sorted by session, so that
 * the main process (session 0) and each exec session get their own stream of frames. Output of session 0 does not
 * come here: with LOG_PORT it goes to the log file (logs.ts).
 */
import type { Duplex } from 'node:stream';
import { BosonError, READY, type ErrorCode } from '../common/index.ts';
import {
  FrameDecoder,
  FrameType,
  GuestErrorReason,
  decodeError,
  decodeHello,
  encodeFrame,
  encodeChunked,
  encodeWinsize,
  PROTOCOL_VERSION,
  type Frame,
  type Hello,
} from '../guest/index.ts';

/** Receives the frames of one session. */
export type SessionHandler = (frame: Frame) => void;

/** The host end of boson.ctl for a daemon-managed VM. */
export class ControlChannel {
  private readonly decoder = new FrameDecoder();
  private readonly handlers = new Map<number, SessionHandler>();
  private hello: Hello | undefined;
  private helloWaiters: Array<{ resolve: (h: Hello) => void; reject: (e: Error) => void }> = [];
  private closedFlag = false;
  private holds = 0;
  private syncWaiters: Array<(ok: boolean) => void> = [];
  private closeReason: Error | undefined;
  private readonly closeHandlers: Array<(reason: Error) => void> = [];

  constructor(private readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
      try {
        for (const frame of frames) this.dispatch(frame);
      } catch (err) {
        // A frame its handler could not decode (e.g. too short for its type).
        this.fail(err as Error);
      }
    });
    stream.on('error', () => undefined);
    // EOF from the guest end and a closed socket both mean the guest is gone.
    const gone = (): void => this.fail(new BosonError('GUEST_CRASHED', 'the micro-VM closed its control channel'));
    stream.on('end', gone);
    stream.on('close', gone);
  }

  /** Resolves on HELLO (the booted signal); rejects if the channel closes first or speaks another version. */
  waitForHello(): Promise<Hello> {
    if (this.hello) return Promise.resolve(this.hello);
    return new Promise((resolve, reject) => this.helloWaiters.push({ resolve, reject }));
  }

  /** Routes frames of `session` to `handler` (replacing any previous one). */
  onSession(session: number, handler: SessionHandler): void {
    this.handlers.set(session, handler);
  }

  /** Stops routing frames of `session`. */
  offSession(session: number): void {
    this.handlers.delete(session);
  }

  /** Calls `handler` once when the channel closes (QEMU gone or disconnected, or a malformed frame), with why. */
  onClose(handler: (reason: Error) => void): void {
    if (this.closedFlag) handler(this.closeReason!);
    else this.closeHandlers.push(handler);
  }

  /** True once the channel has closed. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /**
   * Stops reading the guest until `until` settles (several holds: until all have), so that output for a client that
   * does not read waits in the guest (its virtio-serial queue, then its writer) instead of this process's memory.
   * `READY` (a client that keeps up) holds nothing.
   */
  holdUntil(until: Promise<void>): void {
    if (until === READY || this.closedFlag) return;
    if (this.holds++ === 0) this.stream.pause();
    const release = (): void => {
      if (--this.holds === 0 && !this.closedFlag) this.stream.resume();
    };
    until.then(release, release);
  }

  /** Sends one frame; false when the caller should wait for 'drain'. */
  send(type: number, payload: Buffer = Buffer.alloc(0), session = 0): boolean {
    if (this.closedFlag) return true;
    return this.stream.write(encodeFrame(type, payload, session));
  }

  /** Sends stdin bytes to a session. */
  sendStdin(data: Buffer, session = 0): boolean {
    let ok = true;
    if (this.closedFlag) return true;
    for (const frame of encodeChunked(FrameType.STDIN, data, session)) ok = this.stream.write(frame);
    return ok;
  }

  /** Sends a signal to a session's process. */
  sendSignal(signo: number, session = 0): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(signo);
    this.send(FrameType.SIGNAL, b, session);
  }

  /** Resizes a session's pty. */
  sendResize(rows: number, cols: number, session = 0): void {
    this.send(FrameType.RESIZE, encodeWinsize(rows, cols), session);
  }

  /**
   * Asks init to sync() the guest's filesystems and resolves true when it says it has; false after `timeoutMs`
   * (an init from before SYNC ignores it) or when the channel closes. Uses session SYNC_SESSION.
   */
  syncGuest(timeoutMs: number): Promise<boolean> {
    if (this.closedFlag) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.syncWaiters.push(done);
      this.onClose(() => done(false));
      this.send(FrameType.SYNC, Buffer.alloc(0), SYNC_SESSION);
    });
  }

  /** Sets the guest's clock to the host's now (a VM resumed from a saved state: its clock stood still). */
  sendClock(): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(Date.now()) * 1_000_000n);
    this.send(FrameType.CLOCK, b);
  }

  /** The stream, for waiting on 'drain'. */
  get raw(): Duplex {
    return this.stream;
  }

  /** Closes the host end (the VM keeps running). */
  close(): void {
    this.stream.destroy();
  }

  private dispatch(frame: Frame): void {
    if (frame.type === FrameType.HELLO) {
      try {
        const hello = decodeHello(frame);
        if (hello.version !== PROTOCOL_VERSION)
          throw new BosonError(
            'GUEST_PROTOCOL',
            `guest speaks protocol ${hello.version}, host speaks ${PROTOCOL_VERSION} (rebuild boson-init)`,
          );
        this.hello = hello;
        for (const w of this.helloWaiters.splice(0)) w.resolve(hello);
      } catch (err) {
        this.fail(err as Error);
      }
      return;
    }
    if (frame.type === FrameType.SYNCED) {
      for (const w of [...this.syncWaiters]) w(true);
      return;
    }
    this.handlers.get(frame.session)?.(frame);
  }

  private fail(err: Error): void {
    for (const w of this.helloWaiters.splice(0)) w.reject(err);
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.closeReason = err;
    for (const h of this.closeHandlers.splice(0)) h(err);
  }
}

/** The session a SYNC is sent on: one no exec takes (the runtime numbers exec sessions from 1 up). */
export const SYNC_SESSION = 0;

const REASON_CODES: Record<number, ErrorCode> = {
  [GuestErrorReason.SPEC_INVALID]: 'GUEST_PROTOCOL',
  [GuestErrorReason.MOUNT_FAILED]: 'CONTAINER_START_FAILED',
  [GuestErrorReason.USER_UNKNOWN]: 'CONTAINER_USER_UNKNOWN',
  [GuestErrorReason.CWD_FAILED]: 'CONTAINER_START_FAILED',
  [GuestErrorReason.NOT_FOUND]: 'COMMAND_NOT_FOUND',
  [GuestErrorReason.NOT_EXECUTABLE]: 'COMMAND_NOT_EXECUTABLE',
  [GuestErrorReason.INTERNAL]: 'INTERNAL',
  [GuestErrorReason.SESSION_IN_USE]: 'INTERNAL',
};

/** The catalogue error for a guest ERROR frame. */
export function guestError(frame: Frame): BosonError {
  const { reason, message } = decodeError(frame);
  return new BosonError(REASON_CODES[reason] ?? 'INTERNAL', message, { details: { guestReason: reason } });
}

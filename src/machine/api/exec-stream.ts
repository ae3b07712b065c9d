/**
 * The wire format of a one-request exec (`POST /v1/containers/{ref}/exec`, an upgraded connection), shared by the
 * daemon and its client: output in Docker's 8-byte frames (stream 1 stdout, 2 stderr) with or without a TTY, then
 * one frame on EXEC_STATUS_STREAM whose payload is an ExecStatus as JSON, then the server closes.
 */
import type { Duplex } from 'node:stream';

/** The stream byte of the status frame. */
export const EXEC_STATUS_STREAM = 0x80;

/** The stream byte of a one-request run's first frame: the created container's {id, name} as JSON. */
export const RUN_CREATED_STREAM = 0x81;

/** The stream byte of a run's notices: text for the user that does not end the run (its VM paused on a full disk). */
export const RUN_NOTICE_STREAM = 0x82;

/** How a one-request exec ended: the process's exit code, or (exitCode null) the error that kept it from running. */
export interface ExecStatus {
  exitCode: number | null;
  error?: { code: string; detail: string };
}

/**
 * Feeds an upgraded connection to a process's stdin (an exec's, or an attached container's): first `rest` (what
 * came after the request head or body), then what the client sends, a half-close being stdin's EOF; with `open`
 * false what the client sends is discarded. Then lets the connection flow (it may have been paused meanwhile).
 */
export function pipeClientStdin(socket: Duplex, ctl: { stdin(d: Buffer): void; closeStdin(): void }, open: boolean, rest: Buffer): void {
  if (open) {
    if (rest.length > 0) ctl.stdin(rest);
    socket.on('data', (d: Buffer) => ctl.stdin(d));
    socket.on('end', () => ctl.closeStdin());
  } else socket.on('data', () => undefined);
  socket.resume();
}

/**
 * The wire format of a one-request exec (`POST /v1/containers/{ref}/exec`, an upgraded connection), shared by the
 * daemon and its client: output in Docker's 8-byte frames (stream 1 stdout, 2 stderr) with or without a TTY, then
 * one frame on EXEC_STATUS_STREAM whose payload is an ExecStatus as JSON, then the server closes.
 */

/** The stream byte of the status frame. */
export const EXEC_STATUS_STREAM = 0x80;

/** How a one-request exec ended: the process's exit code, or (exitCode null) the error that kept it from running. */
export interface ExecStatus {
  exitCode: number | null;
  error?: { code: string; detail: string };
}

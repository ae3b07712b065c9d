/**
 * Docker's stream framing, shared by the Docker personality and the machine's REST API (which uses the same frames,
 * plus status streams of its own): an 8-byte header `[stream, 0, 0, 0, size (uint32 BE)]` before each chunk. With a
 * TTY there is no framing: the bytes go as they are.
 */

/** One frame: `stream` (1 stdout, 2 stderr, 0 stdin, or a private stream number up to 255) and its data. */
export function streamFrame(stream: number, data: Buffer): Buffer {
  if (!Number.isInteger(stream) || stream < 0 || stream > 255) throw new RangeError(`stream number out of range: ${stream}`);
  const head = Buffer.alloc(8);
  head.writeUInt8(stream, 0);
  head.writeUInt32BE(data.length, 4);
  return Buffer.concat([head, data]);
}

/** Where a process's output goes (the shape of the machine port's StreamSink). */
export interface FrameSink {
  stdout(data: Buffer): void;
  stderr(data: Buffer): void;
  /** Resolves when the sink can take more (its reader keeps up); output is held back until then. */
  ready?(): Promise<void>;
}

/**
 * A sink that writes each chunk through `out`: framed as stream 1 or 2, or raw with a TTY. Streams not wanted are
 * dropped, and so are empty chunks (an empty frame means nothing to a client).
 */
export function frameSink(
  out: (b: Buffer) => void,
  tty: boolean,
  want: { stdout: boolean; stderr: boolean } = { stdout: true, stderr: true },
): FrameSink {
  return {
    stdout: (d) => {
      if (want.stdout && d.length > 0) out(tty ? d : streamFrame(1, d));
    },
    stderr: (d) => {
      if (want.stderr && d.length > 0) out(tty ? d : streamFrame(2, d));
    },
  };
}

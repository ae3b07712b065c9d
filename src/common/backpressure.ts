/**
 * Backpressure toward a slow reader: output is read from a container's log file, so the way to hold it back is to
 * pause the reader while the client's connection still has more than a bound queued (writableLength).
 */
import type { Writable } from 'node:stream';

/** How much output may wait in a connection's buffer before its follower pauses. */
export const WRITE_QUEUE_BOUND = 1 << 20;

/** What a `writableReady()` answers while its stream keeps up: one settled promise, so callers can skip waiting. */
export const READY: Promise<void> = Promise.resolve();

/**
 * A `ready()` for `stream`: resolves at once while at most `bound` bytes wait to be written, otherwise once they have
 * drained, or the stream has closed or failed (a gone client never holds its follower).
 */
export function writableReady(stream: Writable, bound = WRITE_QUEUE_BOUND): () => Promise<void> {
  return () => {
    if (stream.destroyed || stream.writableLength <= bound) return READY;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        stream.off('error', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
      stream.on('error', done);
    });
  };
}

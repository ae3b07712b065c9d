/**
 * docker-py (and docker-compose 1.x, built on it) reads an upgraded attach or exec stream from the raw socket, past
 * http.client's buffered reader: bytes that reach it in the same read as the 101 headers are lost (docker-py issue
 * #3332; an `exec_run` answers b'' with exit 0). It happens with dockerd too, when the first output is quick; a
 * micro-VM's output is slower to come, but a loaded client can be slower still. For those clients the first output
 * waits a moment after the 101, so that the headers are read alone; other clients (the docker CLI) get it at once.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long docker-py's first upgraded bytes wait after the 101. */
export const DOCKER_PY_SETTLE_MS = 100;

/** The settle time for the client of `req`: DOCKER_PY_SETTLE_MS for docker-py and its users, else 0. */
export function settleTimeFor(req: IncomingMessage): number {
  const agent = req.headers['user-agent'] ?? '';
  return /docker-sdk-python|docker-py\//.test(agent) ? DOCKER_PY_SETTLE_MS : 0;
}

/** A writer to an upgraded socket that holds what it is given for `ms` after it was made, then passes it on in order. */
export interface SettledWriter {
  write(data: Buffer): void;
  /** Resolves once the held bytes were written (at once when nothing is held): await it before ending the stream. */
  flushed(): Promise<void>;
}

/** A SettledWriter to `socket`; with `ms` 0 it writes straight through. */
export function settledWriter(socket: Duplex, ms: number): SettledWriter {
  const put = (d: Buffer): void => void (socket.writable && socket.write(d));
  if (ms <= 0) return { write: put, flushed: () => Promise.resolve() };
  let held: Buffer[] | null = [];
  const done = new Promise<void>((resolve) =>
    setTimeout(() => {
      for (const d of held ?? []) put(d);
      held = null;
      resolve();
    }, ms),
  );
  return {
    write: (d) => (held ? held.push(d) : put(d)),
    flushed: () => done,
  };
}

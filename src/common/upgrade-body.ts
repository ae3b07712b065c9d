/**
 * The body of an HTTP request that asks for a connection upgrade. Node hands such a request to the 'upgrade'
 * event with the socket and whatever bytes followed the headers (`head`); the body is the first `Content-Length`
 * of those bytes and of what the socket reads next, and everything after it already belongs to the upgraded
 * stream (stdin, for attach and exec).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { BosonError } from './errors.ts';

/**
 * Reads the body of an upgrade request. Resolves with the body and the bytes that followed it (the socket is
 * paused if it had to be read); no Content-Length means an empty body. INVALID_ARGUMENT for a malformed
 * Content-Length, one above `maxBytes` (details.tooLarge), or a connection that ends inside the body.
 */
export function readUpgradeBody(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  maxBytes: number,
): Promise<{ body: Buffer; rest: Buffer }> {
  const header = req.headers['content-length'] ?? '0';
  const length = /^\d+$/.test(header) ? Number(header) : NaN;
  if (!Number.isSafeInteger(length)) return Promise.reject(new BosonError('INVALID_ARGUMENT', `invalid Content-Length: ${header}`));
  if (length > maxBytes)
    return Promise.reject(
      new BosonError('INVALID_ARGUMENT', `request body is larger than ${maxBytes} bytes`, { details: { tooLarge: true } }),
    );
  if (head.length >= length) return Promise.resolve({ body: head.subarray(0, length), rest: head.subarray(length) });
  return new Promise((resolve, reject) => {
    let got = head;
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length >= length) {
        cleanup();
        socket.pause();
        resolve({ body: got.subarray(0, length), rest: got.subarray(length) });
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new BosonError('INVALID_ARGUMENT', 'the connection ended inside the request body'));
    };
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}

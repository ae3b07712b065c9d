import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Duplex } from 'node:stream';
import { GuestSession } from './guest-session.ts';
import { encodeFrame, FrameDecoder, FrameType, PROTOCOL_VERSION } from '../guest/index.ts';
import { isBosonError } from '../common/index.ts';

/** A fake guest end: what the session writes, and a way to send it frames. */
function pair(): { session: GuestSession; toHost: PassThrough; fromHost: Buffer[] } {
  const toHost = new PassThrough();
  const fromHost: Buffer[] = [];
  const channel = Duplex.from({ readable: toHost, writable: new PassThrough().on('data', (d: Buffer) => fromHost.push(d)) });
  return { session: new GuestSession(channel), toHost, fromHost };
}

const u32s = (...n: number[]): Buffer => Buffer.concat(n.map((v) => { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; }));

test('HELLO, output on both streams and EXIT become a hello, bytes in order and the exit status', async () => {
  const { session, toHost, fromHost } = pair();
  const hello = session.waitForHello();
  toHost.write(encodeFrame(FrameType.HELLO, Buffer.concat([u32s(PROTOCOL_VERSION), Buffer.alloc(8)])));
  assert.equal((await hello).version, PROTOCOL_VERSION);
  const out = new PassThrough();
  const err = new PassThrough();
  session.start({ argv: ['true'], env: [], rootDisk: 'r' }, { stdout: out, stderr: err });
  toHost.write(encodeFrame(FrameType.STDOUT, Buffer.from('a')));
  toHost.write(encodeFrame(FrameType.STDERR, Buffer.from('b')));
  toHost.write(encodeFrame(FrameType.EXIT, u32s(3, 0)));
  assert.deepEqual(await session.done, { status: 3, signal: 0 });
  assert.equal(out.read()?.toString(), 'a');
  assert.equal(err.read()?.toString(), 'b');
  const sent = new FrameDecoder().push(Buffer.concat(fromHost));
  assert.equal(sent[0]!.type, FrameType.SPEC);
});

test('an ERROR before EXIT rejects with the matching catalogue code', async () => {
  const { session, toHost } = pair();
  session.start({ argv: ['x'], env: [], rootDisk: 'r' }, { stdout: new PassThrough(), stderr: new PassThrough() });
  toHost.write(encodeFrame(FrameType.ERROR, Buffer.concat([Buffer.from([5]), Buffer.from('exec "x": not found')])));
  toHost.write(encodeFrame(FrameType.EXIT, u32s(127, 0)));
  await assert.rejects(session.done, (e) => isBosonError(e, 'COMMAND_NOT_FOUND') && /not found/.test(e.message));
});

test('a malformed frame or a channel closed before EXIT are typed errors, not crashes', async () => {
  const bad = pair();
  bad.toHost.write(encodeFrame(FrameType.EXIT, Buffer.from([1])));
  await assert.rejects(bad.session.done, (e) => isBosonError(e, 'GUEST_PROTOCOL'));
  const closed = pair();
  closed.toHost.end();
  closed.session.stream.resume();
  await assert.rejects(closed.session.done, (e) => isBosonError(e, 'GUEST_CRASHED'));
});

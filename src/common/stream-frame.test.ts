/** Docker's stream frames: the 8-byte header, the raw TTY case, and which chunks a sink drops. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frameSink, streamFrame } from './stream-frame.ts';

test('a frame is [stream, 0, 0, 0, size u32 BE] and the data', () => {
  assert.deepEqual(streamFrame(1, Buffer.from('hi')), Buffer.from([1, 0, 0, 0, 0, 0, 0, 2, 0x68, 0x69]));
  assert.deepEqual(streamFrame(2, Buffer.alloc(0)), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]));
  const big = streamFrame(0x80, Buffer.alloc(0x01020304));
  assert.deepEqual(big.subarray(0, 8), Buffer.from([0x80, 0, 0, 0, 1, 2, 3, 4]));
  for (const bad of [-1, 256, 1.5]) assert.throws(() => streamFrame(bad, Buffer.alloc(1)), RangeError);
});

test('a frame sink frames stdout and stderr, passes raw bytes with a TTY, and drops empty or unwanted chunks', () => {
  const out: Buffer[] = [];
  const framed = frameSink((b) => out.push(b), false);
  framed.stdout(Buffer.from('o'));
  framed.stderr(Buffer.from('e'));
  framed.stdout(Buffer.alloc(0));
  assert.deepEqual(out, [streamFrame(1, Buffer.from('o')), streamFrame(2, Buffer.from('e'))]);
  out.length = 0;
  const raw = frameSink((b) => out.push(b), true, { stdout: true, stderr: false });
  raw.stdout(Buffer.from('tty'));
  raw.stderr(Buffer.from('hidden'));
  assert.deepEqual(out, [Buffer.from('tty')]);
});

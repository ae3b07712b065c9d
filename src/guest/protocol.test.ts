import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder, FrameType, encodeSpec, decodeExit, MAX_PAYLOAD, HEADER_SIZE, encodeChunked } from './protocol.ts';
import { isBosonError } from '../common/index.ts';

test('frames round-trip through the decoder when split at every byte boundary', () => {
  const a = encodeFrame(FrameType.STDOUT, Buffer.from('hello'), 0);
  const b = encodeFrame(FrameType.EXIT, Buffer.from([0, 0, 0, 3, 0, 0, 0, 0]), 7);
  const wire = Buffer.concat([a, b]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const dec = new FrameDecoder();
    const frames = [...dec.push(wire.subarray(0, cut)), ...dec.push(wire.subarray(cut))];
    assert.equal(frames.length, 2, `cut at ${cut}`);
    assert.equal(frames[0]!.payload.toString(), 'hello');
    assert.equal(frames[1]!.session, 7);
    assert.deepEqual(decodeExit(frames[1]!), { status: 3, signal: 0 });
    assert.equal(dec.buffered, 0);
  }
});

test('the decoder refuses a header announcing more than the payload limit', () => {
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt8(FrameType.STDOUT, 0);
  head.writeUInt32BE(MAX_PAYLOAD + 1, 4);
  assert.throws(() => new FrameDecoder().push(head), (e) => isBosonError(e, 'GUEST_PROTOCOL'));
});

test('large stdin is split into frames within the limit, preserving every byte', () => {
  const data = Buffer.alloc(MAX_PAYLOAD * 2 + 5, 0xab);
  const frames = encodeChunked(FrameType.STDIN, data);
  assert.equal(frames.length, 3);
  const decoded = new FrameDecoder().push(Buffer.concat(frames));
  assert.equal(Buffer.concat(decoded.map((f) => f.payload)).length, data.length);
});

test('spec records are tag, u32 length, bytes, in the documented order', () => {
  const spec = encodeSpec({ argv: ['echo', 'hé'], env: ['A=1'], tty: true, rootDisk: 'boson-root' });
  const records: Array<[number, string]> = [];
  for (let off = 0; off < spec.length; ) {
    const tag = spec.readUInt8(off);
    const len = spec.readUInt32BE(off + 1);
    records.push([tag, spec.subarray(off + 5, off + 5 + len).toString('latin1')]);
    off += 5 + len;
  }
  assert.deepEqual(records.map((r) => r[0]), [1, 1, 2, 6, 9]);
  assert.equal(Buffer.from(records[1]![1], 'latin1').toString('utf8'), 'hé');
  assert.equal(records[4]![1], 'boson-root');
});

test('a spec without a command, or with a NUL in a string, is refused', () => {
  assert.throws(() => encodeSpec({ argv: [], env: [], rootDisk: 'r' }), (e) => isBosonError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => encodeSpec({ argv: ['a\0b'], env: [], rootDisk: 'r' }), (e) => isBosonError(e, 'INVALID_ARGUMENT'));
});

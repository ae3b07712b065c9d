import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader, Opcode, acceptKey, encodeFrame } from './websocket.ts';

test("acceptKey is RFC 6455's example", () => {
  assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

test('frames of every length class round-trip, masked or not, byte by byte and fragmented', () => {
  for (const size of [0, 1, 125, 126, 65535, 65536, 200_000]) {
    for (const mask of [false, true]) {
      const payload = Buffer.alloc(size, 7);
      payload[0 % Math.max(1, size)] = 1;
      const frame = encodeFrame(Opcode.binary, payload, mask);
      const reader = new FrameReader();
      const got = size < 1000 ? [...frame].flatMap((b) => reader.push(Buffer.from([b]))) : reader.push(frame);
      assert.equal(got.length, 1, `size ${size} mask ${mask}`);
      assert.equal(got[0]!.opcode, Opcode.binary);
      assert.ok(got[0]!.data.equals(payload));
    }
  }
  // A message in two fragments, with a ping between them.
  const first = encodeFrame(Opcode.binary, Buffer.from('ab'), true);
  first[0] = first[0]! & 0x7f; // not FIN
  const last = encodeFrame(Opcode.continuation, Buffer.from('cd'), true);
  const msgs = new FrameReader().push(Buffer.concat([first, encodeFrame(Opcode.ping, Buffer.from('p'), true), last]));
  assert.deepEqual(
    msgs.map((m) => [m.opcode, m.data.toString()]),
    [
      [Opcode.ping, 'p'],
      [Opcode.binary, 'abcd'],
    ],
  );
  assert.throws(() => new FrameReader().push(encodeFrame(Opcode.binary, Buffer.alloc(100)), 10), /too large/);
});

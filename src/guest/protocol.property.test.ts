/**
 * Property-based tests of the host side of the guest protocol (issue 12, part 8b), with fast-check: arbitrary bytes
 * from a guest never make the decoders throw anything but a BosonError GUEST_PROTOCOL, and what the host encodes
 * decodes to what it was. Bounded: a few hundred runs per property, well under a second each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isBosonError } from '../common/index.ts';
import {
  decodeError,
  decodeExit,
  decodeHello,
  decodeLogRecord,
  decodeStarted,
  encodeChunked,
  encodeExec,
  encodeFrame,
  encodeWinsize,
  FrameDecoder,
  HEADER_SIZE,
  MAX_PAYLOAD,
  parseLogRecords,
  SpecTag,
  type Frame,
} from './protocol.ts';

const RUNS = { numRuns: 300 };
const bytes = (max = 256) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
/** Runs fn; anything it throws must be GUEST_PROTOCOL. Returns whether it threw. */
function onlyProtocolErrors(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    assert.ok(isBosonError(err, 'GUEST_PROTOCOL'), `threw ${String(err)}`);
    return true;
  }
}

/** Frame headers that look plausible (small lengths) mixed with arbitrary bytes, so both paths are exercised. */
const frameish = fc.oneof(
  bytes(64),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 65535 }), bytes(40)).map(([t, s, p]) => encodeFrame(t, p, s)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.constantFrom(MAX_PAYLOAD, MAX_PAYLOAD + 1, MAX_PAYLOAD + 9, 0xffffffff)).map(([t, len]) => {
    const h = Buffer.alloc(HEADER_SIZE);
    h[0] = t;
    h.writeUInt32BE(len, 4);
    return h;
  }),
);

test('FrameDecoder: arbitrary chunks never throw anything but GUEST_PROTOCOL, and never lose or invent bytes', () => {
  fc.assert(
    fc.property(fc.array(frameish, { maxLength: 12 }), (chunks) => {
      const d = new FrameDecoder();
      let got = 0;
      let fed = 0;
      for (const c of chunks) {
        fed += c.length;
        let frames: Frame[] = [];
        if (onlyProtocolErrors(() => (frames = d.push(c)))) return;
        for (const f of frames) {
          assert.ok(f.payload.length <= MAX_PAYLOAD);
          got += HEADER_SIZE + f.payload.length;
        }
        assert.equal(got + d.buffered, fed);
      }
    }),
    RUNS,
  );
});

test('encodeFrame -> FrameDecoder round-trips, however the stream is cut', () => {
  const frame = fc.record({ type: fc.integer({ min: 0, max: 255 }), session: fc.integer({ min: 0, max: 65535 }), payload: bytes(300) });
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cuts) => {
      const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload, f.session)));
      const at = [...new Set(cuts.map((c) => (stream.length === 0 ? 0 : c % stream.length)))].sort((a, b) => a - b);
      const d = new FrameDecoder();
      const out: Frame[] = [];
      let prev = 0;
      for (const c of [...at, stream.length]) {
        out.push(...d.push(stream.subarray(prev, c)));
        prev = c;
      }
      assert.equal(d.buffered, 0);
      assert.deepEqual(
        out.map((f) => ({ type: f.type, session: f.session, payload: Buffer.from(f.payload) })),
        frames,
      );
    }),
    RUNS,
  );
});

test('encodeChunked splits into frames of at most MAX_PAYLOAD that join back to the data', () => {
  const data = Buffer.alloc(MAX_PAYLOAD * 2 + 5, 7);
  const frames = encodeChunked(0x82, data, 3);
  assert.equal(frames.length, 3);
  const d = new FrameDecoder();
  const out = frames.flatMap((f) => d.push(f));
  assert.deepEqual(Buffer.concat(out.map((f) => f.payload)), data);
  assert.ok(out.every((f) => f.session === 3 && f.type === 0x82));
});

test('decodeHello/Exit/Error/Started/LogRecord: arbitrary frames decode or fail with GUEST_PROTOCOL only', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 65535 }), bytes(32), (type, session, payload) => {
      const f = { type, session, payload };
      for (const decode of [decodeHello, decodeExit, decodeError, decodeStarted, decodeLogRecord]) {
        const threw = onlyProtocolErrors(() => decode(f));
        const need = new Map<unknown, number>([
          [decodeHello, 12],
          [decodeExit, 8],
          [decodeError, 1],
          [decodeStarted, 4],
          [decodeLogRecord, 8],
        ]).get(decode)!;
        assert.equal(threw, payload.length < need);
      }
    }),
    RUNS,
  );
});

/** A log record as the guest writes it. */
const logRecord = fc.record({ type: fc.constantFrom(0x02, 0x03, 0x04, 0x05, 0x06), tsNs: fc.bigUint(2n ** 64n - 1n), data: bytes(100) });
const encodeLog = (r: { type: number; tsNs: bigint; data: Buffer }): Buffer => {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(r.tsNs);
  return encodeFrame(r.type, Buffer.concat([ts, r.data]));
};

test('parseLogRecords: arbitrary bytes never throw anything but GUEST_PROTOCOL; encoded records round-trip', () => {
  fc.assert(
    fc.property(fc.array(frameish, { maxLength: 6 }), (chunks) => {
      const buf = Buffer.concat(chunks);
      onlyProtocolErrors(() => {
        const { consumed } = parseLogRecords(buf);
        assert.ok(consumed <= buf.length);
      });
    }),
    RUNS,
  );
  fc.assert(
    fc.property(fc.array(logRecord, { maxLength: 8 }), fc.nat(), (records, cut) => {
      const whole = Buffer.concat(records.map(encodeLog));
      const { records: got, consumed } = parseLogRecords(whole);
      assert.equal(consumed, whole.length);
      assert.deepEqual(
        got.map((r) => ({ type: r.type, tsNs: r.tsNs, data: Buffer.from(r.data) })),
        records,
      );
      // A file still being written: only whole records, and `consumed` says where the rest begins.
      const part = whole.subarray(0, whole.length === 0 ? 0 : cut % whole.length);
      const some = parseLogRecords(part);
      assert.ok(some.records.length <= records.length && some.consumed <= part.length);
      assert.deepEqual(
        some.records.map((r) => Buffer.from(r.data)),
        records.slice(0, some.records.length).map((r) => r.data),
      );
    }),
    RUNS,
  );
});

/** The records of a SPEC/EXEC payload, as boson-init's parse_records reads them. */
function records(buf: Buffer): Array<{ tag: number; value: Buffer }> {
  const out: Array<{ tag: number; value: Buffer }> = [];
  for (let off = 0; off < buf.length;) {
    assert.ok(buf.length - off >= 5, 'whole record header');
    const len = buf.readUInt32BE(off + 1);
    assert.ok(len <= buf.length - off - 5, 'whole record');
    out.push({ tag: buf[off]!, value: buf.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

test('encodeExec: argv, env, cwd, user, tty, stdin and winsize come back from the records in order', () => {
  const str = fc.string({ maxLength: 20 }).filter((s) => !s.includes('\0'));
  fc.assert(
    fc.property(
      fc.record({
        argv: fc.array(str, { minLength: 1, maxLength: 5 }),
        env: fc.array(str, { maxLength: 5 }),
        cwd: fc.option(str, { nil: undefined }),
        user: fc.option(str, { nil: undefined }),
        tty: fc.boolean(),
        stdin: fc.boolean(),
        winsize: fc.option(fc.record({ rows: fc.integer({ min: 1, max: 65535 }), cols: fc.integer({ min: 1, max: 65535 }) }), {
          nil: undefined,
        }),
      }),
      (spec) => {
        const recs = records(encodeExec(spec));
        const all = (tag: number) => recs.filter((r) => r.tag === tag).map((r) => r.value.toString('utf8'));
        assert.deepEqual(all(SpecTag.ARG), spec.argv);
        assert.deepEqual(all(SpecTag.ENV), spec.env);
        assert.deepEqual(all(SpecTag.CWD), spec.cwd === undefined ? [] : [spec.cwd]);
        assert.deepEqual(all(SpecTag.USER), spec.user === undefined ? [] : [spec.user]);
        assert.equal(
          recs.some((r) => r.tag === SpecTag.TTY),
          spec.tty,
        );
        assert.equal(
          recs.some((r) => r.tag === SpecTag.STDIN),
          spec.stdin,
        );
        const ws = recs.find((r) => r.tag === SpecTag.WINSIZE)?.value;
        assert.deepEqual(ws && { rows: ws.readUInt16BE(0), cols: ws.readUInt16BE(2) }, spec.winsize);
      },
    ),
    RUNS,
  );
  // A NUL byte is refused by the host before the guest would refuse it.
  assert.throws(
    () => encodeExec({ argv: ['a\0b'], env: [] }),
    (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
});

test('encodeWinsize clamps any number to 0..65535', () => {
  fc.assert(
    fc.property(fc.integer(), fc.integer(), (rows, cols) => {
      const b = encodeWinsize(rows, cols);
      for (const v of [b.readUInt16BE(0), b.readUInt16BE(2)]) assert.ok(v >= 0 && v <= 65535);
    }),
    RUNS,
  );
});

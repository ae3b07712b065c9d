/**
 * Property-based tests of src/machine/logs.ts readLog (issue 12, part 8b), with fast-check: a log file holding
 * anything never makes readLog throw, and a log whose whole records are followed by damage or a record still being
 * written gives back at least what those whole records hold, in order. Bounded: 150 files per property.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, FrameType } from '../src/guest/protocol.ts';
import { readLog } from '../src/machine/logs.ts';

const RUNS = { numRuns: 150 };
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

type Rec = { type: number; tsNs: bigint; data: Buffer };
const rec: fc.Arbitrary<Rec> = fc.record({
  type: fc.constantFrom(FrameType.STARTED, FrameType.STDOUT, FrameType.STDERR, FrameType.EXIT, FrameType.ERROR, 0x42),
  tsNs: fc.bigUint(2n ** 63n),
  data: bytes(60),
});
const encode = (r: Rec): Buffer => {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(r.tsNs);
  return encodeFrame(r.type, Buffer.concat([ts, r.data]));
};
/** What readLog should give for whole records: each stream's bytes, concatenated. */
const streamBytes = (recs: Rec[], type: number): Buffer => Buffer.concat(recs.filter((r) => r.type === type).map((r) => r.data));

async function withFile<T>(content: Buffer, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'boson-logprop-'));
  try {
    const file = path.join(dir, 'log');
    await fs.writeFile(file, content);
    return await fn(file);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('readLog never throws on arbitrary content, and its offsets stay inside the file', async () => {
  const content = fc.oneof(
    bytes(300),
    fc.array(fc.oneof(rec.map(encode), bytes(20)), { maxLength: 8 }).map((parts) => Buffer.concat(parts)),
  );
  await fc.assert(
    fc.asyncProperty(content, fc.nat(), async (buf, from) => {
      await withFile(buf, async (file) => {
        const offset = buf.length === 0 ? 0 : from % (buf.length + 1);
        const r = await readLog(file, offset);
        assert.ok(r.end >= offset && r.end <= buf.length, `end ${r.end} in ${offset}..${buf.length}`);
        if (r.corruptAt !== undefined) assert.equal(r.corruptAt, r.end);
        for (const l of r.lines) assert.ok(l.stream === 'stdout' || l.stream === 'stderr');
      });
    }),
    RUNS,
  );
});

test('readLog returns what the whole records hold, before damage or a record still being written', async () => {
  const tail = fc.oneof(
    bytes(40), // garbage, or a record cut short
    fc.integer({ min: 0x00200009, max: 0xffffffff }).map((len) => {
      const h = Buffer.alloc(8);
      h[0] = FrameType.STDOUT;
      h.writeUInt32BE(len, 4); // a header no writer makes: corrupt
      return h;
    }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(rec, { maxLength: 10 }), tail, async (recs, junk) => {
      const whole = Buffer.concat(recs.map(encode));
      await withFile(Buffer.concat([whole, junk]), async (file) => {
        const r = await readLog(file);
        assert.ok(r.end >= whole.length);
        for (const [stream, type] of [
          ['stdout', FrameType.STDOUT],
          ['stderr', FrameType.STDERR],
        ] as const) {
          const got = Buffer.concat(r.lines.filter((l) => l.stream === stream).map((l) => l.data));
          const want = streamBytes(recs, type);
          assert.deepEqual(got.subarray(0, want.length), want, `${stream}: the whole records' bytes come first`);
        }
        const exits = recs.filter((x) => x.type === FrameType.EXIT && x.data.length >= 8).length;
        assert.ok(r.lifecycle.filter((l) => l.kind === 'exit').length >= exits);
      });
      // Without the tail, exactly those bytes.
      await withFile(whole, async (file) => {
        const r = await readLog(file);
        assert.equal(r.end, whole.length);
        assert.equal(r.corruptAt, undefined);
        assert.deepEqual(
          Buffer.concat(r.lines.filter((l) => l.stream === 'stdout').map((l) => l.data)),
          streamBytes(recs, FrameType.STDOUT),
        );
      });
    }),
    RUNS,
  );
});

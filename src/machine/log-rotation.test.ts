import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { encodeFrame, FrameType } from '../guest/index.ts';
import { LogRotator, RotationFeed, logFileSet } from './log-rotation.ts';
import { followLog, readLog } from './logs.ts';

function record(n: number): Buffer {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(Date.now()) * 1_000_000n);
  return encodeFrame(FrameType.STDOUT, Buffer.concat([ts, Buffer.from(`${n}\n`)]));
}

test('rotation keeps max-file files of whole records; a follower reads every line once, in order, across rotations', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-rotation-'));
  try {
    const file = path.join(dir, 'container.log');
    writeFileSync(file, '');
    const feed = new RotationFeed(3);
    let paused = false;
    let pausedWrites = 0;
    const rotator = new LogRotator(
      file,
      { maxSizeBytes: 16 * 1024, maxFiles: 3 },
      { suspend: async () => void (paused = true), resume: async () => void (paused = false) },
      feed,
    );
    const got: number[] = [];
    const stop = new AbortController();
    const drain = new AbortController();
    const following = followLog(
      file,
      0,
      {},
      (l) => got.push(Number(l.data.toString())),
      () => undefined,
      stop.signal,
      drain.signal,
      undefined,
      feed,
    );
    let n = 0;
    let rotations = 0;
    for (let i = 0; i < 100; i++) {
      for (let j = 0; j < 100; j++) {
        if (paused) pausedWrites++;
        else appendFileSync(file, record(++n));
      }
      // A record cut in two at the end of the file (the guest splits large records): it stays whole in one file.
      if (i === 50) {
        const r = record(++n);
        appendFileSync(file, r.subarray(0, 5));
        if (await rotator.check()) rotations++;
        appendFileSync(file, r.subarray(5));
      }
      if (await rotator.check()) rotations++;
      await new Promise((r) => setTimeout(r, 1));
    }
    drain.abort();
    await following;
    assert.equal(pausedWrites, 0);
    assert.ok(rotations > 10, `${rotations} rotations`);
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    const files = await logFileSet(file);
    assert.deepEqual(
      files.map((f) => path.basename(f)),
      ['container.log.2', 'container.log.1', 'container.log'],
    );
    assert.deepEqual((await readdir(dir)).sort(), ['container.log', 'container.log.1', 'container.log.2']);
    // Every file is whole records, they follow each other, and the newest ends with the last.
    const read: number[] = [];
    for (const f of files) {
      const r = await readLog(f);
      assert.equal(r.end, (await stat(f)).size, `${f} ends with a whole record`);
      read.push(...r.lines.map((l) => Number(l.data.toString())));
      if (f !== file) assert.ok((await stat(f)).size <= 20 * 1024, `${f} is about max-size`); // checked every 100 records
    }
    assert.deepEqual(
      read,
      Array.from({ length: read.length }, (_, i) => n - read.length + 1 + i),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

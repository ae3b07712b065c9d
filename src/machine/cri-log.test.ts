import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CriLogWriter, MAX_RECORD_BYTES, criRecords, rfc3339Nano } from './cri-log.ts';

const RECORD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) (F|P) (.*)$/;

test('rfc3339Nano keeps nanoseconds in UTC', () => {
  assert.equal(rfc3339Nano(1_700_000_000_123_456_789n), '2023-11-14T22:13:20.123456789Z');
  assert.equal(rfc3339Nano(1_700_000_000_000_000_001n), '2023-11-14T22:13:20.000000001Z');
});

test('criRecords: full lines, a line waiting for its end, and a long line cut into partial records', () => {
  const t = '2023-11-14T22:13:20.123456789Z';
  let r = criRecords('stdout', Buffer.alloc(0), Buffer.from('one\ntw'), t);
  assert.deepEqual(
    r.records.map((b) => b.toString()),
    [`${t} stdout F one\n`],
  );
  assert.equal(r.pending.toString(), 'tw');
  r = criRecords('stdout', r.pending, Buffer.from('o\n'), t);
  assert.deepEqual(
    r.records.map((b) => b.toString()),
    [`${t} stdout F two\n`],
  );
  const long = 'x'.repeat(MAX_RECORD_BYTES * 2 + 5);
  r = criRecords('stderr', Buffer.alloc(0), Buffer.from(`${long}\n`), t);
  assert.deepEqual(
    r.records.map((b) => b.toString().split(' ').slice(1, 3).join(' ')),
    ['stderr P', 'stderr P', 'stderr F'],
  );
  assert.equal(r.records.map((b) => b.toString().split(' ')[3]!.trimEnd()).join(''), long);
});

test('CriLogWriter writes the file kubelet reads, ending an unfinished line as a full record at close', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-crilog-'));
  try {
    const w = new CriLogWriter(path.join(dir, 'c', '0.log'));
    w.write('stdout', Buffer.from('hello\n'));
    w.write('stderr', Buffer.from('oops'));
    w.close();
    const lines = (await readFile(path.join(dir, 'c', '0.log'), 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 2);
    const parsed = lines.map((l) => RECORD.exec(l)!.slice(2));
    assert.deepEqual(parsed, [
      ['stdout', 'F', 'hello'],
      ['stderr', 'F', 'oops'],
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

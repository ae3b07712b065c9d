import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { settleTimeFor, settledWriter } from './upgrade-settle.ts';

const req = (agent: string): IncomingMessage => ({ headers: { 'user-agent': agent } }) as IncomingMessage;

test('docker-py and docker-compose 1.x wait after the 101; the docker CLI does not', () => {
  assert.ok(settleTimeFor(req('docker-sdk-python/5.0.3')) > 0);
  assert.ok(settleTimeFor(req('docker-compose/1.29.2 docker-py/5.0.3 Linux/6.1.0')) > 0);
  assert.equal(settleTimeFor(req('Docker-Client/20.10.24+dfsg1 (linux)')), 0);
  assert.equal(settleTimeFor({ headers: {} } as IncomingMessage), 0);
});

test('a settled writer holds its first bytes for the settle time, then writes everything in order', async () => {
  const socket = new PassThrough();
  const seen: string[] = [];
  socket.on('data', (d: Buffer) => seen.push(d.toString()));
  const t0 = Date.now();
  const out = settledWriter(socket, 60);
  out.write(Buffer.from('a'));
  out.write(Buffer.from('b'));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, [], 'nothing before the settle time');
  await out.flushed();
  assert.ok(Date.now() - t0 >= 55);
  out.write(Buffer.from('c'));
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.join(''), 'abc');
});

test('with no settle time a writer writes straight through', async () => {
  const socket = new PassThrough();
  let got = '';
  socket.on('data', (d: Buffer) => (got += d.toString()));
  const out = settledWriter(socket, 0);
  out.write(Buffer.from('now'));
  await out.flushed();
  await new Promise((r) => setImmediate(r));
  assert.equal(got, 'now');
});

/**
 * The daemon's structured log: JSON lines (pino) with a level and a time, to the file BOSON_LOG_FILE names, from
 * BOSON_LOG_LEVEL up; at debug, one line per API request with its request id and status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MachineClient } from '../src/machine/index.ts';
import { BOSON, makeTestHost, waitFor } from './helpers.ts';

test('the daemon writes JSON log lines with levels and request ids to BOSON_LOG_FILE', async () => {
  const host = await makeTestHost();
  const logFile = path.join(host.stateDir, 'daemon.log');
  const daemon = spawn(BOSON, ['up'], { env: { ...host.env, BOSON_LOG_FILE: logFile, BOSON_LOG_LEVEL: 'debug' }, stdio: 'ignore' });
  try {
    const client = new MachineClient(path.join(host.stateDir, 'run', 'boson.sock'));
    await waitFor(
      () =>
        client.request('GET', '/healthz').then(
          () => true,
          () => false,
        ),
      30_000,
      'the daemon to answer',
    );
    await assert.rejects(client.request('GET', '/v1/containers/no-such-container'));
    const lines = async (): Promise<Array<Record<string, unknown>>> =>
      (await readFile(logFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor(async () => (await lines()).some((l) => l.msg === 'request' && l.status === 404), 10_000, 'the 404 request to be logged');
    const all = await lines();
    assert.ok(
      all.every((l) => typeof l.level === 'number' && typeof l.time === 'string' && l.pid === daemon.pid),
      'every line has a level, a time and the pid',
    );
    assert.ok(all.some((l) => l.msg === 'daemon ready'));
    const miss = all.find((l) => l.msg === 'request' && l.status === 404)!;
    assert.equal(miss.url, '/v1/containers/no-such-container');
    assert.match(String(miss.reqId), /^req-/);
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await host.cleanup();
  }
});

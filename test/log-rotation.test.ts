/**
 * Container logs capped and rotated as Docker's json-file driver does it (`--log-opt max-size=… max-file=…`), with
 * the stock docker CLI against `boson up`: a container that prints far more than max-size leaves at most max-file
 * files, each about max-size, and `docker logs` (plain, --tail, -f) reads across them in order.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { collect, useDaemonHost, waitFor, type BosonResult } from './helpers.ts';
import { debianDocker } from './docker-clis.ts';

const KiB = 1024;
const out = (r: BosonResult): string => r.stdout.toString();

/** The numbers printed by `seq`, checked to be consecutive; returns the first and last. */
function consecutive(lines: string[], what: string): { first: number; last: number } {
  const nums = lines.map(Number);
  assert.ok(nums.length > 0 && nums.every((n) => Number.isInteger(n)), `${what}: not numbers: ${lines.slice(0, 3).join('|')}`);
  for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1]! + 1, `${what}: line ${i} is ${nums[i]} after ${nums[i - 1]}`);
  return { first: nums[0]!, last: nums.at(-1)! };
}

describe('log rotation (docker CLI, --log-opt max-size/max-file)', () => {
  const { host } = useDaemonHost();
  const cli = debianDocker();
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_HOST: `unix://${host().env.BOSON_RUN_DIR}/docker.sock` });
  const docker = (...args: string[]): Promise<BosonResult> =>
    collect(spawn(cli.path, args, { env: env(), stdio: ['pipe', 'pipe', 'pipe'] }), undefined, 120_000, [cli.path, ...args]);
  const logFiles = async (id: string): Promise<Array<{ name: string; size: number }>> => {
    const dir = path.join(host().stateDir, 'containers', id);
    const names = (await readdir(dir)).filter((n) => n.startsWith('container.log')).sort();
    return Promise.all(names.map(async (name) => ({ name, size: (await stat(path.join(dir, name))).size })));
  };

  test('max-size=64k max-file=2: at most 2 files of about 64 KiB; logs, --tail and -f read across them in order', async () => {
    const N = 40000; // about 230 KB of output, at about 100 KB/s (rotation is checked on each change and every 250 ms)
    const run = await docker(
      'run',
      '-d',
      '--log-opt',
      'max-size=64k',
      '--log-opt',
      'max-file=2',
      'busybox',
      'sh',
      '-c',
      `sleep 2; for i in $(seq 0 39); do seq $((i*1000+1)) $((i*1000+1000)); sleep 0.05; done; echo done; sleep 600`,
    );
    assert.equal(run.code, 0, run.stderr);
    const id = out(run).trim();
    try {
      // A follower from the start: it must see every line, in order, across rotations.
      const follow = spawn(cli.path, ['logs', '-f', id], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let followed = '';
      follow.stdout.on('data', (d: Buffer) => (followed += d.toString()));
      await waitFor(() => followed.includes('done\n'), 300_000, 'the follower to see the last line');
      follow.kill();
      const fl = followed.trimEnd().split('\n');
      assert.equal(fl.at(-1), 'done');
      assert.deepEqual(consecutive(fl.slice(0, -1), 'logs -f'), { first: 1, last: N });

      // The files: rotated, at most max-file of them, each about max-size (checked on each change of the file and
      // every 250 ms: what the guest writes meanwhile is over).
      await waitFor(async () => (await logFiles(id)).every((f) => f.size <= 128 * KiB), 10_000, 'the log to be rotated');
      const files = await logFiles(id);
      console.log(`# log files: ${files.map((f) => `${f.name} ${f.size}`).join(', ')}`);
      assert.ok(files.length <= 2, `${files.length} log files`);
      assert.deepEqual(
        files.map((f) => f.name),
        ['container.log', 'container.log.1'],
      );
      for (const f of files) assert.ok(f.size <= 128 * KiB, `${f.name} holds ${f.size} bytes`);

      const logs = await docker('logs', id);
      assert.equal(logs.code, 0, logs.stderr);
      let lines = out(logs).trimEnd().split('\n');
      assert.equal(lines.at(-1), 'done');
      // The oldest file kept may begin inside a line whose start was rotated away (records split lines anywhere).
      if (lines.length > 1 && Number(lines[1]) - 1 !== Number(lines[0])) {
        assert.ok(String(Number(lines[1]) - 1).endsWith(lines[0]!), `first line ${lines[0]} before ${lines[1]}`);
        lines = lines.slice(1);
      }
      const { first, last } = consecutive(lines.slice(0, -1), 'logs');
      assert.equal(last, N);
      assert.ok(first > 1, 'the oldest output was rotated away');

      const tail = await docker('logs', '--tail', '3', id);
      assert.deepEqual(out(tail).trimEnd().split('\n'), [String(N - 1), String(N), 'done']);
      const inspect = await docker('inspect', '--format', '{{json .HostConfig.LogConfig}}', id);
      assert.equal(out(inspect).trim(), `{"Type":"json-file","Config":{"max-file":"2","max-size":"${64 * KiB}"}}`);
    } finally {
      await docker('rm', '-f', id);
    }
  });

  test('bad log options are refused with a clear error, nothing created', async () => {
    const bad = await docker('create', '--log-opt', 'max-size=lots', 'busybox');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid max-size log option/);
    const unknown = await docker('create', '--log-opt', 'frobnicate=1', 'busybox');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown log opt 'frobnicate'/);
    const driver = await docker('create', '--log-driver', 'syslog', 'busybox');
    assert.notEqual(driver.code, 0);
    assert.equal(out(await docker('ps', '-aq')), '');
  });
});

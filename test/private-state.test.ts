/**
 * Private state (issue 12): a container's environment, logs, image blobs and disks are the daemon user's alone. The
 * state directory is 0700 and everything in it 0600 (directories 0700); the run directory only lets others reach
 * the sockets in it (0711), and the sockets are 0660 for the group that may use Boson.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { runBoson, useDaemonHost } from './helpers.ts';

const { host } = useDaemonHost();

/** Every file and directory below `dir`, with its permission bits. */
async function modes(dir: string): Promise<Array<{ file: string; mode: number; isDir: boolean }>> {
  const out: Array<{ file: string; mode: number; isDir: boolean }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink() || entry.isSocket()) continue;
    const s = await stat(full);
    out.push({ file: full, mode: s.mode & 0o777, isDir: entry.isDirectory() });
    if (entry.isDirectory()) out.push(...(await modes(full)));
  }
  return out;
}

test('state is private: 0700 directories and 0600 files; the run directory and sockets let the group in', async () => {
  const r = await runBoson(
    host(),
    ['run', '-d', '--name', 'secretive', '-e', 'API_TOKEN=s3cr3t', 'busybox', 'sh', '-c', 'echo a log line; sleep 600'],
    { timeoutMs: 90_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  try {
    const { stateDir } = host();
    const runDir = path.join(stateDir, 'run');
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await stat(runDir)).mode & 0o777, 0o711);
    for (const sock of ['boson.sock', 'docker.sock']) assert.equal((await stat(path.join(runDir, sock))).mode & 0o777, 0o660, sock);
    const all = (await modes(stateDir)).filter((m) => !m.file.startsWith(runDir));
    const open = all.filter((m) => (m.isDir ? m.mode !== 0o700 : m.mode & 0o077));
    assert.deepEqual(
      open.map((m) => `${m.file} ${m.mode.toString(8)}`),
      [],
      'nothing in the state directory is readable by others',
    );
    // The files the finding named are there and private.
    for (const name of ['machine.db', 'container.log', 'scratch.ext4'])
      assert.ok(
        all.some((m) => path.basename(m.file) === name),
        `${name} was checked`,
      );
    assert.ok(
      all.some((m) => m.file.includes(`${path.sep}blobs${path.sep}`)),
      'image blobs were checked',
    );
  } finally {
    await runBoson(host(), ['rm', '-f', 'secretive']);
  }
});

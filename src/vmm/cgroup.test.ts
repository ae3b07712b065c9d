import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroupMode, confine, release } from './cgroup.ts';

const parent = `boson-test-${randomBytes(4).toString('hex')}`;
const mode = cgroupMode(parent);
const limits = { memoryBytes: 256 << 20, pids: 64, cpus: 1 };
const parents = (): string[] => (mode.version === 2 ? [mode.dir] : mode.version === 1 ? Object.values(mode.dirs) : []);

test('a live process is moved into its cgroup; one that has already exited is not an error', { skip: mode.version === 0 }, async () => {
  try {
    const live = spawn('sleep', ['30']);
    const cg = await confine(mode, 'live', live.pid!, limits);
    assert.ok(cg && cg.dirs.length > 0);
    for (const d of cg.dirs) assert.match(await readFile(path.join(d, 'cgroup.procs'), 'utf8'), new RegExp(`^${live.pid}$`, 'm'));
    live.kill('SIGKILL');
    await new Promise((r) => live.once('exit', r));
    await release(cg);

    // A QEMU that refuses its arguments can exit before it is confined: the caller reports its exit, not ESRCH.
    const gone = spawnSync('true');
    const cg2 = await confine(mode, 'gone', gone.pid, limits);
    assert.ok(cg2 && cg2.dirs.length > 0);
    await release(cg2);
  } finally {
    for (const d of parents()) await rmdir(d).catch(() => undefined);
  }
});

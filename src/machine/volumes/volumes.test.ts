import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { MemoryStateStore } from '../../common/index.ts';
import { VolumeManager } from './index.ts';

test('creates of one volume name at once make one disk and answer the same volume (they raced in mkfs before)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'boson-volumes-'));
  try {
    const volumes = new VolumeManager(new MemoryStateStore(), dir);
    const made = await Promise.all(Array.from({ length: 4 }, () => volumes.create('data', { sizeBytes: 64 * 1024 ** 2 })));
    assert.equal(new Set(made.map((v) => v.created)).size, 1, 'one volume, created once');
    assert.deepEqual(
      volumes.list().map((v) => v.name),
      ['data'],
    );
    assert.ok((await stat(volumes.diskPath('data'))).size === 64 * 1024 ** 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

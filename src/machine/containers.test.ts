import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ContainerRegistry, newContainerId, type ContainerRecord } from './containers.ts';
import { openStateStore } from './store/sqlite.ts';

function record(name: string): ContainerRecord {
  return {
    id: newContainerId(),
    name,
    image: 'busybox',
    imageId: 'x',
    created: new Date().toISOString(),
    config: { argv: ['true'], env: [], cwd: '/', user: '', hostname: 'h', tty: false, openStdin: false, labels: {} },
    resources: { memoryMiB: 128, cpus: 1 },
    autoRemove: false,
    restartPolicy: { name: 'no', maximumRetryCount: 0 },
    restartCount: 0,
    managed: true,
    state: 'running',
    ownerPid: null,
    vmPid: 1,
    exitCode: null,
    startedAt: null,
    finishedAt: null,
    error: null,
    stoppedByUser: false,
    mounts: [],
    network: 'none',
    ports: [],
    endpoint: null,
  } as ContainerRecord;
}

test('on a full disk, changes to records are held, shown by every read, and written once there is room', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-registry-'));
  const store = openStateStore(dir);
  const reg = new ContainerRegistry(store, dir);
  try {
    await reg.init();
    const a = record('alpha');
    const b = record('bravo');
    await reg.create(a);
    await reg.create(b);
    // SQLite's own "database or disk is full" (SQLITE_FULL), by capping the database at the pages it has.
    const db = store.db;
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const big = { ...a, state: 'exited' as const, exitCode: 3, error: 'x'.repeat(64 * 1024) };
    await reg.save(big);
    await assert.rejects(
      reg.create({ ...record('charlie'), error: 'x'.repeat(64 * 1024) }),
      (e: Error & { code?: string }) => e.code === 'HOST_CAPACITY_EXCEEDED',
      'a new record is refused clearly',
    );
    await reg.rename({ ...b }, 'bravo2');
    assert.equal(reg.get('bravo2').id, b.id, 'a held-back rename is found by its new name');
    await reg.remove(b);
    assert.equal(reg.get('alpha').exitCode, 3, 'the held-back change is what reads see');
    assert.throws(
      () => reg.get('bravo2'),
      (e: Error & { code?: string }) => e.code === 'CONTAINER_NOT_FOUND',
      'removed, although the database still has it',
    );
    assert.deepEqual(
      (await reg.list()).map((r) => r.name),
      ['alpha'],
    );
    const stored = (): ContainerRecord => store.get<ContainerRecord>('container', a.id)!.value;
    assert.equal(stored().exitCode, null, 'not in the database yet');
    assert.equal(
      reg.recordEvent('container', 'die', a.id, { pad: 'x'.repeat(64 * 1024) }).seq,
      0,
      'an event the disk has no room for is still returned, unstored',
    );
    db.pragma('max_page_count = 1073741823');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(stored().exitCode, 3, 'written by the retry');
    assert.equal(store.get('container', b.id), undefined, 'and the removal too');
    assert.equal(store.get('container-name', 'bravo'), undefined, 'with its name');
    assert.equal(store.get('container-name', 'bravo2'), undefined);
  } finally {
    reg.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

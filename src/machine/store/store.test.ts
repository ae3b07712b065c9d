/** The StateStore conformance suite on both implementations, and the SQLite store's own concerns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asyncStore, MemoryStateStore } from '../../common/index.ts';
import { storeConformance } from './conformance.ts';
import { openMachineDb } from './db.ts';
import { openStateStore } from './sqlite.ts';

storeConformance('memory', {
  async open() {
    const store = new MemoryStateStore();
    return { store, second: store, cleanup: async () => store.close() };
  },
});

storeConformance('sqlite', {
  async open() {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-store-'));
    const store = openStateStore(dir, { pollMs: 20 });
    const second = openStateStore(dir, { pollMs: 20 });
    return {
      store,
      second,
      cleanup: async () => {
        store.close();
        second.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});

test('sqlite: containers and volumes of a database from before the store become records, names included', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-store-'));
  try {
    const old = openMachineDb(dir, 2);
    old
      .prepare('INSERT INTO containers (id, name, state, created, record) VALUES (?, ?, ?, ?, ?)')
      .run('c1', 'web', 'exited', '2024-01-01T00:00:00Z', JSON.stringify({ id: 'c1', name: 'web', state: 'exited' }));
    old
      .prepare('INSERT INTO volumes (name, created, anonymous, size_bytes, labels) VALUES (?, ?, ?, ?, ?)')
      .run('data', '2024-01-02T00:00:00Z', 1, 1024, '{"a":"b"}');
    old.prepare("INSERT INTO events (time_ns, type, action, actor_id, attributes) VALUES (5, 'container', 'create', 'c1', '{}')").run();
    old.close();
    const store = openStateStore(dir);
    try {
      assert.deepEqual(store.get('container', 'c1')?.value, { id: 'c1', name: 'web', state: 'exited' });
      assert.deepEqual(store.get('container-name', 'web')?.value, { id: 'c1' });
      assert.deepEqual(store.get('volume', 'data')?.value, {
        name: 'data',
        created: '2024-01-02T00:00:00Z',
        anonymous: true,
        sizeBytes: 1024,
        labels: { a: 'b' },
      });
      assert.equal(store.revision(), 3);
      assert.deepEqual(
        store.events().map((e) => [e.seq, e.action]),
        [[1, 'create']],
      );
    } finally {
      store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

storeConformance('sqlite through asyncStore', {
  async open() {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-store-'));
    const sync = openStateStore(dir, { pollMs: 20 });
    const syncSecond = openStateStore(dir, { pollMs: 20 });
    return {
      store: asyncStore(sync),
      second: asyncStore(syncSecond),
      cleanup: async () => {
        sync.close();
        syncSecond.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});

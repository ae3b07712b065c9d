/**
 * The one conformance suite of the StateStore contract (src/common/store.ts): every implementation runs it (memory
 * and SQLite in store.test.ts, SQLite again through asyncStore, and etcd in etcd.test.ts). Every call is awaited, so a store with promise-returning methods
 * (AsyncStateStore) runs the same suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHANGE_LOG_SIZE,
  isBosonError,
  isStoreConflict,
  type AsyncStateStore,
  type StateStore,
  type StoreChange,
  type StoredRecord,
} from '../../common/index.ts';

/** A store, sync or async. */
export type AnyStateStore = StateStore | AsyncStateStore;

/** What the suite gets from an implementation. */
export interface StoreFactory {
  /** A new, empty store; `second` is another handle on the same data (another process's view), or the same store. */
  open(): Promise<{ store: AnyStateStore; second: AnyStateStore; cleanup(): Promise<void> }>;
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Registers the suite's tests under `name`. */
export function storeConformance(name: string, factory: StoreFactory): void {
  const withStore = (title: string, fn: (s: AnyStateStore, second: AnyStateStore) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const { store, second, cleanup } = await factory.open();
      try {
        await fn(store, second);
      } finally {
        await cleanup();
      }
    });
  };

  withStore('put, get, list by kind and prefix, delete', async (s) => {
    assert.equal(await s.revision(), 0);
    assert.equal(await s.get('thing', 'a'), undefined);
    const r1 = await s.put('thing', 'a/1', { n: 1, nested: { list: [1, 'x', null] } });
    const r2 = await s.put('thing', 'a/2', { n: 2 });
    await s.put('thing', 'b/1', { n: 3 });
    await s.put('other', 'a/1', 'plain string');
    const got = await s.get<{ n: number }>('thing', 'a/1');
    assert.deepEqual(got, {
      kind: 'thing',
      key: 'a/1',
      value: { n: 1, nested: { list: [1, 'x', null] } },
      revision: r1,
      createRevision: r1,
    });
    assert.deepEqual(
      (await s.list('thing')).map((r) => r.key),
      ['a/1', 'a/2', 'b/1'],
    );
    assert.deepEqual(
      (await s.list('thing', { prefix: 'a/' })).map((r) => [r.key, r.revision]),
      [
        ['a/1', r1],
        ['a/2', r2],
      ],
    );
    assert.equal((await s.get('other', 'a/1'))?.value, 'plain string');
    const r5 = await s.put('thing', 'a/1', { n: 10 });
    const updated = await s.get('thing', 'a/1');
    assert.equal(updated?.revision, r5);
    assert.equal(updated?.createRevision, r1, 'the create revision stays');
    assert.equal(await s.delete('thing', 'a/1'), true);
    assert.equal(await s.delete('thing', 'a/1'), false, 'deleting what is not there is no change');
    assert.equal(await s.get('thing', 'a/1'), undefined);
    assert.deepEqual(
      (await s.list('thing')).map((r) => r.key),
      ['a/2', 'b/1'],
    );
    // A value read is a copy: changing it changes nothing stored.
    const copy = (await s.get('thing', 'a/2')) as StoredRecord<{ n: number }>;
    copy.value.n = 99;
    assert.deepEqual((await s.get('thing', 'a/2'))?.value, { n: 2 });
  });

  withStore('revisions increase by one per change, store-wide', async (s) => {
    const revs: number[] = [];
    for (let i = 0; i < 5; i++) revs.push(await s.put(i % 2 ? 'odd' : 'even', `k${i}`, i));
    assert.deepEqual(revs, [1, 2, 3, 4, 5]);
    await s.delete('odd', 'k1');
    assert.equal(await s.revision(), 6);
    assert.equal(await s.commit([{ op: 'check', kind: 'even', key: 'k0', expectRevision: 1 }]), 6, 'a check writes nothing');
    assert.equal(await s.revision(), 6);
  });

  withStore('compare and swap: create only when absent, update only at the expected revision', async (s) => {
    const r1 = await s.put('box', 'k', 'first', { expectRevision: 0 });
    await assert.rejects(
      async () => s.put('box', 'k', 'again', { expectRevision: 0 }),
      (e: unknown) => isStoreConflict(e) && isBosonError(e, 'STORE_CONFLICT') && e.expected === 0 && e.actual === r1,
    );
    const r2 = await s.put('box', 'k', 'second', { expectRevision: r1 });
    await assert.rejects(
      async () => s.put('box', 'k', 'stale', { expectRevision: r1 }),
      (e: unknown) => isStoreConflict(e) && e.actual === r2,
    );
    assert.equal((await s.get('box', 'k'))?.value, 'second');
    await assert.rejects(
      async () => s.put('box', 'missing', 'x', { expectRevision: 3 }),
      (e: unknown) => isStoreConflict(e) && e.actual === 0,
    );
    assert.equal(await s.revision(), r2, 'a conflict writes nothing');
  });

  withStore('two racing creates of one key: one wins, the other gets the typed conflict', async (s, second) => {
    for (let i = 0; i < 10; i++) {
      const outcomes = await Promise.allSettled([
        (async () => s.put('claim', `name${i}`, { by: 'a' }, { expectRevision: 0 }))(),
        (async () => second.put('claim', `name${i}`, { by: 'b' }, { expectRevision: 0 }))(),
      ]);
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, 'exactly one create wins');
      const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      assert.ok(isStoreConflict(lost.reason), `the loser gets STORE_CONFLICT, not ${String(lost.reason)}`);
    }
  });

  withStore('delete with an expected revision', async (s) => {
    const r1 = await s.put('box', 'k', 1);
    const r2 = await s.put('box', 'k', 2);
    await assert.rejects(
      async () => s.delete('box', 'k', { expectRevision: r1 }),
      (e: unknown) => isStoreConflict(e) && e.actual === r2,
    );
    assert.equal((await s.get('box', 'k'))?.value, 2);
    assert.equal(await s.delete('box', 'k', { expectRevision: r2 }), true);
    await assert.rejects(
      async () => s.delete('box', 'k', { expectRevision: r2 }),
      (e: unknown) => isStoreConflict(e) && e.actual === 0,
    );
  });

  withStore('a commit is all or nothing', async (s) => {
    const r1 = await s.put('a', 'x', 1);
    await assert.rejects(
      async () =>
        s.commit([
          { op: 'put', kind: 'a', key: 'y', value: 2 },
          { op: 'delete', kind: 'a', key: 'x' },
          { op: 'check', kind: 'a', key: 'z', expectRevision: 7 },
        ]),
      isStoreConflict,
    );
    assert.deepEqual(
      (await s.list('a')).map((r) => r.key),
      ['x'],
    );
    assert.equal(await s.revision(), r1);
    const after = await s.commit([
      { op: 'put', kind: 'a', key: 'y', value: 2, expectRevision: 0 },
      { op: 'put', kind: 'a', key: 'y', value: 3 },
      { op: 'delete', kind: 'a', key: 'x', expectRevision: r1 },
      { op: 'check', kind: 'a', key: 'x', expectRevision: 0 },
    ]);
    assert.equal(after, r1 + 3, 'each write takes the next revision');
    assert.deepEqual(
      (await s.list('a')).map((r) => [r.key, r.value, r.revision, r.createRevision]),
      [['y', 3, r1 + 2, r1 + 1]],
    );
  });

  withStore('a watch from a revision sees every later change of its kind, in order, and nothing before', async (s, second) => {
    await s.put('w', 'before', 0);
    const from = await s.put('w', 'k1', 1);
    await s.put('w', 'k2', 2);
    await s.put('unwatched', 'k', 'x');
    await s.delete('w', 'k1');
    const seen: StoreChange[] = [];
    const watch = await s.watch('w', from, (c) => seen.push(c));
    await s.put('w', 'k3', 3);
    await second.put('w', 'k4', 4); // a write through the other handle (another process, for SQLite)
    await s.commit([
      { op: 'put', kind: 'w', key: 'k5', value: 5 },
      { op: 'delete', kind: 'w', key: 'k2' },
    ]);
    await until(() => seen.length >= 6);
    assert.deepEqual(
      seen.map((c) => [c.type, c.key, c.value]),
      [
        ['put', 'k2', 2],
        ['delete', 'k1', 1],
        ['put', 'k3', 3],
        ['put', 'k4', 4],
        ['put', 'k5', 5],
        ['delete', 'k2', 2],
      ],
    );
    const revs = seen.map((c) => c.revision);
    assert.deepEqual(
      revs,
      [...revs].sort((a, b) => a - b),
    );
    assert.ok(revs.every((r) => r > from));
    assert.ok(seen.every((c) => c.kind === 'w'));
    watch.cancel();
    await s.put('w', 'k6', 6);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, 6, 'nothing after cancel');
  });

  withStore('a watch callback that writes still sees changes in order', async (s) => {
    const seen: number[] = [];
    const watch = await s.watch('chain', 0, (c) => {
      const n = c.value as number;
      seen.push(n);
      if (n < 5) void s.put('chain', `k${n + 1}`, n + 1);
    });
    await s.put('chain', 'k0', 0);
    await until(() => seen.length >= 6);
    watch.cancel();
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
  });

  withStore('watching from before the kept change log is STORE_COMPACTED', async (s) => {
    await s.commit(
      Array.from({ length: CHANGE_LOG_SIZE + 5 }, (_, i) => ({ op: 'put' as const, kind: 'many', key: `k${i % 7}`, value: i })),
    );
    await assert.rejects(
      async () => s.watch('many', 2, () => undefined),
      (e: unknown) => isBosonError(e, 'STORE_COMPACTED'),
    );
    const seen: StoreChange[] = [];
    const w = await s.watch('many', CHANGE_LOG_SIZE + 3, (c) => seen.push(c));
    await until(() => seen.length >= 2);
    w.cancel();
    assert.deepEqual(
      seen.map((c) => c.revision),
      [CHANGE_LOG_SIZE + 4, CHANGE_LOG_SIZE + 5],
    );
  });

  withStore('a watch of a quiet kind outlives more than the change log of changes to other kinds', async (s) => {
    const seen: StoreChange[] = [];
    const w = await s.watch('quiet', await s.revision(), (c) => seen.push(c));
    const batch = 1000;
    for (let i = 0; i * batch < CHANGE_LOG_SIZE + batch; i++) {
      await s.commit(
        Array.from({ length: batch }, (_, j) => ({ op: 'put' as const, kind: 'busy', key: `k${j % 10}`, value: i * batch + j })),
      );
      await new Promise((r) => setTimeout(r, 5));
    }
    const rev = await s.put('quiet', 'q', 'still here');
    await until(() => seen.length >= 1);
    w.cancel();
    assert.deepEqual(
      seen.map((c) => [c.key, c.value, c.revision]),
      [['q', 'still here', rev]],
    );
  });

  withStore('events append with their own sequence and read back in order, by sequence and time', async (s, second) => {
    const t = (ms: number): bigint => BigInt(ms) * 1_000_000n;
    const a = await s.appendEvent({ type: 'container', action: 'create', actorId: 'c1', attributes: { name: 'x' }, timeNano: t(1000) });
    const b = await second.appendEvent({ type: 'volume', action: 'create', actorId: 'v1', attributes: {}, timeNano: t(2000) });
    const c = await s.appendEvent({ type: 'container', action: 'die', actorId: 'c1', attributes: { exitCode: '3' }, timeNano: t(3000) });
    assert.ok(a.seq < b.seq && b.seq < c.seq);
    assert.equal(await s.revision(), 0, 'events are not records and take no revision');
    const all = await s.events();
    assert.deepEqual(
      all.map((e) => [e.seq, e.type, e.action, e.actorId, e.attributes, e.timeNano]),
      [
        [a.seq, 'container', 'create', 'c1', { name: 'x' }, t(1000)],
        [b.seq, 'volume', 'create', 'v1', {}, t(2000)],
        [c.seq, 'container', 'die', 'c1', { exitCode: '3' }, t(3000)],
      ],
    );
    assert.deepEqual(
      (await s.events({ afterSeq: a.seq })).map((e) => e.seq),
      [b.seq, c.seq],
    );
    assert.deepEqual(
      (await s.events({ sinceNs: t(2000) })).map((e) => e.seq),
      [b.seq, c.seq],
    );
    assert.deepEqual(
      (await s.events({ untilNs: t(2000) })).map((e) => e.seq),
      [a.seq, b.seq],
    );
    assert.deepEqual(
      (await s.events({ sinceNs: t(1500), untilNs: t(2500) })).map((e) => e.seq),
      [b.seq],
    );
    const now = await s.appendEvent({ type: 'network', action: 'connect', actorId: 'n', attributes: {} });
    assert.ok(now.timeNano > t(Date.now() - 60_000), 'the time defaults to now');
  });
}

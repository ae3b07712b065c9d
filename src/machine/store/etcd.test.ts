/**
 * The StateStore conformance suite on a real etcd (Debian's etcd-server, started on loopback for this file), with two
 * clients on one prefix as the two handles (two controller replicas); and the etcd store's own concerns: several
 * writers never reuse a revision or an event sequence, an unreachable etcd is STORE_UNAVAILABLE.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isBosonError, isStoreConflict } from '../../common/index.ts';
import { storeConformance } from './conformance.ts';
import { openEtcdStore, type EtcdStateStore } from './etcd.ts';
import { startTestEtcd, type TestEtcd } from './etcd-test-support.ts';

let etcd: TestEtcd | undefined;
before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  await etcd?.stop();
});

const open = (prefix: string): EtcdStateStore => openEtcdStore({ endpoints: [etcd!.endpoint], prefix });

storeConformance('etcd', {
  async open() {
    const prefix = `t-${randomUUID()}/`;
    const store = open(prefix);
    const second = open(prefix);
    return {
      store,
      second,
      cleanup: async () => {
        await store.close();
        await second.close();
      },
    };
  },
});

test('etcd: many writers on one store take every revision once, and every event sequence once', async () => {
  const prefix = `t-${randomUUID()}/`;
  const stores = Array.from({ length: 4 }, () => open(prefix));
  try {
    const revs = await Promise.all(stores.flatMap((s, i) => Array.from({ length: 10 }, (_, j) => s.put('k', `s${i}-${j}`, j))));
    assert.deepEqual(
      [...revs].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    const seqs = await Promise.all(
      stores.flatMap((s, i) =>
        Array.from({ length: 5 }, () => s.appendEvent({ type: 't', action: 'a', actorId: String(i), attributes: {} })),
      ),
    );
    assert.deepEqual(
      seqs.map((e) => e.seq).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.equal(await stores[0]!.revision(), 40, 'events take no revision');
    // Stores under another prefix of the same etcd see none of it.
    const other = open(`t-${randomUUID()}/`);
    assert.equal(await other.revision(), 0);
    assert.deepEqual(await other.list('k'), []);
    await other.close();
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

test('etcd: a store whose etcd does not answer fails with STORE_UNAVAILABLE', async () => {
  const dead = openEtcdStore({ endpoints: ['http://127.0.0.1:1'], prefix: 'x/', callTimeoutMs: 1000 });
  try {
    await assert.rejects(dead.get('k', 'a'), (e: unknown) => isBosonError(e, 'STORE_UNAVAILABLE'));
    await assert.rejects(dead.put('k', 'a', 1), (e: unknown) => isBosonError(e, 'STORE_UNAVAILABLE'));
  } finally {
    await dead.close();
  }
});

test('etcd: concurrent commits of one store object are grouped, yet each succeeds or fails alone, in order', async () => {
  const s = open(`t-${randomUUID()}/`);
  try {
    const claims = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => s.put('claim', 'x', { by: i }, { expectRevision: 0 })));
    assert.equal(claims.filter((c) => c.status === 'fulfilled').length, 1, 'one create of x wins');
    assert.ok(claims.every((c) => c.status === 'fulfilled' || isStoreConflict(c.reason)));
    const winner = claims.findIndex((c) => c.status === 'fulfilled');
    assert.deepEqual((await s.get('claim', 'x'))?.value, { by: winner });
    const bad = s.commit([{ op: 'put', kind: '', key: 'k', value: 1 }]).then(
      () => 'committed',
      (e: unknown) => e,
    );
    const revs = await Promise.all(Array.from({ length: 30 }, (_, i) => s.put('many', `k${i}`, i)));
    assert.ok(isBosonError(await bad, 'INVALID_ARGUMENT'), 'the malformed commit fails alone');
    assert.deepEqual(
      [...revs].sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i + 2),
    );
    for (const [i, r] of revs.entries()) assert.equal((await s.get('many', `k${i}`))?.revision, r);
    // A group where a later commit depends on an earlier one of the same group.
    const [r1, r2] = await Promise.all([s.put('chain', 'a', 1, { expectRevision: 0 }), s.put('chain', 'a', 2, { expectRevision: 32 })]);
    assert.deepEqual([r1, r2], [32, 33]);
  } finally {
    await s.close();
  }
});

test('etcd: a commit written against what one store object last saw is refused when another object moved it, and decided again', async () => {
  const prefix = `t-${randomUUID()}/`;
  const a = open(prefix);
  const b = open(prefix);
  try {
    const r1 = await a.put('k', 'x', 1);
    const r2 = await b.put('k', 'x', 2, { expectRevision: r1 });
    // a last saw x at r1: an expectation of r1 must fail, one of r2 must succeed, whatever a remembers.
    await assert.rejects(a.put('k', 'x', 3, { expectRevision: r1 }), (e: unknown) => isStoreConflict(e));
    const r3 = await a.put('k', 'x', 4, { expectRevision: r2 });
    assert.deepEqual(await a.get('k', 'x'), { kind: 'k', key: 'x', value: 4, revision: r3, createRevision: r1 });
    // A record a never saw, made by b: a must not create it again, and a plain put keeps its createRevision.
    const ry = await b.put('k', 'y', 'b');
    await assert.rejects(a.put('k', 'y', 'a', { expectRevision: 0 }), (e: unknown) => isStoreConflict(e));
    await a.put('k', 'y', 'a2');
    assert.equal((await b.get('k', 'y'))?.createRevision, ry);
    // A delete of a record a never saw deletes it; a delete of one b removed meanwhile says it deleted nothing.
    const rz = await b.put('k', 'z', 1);
    assert.equal(await a.delete('k', 'z'), true);
    await a.put('k', 'w', 1);
    await b.delete('k', 'w');
    assert.equal(await a.delete('k', 'w'), false);
    assert.equal(await b.get('k', 'z'), undefined);
    // Revisions stayed gap-free through all of it, and a wrote without a read when nothing else had moved.
    const before = a.stats.txns;
    const r = await a.put('k', 'v', 1);
    assert.equal(r, await b.revision());
    assert.equal(a.stats.txns - before, 1, 'one round trip when a was the last writer');
    assert.ok(rz > ry);
  } finally {
    await a.close();
    await b.close();
  }
});

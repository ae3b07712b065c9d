/**
 * Health checks split between controller replicas, over one store (the memory store: the controller layer reaches no
 * store implementation but common's; the machines are unreachable UNIX sockets, so a check is quick and fails):
 * each machine is checked by exactly one live replica once the replicas have seen each other; a replica that dies
 * (stops renewing its presence) has its machines taken over when its lease ends; one that stops leaves at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asyncStore, MemoryStateStore } from '../../common/index.ts';
import { Leaser } from '../model/lease.ts';
import { Tenants } from '../model/tenants.ts';
import { openFleet } from './index.ts';
import { HealthChecker } from './machines.ts';
import { CHECK_REPLICA_KIND, CheckReplicas } from './replicas.ts';

const PRESENCE_MS = 3000;

test('replicas split the health checks: one live replica per machine, taken over when one dies or stops', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-replicas-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = asyncStore(new MemoryStateStore());
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const opened = await openFleet(store, new Tenants(store), {
    lostAfterMs: 600_000,
    checkIntervalMs: 0,
    checkTimeoutMs: 500,
    clock: () => clock,
  });
  t.after(() => opened.close());
  const all: string[] = [];
  for (let i = 0; i < 20; i++)
    all.push(await opened.fleet.registerLocal(`unix://${dir}/m${i}.sock`, { cpus: 1, memoryBytes: 1 << 30, diskBytes: 0 }));
  all.sort();
  const replica = (id: string) =>
    new HealthChecker(opened.fleet, {
      intervalMs: 1000,
      timeoutMs: 500,
      imagesEvery: 0,
      replicas: new CheckReplicas(store, new Leaser(id, PRESENCE_MS, () => clock)),
    });
  const [a, b, c] = [replica('r-a'), replica('r-b'), replica('r-c')];
  const sorted = (ids: string[]) => [...ids].sort();

  // Alone, a replica checks every machine.
  assert.deepEqual(sorted(await a.checkAll()), all);
  // A second one joins: it takes its share at once; the first sees it at its next round. From then on, each
  // machine is checked by exactly one of them, and by both together all are.
  const bFirst = await b.checkAll();
  assert.ok(bFirst.length > 0 && bFirst.length < all.length, `b's share: ${bFirst.length}`);
  for (let round = 0; round < 3; round++) {
    clock += 1000;
    const [byA, byB] = [await a.checkAll(), await b.checkAll()];
    assert.deepEqual(
      byA.filter((id) => byB.includes(id)),
      [],
      'no machine checked twice',
    );
    assert.deepEqual(sorted([...byA, ...byB]), all, 'every machine checked');
    assert.deepEqual(sorted(byB), sorted(bFirst), 'the split is stable');
  }

  // b dies (its process is gone: it renews nothing, leaves nothing). Until its lease ends, a keeps to its share;
  // then a checks every machine, and b's presence is removed.
  clock += PRESENCE_MS - 1000;
  assert.equal((await a.checkAll()).length, all.length - bFirst.length);
  clock += 1001;
  assert.deepEqual(sorted(await a.checkAll()), all);
  assert.deepEqual(
    (await store.list(CHECK_REPLICA_KIND)).map((r) => r.key),
    ['r-a'],
  );

  // c joins and stops (close): it leaves at once, and a takes its machines back at its next round, with no wait.
  const byC = await c.checkAll();
  clock += 1000;
  const byA = await a.checkAll();
  assert.deepEqual(sorted([...byA, ...byC]), all);
  assert.ok(byC.length > 0);
  await c.stop();
  assert.deepEqual(sorted(await a.checkAll()), all);
  await a.stop();
  assert.deepEqual(await store.list(CHECK_REPLICA_KIND), []);
});

test('the owner of a machine is the same for every replica, and moves only with the replica that joins or leaves', () => {
  const machines = Array.from({ length: 200 }, (_, i) => `m-${i.toString(16).padStart(12, '0')}`);
  const two = ['r-a', 'r-b'];
  const three = ['r-a', 'r-b', 'r-c'];
  for (const m of machines) {
    assert.equal(CheckReplicas.owner(m, two), CheckReplicas.owner(m, [...two].reverse()), 'order does not matter');
    const before = CheckReplicas.owner(m, two);
    const after = CheckReplicas.owner(m, three);
    assert.ok(after === before || after === 'r-c', 'a joining replica takes machines only for itself');
  }
  const shares = three.map((r) => machines.filter((m) => CheckReplicas.owner(m, three) === r).length);
  for (const n of shares) assert.ok(n > 40 && n < 100, `a fair share of 200 among three: ${shares.join(', ')}`);
});

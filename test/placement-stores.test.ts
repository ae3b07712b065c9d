/**
 * Concurrent planners never over-commit a machine, on the real stores: SQLite (two handles on one database file, as
 * two processes) and etcd (two clients of a real etcd, as two controller replicas). Each planner keeps its own
 * SnapshotCache, so plans race for real and the applier must reject the stale ones.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { asyncStore } from '../src/common/index.ts';
import { openStateStore } from '../src/machine/store/sqlite.ts';
import { openEtcdStore } from '../src/machine/store/etcd.ts';
import { startTestEtcd, type TestEtcd } from '../src/machine/store/etcd-test-support.ts';
import { concurrentPlanners } from '../src/controller/scheduler/test-support.ts';

let etcd: TestEtcd | undefined;
before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  await etcd?.stop();
});

test('sqlite: concurrent planners on two handles never over-commit a machine', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-place-'));
  const a = openStateStore(dir, { pollMs: 10 });
  const b = openStateStore(dir, { pollMs: 10 });
  try {
    const outcome = await concurrentPlanners(asyncStore(a), asyncStore(b), { machines: 6, planners: 4, placements: 40, seed: 5 });
    assert.equal(outcome.placed + outcome.capacityErrors, 40);
    assert.equal(outcome.placed, 24, 'the fleet is exactly full');
  } finally {
    a.close();
    b.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('etcd: concurrent planners on two clients never over-commit a machine', async () => {
  const prefix = `place-${randomUUID()}/`;
  const a = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
  const b = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
  try {
    const outcome = await concurrentPlanners(a, b, { machines: 6, planners: 4, placements: 40, seed: 5 });
    assert.ok(outcome.rejectedPlans > 0, 'plans raced and some were rejected');
    assert.equal(outcome.placed, 24, 'the fleet is exactly full');
    assert.equal(outcome.capacityErrors, 16);
  } finally {
    await a.close();
    await b.close();
  }
});

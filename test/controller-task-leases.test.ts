/**
 * Task leases with two controller replicas on the real stores: SQLite (two handles on one database file, as two
 * processes on one host) and etcd (two clients of a real etcd, as two replicas on two hosts). Replica A is killed in
 * the middle of a task (its heartbeat stops); replica B takes the task over within the lease time and resumes it
 * (or fails it with TASK_RUNNER_DIED, by its kind); nothing but the step in flight runs twice, and A, woken up,
 * writes nothing more. And a project removal (a real task kind) whose replica died before running it is finished by
 * the other replica.
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
import { removalFinishedByOther, replicaTakeover } from '../src/controller/model/tasks-test-support.ts';

const LEASE = { leaseMs: 1500, sweepMs: 200 };
/** Taken over within the lease time after the last renewal, plus a sweep, plus slack for a loaded machine. */
const BOUND_MS = LEASE.leaseMs + LEASE.sweepMs + 1500;

let etcd: TestEtcd | undefined;
before(async () => {
  etcd = await startTestEtcd();
});
after(async () => {
  await etcd?.stop();
});

for (const mode of ['resume', 'fail'] as const) {
  test(`sqlite: replica B takes over a task of killed replica A (${mode})`, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-task-lease-'));
    const a = openStateStore(dir, { pollMs: 20 });
    const b = openStateStore(dir, { pollMs: 20 });
    try {
      const out = await replicaTakeover(asyncStore(a), asyncStore(b), mode, LEASE);
      t.diagnostic(`taken over ${out.takeoverMs} ms after A died (lease ${LEASE.leaseMs} ms, sweep ${LEASE.sweepMs} ms)`);
      assert.ok(out.takeoverMs <= BOUND_MS, `taken over ${out.takeoverMs} ms after A died (bound ${BOUND_MS})`);
    } finally {
      a.close();
      b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test(`etcd: replica B takes over a task of killed replica A (${mode})`, async (t) => {
    const prefix = `tasks-${randomUUID()}/`;
    const a = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
    const b = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
    try {
      const out = await replicaTakeover(a, b, mode, LEASE);
      t.diagnostic(`taken over ${out.takeoverMs} ms after A died (lease ${LEASE.leaseMs} ms, sweep ${LEASE.sweepMs} ms)`);
      assert.ok(out.takeoverMs <= BOUND_MS, `taken over ${out.takeoverMs} ms after A died (bound ${BOUND_MS})`);
    } finally {
      await a.close();
      await b.close();
    }
  });
}

test('sqlite and etcd: a project removal whose replica died before running it is finished by the other replica', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-task-lease-'));
  const a = openStateStore(dir, { pollMs: 20 });
  const b = openStateStore(dir, { pollMs: 20 });
  try {
    await removalFinishedByOther(asyncStore(a), asyncStore(b), LEASE);
  } finally {
    a.close();
    b.close();
    await rm(dir, { recursive: true, force: true });
  }
  const prefix = `tasks-${randomUUID()}/`;
  const ea = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
  const eb = openEtcdStore({ endpoints: [etcd!.endpoint], prefix });
  try {
    await removalFinishedByOther(ea, eb, LEASE);
  } finally {
    await ea.close();
    await eb.close();
  }
});

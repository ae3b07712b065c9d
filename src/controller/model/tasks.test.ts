/**
 * Task leases over the memory store: two replicas (two Tasks over one store); a replica killed in a step is taken
 * over within a lease time, resumed or failed by its kind, and nothing runs twice but the step in flight of a
 * resumable kind; a queued task its creator never claimed is claimed; finished tasks are pruned after retention;
 * removals (project.delete) resume on another replica.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asyncStore, MemoryStateStore } from '../../common/index.ts';
import { KINDS, type TaskRecord } from './records.ts';
import { Tasks } from './tasks.ts';
import { removalFinishedByOther, replicaTakeover } from './tasks-test-support.ts';

const LEASE = { leaseMs: 300, sweepMs: 50 };

test('a replica killed mid-task: the other takes over within a lease time and resumes it; each step runs once but the one in flight', async () => {
  const store = asyncStore(new MemoryStateStore());
  const out = await replicaTakeover(store, store, 'resume', LEASE);
  assert.ok(out.takeoverMs <= LEASE.leaseMs + LEASE.sweepMs + 500, `taken over in ${out.takeoverMs} ms`);
});

test('a replica killed mid-task of a kind that is not resumed: the task fails with TASK_RUNNER_DIED, later steps never run', async () => {
  const store = asyncStore(new MemoryStateStore());
  const out = await replicaTakeover(store, store, 'fail', LEASE);
  assert.match(out.task.error?.message ?? '', /its runner \(replica A\) stopped renewing its lease/);
});

test('a queued task nobody claimed (its replica died before running it) is claimed by a sweep; old finished tasks are pruned', async () => {
  const mem = new MemoryStateStore();
  const store = asyncStore(mem);
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const tasks = new Tasks(store, undefined, { replicaId: 'B', leaseMs: 1000, retentionMs: 60_000, clock: () => clock });
  let ran = 0;
  tasks.define('k', { onRunnerDied: 'resume', run: async (_t, step) => step('only', async () => void ran++) });
  // A queued task as a replica that died before claiming it left it.
  const orphan: TaskRecord = {
    id: 'a1',
    kind: 'k',
    state: 'queued',
    target: 'x',
    steps: [{ name: 'only', state: 'queued' }],
    createdAt: new Date(clock).toISOString(),
  };
  await store.put(KINDS.task, orphan.id, orphan, { expectRevision: 0 });
  assert.deepEqual((await tasks.sweep()).claimed, [], 'not before a lease time');
  clock += 1000;
  assert.deepEqual((await tasks.sweep()).claimed, ['a1']);
  const done = await tasks.wait('a1', 5000);
  assert.equal(done.state, 'succeeded');
  assert.equal(ran, 1);
  // Retention: kept for 60 s after it ended, then removed by a sweep.
  clock += 59_000;
  assert.deepEqual((await tasks.sweep()).pruned, []);
  clock += 2_000;
  assert.deepEqual((await tasks.sweep()).pruned, ['a1']);
  assert.equal(await store.get(KINDS.task, 'a1'), undefined);
  // A running task with a live lease is left alone; a lease renewed at the last moment wins over a take-over.
  const held: TaskRecord = {
    id: 'a2',
    kind: 'k',
    state: 'running',
    target: 'x',
    steps: [{ name: 'only', state: 'running' }],
    createdAt: new Date(clock).toISOString(),
    lease: { owner: 'A', expiresAt: new Date(clock + 500).toISOString() },
  };
  await store.put(KINDS.task, held.id, held, { expectRevision: 0 });
  assert.deepEqual((await tasks.sweep()).takenOver, []);
  clock += 500;
  assert.deepEqual((await tasks.sweep()).takenOver, ['a2']);
  assert.equal((await tasks.wait('a2', 5000)).state, 'succeeded');
  await tasks.close();
});

test('a project removal whose replica died before running it is finished by another replica', async () => {
  const store = asyncStore(new MemoryStateStore());
  await removalFinishedByOther(store, store, { leaseMs: 200, sweepMs: 50 });
});

test('a replica never takes over a task it runs itself, even when its own lease looks expired (its clock jumped)', async () => {
  const store = asyncStore(new MemoryStateStore());
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const tasks = new Tasks(store, undefined, { replicaId: 'A', leaseMs: 60_000, clock: () => clock });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let runs = 0;
  tasks.define('k', {
    onRunnerDied: 'resume',
    run: async (_t, step) => {
      await step('slow', async () => {
        runs++;
        await gate;
      });
    },
  });
  const t = await tasks.start({ kind: 'k', target: 'x', steps: ['slow'] });
  while (runs === 0) await new Promise((r) => setTimeout(r, 5));
  clock += 120_000; // two lease times, no heartbeat yet (the interval is 20 s)
  assert.deepEqual((await tasks.sweep()).takenOver, []);
  release();
  assert.equal((await tasks.wait(t.id, 5000)).state, 'succeeded');
  assert.equal(runs, 1);
  await tasks.close();
});

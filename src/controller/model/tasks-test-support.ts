/**
 * Two controller replicas over one store, for the task-lease tests (memory, SQLite and etcd run the same scenario):
 * replica A runs a task, is killed in the middle of a step (its heartbeat stops), and replica B takes the task over
 * within a lease time. A `resume` kind is finished by B (the step in flight runs again, every other step once); a
 * `fail` kind ends failed with TASK_RUNNER_DIED and its later steps never run. A's runner, woken afterwards, writes
 * nothing more.
 */
import assert from 'node:assert/strict';
import type { AsyncStateStore } from '../../common/index.ts';
import { KINDS } from './records.ts';
import { Controller } from './controller.ts';
import type { Tasks } from './tasks.ts';
import type { Task } from './schemas.ts';

/** What the scenario measured. */
export interface TakeoverOutcome {
  /** From A's death to B's take-over being recorded. */
  takeoverMs: number;
  /** How many times each step ran, per replica (`step@replica`). */
  runs: Record<string, number>;
  task: Task;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Runs the scenario for a task kind that B resumes (`resume`) or fails (`fail`), replicas A and B on stores `a` and
 * `b` (handles of one store), and checks it; returns what it measured.
 */
export async function replicaTakeover(
  a: AsyncStateStore,
  b: AsyncStateStore,
  mode: 'resume' | 'fail',
  opts: { leaseMs: number; sweepMs: number },
): Promise<TakeoverOutcome> {
  const runs: Record<string, number> = {};
  const ran = (step: string, replica: string): void => {
    runs[`${step}@${replica}`] = (runs[`${step}@${replica}`] ?? 0) + 1;
  };
  let wakeA!: () => void;
  const aBlocked = new Promise<void>((r) => (wakeA = r));
  const kind = `test.${mode}`;
  const replicas = (['A', 'B'] as const).map((name) => {
    // Two controller models (two replicas), each with its own handle of the store.
    const tasks = new Controller(name === 'A' ? a : b, undefined, { replicaId: name, leaseMs: opts.leaseMs, sweepMs: opts.sweepMs }).tasks;
    tasks.define(kind, {
      onRunnerDied: mode,
      run: async (_task, step) => {
        await step('one', async () => ran('one', name));
        await step('two', async () => {
          ran('two', name);
          // On A, step two outlives several lease times (the heartbeat must keep the lease), then A is killed in it.
          if (name === 'A') await aBlocked;
        });
        await step('three', async () => ran('three', name));
      },
    });
    return tasks;
  });
  const [A, B] = replicas as [Tasks, Tasks];
  try {
    A.startSweeper();
    B.startSweeper();
    const started = await A.start({ kind, target: 'x', steps: ['one', 'two', 'three'] });
    await until('A to run step two', () => runs['two@A'] === 1, 10_000);
    // A lives on for 2.5 lease times inside step two: its heartbeat keeps the task, B leaves it alone.
    await sleep(opts.leaseMs * 2.5);
    const alive = await B.get(started.id);
    assert.equal(alive.state, 'running');
    assert.equal(alive.lease?.owner, 'A', 'A still holds the lease while its heartbeat runs');
    assert.equal(runs['two@B'], undefined, 'B did not run anything of a task A holds');
    // Kill A: its heartbeat and sweeper stop (a dead process renews nothing).
    await A.close();
    const killedAt = Date.now();
    await until(
      'B to take the task over',
      async () => (await B.get(started.id)).steps.some((s) => s.name === 'taken over by B from A'),
      opts.leaseMs * 4 + opts.sweepMs * 4 + 10_000,
    );
    const takeoverMs = Date.now() - killedAt;
    const task = await B.wait(started.id, 20_000);
    // A wakes up (a paused process resumes): it finds its lease gone and writes nothing.
    const before = await b.get(KINDS.task, started.id);
    wakeA();
    await sleep(Math.max(200, opts.leaseMs / 2));
    const after = await b.get(KINDS.task, started.id);
    assert.equal(after?.revision, before?.revision, 'the dead runner wrote nothing after the take-over');
    assert.equal(runs['three@A'], undefined, 'A never ran a step after losing its lease');
    assert.equal(runs['one@A'], 1);
    assert.equal(runs['one@B'], undefined, 'a step that succeeded is not run again');
    assert.equal(task.lease, undefined, 'a finished task holds no lease');
    const names = task.steps.map((s) => `${s.name}:${s.state}`);
    if (mode === 'resume') {
      assert.equal(task.state, 'succeeded', JSON.stringify(task));
      assert.equal(runs['two@B'], 1, 'the step in flight runs again on B (resume kinds have idempotent steps)');
      assert.equal(runs['three@B'], 1);
      assert.deepEqual(names, ['one:succeeded', 'taken over by B from A:succeeded', 'two:succeeded', 'three:succeeded']);
    } else {
      assert.equal(task.state, 'failed', JSON.stringify(task));
      assert.equal(task.error?.code, 'TASK_RUNNER_DIED');
      assert.equal(runs['two@B'], undefined);
      assert.equal(runs['three@B'], undefined, 'nothing of a fail kind runs after its runner died');
      assert.deepEqual(names, ['one:succeeded', 'taken over by B from A:succeeded', 'two:failed', 'three:queued']);
    }
    return { takeoverMs, runs, task };
  } finally {
    wakeA();
    await A.close();
    await B.close();
  }
}

/**
 * A project removal started by replica A, which dies before running it: replica B claims it after a lease time and
 * removes the project and its tokens.
 */
export async function removalFinishedByOther(
  a: AsyncStateStore,
  b: AsyncStateStore,
  opts: { leaseMs: number; sweepMs: number },
): Promise<void> {
  const A = new Controller(a, undefined, { replicaId: 'A', ...opts });
  const B = new Controller(b, undefined, { replicaId: 'B', ...opts });
  try {
    await A.bootstrap();
    await A.tenants.createTenant('acme');
    await A.tenants.createProject('acme', 'web');
    await A.identity.createUser('dev', 'acme');
    const tok = await A.identity.createToken('dev', { role: 'member', tenant: 'acme', project: 'web' });
    const task = await A.deleteProject('acme', 'web');
    await A.close();
    B.start();
    const done = await B.tasks.wait(task.id, opts.leaseMs * 4 + 20_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    await assert.rejects(B.tenants.getProject('acme', 'web'), (e: Error & { code?: string }) => e.code === 'PROJECT_NOT_FOUND');
    await assert.rejects(B.identity.authenticate(tok.token), (e: Error & { code?: string }) => e.code === 'UNAUTHENTICATED');
  } finally {
    await A.close();
    await B.close();
  }
}

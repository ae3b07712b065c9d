/**
 * Tasks: every long operation is a record in the store that goes queued → running → succeeded | failed, with its
 * steps and the error that ended it, so that any replica can answer a poll or a wait. A task is claimed for running
 * by compare-and-swap (queued → running), so two replicas never run one task twice. Waiting watches the store.
 *
 * Not yet: a task whose runner died stays `running`; the lease (owner and heartbeat) that lets another replica take
 * it over comes with HA.
 */
import { randomBytes } from 'node:crypto';
import { BosonError, silentLogger, toBosonError, type AsyncStateStore, type Logger, type StoreWatch } from '../../common/index.ts';
import { casLoop, KINDS, must, now, type TaskRecord } from './records.ts';
import type { Task, TaskState } from './schemas.ts';

const taskMissing = (id: string) => (): BosonError => new BosonError('TASK_NOT_FOUND', `no such task: ${id}`, { details: { task: id } });

/** True for a state a task does not leave. */
export const isFinal = (s: TaskState): boolean => s === 'succeeded' || s === 'failed';

/** Runs one named step of a task (recorded as it starts and ends). */
export type StepRunner = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** What a task is about. */
export interface TaskSubject {
  kind: string;
  target: string;
  tenant?: string;
  project?: string;
  /** The names of its steps, in order (shown as queued until they run). */
  steps: string[];
}

/** The controller's tasks. */
export class Tasks {
  constructor(
    private readonly store: AsyncStateStore,
    private readonly log: Logger = silentLogger,
  ) {}

  /**
   * Records a new task (queued) and starts `work` in this process; resolves with the queued task at once. `work`
   * runs its steps through the StepRunner; a throw fails the task with the error.
   */
  async start(subject: TaskSubject, work: (step: StepRunner) => Promise<void>): Promise<Task> {
    const id = randomBytes(8).toString('hex');
    const task: TaskRecord = {
      id,
      kind: subject.kind,
      state: 'queued',
      target: subject.target,
      ...(subject.tenant !== undefined ? { tenant: subject.tenant } : {}),
      ...(subject.project !== undefined ? { project: subject.project } : {}),
      steps: subject.steps.map((name) => ({ name, state: 'queued' as const })),
      createdAt: now(),
    };
    await this.store.put(KINDS.task, id, task, { expectRevision: 0 });
    setImmediate(
      () => void this.run(id, work).catch((err: unknown) => this.log.error({ task: id, err: String(err) }, 'task runner failed')),
    );
    return task;
  }

  /** Claims the task (queued → running) and runs it; a task another runner claimed first is left to it. */
  private async run(id: string, work: (step: StepRunner) => Promise<void>): Promise<void> {
    const claimed = await this.update(id, (t) => (t.state === 'queued' ? { ...t, state: 'running', startedAt: now() } : null));
    if (!claimed) return;
    const step: StepRunner = async (name, fn) => {
      await this.update(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'running', startedAt: now() }) }));
      try {
        const result = await fn();
        await this.update(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'succeeded', endedAt: now() }) }));
        return result;
      } catch (err) {
        const e = toBosonError(err);
        const error = { code: e.code, message: e.message, ...(Object.keys(e.details).length ? { details: { ...e.details } } : {}) };
        await this.update(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'failed', endedAt: now(), error }) }));
        throw err;
      }
    };
    try {
      await work(step);
      await this.update(id, (t) => ({ ...t, state: 'succeeded', endedAt: now() }));
    } catch (err) {
      const e = toBosonError(err);
      if (e.code === 'INTERNAL') this.log.error({ task: id, err: String(err) }, 'task failed with an internal error');
      const error = { code: e.code, message: e.message, ...(Object.keys(e.details).length ? { details: { ...e.details } } : {}) };
      await this.update(id, (t) => ({ ...t, state: 'failed', endedAt: now(), error }));
    }
  }

  /** Applies `change` to a task by compare-and-swap; null from `change` leaves it. Returns the new task, or null. */
  private async update(id: string, change: (t: TaskRecord) => TaskRecord | null): Promise<TaskRecord | null> {
    return casLoop(`task ${id}`, async () => {
      const r = await must<TaskRecord>(this.store, KINDS.task, id, taskMissing(id));
      const next = change(r.value);
      if (!next) return null;
      await this.store.put(KINDS.task, id, next, { expectRevision: r.revision });
      return next;
    });
  }

  async get(id: string): Promise<Task> {
    return (await must<TaskRecord>(this.store, KINDS.task, id, taskMissing(id))).value;
  }

  /** Every task, newest first (by the store revision that created it: exact, where clocks tie). */
  async list(): Promise<Task[]> {
    return (await this.store.list<TaskRecord>(KINDS.task)).sort((a, b) => b.createRevision - a.createRevision).map((r) => r.value);
  }

  /**
   * Waits until the task is in a final state (or one of `states`), at most `timeoutMs`; resolves with the task as
   * it then is (the caller tells a timeout by its state).
   */
  async wait(id: string, timeoutMs: number, states: TaskState[] = ['succeeded', 'failed']): Promise<Task> {
    const first = await must<TaskRecord>(this.store, KINDS.task, id, taskMissing(id));
    if (states.includes(first.value.state) || isFinal(first.value.state) || timeoutMs <= 0) return first.value;
    let watch: StoreWatch | undefined;
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<Task>((resolve, reject) => {
        timer = setTimeout(() => void this.get(id).then(resolve, reject), timeoutMs);
        void this.store
          .watch<TaskRecord>(KINDS.task, first.revision, (c) => {
            if (c.key !== id) return;
            if (c.type === 'delete') reject(taskMissing(id)());
            else if (states.includes(c.value.state) || isFinal(c.value.state)) resolve(c.value);
          })
          // The watch may arrive after the wait ended (a timeout of 0): then it is cancelled at once.
          .then((w) => (ended ? w.cancel() : (watch = w)), reject);
      });
    } finally {
      ended = true;
      clearTimeout(timer);
      watch?.cancel();
    }
  }
}

function upsertStep(t: TaskRecord, name: string, patch: Partial<TaskRecord['steps'][number]>): TaskRecord['steps'] {
  const steps = t.steps.some((s) => s.name === name) ? t.steps : [...t.steps, { name, state: 'queued' as const }];
  return steps.map((s) => (s.name === name ? { ...s, ...patch } : s));
}

/**
 * Tasks: every long operation is a record in the store that goes queued → running → succeeded | failed, with its
 * steps and the error that ended it, so that any replica can answer a poll or a wait. Waiting watches the store.
 *
 * Several replicas: a task is claimed for running by compare-and-swap (queued → running) with a **lease** (the
 * replica's id and an expiry) that the runner's heartbeat renews; every write of the runner holds only while the
 * lease is still its own. A replica's sweep takes over a `running` task whose lease has expired (its runner died or
 * lost the store), records that as a step, and then, by the task's kind (`TaskKind.onRunnerDied`):
 * - `resume`: runs the steps that have not succeeded (the one in flight again: such kinds' steps are idempotent);
 * - `fail`: ends the task failed with TASK_RUNNER_DIED (and the step in flight with it).
 * A runner that finds its lease taken stops before its next step and writes nothing more, so no step runs after the
 * take-over on two replicas, and a step runs twice only when it was in flight as its runner died (at-least-once for
 * that step, exactly-once for the others). A queued task nobody claimed within a lease time (its replica died
 * before starting it) is claimed by the sweep. Finished tasks are removed after `retentionMs`.
 *
 * Nothing here lives only in memory: the kinds' runners are code every replica registers (`define`), the task's
 * parameters are in its record.
 */
import { randomBytes } from 'node:crypto';
import { BosonError, silentLogger, toBosonError, type AsyncStateStore, type Logger, type StoreWatch } from '../../common/index.ts';
import { Leaser, type Lease } from './lease.ts';
import { casLoop, KINDS, must, type TaskRecord } from './records.ts';
import type { Task, TaskError, TaskState } from './schemas.ts';

const taskMissing = (id: string) => (): BosonError => new BosonError('TASK_NOT_FOUND', `no such task: ${id}`, { details: { task: id } });

/** True for a state a task does not leave. */
export const isFinal = (s: TaskState): boolean => s === 'succeeded' || s === 'failed';

/**
 * Runs one named step of a task (recorded as it starts and ends). A step that succeeded already (a task resumed by
 * another replica) is not run again; so steps give no results to later ones: they read what they need from the
 * store.
 */
export type StepRunner = (name: string, fn: () => Promise<void>) => Promise<void>;

/** What a task is about. */
export interface TaskSubject {
  kind: string;
  target: string;
  tenant?: string;
  project?: string;
  /** The names of its steps, in order (shown as queued until they run). */
  steps: string[];
  /** What its kind's runner needs (JSON; kept in the record, never shown by the API). */
  params?: Record<string, unknown>;
}

/** A kind of task: how any replica runs it, and what another replica does when its runner died. */
export interface TaskKind {
  /**
   * `resume`: the steps are idempotent, another replica runs those that have not succeeded (the one in flight
   * again). `fail`: the task ends failed with TASK_RUNNER_DIED.
   */
  onRunnerDied: 'resume' | 'fail';
  /** Runs the task's steps through `step`; a throw fails the task with the error. */
  run(task: TaskRecord, step: StepRunner): Promise<void>;
}

/** How a replica runs tasks. */
export interface TaskOptions {
  /** This replica's id (default: random). */
  replicaId?: string;
  /** How long a lease holds without a heartbeat (default 15 s); the heartbeat renews it every third of that. */
  leaseMs?: number;
  /** How often `startSweeper` sweeps (default 5 s). */
  sweepMs?: number;
  /** How long a finished task is kept (default 7 days). */
  retentionMs?: number;
  clock?: () => number;
}

/** Defaults of TaskOptions. */
export const TASK_DEFAULTS = { leaseMs: 15_000, sweepMs: 5_000, retentionMs: 7 * 24 * 3600_000 } as const;

/** What one sweep did. */
export interface SweepOutcome {
  /** Running tasks whose lease had expired, taken over by this replica. */
  takenOver: string[];
  /** Queued tasks nobody had claimed for a lease time, claimed by this replica. */
  claimed: string[];
  /** Finished tasks past retention, removed. */
  pruned: string[];
}

/** Thrown inside a runner whose lease another replica took (or whose replica is closing): it stops, writing nothing. */
class LeaseLost extends Error {}

/** The controller's tasks. */
export class Tasks {
  readonly replicaId: string;
  private readonly leaseMs: number;
  private readonly sweepMs: number;
  private readonly retentionMs: number;
  private readonly clock: () => number;
  private readonly leaser: Leaser;
  private readonly kinds = new Map<string, TaskKind>();
  /** Timers of this replica (heartbeats, the sweeper): a cache of work in flight, rebuilt by any replica's sweep. */
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;
  private closed = false;

  constructor(
    private readonly store: AsyncStateStore,
    private readonly log: Logger = silentLogger,
    opts: TaskOptions = {},
  ) {
    this.replicaId = opts.replicaId ?? `r-${randomBytes(6).toString('hex')}`;
    this.leaseMs = opts.leaseMs ?? TASK_DEFAULTS.leaseMs;
    this.sweepMs = opts.sweepMs ?? TASK_DEFAULTS.sweepMs;
    this.retentionMs = opts.retentionMs ?? TASK_DEFAULTS.retentionMs;
    this.clock = opts.clock ?? Date.now;
    this.leaser = new Leaser(this.replicaId, this.leaseMs, this.clock);
  }

  private now(): string {
    return new Date(this.clock()).toISOString();
  }

  /** Registers how tasks of `kind` run (every replica registers the same kinds). */
  define(kind: string, def: TaskKind): void {
    this.kinds.set(kind, def);
  }

  /** Records a new task (queued) and starts running it in this replica; resolves with the queued task at once. */
  async start(subject: TaskSubject): Promise<Task> {
    if (!this.kinds.has(subject.kind)) throw new BosonError('INTERNAL', `no task kind ${subject.kind} is defined`);
    const id = randomBytes(8).toString('hex');
    const task: TaskRecord = {
      id,
      kind: subject.kind,
      state: 'queued',
      target: subject.target,
      ...(subject.tenant !== undefined ? { tenant: subject.tenant } : {}),
      ...(subject.project !== undefined ? { project: subject.project } : {}),
      steps: subject.steps.map((name) => ({ name, state: 'queued' as const })),
      createdAt: this.now(),
      ...(subject.params ? { params: subject.params } : {}),
    };
    await this.store.put(KINDS.task, id, task, { expectRevision: 0 });
    setImmediate(() => void this.claim(id).catch((err: unknown) => this.log.error({ task: id, err: String(err) }, 'task runner failed')));
    return publicTask(task);
  }

  private lease(): Lease {
    return this.leaser.grant();
  }

  private expired(t: TaskRecord): boolean {
    return this.leaser.expired(t.lease);
  }

  /** Claims a queued task (queued → running, with this replica's lease) and runs it; a task claimed first is left. */
  private async claim(id: string): Promise<boolean> {
    if (this.closed) return false;
    const claimed = await this.update(id, (t) =>
      t.state === 'queued' ? { ...t, state: 'running', startedAt: this.now(), lease: this.lease() } : null,
    );
    if (!claimed) return false;
    this.detach(claimed);
    return true;
  }

  /** Renews this replica's lease on a running task; false when the task is no longer this replica's to run. */
  private async renew(id: string): Promise<boolean> {
    if (this.closed) return false;
    const next = await this.update(id, (t) => (t.state === 'running' && this.leaser.held(t.lease) ? { ...t, lease: this.lease() } : null));
    return next !== null;
  }

  /** Applies `change` to a task this replica runs (it holds the lease); LeaseLost otherwise. */
  private async own(id: string, change: (t: TaskRecord) => TaskRecord): Promise<TaskRecord> {
    if (this.closed) throw new LeaseLost();
    const next = await this.update(id, (t) => (t.state === 'running' && this.leaser.held(t.lease) ? change(t) : null));
    if (!next) throw new LeaseLost();
    return next;
  }

  /** Runs a task in the background (its outcome is in its record; a store failure on the way is logged). */
  private detach(task: TaskRecord): void {
    this.execute(task).catch((err: unknown) => this.log.error({ task: task.id, err: String(err) }, 'task runner failed'));
  }

  /** Runs a task this replica holds the lease of, to its end (or until the lease is lost), with its heartbeat. */
  private async execute(task: TaskRecord): Promise<void> {
    const id = task.id;
    const kind = this.kinds.get(task.kind);
    const beat = setInterval(
      () =>
        void this.renew(id).then(
          (ok) => {
            if (!ok) clearInterval(beat);
          },
          (err: unknown) => this.log.warn({ task: id, err: String(err) }, 'cannot renew the lease of a task (retrying)'),
        ),
      Math.max(10, Math.floor(this.leaseMs / 3)),
    );
    beat.unref();
    this.heartbeats.set(id, beat);
    const step: StepRunner = async (name, fn) => {
      // Before each step the lease is renewed: a runner that lost it stops here, before doing anything more.
      if (!(await this.renew(id))) throw new LeaseLost();
      const current = await this.get(id);
      if (current.steps.some((s) => s.name === name && s.state === 'succeeded')) return;
      await this.own(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'running', startedAt: this.now() }) }));
      try {
        await fn();
      } catch (err) {
        if (err instanceof LeaseLost) throw err;
        const error = taskError(err);
        await this.own(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'failed', endedAt: this.now(), error }) }));
        throw err;
      }
      await this.own(id, (t) => ({ ...t, steps: upsertStep(t, name, { state: 'succeeded', endedAt: this.now() }) }));
    };
    try {
      if (!kind) throw new BosonError('INTERNAL', `this replica does not know the task kind ${task.kind}`);
      await kind.run(task, step);
      await this.own(id, (t) => ({ ...withoutLease(t), state: 'succeeded', endedAt: this.now() }));
    } catch (err) {
      if (err instanceof LeaseLost) {
        this.log.warn({ task: id, replica: this.replicaId }, 'lost the lease of a task; another replica runs it now');
        return;
      }
      const e = toBosonError(err);
      if (e.code === 'INTERNAL') this.log.error({ task: id, err: String(err) }, 'task failed with an internal error');
      await this.own(id, (t) => ({ ...withoutLease(t), state: 'failed', endedAt: this.now(), error: taskError(e) })).catch(
        (lost: unknown) => {
          if (!(lost instanceof LeaseLost)) throw lost;
        },
      );
    } finally {
      clearInterval(beat);
      this.heartbeats.delete(id);
    }
  }

  /**
   * Takes over a running task whose lease expired (compare-and-swap: of several replicas, one does), records it as
   * a step, then resumes it or fails it by its kind. False when another replica was first or the lease was renewed.
   */
  private async takeOver(id: string): Promise<boolean> {
    let from = '';
    const taken = await this.update(id, (t) => {
      if (t.state !== 'running' || !this.expired(t)) return null;
      from = t.lease?.owner ?? 'unknown';
      const at = this.now();
      const mark = { name: `taken over by ${this.replicaId} from ${from}`, state: 'succeeded' as const, startedAt: at, endedAt: at };
      // Recorded before the first step that has not succeeded, so that the steps read in the order they happened.
      const i = t.steps.findIndex((s) => s.state !== 'succeeded');
      const steps = i < 0 ? [...t.steps, mark] : [...t.steps.slice(0, i), mark, ...t.steps.slice(i)];
      return { ...t, steps, lease: this.lease() };
    });
    if (!taken) return false;
    const kind = this.kinds.get(taken.kind);
    this.log.warn(
      { task: id, kind: taken.kind, from, replica: this.replicaId },
      'took over a task whose runner stopped renewing its lease',
    );
    if (kind?.onRunnerDied === 'resume') {
      this.detach(taken);
      return true;
    }
    const error = taskError(
      new BosonError(
        'TASK_RUNNER_DIED',
        `task ${id} (${taken.kind} ${taken.target}): its runner (replica ${from}) stopped renewing its lease, and a ${taken.kind} task is not resumed elsewhere`,
        { details: { task: id, kind: taken.kind, replica: from } },
      ),
    );
    await this.own(id, (t) => ({
      ...withoutLease(t),
      state: 'failed',
      endedAt: this.now(),
      error,
      steps: t.steps.map((s) => (s.state === 'running' ? { ...s, state: 'failed' as const, endedAt: this.now(), error } : s)),
    })).catch((err: unknown) => {
      if (!(err instanceof LeaseLost)) throw err;
    });
    return true;
  }

  /**
   * One sweep of the tasks: takes over running tasks whose lease expired, claims queued tasks nobody claimed for a
   * lease time, removes finished tasks past retention. Any replica may sweep at any time (every change is
   * compare-and-swapped).
   */
  async sweep(): Promise<SweepOutcome> {
    const out: SweepOutcome = { takenOver: [], claimed: [], pruned: [] };
    const nowMs = this.clock();
    for (const r of await this.store.list<TaskRecord>(KINDS.task)) {
      if (this.closed) break;
      const t = r.value;
      // A task this replica runs is its own runner's to renew, never taken over from itself (that would be two runners).
      if (this.heartbeats.has(t.id)) continue;
      try {
        if (t.state === 'running' && this.expired(t)) {
          if (await this.takeOver(t.id)) out.takenOver.push(t.id);
        } else if (t.state === 'queued' && Date.parse(t.createdAt) + this.leaseMs <= nowMs) {
          if (await this.claim(t.id)) out.claimed.push(t.id);
        } else if (isFinal(t.state) && Date.parse(t.endedAt ?? t.createdAt) + this.retentionMs <= nowMs) {
          if (await this.store.delete(KINDS.task, t.id, { expectRevision: r.revision }).catch(() => false)) out.pruned.push(t.id);
        }
      } catch (err) {
        this.log.warn({ task: t.id, err: String(err) }, 'task sweep: cannot handle a task (next sweep)');
      }
    }
    return out;
  }

  /** Sweeps every `sweepMs` until close(). */
  startSweeper(): void {
    if (this.sweeper || this.closed) return;
    this.sweeper = setInterval(() => {
      if (this.sweeping) return;
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.log.warn({ err: String(err) }, 'task sweep failed'))
        .finally(() => (this.sweeping = undefined));
    }, this.sweepMs);
    this.sweeper.unref();
  }

  /**
   * Stops this replica's task work: the sweeper and every heartbeat; its runners stop before their next step. Tasks
   * it ran are taken over by another replica once their leases expire.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const t of this.heartbeats.values()) clearInterval(t);
    this.heartbeats.clear();
    await this.sweeping;
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
    return publicTask((await must<TaskRecord>(this.store, KINDS.task, id, taskMissing(id))).value);
  }

  /** Every task, newest first (by the store revision that created it: exact, where clocks tie). */
  async list(): Promise<Task[]> {
    return (await this.store.list<TaskRecord>(KINDS.task))
      .sort((a, b) => b.createRevision - a.createRevision)
      .map((r) => publicTask(r.value));
  }

  /**
   * Waits until the task is in a final state (or one of `states`), at most `timeoutMs`; resolves with the task as
   * it then is (the caller tells a timeout by its state).
   */
  async wait(id: string, timeoutMs: number, states: TaskState[] = ['succeeded', 'failed']): Promise<Task> {
    const first = await must<TaskRecord>(this.store, KINDS.task, id, taskMissing(id));
    if (states.includes(first.value.state) || isFinal(first.value.state) || timeoutMs <= 0) return publicTask(first.value);
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
            else if (states.includes(c.value.state) || isFinal(c.value.state)) resolve(publicTask(c.value));
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

/** A task as shown: without its kind's parameters. */
function publicTask(t: TaskRecord): Task {
  const { params: _params, ...shown } = t;
  return shown;
}

function withoutLease(t: TaskRecord): TaskRecord {
  const { lease: _lease, ...rest } = t;
  return rest;
}

function taskError(err: unknown): TaskError {
  const e = toBosonError(err);
  return { code: e.code, message: e.message, ...(Object.keys(e.details).length ? { details: { ...e.details } } : {}) };
}

function upsertStep(t: TaskRecord, name: string, patch: Partial<TaskRecord['steps'][number]>): TaskRecord['steps'] {
  const steps = t.steps.some((s) => s.name === name) ? t.steps : [...t.steps, { name, state: 'queued' as const }];
  return steps.map((s) => (s.name === name ? { ...s, ...patch } : s));
}

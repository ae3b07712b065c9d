/**
 * How the controller reaches the machines of its fleet: a RemoteMachine per machine over TCP with mutual TLS (the
 * controller presents its fleet client certificate; the machine's certificate must be signed by the fleet CA and
 * name the machine's id), and the health checks that tell READY from LOST: every interval, each machine's
 * `/healthz` is asked over that same path, and the outcome is recorded in the store (Fleet.recordCheck). The same
 * checks keep each machine's image list for placement's image locality: at a machine's first check answered, the
 * first answered after a failure, and then every `imagesEvery` checks, its `GET /v1/images` is asked too, and the
 * list is recorded when it changed (Fleet.recordImages).
 */
import { BosonError, silentLogger, type Logger } from '../../common/index.ts';
import { MachineClient, RemoteMachine } from '../../machine/client/index.ts';
import type { Fleet } from './fleet.ts';
import { splitAddress } from './fleet.ts';
import { machineImageKeys } from './image-locality.ts';
import { CheckReplicas } from './replicas.ts';

/** By default, a machine's image list is asked for every this many health checks (30 s at the 5 s default interval). */
export const IMAGES_EVERY = 6;

/** Builds (and caches, by address and id) the client of each machine. A cache only: nothing a replica must share. */
export class MachineClients {
  private readonly cache = new Map<string, RemoteMachine>();

  constructor(
    private readonly fleet: Fleet,
    private readonly timeoutMs = 0,
    private readonly connectTimeoutMs = 5000,
  ) {}

  /** The RemoteMachine of machine `id` at `address`. */
  forAddress(id: string, address: string): RemoteMachine {
    const key = `${id}@${address}`;
    let m = this.cache.get(key);
    if (!m && address.startsWith('unix://')) {
      // The controller's own host (boson up --controller): its local socket, no TLS.
      m = new RemoteMachine(new MachineClient(address.slice('unix://'.length)));
      this.cache.set(key, m);
    }
    if (!m) {
      const { host, port } = splitAddress(address);
      const ca = this.fleet.ca.record;
      m = new RemoteMachine(
        MachineClient.overTls({
          host,
          port,
          ca: ca.cert,
          cert: ca.controllerCert,
          key: ca.controllerKey,
          identity: id,
          ...(this.timeoutMs > 0 ? { timeoutMs: this.timeoutMs } : {}),
          ...(this.connectTimeoutMs > 0 ? { connectTimeoutMs: this.connectTimeoutMs } : {}),
        }),
      );
      this.cache.set(key, m);
    }
    return m;
  }

  /**
   * The RemoteMachine of machine `id` (MACHINE_NOT_FOUND when it is not in the fleet; MACHINE_UNREACHABLE at once
   * when it is LOST, rather than a call that waits for a connection that will not come).
   */
  async of(id: string): Promise<RemoteMachine> {
    const rec = await this.fleet.record(id);
    if (rec.state === 'LOST')
      throw new BosonError('MACHINE_UNREACHABLE', `machine ${id} is LOST (not reached since the controller last saw it)`, {
        details: { machine: id },
      });
    return this.forAddress(id, rec.address);
  }
}

/** Health checks of every machine, every `intervalMs` (see the module comment). */
export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping: AbortController | undefined;
  private readonly probes: MachineClients;
  /** Checks answered in a row per machine (a cache: it only decides when to ask for image lists again). */
  private readonly answered = new Map<string, number>();

  constructor(
    private readonly fleet: Fleet,
    private readonly opts: {
      intervalMs: number;
      timeoutMs: number;
      log?: Logger;
      /** Called, every round, for each machine that is LOST after its check (level-triggered). */
      whileLost?: (id: string) => Promise<void>;
      /** Called once when a LOST machine answers again (before it takes new containers from this controller). */
      onBack?: (id: string) => Promise<void>;
      /** Ask for a machine's image list every this many answered checks (default IMAGES_EVERY; 0: never). */
      imagesEvery?: number;
      /** With several controller replicas: this replica checks only its share of the machines (replicas.ts). */
      replicas?: CheckReplicas;
    },
  ) {
    this.probes = new MachineClients(fleet, opts.timeoutMs);
  }

  /**
   * Checks every machine once; resolves when all outcomes are recorded. With `spreadMs`, the checks start evenly
   * spread over that time instead of all at once: at 1,000 machines a round at once is 1,000 requests and 1,000 store
   * commits in one burst, which every API request arriving meanwhile waits behind (bench/controller.ts measured
   * create's p99 at over a second with bursts). `signal` skips the checks not started yet. With `replicas`, the
   * machines are those of this replica's share, after renewing its presence. Resolves with the ids checked.
   */
  async checkAll(opts: { spreadMs?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const log = this.opts.log ?? silentLogger;
    let machines = await this.fleet.list();
    const replicas = this.opts.replicas;
    if (replicas) {
      const live = await replicas.heartbeat();
      machines = machines.filter((m) => CheckReplicas.owner(m.id, live) === replicas.id);
    }
    const ids = new Set(machines.map((m) => m.id));
    for (const id of this.answered.keys()) if (!ids.has(id)) this.answered.delete(id);
    const step = machines.length > 1 && opts.spreadMs ? opts.spreadMs / machines.length : 0;
    const checks: Array<Promise<string>> = [];
    for (const [i, m] of machines.entries()) {
      if (step > 0 && i > 0) await sleep(step, opts.signal);
      if (opts.signal?.aborted) break;
      checks.push(this.checkOne(m, log).then(() => m.id));
    }
    return Promise.all(checks);
  }

  private async checkOne(m: { id: string; address: string; state: string }, log: Logger): Promise<void> {
    let error: string | undefined;
    let images: string[] | undefined;
    const remote = this.probes.forAddress(m.id, m.address);
    try {
      await remote.client.request('GET', '/healthz');
    } catch (err) {
      error = (err as Error).message;
    }
    const every = this.opts.imagesEvery ?? IMAGES_EVERY;
    if (error !== undefined) this.answered.delete(m.id);
    else {
      const n = this.answered.get(m.id) ?? 0;
      this.answered.set(m.id, n + 1);
      if (every > 0 && n % every === 0) {
        try {
          images = machineImageKeys(await remote.images.list({ principal: 'boson-controller' }));
        } catch (err) {
          // Not a health failure: the recorded list stays as it was until the next time it is asked for.
          log.warn({ machine: m.id, err: (err as Error).message }, 'cannot list the images of a machine');
        }
      }
    }
    try {
      const state = await this.fleet.recordCheck(m.id, error);
      if (images !== undefined && state !== undefined) await this.fleet.recordImages(m.id, images);
      if (state !== m.state) log.warn({ machine: m.id, from: m.state, to: state, error }, 'machine state changed');
      if (m.state === 'LOST' && state !== 'LOST' && state !== undefined) await this.opts.onBack?.(m.id);
      if (state === 'LOST') await this.opts.whileLost?.(m.id);
    } catch (err) {
      log.error({ machine: m.id, err: (err as Error).message }, 'cannot record a health check, or act on it');
    }
  }

  /** Starts checking in the background (one round at a time, its checks spread over most of the interval). */
  start(): void {
    if (this.timer) return;
    this.stopping = new AbortController();
    const signal = this.stopping.signal;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.checkAll({ spreadMs: this.opts.intervalMs * 0.8, signal })
        .then(() => undefined)
        .catch((err: unknown) => (this.opts.log ?? silentLogger).error({ err: (err as Error).message }, 'health check round failed'))
        .finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops: the checks of the round in progress that have not started are skipped; resolves after the others. With
   * `replicas`, this replica leaves, so that the others check its machines from their next round.
   */
  async stop(): Promise<void> {
    this.stopping?.abort();
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.opts.replicas
      ?.leave()
      .catch((err: unknown) =>
        (this.opts.log ?? silentLogger).warn({ err: (err as Error).message }, 'cannot remove this replica from the checks'),
      );
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

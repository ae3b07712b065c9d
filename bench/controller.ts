/**
 * Placement at fleet scale: 1,000 simulated machines as records in the state store (zones, labels, cached images, a
 * few drained or lost), then 10,000 placements through the scheduler and the optimistic plan applier (Placer on a
 * SnapshotCache), on SQLite (the embedded default) and on a real etcd (started on loopback, like the tests'). Two
 * series per store: one planner placing one container after another (the latency of one placement), and several
 * planners at once, each with its own cache (two store handles, as two controller replicas), racing for the same
 * machines (throughput, and how many plans the applier rejected). Prints placements per second and p50/p99 latency,
 * with their ratios to the goals: p99 < 50 ms at 1,000 machines; >= 500 placements/s on SQLite.
 *
 * The machines here are store records, not fake machine daemons behind the API (that part of the benchmark comes
 * with the machines' join and heartbeat); what is measured is plan + commit + re-plan, the placement path itself.
 *
 *   npx tsx bench/controller.ts [--machines N] [--placements N] [--planners N] [--store sqlite|etcd|both] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { asyncStore, type AsyncStateStore } from '../src/common/index.ts';
import { openStateStore } from '../src/machine/store/sqlite.ts';
import { openEtcdStore } from '../src/machine/store/etcd.ts';
import { startTestEtcd } from '../src/machine/store/etcd-test-support.ts';
import {
  isCapacityError,
  Placer,
  seededRng,
  SnapshotCache,
  type MachineRecord,
  type PlacementRequest,
  type Rng,
} from '../src/controller/scheduler/index.ts';
import { GiB, registerMachines } from '../src/controller/scheduler/test-support.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const MACHINES = opt('--machines', 1000);
const PLACEMENTS = opt('--placements', 10_000);
const PLANNERS = opt('--planners', 4);
const which = args.includes('--store') ? args[args.indexOf('--store') + 1]! : 'both';
const asJson = args.includes('--json');
const GOAL_P99_MS = 50;
const GOAL_SQLITE_PER_S = 500;
const IMAGES = ['img-a', 'img-b', 'img-c', 'img-d', 'img-e'];

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

function fleet(rng: Rng): MachineRecord[] {
  return Array.from({ length: MACHINES }, (_, i) => {
    const r = rng();
    return {
      id: `m${String(i).padStart(5, '0')}`,
      state: r < 0.03 ? 'MAINTENANCE' : r < 0.04 ? 'LOST' : 'READY',
      capacity: { cpus: 32, memoryBytes: 128 * GiB, diskBytes: 1024 * GiB },
      labels: { disk: rng() < 0.5 ? 'ssd' : 'hdd', rack: `r${i % 40}` },
      zone: pick(rng, ['a', 'b', 'c']),
      images: IMAGES.filter(() => rng() < 0.4),
    };
  });
}

function requestFor(n: number, rng: Rng): PlacementRequest {
  const project = `t${n % 5}/p${n % 20}`;
  const req: PlacementRequest = {
    containerId: `c${n}`,
    project,
    resources: { cpus: pick(rng, [0.5, 1, 2]), memoryBytes: pick(rng, [0.5, 1, 2, 4]) * GiB, diskBytes: pick(rng, [1, 5, 10]) * GiB },
    labels: { app: `app${n % 50}` },
    image: pick(rng, IMAGES),
    policy: rng() < 0.7 ? 'spread' : 'binpack',
  };
  const r = rng();
  if (r < 0.2) req.constraints = [{ type: 'zone', zones: [pick(rng, ['a', 'b', 'c'])] }];
  else if (r < 0.3) req.constraints = [{ type: 'label', key: 'disk', op: 'equals', values: ['ssd'] }];
  if (rng() < 0.05) req.antiAffinity = [{ labels: { app: `app${n % 50}` } }];
  return req;
}

interface Series {
  store: string;
  planners: number;
  placed: number;
  capacityErrors: number;
  rejectedPlans: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function series(name: string, stores: [AsyncStateStore, AsyncStateStore], planners: number): Promise<Series> {
  await registerMachines(stores[0], fleet(seededRng(1)));
  const caches = await Promise.all(Array.from({ length: planners }, (_, i) => SnapshotCache.open(stores[i % 2]!)));
  const latencies: number[] = [];
  let capacityErrors = 0;
  let rejectedPlans = 0;
  const start = performance.now();
  try {
    await Promise.all(
      caches.map(async (cache, i) => {
        const placer = new Placer(stores[i % 2]!, cache, { rng: seededRng(100 + i), maxAttempts: 100 });
        const rng = seededRng(1000 + i);
        for (let n = i; n < PLACEMENTS; n += planners) {
          const t0 = performance.now();
          try {
            const done = await placer.place(requestFor(n, rng));
            rejectedPlans += done.attempts - 1;
          } catch (err) {
            if (!isCapacityError(err)) throw err;
            capacityErrors++;
          }
          latencies.push(performance.now() - t0);
        }
      }),
    );
  } finally {
    for (const c of caches) c.close();
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    store: name,
    planners,
    placed: PLACEMENTS - capacityErrors,
    capacityErrors,
    rejectedPlans,
    seconds,
    perSecond: PLACEMENTS / seconds,
    p50ms: quantile(latencies, 0.5),
    p99ms: quantile(latencies, 0.99),
  };
}

async function onSqlite(planners: number): Promise<Series> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bench-ctl-'));
  const a = openStateStore(dir, { pollMs: 20 });
  const b = openStateStore(dir, { pollMs: 20 });
  try {
    return await series('sqlite', [asyncStore(a), asyncStore(b)], planners);
  } finally {
    a.close();
    b.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function onEtcd(endpoint: string, planners: number): Promise<Series> {
  const prefix = `bench-${randomUUID()}/`;
  const a = openEtcdStore({ endpoints: [endpoint], prefix });
  const b = openEtcdStore({ endpoints: [endpoint], prefix });
  try {
    return await series('etcd', [a, b], planners);
  } finally {
    await a.close();
    await b.close();
  }
}

const results: Series[] = [];
if (which === 'sqlite' || which === 'both') {
  results.push(await onSqlite(1));
  results.push(await onSqlite(PLANNERS));
}
if (which === 'etcd' || which === 'both') {
  const etcd = await startTestEtcd();
  try {
    results.push(await onEtcd(etcd.endpoint, 1));
    results.push(await onEtcd(etcd.endpoint, PLANNERS));
  } finally {
    await etcd.stop();
  }
}

if (asJson) console.log(JSON.stringify({ machines: MACHINES, placements: PLACEMENTS, results }, null, 2));
else {
  console.log(`placement: ${MACHINES} machines, ${PLACEMENTS} placements per series (plan + optimistic commit + re-plan)`);
  console.log(
    'store   planners  placed  no-room  rejected  seconds  placements/s  p50 ms  p99 ms  p99/goal(50ms)  rate/goal(500/s, sqlite)',
  );
  for (const r of results) {
    const rate = r.store === 'sqlite' ? (r.perSecond / GOAL_SQLITE_PER_S).toFixed(2) + 'x' : '-';
    console.log(
      [
        r.store.padEnd(7),
        String(r.planners).padStart(8),
        String(r.placed).padStart(7),
        String(r.capacityErrors).padStart(8),
        String(r.rejectedPlans).padStart(9),
        r.seconds.toFixed(1).padStart(8),
        r.perSecond.toFixed(0).padStart(13),
        r.p50ms.toFixed(2).padStart(7),
        r.p99ms.toFixed(2).padStart(7),
        (r.p99ms / GOAL_P99_MS).toFixed(3).padStart(15),
        rate.padStart(25),
      ].join(' '),
    );
  }
}

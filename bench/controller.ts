/**
 * Placement at fleet scale: 1,000 simulated machines as records in the state store (zones, labels, cached images, a
 * few drained or lost), then 10,000 placements through the scheduler and the optimistic plan applier (Placer on a
 * SnapshotCache), on SQLite (the embedded default) and on a real etcd (started on loopback, like the tests'). Two
 * series per store: one planner placing one container after another (the latency of one placement), and several
 * planners at once, each with its own cache (two store handles, as two controller replicas), racing for the same
 * machines (throughput, and how many plans the applier rejected). Prints placements per second and p50/p99 latency,
 * with their ratios to the goals: p99 < 50 ms at 1,000 machines; >= 500 placements/s on SQLite. On etcd it also
 * prints Txns per placement, races for meta/rev lost, and missed speculations (see src/machine/store/etcd.ts).
 * `--handles 1` puts every planner on one store object (one replica) instead of two.
 *
 * The placement part's machines are store records; what is measured there is plan + commit + re-plan.
 *
 * The API part: the controller's real REST API on its real listener (fastify on 127.0.0.1 TCP, bearer tokens looked
 * up on every request), with N machines registered as join registers them and reached over the machine's real REST
 * API (bench/fake-machine.ts: one in-memory machine app behind N unix sockets), health-checked every 5 s as a fleet
 * is. Requests/s and p50/p99 for container create (quota, placement, the machine's create and start), get (the
 * record, the machine's inspect) and list (a project's ~20 containers, each inspected on its machine), with the
 * ratio of each rate to a baseline measured in the same run on the same listener: GET /healthz (no token, no store).
 *
 *   npx tsx bench/controller.ts [--part placement|api|both] [--machines N] [--placements N] [--planners N]
 *                               [--store sqlite|etcd|both] [--requests N] [--concurrency N] [--json]
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
import {
  buildControllerApi,
  Controller,
  HEALTH_KIND,
  openFleet,
  type FleetMachineRecord,
  type HealthRecord,
} from '../src/controller/index.ts';
import { MACHINE_KIND } from '../src/controller/scheduler/index.ts';
import { fakeMachineApp } from './fake-machine.ts';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const MACHINES = opt('--machines', 1000);
const PLACEMENTS = opt('--placements', 10_000);
const PLANNERS = opt('--planners', 4);
const HANDLES = opt('--handles', 2);
const which = args.includes('--store') ? args[args.indexOf('--store') + 1]! : 'both';
const asJson = args.includes('--json');
const part = args.includes('--part') ? args[args.indexOf('--part') + 1]! : 'both';
const REQUESTS = opt('--requests', 2000);
const CONCURRENCY = opt('--concurrency', 16);
const CHECK_MS = opt('--check-interval-ms', 5000);
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
  /** etcd only: Txns per placement (a commit is a read and a write), and races for meta/rev lost. */
  txnsPerPlacement?: number;
  lostRaces?: number;
  /** etcd only: first attempts written against what the store object knew that etcd refused (or that needed a read). */
  speculationMisses?: number;
}

type EtcdStats = { commits: number; groups: number; txns: number; lostRaces: number; speculationMisses: number };
const statsOf = (s: AsyncStateStore): EtcdStats | undefined => (s as { stats?: EtcdStats }).stats;

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function series(name: string, stores: [AsyncStateStore, AsyncStateStore], planners: number): Promise<Series> {
  await registerMachines(stores[0], fleet(seededRng(1)));
  const caches = await Promise.all(Array.from({ length: planners }, (_, i) => SnapshotCache.open(stores[i % HANDLES]!)));
  const before = stores.map((s) => ({ ...(statsOf(s) ?? { commits: 0, groups: 0, txns: 0, lostRaces: 0, speculationMisses: 0 }) }));
  const latencies: number[] = [];
  let capacityErrors = 0;
  let rejectedPlans = 0;
  const start = performance.now();
  try {
    await Promise.all(
      caches.map(async (cache, i) => {
        const placer = new Placer(stores[i % HANDLES]!, cache, { rng: seededRng(100 + i), maxAttempts: 100 });
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
  const after = stores.map((s) => statsOf(s));
  const delta = (k: keyof EtcdStats): number => after.reduce((sum, a, i) => sum + (a ? a[k] - before[i]![k] : 0), 0);
  return {
    ...(after[0]
      ? { txnsPerPlacement: delta('txns') / PLACEMENTS, lostRaces: delta('lostRaces'), speculationMisses: delta('speculationMisses') }
      : {}),
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

// ---- the API part ----

interface ApiSeries {
  store: string;
  op: string;
  requests: number;
  errors: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  /** perSecond / the baseline's (GET /healthz on the same listener, same run). */
  ratio: number;
}

/** Runs `count` requests made by `make(i)`, `CONCURRENCY` at a time; rate and latencies. */
async function drive(
  count: number,
  make: (i: number) => Promise<Response>,
): Promise<{ perSecond: number; p50ms: number; p99ms: number; errors: number; firstError?: string }> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t0 = performance.now();
        const res = await make(i);
        const body = await res.text();
        latencies.push(performance.now() - t0);
        if (res.status >= 300) {
          errors++;
          firstError ??= `${res.status} ${body.slice(0, 300)}`;
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: count / seconds, p50ms: quantile(latencies, 0.5), p99ms: quantile(latencies, 0.99), errors, firstError };
}

async function apiSeries(name: string, store: AsyncStateStore): Promise<ApiSeries[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bench-api-'));
  const fake = await fakeMachineApp();
  const listeners: Array<{ close(): unknown }> = [];
  const ctl = new Controller(store);
  await ctl.bootstrap();
  let fleetOpen: Awaited<ReturnType<typeof openFleet>> | undefined;
  let api: Awaited<ReturnType<typeof buildControllerApi>>['app'] | undefined;
  try {
    // N machines, registered as join registers them (the machine and its health record), each at its own socket.
    const at = new Date().toISOString();
    const records = fleet(seededRng(1)).map((m, i): FleetMachineRecord => ({
      ...m,
      state: 'READY',
      images: [],
      address: `unix://${dir}/m${i}.sock`,
      drained: false,
      joinedAt: at,
      certFingerprint: '',
    }));
    for (const [i] of records.entries()) listeners.push(await fake.listenAs(`${dir}/m${i}.sock`));
    for (let i = 0; i < records.length; i += 40)
      await store.commit(
        records.slice(i, i + 40).flatMap((r) => [
          { op: 'put' as const, kind: MACHINE_KIND, key: r.id, value: r },
          { op: 'put' as const, kind: HEALTH_KIND, key: r.id, value: { lastSeen: at, failures: 0 } satisfies HealthRecord },
        ]),
      );
    fleetOpen = await openFleet(ctl.store, ctl.tenants, { lostAfterMs: 30_000, checkIntervalMs: CHECK_MS, checkTimeoutMs: 3000 });
    ({ app: api } = await buildControllerApi(ctl, undefined, fleetOpen.routes));
    await api.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(api.server.address() as { port: number }).port}`;
    await ctl.identity.createUser('bench');
    const token = (await ctl.identity.createToken('bench', { role: 'system-admin' })).token;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const projects: string[] = [];
    for (let t = 0; t < 5; t++) {
      await ctl.tenants.createTenant(`t${t}`, []);
      for (let p = 0; p < 20; p++) {
        await ctl.tenants.createProject(`t${t}`, `p${p}`, []);
        projects.push(`/v1/tenants/t${t}/projects/p${p}/containers`);
      }
    }
    const out: ApiSeries[] = [];
    const record = (op: string, requests: number, r: Awaited<ReturnType<typeof drive>>, baseline: number): void => {
      if (r.errors > 0) console.error(`${name} ${op}: ${r.errors} errors, first: ${r.firstError}`);
      out.push({
        store: name,
        op,
        requests,
        errors: r.errors,
        perSecond: r.perSecond,
        p50ms: r.p50ms,
        p99ms: r.p99ms,
        ratio: r.perSecond / baseline,
      });
    };
    await drive(200, () => fetch(`${base}/healthz`)); // warm the connections
    const baseline = await drive(REQUESTS, () => fetch(`${base}/healthz`));
    record('GET /healthz (baseline)', REQUESTS, baseline, baseline.perSecond);
    const ids: string[] = [];
    const created = await drive(REQUESTS, async (i) => {
      const res = await fetch(projects[i % projects.length]!.replace(/^/, base), {
        method: 'POST',
        headers,
        body: JSON.stringify({ spec: { image: 'busybox', name: `c${i}`, resources: { cpus: 1, memoryMiB: 256, diskBytes: 1024 ** 3 } } }),
      });
      if (res.status === 201) {
        const clone = res.clone();
        ids[i] = ((await clone.json()) as { id: string }).id;
      }
      return res;
    });
    record('POST containers (create)', REQUESTS, created, baseline.perSecond);
    const got = await drive(REQUESTS, (i) => {
      const n = (i * 7919) % REQUESTS;
      return fetch(`${base}${projects[n % projects.length]}/${ids[n] ?? `c${n}`}`, { headers });
    });
    record('GET containers/:id (get)', REQUESTS, got, baseline.perSecond);
    const lists = Math.max(100, Math.floor(REQUESTS / 10));
    const listed = await drive(lists, (i) => fetch(`${base}${projects[i % projects.length]}`, { headers }));
    record(`GET containers (list, ~${Math.round(REQUESTS / projects.length)} each)`, lists, listed, baseline.perSecond);
    if (fake.count() !== REQUESTS - created.errors) console.error(`${name}: the machines hold ${fake.count()} containers`);
    return out;
  } finally {
    await api?.close();
    await fleetOpen?.close();
    for (const l of listeners) l.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function apiOnSqlite(): Promise<ApiSeries[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bench-ctl-'));
  const a = openStateStore(dir, { pollMs: 20 });
  try {
    return await apiSeries('sqlite', asyncStore(a));
  } finally {
    a.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function apiOnEtcd(endpoint: string): Promise<ApiSeries[]> {
  const a = openEtcdStore({ endpoints: [endpoint], prefix: `bench-api-${randomUUID()}/` });
  try {
    return await apiSeries('etcd', a);
  } finally {
    await a.close();
  }
}

const results: Series[] = [];
const apiResults: ApiSeries[] = [];
const placement = part === 'placement' || part === 'both';
const apiPart = part === 'api' || part === 'both';
if (which === 'sqlite' || which === 'both') {
  if (placement) {
    results.push(await onSqlite(1));
    results.push(await onSqlite(PLANNERS));
  }
  if (apiPart) apiResults.push(...(await apiOnSqlite()));
}
if (which === 'etcd' || which === 'both') {
  const etcd = await startTestEtcd();
  try {
    if (placement) {
      results.push(await onEtcd(etcd.endpoint, 1));
      results.push(await onEtcd(etcd.endpoint, PLANNERS));
    }
    if (apiPart) apiResults.push(...(await apiOnEtcd(etcd.endpoint)));
  } finally {
    await etcd.stop();
  }
}

if (asJson) console.log(JSON.stringify({ machines: MACHINES, placements: PLACEMENTS, results, api: apiResults }, null, 2));
else if (results.length > 0) {
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
        r.txnsPerPlacement === undefined
          ? ''
          : `  etcd Txns/placement ${r.txnsPerPlacement.toFixed(2)}, lost races ${r.lostRaces}, speculation misses ${r.speculationMisses}`,
      ].join(' '),
    );
  }
}

if (!asJson && apiResults.length > 0) {
  console.log(
    `\nAPI: ${MACHINES} machines behind the machine API, ${REQUESTS} requests per op, ${CONCURRENCY} at a time; ratio = rate / GET /healthz's`,
  );
  console.log('store   op                                   requests  errors    req/s  p50 ms  p99 ms  ratio');
  for (const r of apiResults)
    console.log(
      [
        r.store.padEnd(7),
        r.op.padEnd(36),
        String(r.requests).padStart(8),
        String(r.errors).padStart(7),
        r.perSecond.toFixed(0).padStart(8),
        r.p50ms.toFixed(2).padStart(7),
        r.p99ms.toFixed(2).padStart(7),
        r.ratio.toFixed(3).padStart(6),
      ].join(' '),
    );
}

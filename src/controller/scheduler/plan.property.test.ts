/**
 * Properties of the scheduler over random fleets and requests (fast-check): a plan never picks a machine that is not
 * READY, never exceeds a capacity, never breaks a constraint, affinity or anti-affinity; a capacity error is given
 * only when no machine is feasible (checked by an oracle written apart from plan.ts), with counts that add up; when
 * every machine is sampled, the plan has the best score. And placements applied one after another on a store never
 * over-commit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { asyncStore, MemoryStateStore } from '../../common/index.ts';
import {
  applyPlan,
  isCapacityError,
  plan,
  readSnapshot,
  RESOURCE_NAMES,
  score,
  seededRng,
  type Constraint,
  type MachineRecord,
  type MachineSnapshot,
  type PlacementRequest,
  type Snapshot,
} from './index.ts';
import { allocations, machine, placed, registerMachines } from './test-support.ts';

const PROJECTS = ['t/a', 't/b'];
const labelValue = fc.constantFrom('x', 'y', 'z');
const labels = fc.dictionary(fc.constantFrom('disk', 'gpu', 'app'), labelValue, { maxKeys: 3 });
const resources = (max: number) =>
  fc.record({
    cpus: fc.integer({ min: 0, max }),
    memoryBytes: fc.integer({ min: 0, max: max * 1024 }),
    diskBytes: fc.integer({ min: 0, max: max * 10 }),
  });

const machineArb = (i: number) =>
  fc
    .record({
      state: fc.constantFrom('READY', 'READY', 'READY', 'MAINTENANCE', 'LOST') as fc.Arbitrary<MachineSnapshot['state']>,
      capacity: resources(16),
      labels,
      zone: fc.constantFrom('a', 'b', 'c'),
      images: fc.subarray(['img1', 'img2']),
      containers: fc.array(fc.record({ project: fc.constantFrom(...PROJECTS), labels, resources: resources(4) }), { maxLength: 4 }),
    })
    .map((m) =>
      machine(`m${i}`, {
        ...m,
        containers: m.containers.map((c, j) => placed(`m${i}-c${j}`, c.project, c.resources, c.labels)),
      }),
    );

const snapshotArb: fc.Arbitrary<Snapshot> = fc
  .integer({ min: 0, max: 24 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => machineArb(i))))
  .map((machines) => ({ revision: 1, machines }));

const constraintArb: fc.Arbitrary<Constraint> = fc.oneof(
  fc.record({
    type: fc.constant('label' as const),
    key: fc.constantFrom('disk', 'gpu'),
    op: fc.constant('equals' as const),
    values: fc.tuple(labelValue),
  }),
  fc.record({
    type: fc.constant('label' as const),
    key: fc.constantFrom('disk', 'gpu'),
    op: fc.constantFrom('in' as const, 'not' as const),
    values: fc.array(labelValue, { minLength: 1, maxLength: 2 }),
  }),
  fc.record({ type: fc.constant('zone' as const), zones: fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 2 }) }),
  fc.record({
    type: fc.constant('machine' as const),
    ids: fc.array(fc.constantFrom('m0', 'm1', 'm2', 'm5'), { minLength: 1, maxLength: 2 }),
  }),
);

const requestArb: fc.Arbitrary<PlacementRequest> = fc.record({
  containerId: fc.constant('new'),
  project: fc.constantFrom(...PROJECTS),
  resources: resources(8),
  labels,
  image: fc.option(fc.constantFrom('img1', 'img2'), { nil: undefined }),
  policy: fc.constantFrom('spread' as const, 'binpack' as const),
  constraints: fc.array(constraintArb, { maxLength: 2 }),
  affinity: fc.array(fc.record({ labels: fc.dictionary(fc.constant('app'), labelValue, { maxKeys: 1 }) }), { maxLength: 1 }),
  antiAffinity: fc.array(fc.record({ labels: fc.dictionary(fc.constant('app'), labelValue, { minKeys: 1, maxKeys: 1 }) }), {
    maxLength: 1,
  }),
});

/** The oracle: written from the rules, not from plan.ts. */
function feasible(m: MachineSnapshot, r: PlacementRequest): boolean {
  if (m.state !== 'READY') return false;
  for (const c of r.constraints ?? []) {
    if (c.type === 'zone' && !c.zones.includes(m.zone)) return false;
    if (c.type === 'machine' && !c.ids.includes(m.id)) return false;
    if (c.type === 'label') {
      const has = m.labels[c.key] !== undefined && c.values.includes(m.labels[c.key]!);
      if (c.op === 'not' ? has : !has) return false;
    }
  }
  const mine = m.containers.filter((c) => c.project === r.project);
  const hit = (sel: Record<string, string>): boolean => mine.some((c) => Object.entries(sel).every(([k, v]) => c.labels[k] === v));
  if (!(r.affinity ?? []).every((a) => hit(a.labels))) return false;
  if ((r.antiAffinity ?? []).some((a) => hit(a.labels))) return false;
  const used = (k: (typeof RESOURCE_NAMES)[number]): number => m.containers.reduce((s, c) => s + c.resources[k], 0);
  return RESOURCE_NAMES.every((k) => used(k) + r.resources[k] <= m.capacity[k]);
}

test('a plan only ever picks a feasible machine; a capacity error only when none is, with complete counts', () => {
  fc.assert(
    fc.property(snapshotArb, requestArb, fc.integer(), fc.constantFrom(undefined, 1, Infinity), (snap, req, seed, sampleSize) => {
      const p = plan(snap, req, { rng: seededRng(seed), sampleSize });
      const oracle = snap.machines.filter((m) => feasible(m, req));
      if (isCapacityError(p)) {
        assert.equal(oracle.length, 0, 'a capacity error while a machine was feasible');
        const f = p.facts;
        assert.equal(
          Object.values(f.excluded).reduce((a, b) => a + b, 0),
          snap.machines.length,
          'every machine is counted once',
        );
        assert.equal(f.excluded['not-ready'], snap.machines.filter((m) => m.state !== 'READY').length);
        for (const r of RESOURCE_NAMES) assert.ok(f.shortOf[r] <= f.excluded.capacity);
        return;
      }
      const m = snap.machines.find((x) => x.id === p.machineId)!;
      assert.ok(oracle.includes(m), `picked an infeasible machine ${m.id}`);
      assert.equal(m.state, 'READY');
      if (sampleSize === Infinity) {
        const best = Math.max(...oracle.map((x) => score(x, req)));
        assert.equal(p.score, best, 'with every machine sampled, the best score wins');
      }
    }),
    { numRuns: 400 },
  );
});

test('placements applied one after another on a store never over-commit a machine', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(resources(16), { minLength: 1, maxLength: 6 }),
      fc.array(fc.tuple(resources(6), fc.constantFrom('spread' as const, 'binpack' as const)), { minLength: 1, maxLength: 30 }),
      fc.integer(),
      async (capacities, requests, seed) => {
        const store = asyncStore(new MemoryStateStore());
        const recs: MachineRecord[] = capacities.map((capacity, i) => ({
          id: `m${i}`,
          state: 'READY',
          capacity,
          labels: {},
          zone: 'a',
          images: [],
        }));
        await registerMachines(store, recs);
        const rng = seededRng(seed);
        let i = 0;
        for (const [resources, policy] of requests) {
          const p = plan(await readSnapshot(store), { containerId: `c${i++}`, project: 't/a', resources, policy }, { rng });
          if (!isCapacityError(p)) await applyPlan(store, p);
        }
        for (const [id, containers] of await allocations(store)) {
          const cap = recs.find((r) => r.id === id)!.capacity;
          for (const r of RESOURCE_NAMES) assert.ok(containers.reduce((s, c) => s + c.resources[r], 0) <= cap[r], `${id} over its ${r}`);
        }
      },
    ),
    { numRuns: 100 },
  );
});

/**
 * The plan applier on the memory store (through asyncStore): a plan whose machine moved is rejected, a container is
 * placed once, a release gives the room back, and concurrent planners never over-commit a machine. The same race on
 * SQLite and etcd is in test/placement-stores.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asyncStore, isBosonError, isStoreConflict, MemoryStateStore } from '../../common/index.ts';
import {
  applyPlan,
  isCapacityError,
  isStalePlan,
  MACHINE_KIND,
  Placer,
  plan,
  readSnapshot,
  releasePlacement,
  seededRng,
  SnapshotCache,
  type MachineRecord,
  type Plan,
} from './index.ts';
import { allocations, registerMachines, request, res } from './test-support.ts';
import { concurrentPlanners } from './test-support.ts';

const rec = (id: string, over: Partial<MachineRecord> = {}): MachineRecord => ({
  id,
  state: 'READY',
  capacity: res(4, 8, 10),
  labels: {},
  zone: 'a',
  images: [],
  ...over,
});

const mustPlan = (p: ReturnType<typeof plan>): Plan => {
  if (isCapacityError(p)) throw p;
  return p;
};

test('a plan is committed when its machine is unchanged, and rejected when another placement or a drain moved it', async () => {
  const store = asyncStore(new MemoryStateStore());
  await registerMachines(store, [rec('m1')]);
  const snap = await readSnapshot(store);
  const a = mustPlan(plan(snap, request('a', { resources: res(3, 1) })));
  const b = mustPlan(plan(snap, request('b', { resources: res(3, 1) })));
  await applyPlan(store, a);
  // b was planned on the same snapshot: it would over-commit m1 (6 of 4 cpus) and is rejected, nothing written.
  const before = await store.revision();
  await assert.rejects(applyPlan(store, b), (e: unknown) => isStalePlan(e, b) && isBosonError(e, 'STORE_CONFLICT'));
  assert.equal(await store.revision(), before);
  // Planned again on a fresh snapshot: no room left.
  const again = plan(await readSnapshot(store), request('b', { resources: res(3, 1) }));
  assert.ok(isCapacityError(again) && again.facts.shortOf.cpus === 1);
  // A drain between plan and commit rejects the plan too.
  const c = mustPlan(plan(await readSnapshot(store), request('c', { resources: res(1, 1) })));
  const m1 = (await store.get<MachineRecord>(MACHINE_KIND, 'm1'))!;
  await store.put(MACHINE_KIND, 'm1', { ...m1.value, state: 'MAINTENANCE' }, { expectRevision: m1.revision });
  await assert.rejects(applyPlan(store, c), (e: unknown) => isStalePlan(e, c));
  assert.deepEqual(
    (await allocations(store)).get('m1')?.map((x) => x.id),
    ['a'],
  );
});

test('a container is placed once; the caller operations commit with the plan or not at all; a release frees its room', async () => {
  const store = asyncStore(new MemoryStateStore());
  await registerMachines(store, [rec('m1'), rec('m2')]);
  const first = mustPlan(plan(await readSnapshot(store), request('c1', { resources: res(4, 8) })));
  await applyPlan(store, first, [{ op: 'put', kind: 'quota-usage', key: 't/p', value: { cpus: 4 }, expectRevision: 0 }]);
  const twice = mustPlan(plan(await readSnapshot(store), request('c1', { resources: res(1, 1) })));
  await assert.rejects(
    applyPlan(store, twice),
    (e: unknown) => isStoreConflict(e) && e.storeKind === 'placement' && !isStalePlan(e, twice),
  );
  // The caller's quota check fails: the placement is not written either.
  const other = mustPlan(plan(await readSnapshot(store), request('c2', { resources: res(1, 1) })));
  await assert.rejects(
    applyPlan(store, other, [{ op: 'put', kind: 'quota-usage', key: 't/p', value: { cpus: 5 }, expectRevision: 0 }]),
    isStoreConflict,
  );
  assert.equal(await store.get('placement', 'c2'), undefined);
  assert.equal([...(await allocations(store)).values()].flat().length, 1);
  assert.equal(await releasePlacement(store, 'c1'), true);
  assert.equal(await releasePlacement(store, 'c1'), false);
  assert.deepEqual([...(await allocations(store)).values()].flat(), []);
  const full = mustPlan(plan(await readSnapshot(store), request('c3', { resources: res(4, 8) }), { rng: seededRng(1) }));
  await applyPlan(store, full);
});

test('a Placer on a cache re-plans a stale plan and places on what is left', async () => {
  const store = asyncStore(new MemoryStateStore());
  await registerMachines(store, [rec('m1'), rec('m2')]);
  const cache = await SnapshotCache.open(store);
  const stale = await SnapshotCache.open(store);
  try {
    const placer = new Placer(store, cache, { rng: seededRng(3) });
    const slow = new Placer(store, stale, { rng: seededRng(3) });
    // Fill m1 and m2 through the first cache; the second has not seen it yet when it plans.
    for (let i = 0; i < 4; i++) await placer.place(request(`a${i}`, { resources: res(2, 1), policy: 'binpack' }));
    const err = await slow.place(request('late', { resources: res(1, 1) })).catch((e: unknown) => e);
    assert.ok(isCapacityError(err), `the late placement finds no room: ${String(err)}`);
    const per = await allocations(store);
    for (const [id, containers] of per) assert.ok(containers.reduce((s, c) => s + c.resources.cpus, 0) <= 4, id);
  } finally {
    cache.close();
    stale.close();
  }
});

test('concurrent planners on the memory store never over-commit a machine', async () => {
  const store = asyncStore(new MemoryStateStore());
  const outcome = await concurrentPlanners(store, store, { machines: 5, planners: 4, placements: 60, seed: 11 });
  assert.ok(outcome.rejectedPlans > 0, 'the planners did race (some plans were rejected)');
  assert.equal(outcome.placed, 5 * 4, 'every cpu of the fleet is used: 5 machines x 4 one-cpu containers');
  assert.equal(outcome.capacityErrors, 60 - 20);
});

/** The pure scheduler: feasibility, scores, sampling, determinism, and the one capacity error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBosonError, KIND_TRANSLATION } from '../../common/index.ts';
import { CapacityError, isCapacityError, plan, sampleSizeFor, seededRng, type Plan, type Snapshot } from './index.ts';
import { GiB, machine, placed, request, res } from './test-support.ts';

const snap = (...machines: Snapshot['machines']): Snapshot => ({ revision: 10, machines });
const ok = (p: Plan | CapacityError): Plan => {
  if (isCapacityError(p)) throw p;
  return p;
};
const all = { sampleSize: Infinity, rng: seededRng(1) };

test('spread takes the emptiest machine, and a project away from its own containers first; binpack the fullest that fits', () => {
  const s = snap(
    machine('m1', { containers: [placed('c1', 't/p', res(4, 8))] }),
    machine('m2', { containers: [placed('c2', 'other/q', res(2, 4))] }),
    machine('m3', { containers: [placed('c3', 'other/q', res(6, 12))] }),
  );
  assert.equal(ok(plan(s, request('x', { policy: 'spread' }), all)).machineId, 'm2');
  assert.equal(ok(plan(s, request('x', { policy: 'binpack' }), all)).machineId, 'm3');
  // m1 is emptier than m3 but already runs a container of t/p: spread prefers the machine without one.
  const s2 = snap(
    machine('m1', { containers: [placed('c1', 't/p', res(1, 1))] }),
    machine('m3', { containers: [placed('c3', 'other/q', res(4, 8))] }),
  );
  assert.equal(ok(plan(s2, request('x', { policy: 'spread' }), all)).machineId, 'm3');
  // Binpack never picks a machine the request does not fit on, however full.
  const s3 = snap(machine('full', { containers: [placed('c', 'o/o', res(7.5, 15.5))] }), machine('empty'));
  assert.equal(ok(plan(s3, request('x', { policy: 'binpack' }), all)).machineId, 'empty');
});

test('constraints: label equals, in, not (absent counts as not), zone, machine', () => {
  const s = snap(
    machine('ssd-a', { labels: { disk: 'ssd', gpu: 'no' }, zone: 'a' }),
    machine('hdd-b', { labels: { disk: 'hdd' }, zone: 'b' }),
    machine('nvme-c', { labels: { disk: 'nvme', gpu: 'yes' }, zone: 'c' }),
  );
  const pick = (constraints: NonNullable<Parameters<typeof request>[1]>['constraints']): string[] =>
    [1, 2, 3, 4, 5, 6].map((seed) => ok(plan(s, request('x', { constraints }), { rng: seededRng(seed), sampleSize: 1 })).machineId).sort();
  assert.deepEqual(new Set(pick([{ type: 'label', key: 'disk', op: 'equals', values: ['ssd'] }])), new Set(['ssd-a']));
  assert.deepEqual(new Set(pick([{ type: 'label', key: 'disk', op: 'in', values: ['ssd', 'nvme'] }])), new Set(['nvme-c', 'ssd-a']));
  assert.deepEqual(new Set(pick([{ type: 'label', key: 'gpu', op: 'not', values: ['yes'] }])), new Set(['hdd-b', 'ssd-a']));
  assert.deepEqual(new Set(pick([{ type: 'zone', zones: ['b', 'c'] }])), new Set(['hdd-b', 'nvme-c']));
  assert.deepEqual(new Set(pick([{ type: 'machine', ids: ['hdd-b'] }])), new Set(['hdd-b']));
  const none = plan(s, request('x', { constraints: [{ type: 'zone', zones: ['z'] }] }));
  assert.ok(isCapacityError(none));
  assert.equal(none.facts.excluded.constraint, 3);
});

test('affinity and anti-affinity see only containers of the same project (no tenant learns where another runs)', () => {
  const s = snap(
    machine('with-my-db', { containers: [placed('d1', 't/p', res(1, 1), { app: 'db' })] }),
    machine('with-their-db', { containers: [placed('d2', 'evil/x', res(1, 1), { app: 'db' })] }),
    machine('empty'),
  );
  const near = request('x', { affinity: [{ labels: { app: 'db' } }] });
  assert.equal(ok(plan(s, near, all)).machineId, 'with-my-db');
  const apart = request('x', { antiAffinity: [{ labels: { app: 'db' } }], policy: 'binpack' });
  const chosen = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => ok(plan(s, apart, { rng: seededRng(seed) })).machineId));
  assert.ok(!chosen.has('with-my-db'));
  assert.ok(chosen.has('with-their-db'), "another project's db does not repel");
  const lonely = plan(snap(machine('with-their-db', { containers: [placed('d2', 'evil/x', res(1, 1), { app: 'db' })] })), near);
  assert.ok(isCapacityError(lonely));
  assert.equal(lonely.facts.excluded.affinity, 1);
});

test('image locality: of two equal machines, the one with the image cached', () => {
  const s = snap(machine('cold'), machine('warm', { images: ['sha256:abc'] }));
  for (const seed of [1, 2, 3, 4]) {
    for (const policy of ['spread', 'binpack'] as const)
      assert.equal(ok(plan(s, request('x', { image: 'sha256:abc', policy }), { rng: seededRng(seed) })).machineId, 'warm');
  }
});

test('the capacity error: one code (ResourceExhausted, 507), what was short and how many machines each reason excluded', () => {
  const s = snap(
    machine('lost', { state: 'LOST' }),
    machine('drained', { state: 'MAINTENANCE' }),
    machine('elsewhere', { zone: 'b' }),
    machine('busy1', { containers: [placed('c1', 'o/o', res(7, 2))] }),
    machine('busy2', { containers: [placed('c2', 'o/o', res(1, 14))] }),
    machine('busy3', { containers: [placed('c3', 'o/o', res(7.5, 15))] }),
  );
  const err = plan(s, request('x', { resources: res(2, 4), constraints: [{ type: 'zone', zones: ['a'] }] }));
  assert.ok(err instanceof CapacityError);
  assert.ok(isBosonError(err, 'PLACEMENT_NO_CAPACITY'));
  assert.equal(KIND_TRANSLATION[err.kind].rest, 507);
  assert.deepEqual(err.facts.excluded, { 'not-ready': 2, constraint: 1, affinity: 0, 'anti-affinity': 0, capacity: 3 });
  assert.deepEqual(err.facts.shortOf, { cpus: 2, memoryBytes: 2, diskBytes: 0 });
  assert.deepEqual(err.facts.mostFree, { cpus: 7, memoryBytes: 14 * GiB, diskBytes: 100 * GiB });
  assert.equal(err.details.machines, 6);
  assert.match(err.message, /no machine can take 2 cpus, 4 GiB memory, 0 B disk/);
  assert.match(
    err.message,
    /2 not READY; 1 excluded by constraints; 3 without room: 2 short of cpus \(most free: 7 cpus\), 2 short of memory \(most free: 14 GiB memory\)/,
  );
  const empty = plan(snap(), request('x'));
  assert.ok(isCapacityError(empty));
  assert.match(empty.message, /there are no machines/);
});

test('sampling: K = max(4, ceil(log2 N)) feasible machines are scored; a seed gives one plan', () => {
  assert.deepEqual([1, 2, 16, 17, 1000, 5000].map(sampleSizeFor), [4, 4, 4, 5, 10, 13]);
  const fleet = snap(...Array.from({ length: 1000 }, (_, i) => machine(`m${i}`, { state: i % 2 ? 'READY' : 'MAINTENANCE' })));
  const p = ok(plan(fleet, request('x'), { rng: seededRng(7) }));
  assert.equal(p.sampled, 10);
  assert.ok(p.examined >= 10 && p.examined < 100, `examined ${p.examined} machines to find 10 of 500 feasible`);
  assert.equal(fleet.machines.find((m) => m.id === p.machineId)?.state, 'READY');
  assert.deepEqual(ok(plan(fleet, request('x'), { rng: seededRng(7) })), p, 'deterministic for a seed');
  const picks = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => ok(plan(fleet, request('x'), { rng: seededRng(seed) })).machineId));
  assert.ok(picks.size > 4, 'different seeds spread over the fleet');
  assert.equal(ok(plan(fleet, request('x'), { rng: seededRng(7), sampleSize: Infinity })).sampled, 500);
});

test('a malformed request is INVALID_ARGUMENT', () => {
  const s = snap(machine('m'));
  for (const bad of [
    request('x', { resources: { cpus: -1, memoryBytes: 1, diskBytes: 0 } }),
    request('x', { resources: { cpus: Number.NaN, memoryBytes: 1, diskBytes: 0 } }),
    request('x', { project: '' }),
    request('', {}),
    request('x', { policy: 'random' as 'spread' }),
    request('x', { constraints: [{ type: 'label', key: 'a', op: 'equals', values: ['1', '2'] }] }),
    request('x', { constraints: [{ type: 'zone', zones: [] }] }),
  ])
    assert.throws(
      () => plan(s, bad),
      (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'),
    );
});

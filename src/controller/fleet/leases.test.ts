/**
 * Container leases over the memory store: one holder at a time (also when many race), the nonce checked on changes
 * and on release, extension with the nonce, expiry (an expired lease counts for nothing: no stale leases), only a
 * hash of the nonce stored; and the label filters of listings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asyncStore, isBosonError, MemoryStateStore } from '../../common/index.ts';
import { ContainerLeases, LEASE_KIND } from './leases.ts';
import { matchesLabels, parseLabelFilters } from './containers.ts';

const code = (c: string) => (e: unknown) => isBosonError(e) && e.code === c;

test('a lease: one holder; changes need its nonce; the holder extends and releases it; expired, it counts for nothing', async () => {
  const mem = new MemoryStateStore();
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const leases = new ContainerLeases(asyncStore(mem), () => clock);
  const key = 'acme/web/c-1';
  await leases.check(key, 'web1', undefined); // no lease: any change passes
  const got = await leases.acquire(key, 'web1', { owner: 'alice', ttlSeconds: 10, description: 'deploy' });
  assert.match(got.nonce, /^[0-9a-f]{32}$/);
  assert.equal(got.expiresAt, '2026-01-01T00:00:10.000Z');
  assert.ok(!JSON.stringify(mem.get(LEASE_KIND, key)).includes(got.nonce), 'only a hash of the nonce is stored');
  assert.deepEqual(await leases.get(key), {
    owner: 'alice',
    description: 'deploy',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: got.expiresAt,
  });
  // Others: no lease for them, no change without the nonce, nor with a wrong one; no release.
  await assert.rejects(leases.acquire(key, 'web1', { owner: 'bob' }), (e: unknown) => {
    assert.ok(code('CONTAINER_LEASED')(e));
    assert.match((e as Error).message, /leased by alice until 2026-01-01T00:00:10.000Z \(deploy\)/);
    assert.deepEqual((e as { details: unknown }).details, { container: 'web1', owner: 'alice', expiresAt: got.expiresAt });
    return true;
  });
  await assert.rejects(leases.check(key, 'web1', undefined), code('CONTAINER_LEASED'));
  await assert.rejects(leases.check(key, 'web1', 'f'.repeat(32)), code('CONTAINER_LEASED'));
  await assert.rejects(leases.release(key, 'web1', 'nope'), code('CONTAINER_LEASED'));
  await leases.check(key, 'web1', got.nonce);
  // The holder extends it with its nonce (same nonce, later expiry).
  clock += 5000;
  const ext = await leases.acquire(key, 'web1', { owner: 'alice', ttlSeconds: 10, nonce: got.nonce });
  assert.equal(ext.nonce, got.nonce);
  assert.equal(ext.expiresAt, '2026-01-01T00:00:15.000Z');
  assert.equal(ext.description, 'deploy');
  // Expired: not shown, not checked; the next taker gets a new nonce, the old one is worthless.
  clock += 10_000;
  assert.equal(await leases.get(key), undefined);
  await leases.check(key, 'web1', undefined);
  await assert.rejects(leases.release(key, 'web1', got.nonce), code('LEASE_NOT_FOUND'));
  const bob = await leases.acquire(key, 'web1', { owner: 'bob', ttlSeconds: 60 });
  assert.notEqual(bob.nonce, got.nonce);
  await assert.rejects(leases.check(key, 'web1', got.nonce), code('CONTAINER_LEASED'));
  await leases.release(key, 'web1', bob.nonce);
  assert.equal(await leases.get(key), undefined);
  await assert.rejects(leases.release(key, 'web1', bob.nonce), code('LEASE_NOT_FOUND'));
  // Bad ttls are refused, nothing written.
  await assert.rejects(leases.acquire(key, 'web1', { owner: 'bob', ttlSeconds: 0 }), code('INVALID_ARGUMENT'));
  await assert.rejects(leases.acquire(key, 'web1', { owner: 'bob', ttlSeconds: 86_401 }), code('INVALID_ARGUMENT'));
  assert.equal(mem.get(LEASE_KIND, key), undefined);
});

test('clients racing for one lease: exactly one gets it', async () => {
  const store = asyncStore(new MemoryStateStore());
  const leases = new ContainerLeases(store);
  const outcomes = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) => leases.acquire('acme/web/c-2', 'c-2', { owner: `u${i}`, ttlSeconds: 30 })),
  );
  const won = outcomes.filter((o) => o.status === 'fulfilled');
  assert.equal(won.length, 1);
  for (const o of outcomes) if (o.status === 'rejected') assert.ok(code('CONTAINER_LEASED')(o.reason), String(o.reason));
  assert.equal((await leases.get('acme/web/c-2'))?.owner, (won[0] as PromiseFulfilledResult<{ owner: string }>).value.owner);
});

test('label filters: key=value and key, all must match; an empty key is refused', () => {
  const f = parseLabelFilters(['tier=web', 'canary']);
  assert.deepEqual(f, [{ key: 'tier', value: 'web' }, { key: 'canary' }]);
  assert.ok(matchesLabels({ tier: 'web', canary: '' }, f));
  assert.ok(!matchesLabels({ tier: 'web' }, f));
  assert.ok(!matchesLabels({ tier: 'db', canary: '1' }, f));
  assert.ok(matchesLabels({}, []));
  assert.deepEqual(parseLabelFilters(['a=b=c']), [{ key: 'a', value: 'b=c' }]);
  assert.throws(() => parseLabelFilters(['=x']), code('INVALID_ARGUMENT'));
});

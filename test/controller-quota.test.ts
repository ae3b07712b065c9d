/**
 * Quotas under concurrency on real SQLite: two controllers (two connections to one controller.db, as two replicas
 * or a daemon and a CLI would be) fire many reservations at once for the last units of a project; exactly the
 * limit succeeds, every other one is QUOTA_EXCEEDED naming the key, and usage is exactly the limit. Carving
 * projects from a tenant races the same way.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asyncStore, BosonError } from '../src/common/index.ts';
import { Controller, parseQuotaItem } from '../src/controller/index.ts';
import { openStateStore } from '../src/machine/index.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function twoReplicas(): Promise<{ a: Controller; b: Controller; close(): void }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-ctl-quota-'));
  dirs.push(dir);
  const sa = openStateStore(dir, { file: 'controller.db' });
  const sb = openStateStore(dir, { file: 'controller.db' });
  const a = new Controller(asyncStore(sa));
  const b = new Controller(asyncStore(sb));
  await a.bootstrap();
  await b.bootstrap();
  return {
    a,
    b,
    close: () => {
      sa.close();
      sb.close();
    },
  };
}

test('SQLite: many concurrent reservations for the last units from two replicas; exactly the limit succeeds', async () => {
  const { a, b, close } = await twoReplicas();
  try {
    await a.tenants.createTenant('acme', [parseQuotaItem('vm.count=100'), parseQuotaItem('vm.memory=64GiB')]);
    await b.tenants.createProject('acme', 'web', [parseQuotaItem('vm.count=25'), parseQuotaItem('vm.memory=16GiB')]);
    // 15 units are taken; 10 are left; 60 racers ask for one each (half through each replica).
    for (let i = 0; i < 15; i++) await a.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1')]);
    const cost = [parseQuotaItem('vm.count=1'), parseQuotaItem('vm.memory=128MiB')];
    const before = await a.store.revision();
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).tenants.reserve('acme', 'web', cost)));
    const won = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(won, 10, 'exactly the units left were reserved');
    assert.equal((await b.store.revision()) - before, 10, 'one write per reservation that won; the refused ones wrote nothing');
    for (const r of results) {
      if (r.status === 'fulfilled') continue;
      assert.ok(r.reason instanceof BosonError, String(r.reason));
      assert.equal(r.reason.code, 'QUOTA_EXCEEDED', r.reason.message);
      assert.equal(r.reason.details.key, 'vm.count');
      assert.match(r.reason.message, /quota.*vm\.count/);
    }
    const usage = (await b.tenants.getProject('acme', 'web')).usage;
    assert.deepEqual(
      usage.map((u) => [u.key, u.value]),
      [
        ['vm.count', 25],
        ['vm.memory', 10 * 128 * 1024 ** 2],
      ],
    );
    // Memory runs out first for bigger instances: the error names that key.
    await a.tenants.setProjectLimits('acme', 'web', [parseQuotaItem('vm.count=30'), parseQuotaItem('vm.memory=2GiB')]);
    const big = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? a : b).tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1'), parseQuotaItem('vm.memory=256MiB')]),
      ),
    );
    assert.equal(big.filter((r) => r.status === 'fulfilled').length, 3, '2GiB - 1.25GiB leaves room for 3 of 256MiB');
    for (const r of big) if (r.status === 'rejected') assert.equal((r.reason as BosonError).details.key, 'vm.memory');
  } finally {
    close();
  }
});

test('SQLite: concurrent project creates from two replicas never overdraw the tenant', async () => {
  const { a, b, close } = await twoReplicas();
  try {
    await a.tenants.createTenant('acme', [parseQuotaItem('vm.count=10')]);
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).tenants.createProject('acme', `p${i}`, [parseQuotaItem('vm.count=2')])),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as BosonError).code, 'QUOTA_EXCEEDED');
    assert.deepEqual((await b.tenants.getTenant('acme')).allocated, [{ key: 'vm.count', value: 10, unit: 'count' }]);
    assert.equal((await a.tenants.listProjects('acme')).length, 5);
  } finally {
    close();
  }
});

/**
 * The controller's model on the memory store (through the promise form, as every store serves it): quota parsing,
 * carving projects from tenants, exact reservations under concurrency, tokens hashed at rest and revoked at once,
 * and tasks. The same races on real SQLite are in test/controller-quota.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asyncStore, BosonError, MemoryStateStore, type AsyncStateStore } from '../../common/index.ts';
import { Controller } from './controller.ts';
import { formatQuotaValue, parseQuotaItem } from './quota.ts';
import { KINDS } from './records.ts';

const GiB = 1024 ** 3;

async function fresh(): Promise<{ ctl: Controller; store: AsyncStateStore; mem: MemoryStateStore }> {
  const mem = new MemoryStateStore();
  const store = asyncStore(mem);
  const ctl = new Controller(store);
  await ctl.bootstrap();
  return { ctl, store, mem };
}

const code = (c: string, check?: (e: BosonError) => void) => (err: unknown) => {
  assert.ok(err instanceof BosonError, String(err));
  assert.equal(err.code, c, err.message);
  check?.(err);
  return true;
};

test('quota items parse with units and format back', () => {
  assert.deepEqual(parseQuotaItem('vm.count=4'), { key: 'vm.count', value: 4, unit: 'count' });
  assert.deepEqual(parseQuotaItem('vm.memory=2GiB'), { key: 'vm.memory', value: 2 * GiB, unit: 'bytes' });
  assert.deepEqual(parseQuotaItem('vm.cpu=0.5'), { key: 'vm.cpu', value: 0.5, unit: 'count' });
  assert.deepEqual(parseQuotaItem('gpu.a100=2'), { key: 'gpu.a100', value: 2, unit: 'count' });
  assert.deepEqual(parseQuotaItem('scratch.bytes=10G'), { key: 'scratch.bytes', value: 10 * GiB, unit: 'bytes' });
  assert.equal(formatQuotaValue({ value: 2 * GiB, unit: 'bytes' }), '2GiB');
  assert.equal(formatQuotaValue({ value: 1536 * 1024 ** 2, unit: 'bytes' }), '1536MiB');
  for (const bad of ['vm.count', 'vm.count=x', 'vm.count=2GiB', 'Vm=1', 'vm.memory=1.5B', '=3'])
    assert.throws(() => parseQuotaItem(bad), code('INVALID_ARGUMENT'), bad);
});

test('the bootstrap makes the default tenant and project once', async () => {
  const { ctl } = await fresh();
  await ctl.bootstrap();
  assert.deepEqual(
    (await ctl.tenants.listTenants()).map((t) => t.name),
    ['default'],
  );
  assert.deepEqual(
    (await ctl.tenants.listProjects('default')).map((p) => p.name),
    ['default'],
  );
  assert.equal((await ctl.identity.getUser('admin')).tenant, undefined);
});

test("projects are carved from their tenant's limits; an overdraw names the key and writes nothing", async () => {
  const { ctl, mem } = await fresh();
  await ctl.tenants.createTenant('acme', [parseQuotaItem('vm.count=10'), parseQuotaItem('vm.memory=4GiB')]);
  await ctl.tenants.createProject('acme', 'web', [parseQuotaItem('vm.count=6'), parseQuotaItem('vm.memory=3GiB')]);
  const before = mem.revision();
  await assert.rejects(
    ctl.tenants.createProject('acme', 'db', [parseQuotaItem('vm.count=5'), parseQuotaItem('vm.memory=1GiB')]),
    code('QUOTA_EXCEEDED', (e) => {
      assert.equal(e.details.key, 'vm.count');
      assert.equal(e.details.tenant, 'acme');
      assert.match(e.message, /quota.*vm\.count/);
    }),
  );
  assert.equal(mem.revision(), before, 'nothing written');
  await assert.rejects(ctl.tenants.getProject('acme', 'db'), code('PROJECT_NOT_FOUND'));
  // Exactly what is left fits.
  const db = await ctl.tenants.createProject('acme', 'db', [parseQuotaItem('vm.count=4'), parseQuotaItem('vm.memory=1GiB')]);
  assert.deepEqual(
    db.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 4],
      ['vm.memory', GiB],
    ],
  );
  const t = await ctl.tenants.getTenant('acme');
  assert.deepEqual(
    t.allocated.map((l) => [l.key, l.value]),
    [
      ['vm.count', 10],
      ['vm.memory', 4 * GiB],
    ],
  );
  // Growing one project needs room in the tenant; shrinking another makes it.
  await assert.rejects(
    ctl.tenants.setProjectLimits('acme', 'web', [parseQuotaItem('vm.count=7'), parseQuotaItem('vm.memory=3GiB')]),
    code('QUOTA_EXCEEDED'),
  );
  await ctl.tenants.setProjectLimits('acme', 'db', [parseQuotaItem('vm.count=3'), parseQuotaItem('vm.memory=1GiB')]);
  await ctl.tenants.setProjectLimits('acme', 'web', [parseQuotaItem('vm.count=7'), parseQuotaItem('vm.memory=3GiB')]);
  // The tenant cannot shrink below what is carved; removing a project gives its share back.
  await assert.rejects(ctl.tenants.setTenantLimits('acme', [parseQuotaItem('vm.count=9')]), code('QUOTA_EXCEEDED'));
  const task = await ctl.deleteProject('acme', 'db');
  assert.equal((await ctl.tasks.wait(task.id, 5000)).state, 'succeeded');
  assert.deepEqual(
    (await ctl.tenants.getTenant('acme')).allocated.map((l) => [l.key, l.value]),
    [
      ['vm.count', 7],
      ['vm.memory', 3 * GiB],
    ],
  );
  await ctl.tenants.setTenantLimits('acme', [parseQuotaItem('vm.count=7'), parseQuotaItem('vm.memory=3GiB')]);
});

test('a key the tenant limits and the project does not is a limit of 0 for the project', async () => {
  const { ctl } = await fresh();
  await ctl.tenants.createTenant('acme', [parseQuotaItem('vm.count=10'), parseQuotaItem('vm.memory=4GiB')]);
  const p = await ctl.tenants.createProject('acme', 'web', [parseQuotaItem('vm.count=2')]);
  assert.deepEqual(
    p.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 2],
      ['vm.memory', 0],
    ],
  );
  await assert.rejects(
    ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1'), parseQuotaItem('vm.memory=1MiB')]),
    code('QUOTA_EXCEEDED', (e) => assert.equal(e.details.key, 'vm.memory')),
  );
  await ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1')]);
  // A key nobody limits is not limited.
  await ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1'), parseQuotaItem('gpu.any=100')]);
  await assert.rejects(ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1')]), code('QUOTA_EXCEEDED'));
});

test('concurrent reservations for the last units: exactly the limit succeeds; release gives back, idempotently', async () => {
  const { ctl, mem } = await fresh();
  await ctl.tenants.createTenant('acme', [parseQuotaItem('vm.count=20')]);
  await ctl.tenants.createProject('acme', 'web', [parseQuotaItem('vm.count=7')]);
  await ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=2')], 'first');
  const before = mem.revision();
  const results = await Promise.allSettled(
    Array.from({ length: 30 }, () => ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=1')])),
  );
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 5);
  assert.equal(mem.revision() - before, 5, 'one write per reservation that won; the refused ones wrote nothing');
  for (const r of results) if (r.status === 'rejected') code('QUOTA_EXCEEDED', (e) => assert.equal(e.details.key, 'vm.count'))(r.reason);
  const p = await ctl.tenants.getProject('acme', 'web');
  assert.deepEqual(p.usage, [{ key: 'vm.count', value: 7, unit: 'count' }]);
  // Reserving an id again is a no-op; releasing twice releases once.
  await ctl.tenants.release('acme', 'web', 'first');
  assert.equal(await ctl.tenants.release('acme', 'web', 'first'), false);
  assert.deepEqual((await ctl.tenants.getProject('acme', 'web')).usage, [{ key: 'vm.count', value: 5, unit: 'count' }]);
  await ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=2')], 'again');
  await ctl.tenants.reserve('acme', 'web', [parseQuotaItem('vm.count=2')], 'again');
  assert.deepEqual((await ctl.tenants.getProject('acme', 'web')).usage, [{ key: 'vm.count', value: 7, unit: 'count' }]);
  // A project that holds reservations cannot be removed.
  await assert.rejects(ctl.deleteProject('acme', 'web'), code('PROJECT_IN_USE'));
  await assert.rejects(ctl.deleteTenant('acme'), code('TENANT_IN_USE'));
});

test('concurrent project creates cannot overdraw their tenant', async () => {
  const { ctl } = await fresh();
  await ctl.tenants.createTenant('acme', [parseQuotaItem('vm.count=10')]);
  const results = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) => ctl.tenants.createProject('acme', `p${i}`, [parseQuotaItem('vm.count=3')])),
  );
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
  assert.deepEqual((await ctl.tenants.getTenant('acme')).allocated, [{ key: 'vm.count', value: 9, unit: 'count' }]);
});

test('tokens: only a hash is stored, revocation and user removal take effect at once, expiry holds', async () => {
  const { ctl, mem } = await fresh();
  await ctl.tenants.createTenant('acme');
  await ctl.tenants.createProject('acme', 'web');
  await ctl.identity.createUser('alice', 'acme');
  const made = await ctl.identity.createToken('alice', { role: 'member', tenant: 'acme', project: 'web' });
  assert.match(made.token, /^boson_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  const secret = made.token.slice('boson_'.length + 13);
  assert.equal(secret.length, 43);
  const everything = JSON.stringify(mem.list(KINDS.token)) + JSON.stringify(mem.list(KINDS.user));
  assert.ok(!everything.includes(secret), 'the secret is not stored');
  assert.ok(everything.includes(made.info.id));
  assert.deepEqual(await ctl.identity.authenticate(made.token), { user: 'alice', tokenId: made.info.id, grant: made.info.grant });
  // A changed secret, a made-up id and junk are all refused alike.
  const tampered = made.token.slice(0, -1) + (made.token.endsWith('A') ? 'B' : 'A');
  for (const bad of [tampered, `boson_000000000000_${secret}`, 'nonsense'])
    await assert.rejects(ctl.identity.authenticate(bad), code('UNAUTHENTICATED'));
  await ctl.identity.revokeToken(made.info.id);
  await assert.rejects(ctl.identity.authenticate(made.token), code('UNAUTHENTICATED'));
  // Removing the user removes its tokens.
  const second = await ctl.identity.createToken('alice', { role: 'viewer', tenant: 'acme', project: 'web' });
  await ctl.identity.deleteUser('alice');
  await assert.rejects(ctl.identity.authenticate(second.token), code('UNAUTHENTICATED'));
  assert.equal(mem.list(KINDS.token).length, 0);
  // Grants must fit the user: a tenant's user cannot be system admin or hold another tenant's grants.
  await ctl.identity.createUser('bob', 'acme');
  await assert.rejects(ctl.identity.createToken('bob', { role: 'system-admin' }), code('INVALID_ARGUMENT'));
  await assert.rejects(ctl.identity.createToken('bob', { role: 'tenant-admin', tenant: 'default' }), code('INVALID_ARGUMENT'));
  await assert.rejects(ctl.identity.createToken('bob', { role: 'member', tenant: 'acme', project: 'nope' }), code('PROJECT_NOT_FOUND'));
  // An expired token is refused.
  const short = await ctl.identity.createToken('bob', { role: 'tenant-admin', tenant: 'acme' }, { ttlSeconds: 60 });
  const rec = mem.get<{ expiresAt: string }>(KINDS.token, short.info.id)!;
  mem.put(KINDS.token, short.info.id, { ...rec.value, expiresAt: new Date(Date.now() - 1000).toISOString() });
  await assert.rejects(ctl.identity.authenticate(short.token), code('UNAUTHENTICATED'));
});

test('removing a tenant is a task that also removes its users and tokens', async () => {
  const { ctl, mem } = await fresh();
  await ctl.tenants.createTenant('acme');
  await ctl.tenants.createProject('acme', 'web');
  await ctl.identity.createUser('alice', 'acme');
  const tok = await ctl.identity.createToken('alice', { role: 'tenant-admin', tenant: 'acme' });
  const adminTok = await ctl.identity.createToken('admin', { role: 'member', tenant: 'acme', project: 'web' });
  await assert.rejects(ctl.deleteTenant('acme'), code('TENANT_IN_USE'));
  const t1 = await ctl.deleteProject('acme', 'web');
  assert.equal(t1.state, 'queued');
  const done1 = await ctl.tasks.wait(t1.id, 5000);
  assert.equal(done1.state, 'succeeded');
  assert.deepEqual(
    done1.steps.map((s) => [s.name, s.state]),
    [
      ['remove project', 'succeeded'],
      ['revoke project tokens', 'succeeded'],
    ],
  );
  await assert.rejects(ctl.identity.authenticate(adminTok.token), code('UNAUTHENTICATED'));
  const t2 = await ctl.deleteTenant('acme');
  assert.equal((await ctl.tasks.wait(t2.id, 5000)).state, 'succeeded');
  await assert.rejects(ctl.identity.authenticate(tok.token), code('UNAUTHENTICATED'));
  await assert.rejects(ctl.identity.getUser('alice'), code('USER_NOT_FOUND'));
  assert.equal(mem.list(KINDS.tenant).length, 1);
  assert.deepEqual(
    (await ctl.tasks.list()).map((t) => t.kind),
    ['tenant.delete', 'project.delete'],
  );
});

test('a task that fails records the step and the typed error; waiting times out with the task as it is', async () => {
  const { ctl } = await fresh();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  ctl.tasks.define('demo', {
    onRunnerDied: 'fail',
    run: async (_task, step) => {
      await step('one', () => gate);
      await step('two', async () => {
        throw new BosonError('QUOTA_EXCEEDED', 'quota exceeded: vm.count', { details: { key: 'vm.count' } });
      });
    },
  });
  const task = await ctl.tasks.start({ kind: 'demo', target: 'x', steps: ['one', 'two'] });
  const early = await ctl.tasks.wait(task.id, 100);
  assert.ok(early.state === 'running' || early.state === 'queued', early.state);
  release();
  const done = await ctl.tasks.wait(task.id, 5000);
  assert.equal(done.state, 'failed');
  assert.deepEqual(done.error, { code: 'QUOTA_EXCEEDED', message: 'quota exceeded: vm.count', details: { key: 'vm.count' } });
  assert.deepEqual(
    done.steps.map((s) => s.state),
    ['succeeded', 'failed'],
  );
  await assert.rejects(ctl.tasks.get('0123456789abcdef'), code('TASK_NOT_FOUND'));
});

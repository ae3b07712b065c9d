/**
 * `boson controller migrate`: a controller's state carried from its SQLite file into a real etcd (Debian's
 * etcd-server, started here with etcd's default --max-txn-ops of 128, so that the copy's batches are checked against
 * it). The SQLite state is made through the real Controller, fleet and REST API (a fake machine runtime behind a
 * UNIX socket takes the fleet's container: no VM): tenants, a project with limits and usage, a user and a token, a
 * flavor, finished tasks, an idempotency key, a machine join token, the fleet's CAs, a machine, a container with its
 * placement and a lease. After the migration, a controller on etcd answers every read as the SQLite one did, the
 * token still authenticates, the quota is still exact, and new writes work; a second migration is refused and
 * changes nothing; a failed copy leaves nothing behind; an unreachable etcd is a clear error. Then the CLI, through
 * bin/boson: refused while a controller runs on the file, the summary (plain and --json), a controller started on
 * the etcd prefix has the state, and a controller refuses a prefix whose migration did not complete.
 */
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { asyncStore, ERROR_CATALOGUE, isBosonError, type AsyncStateStore, type StoredRecord } from '../src/common/index.ts';
import { buildControllerApi, Controller, openFleet, parseQuotaItem, type OpenFleet } from '../src/controller/index.ts';
import { openEtcdStore, type EtcdStateStore } from '../src/machine/store/etcd.ts';
import { startTestEtcd } from '../src/machine/store/etcd-test-support.ts';
import { openStateStore } from '../src/machine/store/sqlite.ts';
import { migrateControllerToEtcd } from '../src/main/controller-migrate.ts';
import { MIGRATION_MARKER } from '../src/main/controller.ts';
import { fakeMachineApi } from './fake-machine-api.ts';
import { BUSYBOX_LAYOUT as LAYOUT, freePort, makeBareHost, runBoson, startUntil, type TestHost } from './helpers.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const etcd = await startTestEtcd({ maxTxnOps: 128 });
cleanups.push(() => etcd.stop());

/** The fake machine every controller of this file places on (kept for the whole file, so both controllers reach it). */
let machineSocket = '';
before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-migrate-machine-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const { runtime, app } = await fakeMachineApi(dir);
  machineSocket = path.join(dir, 'api.sock');
  await app.listen({ path: machineSocket });
  cleanups.push(async () => {
    await app.close();
    await runtime.close();
  });
});

/** A controller as `boson controller` composes it (model, fleet, REST API), over `store`. */
interface Running {
  ctl: Controller;
  fleet: OpenFleet;
  api: FastifyInstance;
  close(): Promise<void>;
}
async function run(store: AsyncStateStore): Promise<Running> {
  const ctl = new Controller(store);
  const fleet = await openFleet(store, ctl.tenants, { lostAfterMs: 600_000, checkIntervalMs: 0, checkTimeoutMs: 2000 });
  const { app: api } = await buildControllerApi(ctl, undefined, fleet.routes);
  await api.ready();
  await ctl.bootstrap();
  ctl.start();
  return {
    ctl,
    fleet,
    api,
    close: async () => {
      await ctl.close();
      await fleet.close();
      await api.close();
    },
  };
}

/** One REST call with a bearer token (or none: the local system admin). */
async function call(
  r: Running,
  token: string | null,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: () => any; body: string; headers: Record<string, unknown> }> {
  const res = await r.api.inject({
    method: method as 'GET',
    url,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  });
  return { status: res.statusCode, body: res.body, headers: res.headers, json: () => res.json() };
}

/** Every read a user could make of the state, as the REST API answers it (what must be the same after a migration). */
async function views(r: Running, root: string, dev: string): Promise<Record<string, unknown>> {
  const get = async (token: string, url: string): Promise<unknown> => {
    const res = await call(r, token, 'GET', url);
    assert.equal(res.status, 200, `GET ${url}: ${res.body}`);
    return res.json();
  };
  const out: Record<string, unknown> = {};
  for (const url of [
    '/v1/tenants',
    '/v1/tenants/acme',
    '/v1/tenants/acme/projects',
    '/v1/tenants/acme/projects/web',
    '/v1/flavors',
    '/v1/users',
    '/v1/tokens',
    '/v1/tasks',
    '/v1/machines',
    '/v1/machine-tokens',
    '/v1/machines/ca',
  ])
    out[url] = await get(root, url);
  // What the project's member sees: its project, its containers, the lease on one.
  for (const url of [
    '/v1/whoami',
    '/v1/tenants/acme/projects/web',
    '/v1/tenants/acme/projects/web/containers',
    '/v1/tenants/acme/projects/web/containers/c1/lease',
  ])
    out[`dev ${url}`] = await get(dev, url);
  return out;
}

/** The records of a store, by kind and key, with their values (the revisions are each store's own). */
const contents = (records: StoredRecord[]): Array<[string, string, string]> =>
  records
    .map((r) => [r.kind, r.key, JSON.stringify(r.value)] as [string, string, string])
    .sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1));

/** Every record of `kinds` in an etcd store, in the order they were created there. */
async function etcdRecords(store: EtcdStateStore, kinds: string[]): Promise<StoredRecord[]> {
  const all: StoredRecord[] = [];
  for (const k of kinds) all.push(...(await store.list(k)));
  return all.sort((a, b) => a.createRevision - b.createRevision);
}

/** The state made in SQLite by the first test and read by the next ones. */
const made = { dir: '', file: '', root: '', dev: '', views: {} as Record<string, unknown>, records: [] as StoredRecord[] };

test('a controller on SQLite is filled through its API: every kind of record the controller keeps', async () => {
  made.dir = await mkdtemp(path.join(os.tmpdir(), 'boson-migrate-'));
  cleanups.push(() => rm(made.dir, { recursive: true, force: true }));
  made.file = path.join(made.dir, 'controller.db');
  const sqlite = openStateStore(made.dir, { file: 'controller.db' });
  const r = await run(asyncStore(sqlite));
  try {
    await r.ctl.identity.createUser('root');
    made.root = (await r.ctl.identity.createToken('root', { role: 'system-admin' })).token;
    const ok = async (method: string, url: string, body?: unknown, headers?: Record<string, string>, token = made.root) => {
      const res = await call(r, token, method, url, body, headers);
      assert.ok(res.status < 300, `${method} ${url}: ${res.status} ${res.body}`);
      return res.json();
    };
    // A tenant (with an idempotency key) and a project with limits carved from it; a second project removed by a task.
    await ok(
      'POST',
      '/v1/tenants',
      { name: 'acme', limits: [parseQuotaItem('vm.count=10'), parseQuotaItem('vm.memory=8GiB')] },
      { 'idempotency-key': 'mk-acme' },
    );
    await ok('POST', '/v1/tenants/acme/projects', {
      name: 'web',
      limits: [parseQuotaItem('vm.count=4'), parseQuotaItem('vm.memory=2GiB')],
    });
    await ok('POST', '/v1/tenants/acme/projects', { name: 'tmp' });
    const task = await ok('DELETE', '/v1/tenants/acme/projects/tmp');
    assert.equal((await r.ctl.tasks.wait(task.id as string, 30_000)).state, 'succeeded');
    // A user of the tenant and its token on the project; a flavor.
    await ok('POST', '/v1/users', { name: 'acme-dev', tenant: 'acme' });
    made.dev = (await ok('POST', '/v1/tokens', { user: 'acme-dev', grant: { role: 'member', tenant: 'acme', project: 'web' } }))
      .token as string;
    // Enough users that the copy takes several of etcd's transactions (its default --max-txn-ops is 128).
    for (let i = 0; i < 60; i++) await r.ctl.identity.createUser(`acme-u${i}`, 'acme');
    await ok('POST', '/v1/flavors', { name: 'small', cpus: 1, memoryBytes: 256 * 1024 ** 2, diskBytes: 1024 ** 3 });
    // The fleet: a join token, a machine (the fake runtime), a container placed on it (its quota taken), a lease.
    await ok('POST', '/v1/machine-tokens', { ttlSeconds: 3600 });
    await r.fleet.fleet.registerLocal(
      `unix://${machineSocket}`,
      { cpus: 4, memoryBytes: 4 * 1024 ** 3, diskBytes: 50 * 1024 ** 3 },
      { local: 'true' },
    );
    await ok(
      'POST',
      '/v1/tenants/acme/projects/web/containers',
      { spec: { image: 'busybox', name: 'c1', process: { args: ['true'] } } },
      {},
      made.dev,
    );
    await ok('POST', '/v1/tenants/acme/projects/web/containers/c1/lease', { ttlSeconds: 3600, description: 'deploy' }, {}, made.dev);

    made.views = await views(r, made.root, made.dev);
    const web = made.views['/v1/tenants/acme/projects/web'] as { usage: Array<{ key: string; value: number }> };
    assert.equal(web.usage.find((u) => u.key === 'vm.count')?.value, 1, 'the container holds one vm.count');
    made.records = sqlite.snapshot().records;
    const kinds = new Set(made.records.map((x) => x.kind));
    for (const k of [
      'ctl.tenant',
      'ctl.project',
      'ctl.usage',
      'ctl.user',
      'ctl.token',
      'ctl.flavor',
      'ctl.task',
      'ctl.idempotency',
      'ctl.container-lease',
    ])
      assert.ok(kinds.has(k), `a record of ${k}: ${[...kinds].join(', ')}`);
    assert.ok(kinds.size >= 14, `the fleet's kinds too (machines, tokens, CAs, containers, placements): ${[...kinds].join(', ')}`);
  } finally {
    await r.close();
    sqlite.close();
  }
});

test('migrate copies every record to etcd; a controller on etcd reads back the same, and writes', async () => {
  const to = { endpoints: [etcd.endpoint], prefix: 'one/' };
  const progress: number[] = [];
  const summary = await migrateControllerToEtcd({ from: made.file, to, onProgress: (done) => progress.push(done) });
  assert.equal(summary.records, made.records.length);
  assert.equal(summary.events, 0);
  const perKind: Record<string, number> = {};
  for (const x of made.records) perKind[x.kind] = (perKind[x.kind] ?? 0) + 1;
  assert.deepEqual(summary.kinds, perKind);
  assert.equal(progress.at(-1), made.records.length);
  assert.ok(progress.length >= 2, `batches under etcd's --max-txn-ops: ${progress.join(',')}`);

  // Kinds, keys and values exactly; created in the same order; the marker gone.
  const store = openEtcdStore(to);
  cleanups.push(() => store.close());
  const copied = await etcdRecords(store, Object.keys(perKind));
  assert.deepEqual(contents(copied), contents(made.records));
  assert.deepEqual(
    copied.map((x) => `${x.kind} ${x.key}`),
    made.records.map((x) => `${x.kind} ${x.key}`),
    'creation order kept',
  );
  assert.equal(await store.get(MIGRATION_MARKER.kind, MIGRATION_MARKER.key), undefined);
  assert.deepEqual(await store.occupancy(), { records: made.records.length, events: 0 });

  // A controller on etcd: every read the same (the fleet's CAs were carried, not made anew), the token authenticates.
  const r = await run(store);
  try {
    assert.deepEqual(await views(r, made.root, made.dev), made.views);
    assert.equal((await r.ctl.identity.authenticate(made.dev)).user, 'acme-dev');
    const forged = `${made.dev.slice(0, -4)}0000`;
    await assert.rejects(r.ctl.identity.authenticate(forged), (err) => isBosonError(err, 'UNAUTHENTICATED'));
    // The idempotency key replays its first answer.
    const again = await call(
      r,
      made.root,
      'POST',
      '/v1/tenants',
      { name: 'acme', limits: [parseQuotaItem('vm.count=10'), parseQuotaItem('vm.memory=8GiB')] },
      { 'idempotency-key': 'mk-acme' },
    );
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.status, 201, again.body);
    // Writes work on the new revisions: the quota is exact (three more fit in vm.count=4, the fourth does not).
    for (const n of ['c2', 'c3', 'c4']) {
      const c = await call(r, made.dev, 'POST', '/v1/tenants/acme/projects/web/containers', {
        spec: { image: 'busybox', name: n, process: { args: ['true'] } },
      });
      assert.equal(c.status, 201, c.body);
    }
    const over = await call(r, made.dev, 'POST', '/v1/tenants/acme/projects/web/containers', {
      spec: { image: 'busybox', name: 'c5', process: { args: ['true'] } },
    });
    assert.equal(over.status, 507, over.body);
    assert.match(over.json().detail, /quota.*vm\.count|vm\.count.*quota/);
    // The lease still holds: a change without its nonce is refused.
    const leased = await call(r, made.dev, 'DELETE', '/v1/tenants/acme/projects/web/containers/c1?force=true');
    assert.equal(leased.status, 409, leased.body);
    assert.match(leased.body, /leased/);
    // A new task lists first (newest by the etcd store's own creation revision).
    await call(r, made.root, 'POST', '/v1/tenants/acme/projects', { name: 'gone' });
    const t = (await call(r, made.root, 'DELETE', '/v1/tenants/acme/projects/gone')).json() as { id: string };
    assert.equal((await r.ctl.tasks.wait(t.id, 30_000)).state, 'succeeded');
    const tasks = (await call(r, made.root, 'GET', '/v1/tasks')).json() as Array<{ id: string }>;
    assert.equal(tasks[0]!.id, t.id);
    assert.equal(tasks.length, 2);
    for (const n of ['c2', 'c3', 'c4'])
      assert.equal((await call(r, made.dev, 'DELETE', `/v1/tenants/acme/projects/web/containers/${n}?force=true`)).status, 204);
  } finally {
    await r.close();
  }
});

test('a second migration into the same prefix is refused and changes nothing; the SQLite file is left as it was', async () => {
  const to = { endpoints: [etcd.endpoint], prefix: 'one/' };
  const store = openEtcdStore(to);
  cleanups.push(() => store.close());
  const before = { revision: await store.revision(), occupancy: await store.occupancy() };
  await assert.rejects(migrateControllerToEtcd({ from: made.file, to }), (err) => {
    assert.ok(isBosonError(err, 'STORE_NOT_EMPTY'), String(err));
    assert.match((err as Error).message, /already holds \d+ record\(s\).*nothing was written/);
    return true;
  });
  assert.deepEqual({ revision: await store.revision(), occupancy: await store.occupancy() }, before);
  const sqlite = openStateStore(made.dir, { file: 'controller.db' });
  try {
    assert.deepEqual(contents(sqlite.snapshot().records), contents(made.records));
  } finally {
    sqlite.close();
  }
});

test('a copy that fails part way removes what it wrote; an unreachable etcd or a missing file is a clear error', async () => {
  const to = { endpoints: [etcd.endpoint], prefix: 'broken/' };
  let batchesDone = 0;
  await assert.rejects(
    migrateControllerToEtcd({
      from: made.file,
      to,
      batchSize: 5,
      // A stand-in for a connection lost after the first batches.
      onProgress: () => {
        if (++batchesDone === 3) throw new Error('lost the connection');
      },
    }),
    (err) => {
      assert.match((err as Error).message, /failed, and what it wrote was removed again: lost the connection/);
      return true;
    },
  );
  const store = openEtcdStore(to);
  cleanups.push(() => store.close());
  assert.deepEqual(await store.occupancy(), { records: 0, events: 0 });
  // And so a migration into it runs again.
  assert.equal((await migrateControllerToEtcd({ from: made.file, to })).records, made.records.length);

  const nobody = `http://127.0.0.1:${await freePort()}`;
  await assert.rejects(migrateControllerToEtcd({ from: made.file, to: { endpoints: [nobody], prefix: 'x/' } }), (err) => {
    assert.ok(isBosonError(err, 'STORE_UNAVAILABLE'), String(err));
    assert.ok((err as Error).message.includes(`etcd ${nobody}`), (err as Error).message);
    return true;
  });
  await assert.rejects(
    migrateControllerToEtcd({ from: path.join(made.dir, 'nothing.db'), to }),
    (err) => isBosonError(err, 'INVALID_ARGUMENT') && /no controller database at/.test((err as Error).message),
  );
  // A machine's database is not a controller's: refused, nothing written.
  const machineDb = openStateStore(made.dir);
  machineDb.put('container', 'c-1', { id: 'c-1' });
  machineDb.close();
  await assert.rejects(
    migrateControllerToEtcd({ from: path.join(made.dir, 'machine.db'), to: { endpoints: [etcd.endpoint], prefix: 'machine/' } }),
    (err) => isBosonError(err, 'INVALID_ARGUMENT') && /is not a Boson controller's database/.test((err as Error).message),
  );
  const untouched = openEtcdStore({ endpoints: [etcd.endpoint], prefix: 'machine/' });
  cleanups.push(() => untouched.close());
  assert.deepEqual(await untouched.occupancy(), { records: 0, events: 0 });
});

/** A host of directories only, for the CLI (no BOSON_CONTROLLER_ETCD settings from outside), removed after the suite. */
async function bareHost(): Promise<TestHost> {
  const host = await makeBareHost('boson-ctlmig-');
  cleanups.push(host.cleanup);
  return host;
}

test('boson controller migrate: refused while the controller runs, then copies; boson controller --etcd has it all', async () => {
  const host = await bareHost();
  const ok = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> => {
    const res = await runBoson({ ...host, env: { ...host.env, ...env } }, args);
    assert.equal(res.code, 0, `boson ${args.join(' ')} exited ${res.code}: ${res.stderr}${res.stdout.toString()}`);
    return res.stdout.toString();
  };
  const first = await startUntil(host, ['controller'], 'listening');
  cleanups.push(async () => void (first.child.exitCode === null && first.child.kill('SIGKILL')));
  await ok(['tenant', 'create', 'acme', '--limit', 'vm.count=10']);
  await ok(['project', 'create', 'acme/web', '--limit', 'vm.count=4']);
  // While the controller runs on controller.db: refused, nothing written.
  const busy = await runBoson(host, ['controller', 'migrate', '--to-etcd', etcd.endpoint, '--etcd-prefix', 'cli/']);
  assert.equal(busy.code, ERROR_CATALOGUE.DAEMON_ALREADY_RUNNING.exit, busy.stderr);
  assert.match(busy.stderr, /a Boson controller or migration \(pid \d+\) is using .*controller\.db/);
  const store = openEtcdStore({ endpoints: [etcd.endpoint], prefix: 'cli/' });
  cleanups.push(() => store.close());
  assert.deepEqual(await store.occupancy(), { records: 0, events: 0 });
  first.child.kill('SIGTERM');
  assert.equal((await first.result).code, 0);

  // Stopped: the copy, with its summary.
  const out = await ok(['controller', 'migrate', '--to-etcd', etcd.endpoint, '--etcd-prefix', 'cli/']);
  assert.match(out, /^Copied \d+ record\(s\) and 0 event\(s\) from .*controller\.db to etcd http:\/\/127\.0\.0\.1:\d+ \(prefix cli\/\):$/m);
  assert.match(out, /^ {2}ctl\.tenant +2$/m);
  assert.match(out, /^ {2}ctl\.project +2$/m);
  assert.match(out, /Start the controller on it: boson controller --etcd http:\/\/127\.0\.0\.1:\d+ --etcd-prefix cli\//);
  // Again: refused, with the code of a non-empty target (as JSON asked or not).
  const again = await runBoson(host, ['controller', 'migrate', '--to-etcd', etcd.endpoint, '--etcd-prefix', 'cli/', '--json']);
  assert.equal(again.code, ERROR_CATALOGUE.STORE_NOT_EMPTY.exit, again.stderr);
  assert.match(again.stderr, /already holds/);
  // --json, into another prefix (given by the setting): the summary as data.
  const data = JSON.parse(
    await ok(['controller', 'migrate', '--to-etcd', etcd.endpoint, '--json'], { BOSON_CONTROLLER_ETCD_PREFIX: 'cli2/' }),
  ) as {
    records: number;
    kinds: Record<string, number>;
    to: { prefix: string };
  };
  assert.equal(data.to.prefix, 'cli2/');
  assert.equal(data.kinds['ctl.tenant'], 2);
  assert.equal(
    data.records,
    Object.values(data.kinds).reduce((a, b) => a + b, 0),
  );
  const badUrl = await runBoson(host, ['controller', 'migrate', '--to-etcd', 'etcd.example:2379']);
  assert.equal(badUrl.code, ERROR_CATALOGUE.INVALID_ARGUMENT.exit, badUrl.stderr);
  assert.match(badUrl.stderr, /--to-etcd: "etcd\.example:2379" is not an etcd client URL/);

  // The controller on etcd has the state.
  await rm(path.join(host.stateDir, 'controller.db'));
  const second = await startUntil(host, ['controller', '--etcd', etcd.endpoint, '--etcd-prefix', 'cli/'], 'listening');
  cleanups.push(async () => void (second.child.exitCode === null && second.child.kill('SIGKILL')));
  const project = JSON.parse(await ok(['project', 'show', 'acme/web', '--json'])) as { limits: Array<{ key: string; value: number }> };
  assert.deepEqual(
    project.limits.map((l) => [l.key, l.value]),
    [['vm.count', 4]],
  );
  second.child.kill('SIGTERM');
  assert.equal((await second.result).code, 0);
  await assert.rejects(access(path.join(host.stateDir, 'controller.db')), 'the controller on etcd made no controller.db');

  // A prefix whose migration did not complete: a controller does not start on it.
  const partial = openEtcdStore({ endpoints: [etcd.endpoint], prefix: 'partial/' });
  cleanups.push(() => partial.close());
  await partial.put(MIGRATION_MARKER.kind, MIGRATION_MARKER.key, { from: '/somewhere/controller.db', startedAt: new Date().toISOString() });
  const refused = await runBoson(host, ['controller', '--etcd', etcd.endpoint, '--etcd-prefix', 'partial/']);
  assert.equal(refused.code, ERROR_CATALOGUE.STORE_MIGRATION_INCOMPLETE.exit, refused.stderr);
  assert.match(refused.stderr, /holds a migration that has not completed \(from \/somewhere\/controller\.db/);
});

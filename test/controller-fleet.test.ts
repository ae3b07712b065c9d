/**
 * The fleet end to end with real parts except QEMU: a controller (its REST API on TCP with TLS, as a fleet's
 * controller serves it) and two machine daemons' REST APIs (over the fake VMM, each on its own TCP port with mutual
 * TLS from the certificates issued at join). Machines join with a join token (the controller's CA pinned by it);
 * the controller then reaches them only over mTLS. Spread places one container on each machine, binpack both on one;
 * a drained machine gets nothing new; a machine that stops answering goes LOST and comes back READY; another
 * tenant's containers are 404; an over-quota create names "quota" and the key.
 */
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { asyncStore, MemoryStateStore, PACKAGE_ROOT, serveTcpEndpoint } from '../src/common/index.ts';
import {
  buildControllerApi,
  Controller,
  ControllerClient,
  joinController,
  makeKeyPair,
  policyTable,
  openFleet,
  parseQuotaItem,
  type OpenFleet,
} from '../src/controller/index.ts';
import { fleetRouteEntries } from '../src/controller/fleet/routes.ts';
import { buildPortApi } from '../src/machine/api/server.ts';
import { fakeMachineApi, type FakeMachineApi } from './fake-machine-api.ts';
import { BUSYBOX_LAYOUT as LAYOUT, freePort } from './helpers.ts';

type FleetC = { machineId: string };
const LOST_AFTER_MS = 60_000;

let clockMs = Date.now();
let ctl: Controller;
let fleet: OpenFleet;
let api: FastifyInstance;
let ctlTcp: Server;
let ctlUrl = '';
let ctlCa = '';
let routes: Array<{ method: string; url: string; policy?: unknown }> = [];
const tok: Record<string, string> = {};

interface TestMachine {
  id: string;
  dir: string;
  port: number;
  app: FastifyInstance;
  runtime: FakeMachineApi['runtime'];
  tcp?: Server;
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
}
const machines: TestMachine[] = [];

async function call(
  who: string | null,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: () => any; body: string }> {
  const res = await api.inject({
    method: method as 'GET',
    url,
    headers: { ...(who ? { authorization: `Bearer ${tok[who]}` } : {}), ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  });
  return { status: res.statusCode, body: res.body, json: () => res.json() };
}

async function serveMachine(m: TestMachine): Promise<void> {
  m.tcp = await serveTcpEndpoint({ host: '127.0.0.1', port: m.port, tls: m.tls }, m.app.server);
}

async function startMachine(name: string, token: string, labels: Record<string, string>): Promise<TestMachine> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `boson-fleet-${name}-`));
  const { runtime, app } = await fakeMachineApi(dir);
  await app.listen({ path: path.join(dir, 'api.sock') });
  const port = await freePort();
  const joined = await joinController({
    url: ctlUrl,
    token,
    address: `127.0.0.1:${port}`,
    capacity: { cpus: 4, memoryBytes: 4 * 1024 ** 3, diskBytes: 100 * 1024 ** 3 },
    labels,
    zone: 'z1',
  });
  assert.match(joined.id, /^m-[0-9a-f]{12}$/);
  const m: TestMachine = {
    id: joined.id,
    dir,
    port,
    app,
    runtime,
    tls: { ca: Buffer.from(joined.ca), cert: Buffer.from(joined.cert), key: Buffer.from(joined.key) },
  };
  machines.push(m);
  await serveMachine(m);
  return m;
}

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  ctl = new Controller(asyncStore(new MemoryStateStore()));
  await ctl.bootstrap();
  // The controller's TCP endpoint: a server certificate from its own CA (as `boson tls init` would make).
  const bootstrapFleet = await openFleet(ctl.store, ctl.tenants, { lostAfterMs: LOST_AFTER_MS, checkIntervalMs: 0, checkTimeoutMs: 2000 });
  await bootstrapFleet.close();
  const serverKeys = await makeKeyPair();
  const serverCert = await bootstrapFleet.fleet.ca.issueMachineCert(serverKeys.publicKey, 'controller', '127.0.0.1');
  const serverCa = bootstrapFleet.fleet.ca.cert;
  ctlCa = serverCa;
  fleet = await openFleet(ctl.store, ctl.tenants, {
    lostAfterMs: LOST_AFTER_MS,
    checkIntervalMs: 0,
    checkTimeoutMs: 2000,
    serverCaPem: serverCa,
    clock: () => clockMs,
    machineApi: async (machine) => {
      const app = await buildPortApi(machine);
      return { server: app.server, close: () => app.close() };
    },
  });
  ({ app: api, routes } = await buildControllerApi(ctl, undefined, fleet.routes));
  await api.ready();
  const port = await freePort();
  ctlTcp = await serveTcpEndpoint(
    { host: '127.0.0.1', port, tls: { ca: Buffer.from(serverCa), cert: Buffer.from(serverCert), key: Buffer.from(serverKeys.key) } },
    api.server,
    undefined,
    [],
    'optional',
  );
  ctlUrl = `https://127.0.0.1:${port}`;

  await ctl.identity.createUser('root');
  tok.root = (await ctl.identity.createToken('root', { role: 'system-admin' })).token;
  for (const t of ['acme', 'bolt']) {
    await ctl.tenants.createTenant(t, [parseQuotaItem('vm.count=10')]);
    await ctl.tenants.createProject(t, 'web', [parseQuotaItem('vm.count=3')]);
    await ctl.identity.createUser(`${t}-dev`, t);
    tok[t] = (await ctl.identity.createToken(`${t}-dev`, { role: 'member', tenant: t, project: 'web' })).token;
  }
});

after(async () => {
  for (const m of machines) {
    m.tcp?.close();
    await m.app.close().catch(() => undefined);
    await m.runtime.close().catch(() => undefined);
    await rm(m.dir, { recursive: true, force: true });
  }
  await fleet?.close();
  ctlTcp?.close();
  await api?.close();
});

test('machines join with a join token (only a system admin makes one; a wrong one is refused) and are READY', async () => {
  assert.equal((await call('acme', 'POST', '/v1/machine-tokens', {})).status, 403);
  const made = await call('root', 'POST', '/v1/machine-tokens', { ttlSeconds: 600 });
  assert.equal(made.status, 201, made.body);
  const token = made.json().token as string;
  assert.match(token, /^bjoin_[0-9a-f]{12}\.[0-9a-f]{48}\.[0-9a-f]{64}$/);
  // The token's secret is not stored; listing shows no secret.
  const listed = await call('root', 'GET', '/v1/machine-tokens');
  assert.ok(!listed.body.includes(token.split('.')[1]!));
  const forged = token.replace(/\.([0-9a-f])/, (_m, c: string) => `.${c === 'a' ? 'b' : 'a'}`);
  await assert.rejects(
    joinController({ url: ctlUrl, token: forged, address: '127.0.0.1:1', capacity: { cpus: 1, memoryBytes: 1 << 30, diskBytes: 0 } }),
    (err: any) => err.code === 'JOIN_TOKEN_INVALID',
  );
  await startMachine('a', token, { disk: 'ssd' });
  await startMachine('b', token, { disk: 'hdd' });
  // Revoked, the token joins nothing more; the machines that joined with it stay.
  const id = token.slice('bjoin_'.length, 'bjoin_'.length + 12);
  assert.equal((await call('root', 'DELETE', `/v1/machine-tokens/${id}`)).status, 204);
  assert.equal((await call('root', 'DELETE', `/v1/machine-tokens/${id}`)).status, 404);
  await assert.rejects(
    joinController({ url: ctlUrl, token, address: '127.0.0.1:1', capacity: { cpus: 1, memoryBytes: 1 << 30, diskBytes: 0 } }),
    (err: any) => err.code === 'JOIN_TOKEN_INVALID',
  );
  const ls = await call('root', 'GET', '/v1/machines');
  assert.equal(ls.status, 200);
  const list = ls.json() as Array<{ id: string; state: string; address: string }>;
  assert.deepEqual(list.map((m) => m.state).sort(), ['READY', 'READY']);
  assert.deepEqual(new Set(list.map((m) => m.id)), new Set(machines.map((m) => m.id)));
  // Tenants do not see machines.
  assert.equal((await call('acme', 'GET', '/v1/machines')).status, 403);
  // Health checks over mTLS reach both.
  await fleet.checker.checkAll();
  for (const m of (await call('root', 'GET', '/v1/machines')).json() as Array<{ state: string; lastError?: string }>) {
    assert.equal(m.state, 'READY');
    assert.equal(m.lastError, undefined);
  }
});

const create = (who: string, name: string, policy: 'spread' | 'binpack') =>
  call(who, 'POST', `/v1/tenants/${who}/projects/web/containers`, {
    spec: { image: 'busybox', name, process: { args: ['echo', `hello from ${name}`] } },
    policy,
  });

test('spread puts one container on each machine; binpack puts the next two together; the quota is exact', async () => {
  const a = await create('acme', 's1', 'spread');
  assert.equal(a.status, 201, a.body);
  const b = await create('acme', 's2', 'spread');
  assert.equal(b.status, 201, b.body);
  assert.notEqual(a.json().machineId, b.json().machineId, 'spread: two machines');
  assert.equal(a.json().name, 's1');

  // The container exists on the machine that was chosen, and only there.
  const onMachine = machines.find((m) => m.id === a.json().machineId)!;
  const local = await onMachine.runtime.list({}, { all: true });
  assert.ok(local.some((c) => c.config.labels['boson.controller.id'] === a.json().id));

  const c = await create('acme', 's3', 'spread');
  assert.equal(c.status, 201, c.body);
  // vm.count=3 is used up: a fourth names "quota" and the key, and nothing is created.
  const d = await create('acme', 's4', 'spread');
  assert.equal(d.status, 507, d.body);
  assert.match(d.json().detail, /quota/);
  assert.match(d.json().detail, /vm\.count/);
  const listed = await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers');
  assert.deepEqual((listed.json() as Array<{ name: string }>).map((x) => x.name).sort(), ['s1', 's2', 's3']);

  // Logs come from the machine that holds it.
  const logs = await call('acme', 'GET', `/v1/tenants/acme/projects/web/containers/s1/logs`);
  assert.equal(logs.status, 200, logs.body);

  for (const n of ['s1', 's2', 's3']) {
    const del = await call('acme', 'DELETE', `/v1/tenants/acme/projects/web/containers/${n}?force=true`);
    assert.equal(del.status, 204, del.body);
  }
  assert.equal((await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers')).json().length, 0);
  assert.equal((await ctl.tenants.getProject('acme', 'web')).usage.find((u) => u.key === 'vm.count')?.value ?? 0, 0);

  const p = await create('acme', 'p1', 'binpack');
  const q = await create('acme', 'p2', 'binpack');
  assert.equal(p.status, 201, p.body);
  assert.equal(q.status, 201, q.body);
  assert.equal(p.json().machineId, q.json().machineId, 'binpack: one machine');
  for (const n of ['p1', 'p2'])
    assert.equal((await call('acme', 'DELETE', `/v1/tenants/acme/projects/web/containers/${n}?force=true`)).status, 204);
});

test('two creates racing for one name: one container, the other NAME_IN_USE, and its quota back', async () => {
  const [a, b] = await Promise.all([create('acme', 'dup', 'spread'), create('acme', 'dup', 'spread')]);
  assert.deepEqual([a.status, b.status].sort(), [201, 409], `${a.body} ${b.body}`);
  const listed = (await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers')).json() as Array<{ name: string }>;
  assert.deepEqual(
    listed.map((c) => c.name),
    ['dup'],
  );
  assert.equal((await ctl.tenants.getProject('acme', 'web')).usage.find((u) => u.key === 'vm.count')?.value, 1);
  // Nothing is left on the machines but the one container.
  const everywhere = (await Promise.all(machines.map((m) => m.runtime.list({}, { all: true })))).flat();
  assert.equal(everywhere.length, 1);
  assert.equal((await call('acme', 'DELETE', '/v1/tenants/acme/projects/web/containers/dup?force=true')).status, 204);
  // The name is free again.
  const again = await create('acme', 'dup', 'spread');
  assert.equal(again.status, 201, again.body);
  assert.equal((await call('acme', 'DELETE', '/v1/tenants/acme/projects/web/containers/dup?force=true')).status, 204);
});

test("another tenant's containers are not found, whatever the route", async () => {
  const mine = await create('acme', 'secret', 'spread');
  assert.equal(mine.status, 201, mine.body);
  const id = mine.json().id as string;
  for (const ref of ['secret', id]) {
    // bolt's member asking in acme's project: 404 (no standing there).
    assert.equal((await call('bolt', 'GET', `/v1/tenants/acme/projects/web/containers/${ref}`)).status, 404);
    // bolt's member asking in its own project for acme's container: 404 too.
    for (const [method, suffix] of [
      ['GET', ''],
      ['GET', '/logs'],
      ['POST', '/stop'],
      ['DELETE', '?force=true'],
    ] as const) {
      const r = await call('bolt', method, `/v1/tenants/bolt/projects/web/containers/${ref}${suffix}`);
      assert.equal(r.status, 404, `${method} ${suffix}: ${r.body}`);
    }
  }
  assert.equal((await call('bolt', 'GET', '/v1/tenants/bolt/projects/web/containers')).json().length, 0);
  // Every fleet route of a project, walked by another tenant's member: 404, whatever the method.
  const projectRoutes = fleetRouteEntries(routes).filter((r) => r.url.includes('/tenants/:tenant/projects/:project'));
  assert.ok(projectRoutes.length >= 8);
  for (const r of projectRoutes) {
    let url = r.url.replace(':tenant', 'acme').replace(':project', 'web').replace(':ref', 'secret').replace('*', 'v1/containers/secret');
    const body = url.endsWith('/containers')
      ? r.method === 'POST'
        ? { spec: { image: 'busybox' } }
        : undefined
      : url.endsWith('/docker-certs')
        ? { publicKey: 'x' }
        : url.endsWith('/lease') && r.method === 'POST'
          ? { ttlSeconds: 60 }
          : undefined;
    // Requests that would be valid in bolt's own project: only the scope refuses them.
    if (url.endsWith('/wait')) url += '?state=running&timeout=0';
    if (url.endsWith('/containers') && r.method === 'GET') url += '?label=tier=web';
    const res = await call('bolt', r.method, url, body);
    assert.equal(res.status, 404, `${r.method} ${r.url}: ${res.body}`);
  }
  // The same routes on acme's container asked for in bolt's own project: 404 (lease, wait, filters included).
  for (const [method, suffix, body] of [
    ['POST', '/lease', { ttlSeconds: 60 }],
    ['GET', '/lease', undefined],
    ['DELETE', '/lease', undefined],
    ['GET', '/wait?state=running&timeout=0', undefined],
    ['POST', '/start', undefined],
  ] as const) {
    const r = await call('bolt', method, `/v1/tenants/bolt/projects/web/containers/${id}${suffix}`, body);
    assert.equal(r.status, 404, `${method} ${suffix}: ${r.body}`);
  }
  // And every machine route but join and the CA is the system admin's: 403 for a tenant's member.
  for (const r of fleetRouteEntries(routes).filter(
    (x) => x.url.startsWith('/v1/machine') && (x.policy as { allow: string }).allow !== 'public',
  )) {
    const res = await call(
      'bolt',
      r.method,
      r.url.replace(':id', r.url.startsWith('/v1/machine-tokens') ? 'aaaaaaaaaaaa' : machines[0]!.id),
      r.method === 'POST' ? {} : undefined,
    );
    assert.equal(res.status, 403, `${r.method} ${r.url}: ${res.body}`);
  }
  // The project's machine API over the controller's TCP endpoint (TLS, a bearer token), as `boson --project` uses it
  // from another host: acme's member sees its container; bolt's member finds no such project.
  const viaTcp = (who: string) =>
    new ControllerClient({ url: ctlUrl, token: tok[who], tls: { ca: Buffer.from(ctlCa) } }).projectMachine('acme', 'web');
  const listed = await viaTcp('acme').request<Array<{ name: string }>>('GET', '/v1/containers?all=1');
  assert.deepEqual(
    listed.map((c) => c.name),
    ['secret'],
  );
  await assert.rejects(viaTcp('bolt').request('GET', '/v1/containers?all=1'), (e: { code?: string }) => e.code === 'PROJECT_NOT_FOUND');
  // bolt's own project is a machine API of its own (a second one in this controller), without acme's container.
  const boltOwn = new ControllerClient({ url: ctlUrl, token: tok.bolt, tls: { ca: Buffer.from(ctlCa) } }).projectMachine('bolt', 'web');
  assert.deepEqual(await boltOwn.request('GET', '/v1/containers?all=1'), []);
  await assert.rejects(
    viaTcp('bolt').request('POST', `/v1/containers/${id}/stop`),
    (e: { code?: string }) => e.code === 'PROJECT_NOT_FOUND',
  );
  assert.equal((await call('acme', 'GET', `/v1/tenants/acme/projects/web/containers/secret`)).status, 200);
  assert.equal((await call('acme', 'DELETE', `/v1/tenants/acme/projects/web/containers/secret?force=true`)).status, 204);
});

test("a project's volumes: named in the project, made on a machine at first use, containers follow them there; in use is 409; quota counts them", async () => {
  const acme = fleet.projectMachine('acme', 'web');
  const bolt = fleet.projectMachine('bolt', 'web');
  const ctx = { principal: 'test' };
  const vol = (name: string) => ({ type: 'volume' as const, name, destination: '/data', readOnly: false });
  const onMachines = async (): Promise<string[]> =>
    (
      await Promise.all(
        machines.map(async (m) => (await m.runtime.volumes.list()).map((v) => `${m.id} ${v.labels['boson.controller.name']}`)),
      )
    )
      .flat()
      .sort();
  // Both projects have a "data"; each sees only its own, and neither lives on a machine yet.
  await acme.volumes.create(ctx, { name: 'data', labels: { team: 'a' } });
  await bolt.volumes.create(ctx, { name: 'data', labels: { team: 'b' } });
  assert.deepEqual(
    (await acme.volumes.list(ctx)).map((v) => [v.name, v.labels.team]),
    [['data', 'a']],
  );
  assert.deepEqual(
    (await bolt.volumes.list(ctx)).map((v) => [v.name, v.labels.team]),
    [['data', 'b']],
  );
  assert.deepEqual(await onMachines(), []);
  // Creating an existing name returns it (Docker's rule), not a second one.
  await acme.volumes.create(ctx, { name: 'data' });
  assert.equal((await acme.volumes.list(ctx)).length, 1);

  // The first container made it on its machine; the second (spread would pick the other machine) follows it there.
  const a1 = await acme.containers.create(ctx, { image: 'busybox', name: 'a1', mounts: [vol('data')] });
  const a2 = await acme.containers.create(ctx, { image: 'busybox', name: 'a2', mounts: [vol('data')] });
  const [m1, m2] = [(a1 as unknown as FleetC).machineId, (a2 as unknown as FleetC).machineId];
  assert.equal(m1, m2, 'a container follows its volume');
  assert.deepEqual(await onMachines(), [`${m1} data`]);
  // The project sees its own volume's name in the container's mounts.
  assert.deepEqual(
    (await acme.containers.inspect(ctx, 'a1')).mounts.map((m) => (m.type === 'volume' ? m.name : '')),
    ['data'],
  );
  // bolt's "data" is another volume: bolt's container does not see acme's, and acme's volume knows only acme's users.
  const b1 = await bolt.containers.create(ctx, { image: 'busybox', name: 'b1', mounts: [vol('data')] });
  assert.equal((await onMachines()).length, 2);
  assert.deepEqual((await acme.volumes.inspect(ctx, 'data')).usedBy.sort(), [a1.id, a2.id].sort());
  assert.deepEqual((await bolt.volumes.inspect(ctx, 'data')).usedBy, [b1.id]);
  await assert.rejects(bolt.volumes.inspect(ctx, 'nothing'), { code: 'VOLUME_NOT_FOUND' });

  // A volume on the other machine and "data" together cannot be: a container runs on one machine.
  await acme.containers.remove(ctx, 'a2', { force: true });
  const other = machines.find((m) => m.id !== m1)!.id;
  await fleet.containers.create(
    'acme',
    'web',
    { image: 'busybox', name: 'o1', mounts: [vol('elsewhere')] },
    {
      start: false,
      constraints: [{ type: 'machine', ids: [other] }],
    },
  );
  await assert.rejects(
    acme.containers.create(ctx, { image: 'busybox', name: 'split', mounts: [vol('data'), { ...vol('elsewhere'), destination: '/e' }] }),
    (err: Error & { code?: string; kind?: string }) =>
      err.code === 'PROJECT_RESOURCES_SPLIT' && err.kind === 'FailedPrecondition' && /data on/.test(err.message),
  );
  assert.equal((await acme.containers.list(ctx, { all: true })).length, 2, 'the refused container is not created');

  // In use: 409 (FailedPrecondition), and nothing changes.
  await assert.rejects(acme.volumes.remove(ctx, 'data'), { code: 'VOLUME_IN_USE' });
  for (const n of ['a1', 'o1']) await acme.containers.remove(ctx, n, { force: true });
  await bolt.containers.remove(ctx, 'b1', { force: true });
  // Unused: removed with the machine's copy; bolt's is untouched until bolt removes it.
  await acme.volumes.remove(ctx, 'data');
  await acme.volumes.remove(ctx, 'elsewhere');
  assert.deepEqual(await acme.volumes.list(ctx), []);
  assert.equal((await onMachines()).length, 1);
  await bolt.volumes.remove(ctx, 'data');
  assert.deepEqual(await onMachines(), []);

  // Two containers racing to use a volume that lives nowhere yet: one binds it, the other follows (never two copies).
  const [r1, r2] = await Promise.all(
    ['r1', 'r2'].map((n) => acme.containers.create(ctx, { image: 'busybox', name: n, mounts: [vol('raced')] })),
  );
  assert.equal((r1 as unknown as FleetC).machineId, (r2 as unknown as FleetC).machineId, 'both on the machine the volume was bound to');
  assert.equal((await onMachines()).length, 1);
  for (const n of ['r1', 'r2']) await acme.containers.remove(ctx, n, { force: true });
  await acme.volumes.remove(ctx, 'raced');
  assert.deepEqual(await onMachines(), []);

  // volume.count is a quota key: a project limited to one volume gets a typed quota error for a second.
  await ctl.tenants.createTenant('vq', [parseQuotaItem('vm.count=2'), parseQuotaItem('volume.count=1')]);
  await ctl.tenants.createProject('vq', 'p', [parseQuotaItem('vm.count=2'), parseQuotaItem('volume.count=1')]);
  const vq = fleet.projectMachine('vq', 'p');
  await vq.volumes.create(ctx, { name: 'one' });
  await assert.rejects(
    vq.volumes.create(ctx, { name: 'two' }),
    (err: Error & { code?: string }) => err.code === 'QUOTA_EXCEEDED' && /volume\.count/.test(err.message),
  );
  // Nor by a container that would make one implicitly (nothing is created).
  await assert.rejects(vq.containers.create(ctx, { image: 'busybox', name: 'x', mounts: [vol('three')] }), { code: 'QUOTA_EXCEEDED' });
  assert.deepEqual((await vq.containers.list(ctx, { all: true })).length, 0);
  await vq.volumes.remove(ctx, 'one');
  await vq.volumes.create(ctx, { name: 'two' });
  await vq.volumes.remove(ctx, 'two');
  // Bind mounts of a machine's directories are not offered through a project.
  await assert.rejects(
    acme.containers.create(ctx, { image: 'busybox', mounts: [{ type: 'bind', source: '/etc', destination: '/x', readOnly: true }] }),
    { code: 'INVALID_ARGUMENT' },
  );
});

test("a project's container attached before it starts (docker run's order) gets its output through the machine's API", async () => {
  const acme = fleet.projectMachine('acme', 'web');
  const ctx = { principal: 'test' };
  const c = await acme.containers.create(ctx, { image: 'busybox', name: 'att', process: { args: ['echo', 'hello-attach'] } });
  const got: string[] = [];
  const sink = { stdout: (d: Buffer) => void got.push(d.toString()), stderr: (d: Buffer) => void got.push(d.toString()) };
  const ac = new AbortController();
  const session = await acme.containers.attach(ctx, c.id, sink, ac.signal);
  await acme.containers.start(ctx, c.id);
  const timer = setTimeout(() => ac.abort(), 30_000);
  await session.done;
  clearTimeout(timer);
  assert.match(got.join(''), /hello-attach/);
  await acme.containers.remove(ctx, c.id, { force: true });
});

test('leases: while one holds a container, its changes need the nonce (409 CONTAINER_LEASED otherwise, on the Docker endpoint too); released or expired, it counts for nothing', async () => {
  await ctl.identity.createUser('acme-viewer', 'acme').catch(() => undefined);
  tok['acme-viewer'] = (await ctl.identity.createToken('acme-viewer', { role: 'viewer', tenant: 'acme', project: 'web' })).token;
  const base = '/v1/tenants/acme/projects/web/containers';
  const made = await call('acme', 'POST', base, { spec: { image: 'busybox', name: 'leased', process: { args: ['sleep', '600'] } } });
  assert.equal(made.status, 201, made.body);
  // A viewer may see a lease, not take one.
  assert.equal((await call('acme-viewer', 'POST', `${base}/leased/lease`, { ttlSeconds: 60 })).status, 403);
  assert.equal((await call('acme-viewer', 'GET', `${base}/leased/lease`)).json().code, 'LEASE_NOT_FOUND');
  const got = await call(
    'acme',
    'POST',
    `${base}/leased/lease`,
    { ttlSeconds: 60, description: 'deploy 42' },
    { 'idempotency-key': 'lease-1' },
  );
  assert.equal(got.status, 201, got.body);
  const { nonce, owner, expiresAt } = got.json() as { nonce: string; owner: string; expiresAt: string };
  // The nonce is a secret shown once: not in the store, not kept with the idempotency key (a repeat is refused).
  assert.ok(!JSON.stringify(await ctl.store.list('ctl.container-lease')).includes(nonce));
  assert.ok(!JSON.stringify(await ctl.store.list('ctl.idempotency')).includes(nonce));
  const repeat = await call(
    'acme',
    'POST',
    `${base}/leased/lease`,
    { ttlSeconds: 60, description: 'deploy 42' },
    { 'idempotency-key': 'lease-1' },
  );
  assert.equal(repeat.json().code, 'IDEMPOTENCY_KEY_REUSED');
  assert.equal(owner, 'acme-dev');
  assert.ok(Date.parse(expiresAt) > Date.now() + 50_000);
  // GET shows the lease (never the nonce), and so does inspect.
  const shown = await call('acme-viewer', 'GET', `${base}/leased/lease`);
  assert.equal(shown.status, 200, shown.body);
  assert.deepEqual(shown.json().description, 'deploy 42');
  assert.ok(!shown.body.includes(nonce));
  const inspected = await call('acme', 'GET', `${base}/leased`);
  assert.equal(inspected.json().lease.owner, 'acme-dev');
  assert.ok(!inspected.body.includes(nonce));
  // A second lease, a change without the nonce or with another: 409 CONTAINER_LEASED, the container unchanged.
  const second = await call('acme', 'POST', `${base}/leased/lease`, { ttlSeconds: 60 });
  assert.equal(second.status, 409, second.body);
  assert.equal(second.json().code, 'CONTAINER_LEASED');
  for (const [method, suffix, headers] of [
    ['POST', '/stop?t=0', {}],
    ['POST', '/start', {}],
    ['DELETE', '?force=true', {}],
    ['POST', '/stop?t=0', { 'boson-lease-nonce': 'f'.repeat(32) }],
    ['DELETE', '/lease', { 'boson-lease-nonce': 'f'.repeat(32) }],
  ] as const) {
    const r = await call('acme', method, `${base}/leased${suffix}`, undefined, headers);
    assert.equal(r.status, 409, `${method} ${suffix}: ${r.body}`);
    assert.equal(r.json().code, 'CONTAINER_LEASED');
    assert.equal(r.json().details.owner, 'acme-dev');
  }
  assert.equal((await call('acme', 'GET', `${base}/leased`)).json().state, 'running');
  // The project's Docker endpoint cannot carry a nonce: its changes are refused while the lease holds.
  const docker = fleet.projectMachine('acme', 'web');
  await assert.rejects(docker.containers.stop({ principal: 'acme-dev' }, 'leased', 0), (e: any) => e.code === 'CONTAINER_LEASED');
  await assert.rejects(docker.containers.kill({ principal: 'acme-dev' }, 'leased'), (e: any) => e.code === 'CONTAINER_LEASED');
  await assert.rejects(
    docker.containers.remove({ principal: 'acme-dev' }, 'leased', { force: true }),
    (e: any) => e.code === 'CONTAINER_LEASED',
  );
  // With the nonce: stop, wait for stopped, start, wait for running.
  const withNonce = { 'boson-lease-nonce': nonce };
  assert.equal((await call('acme', 'POST', `${base}/leased/stop?t=0`, undefined, withNonce)).status, 204);
  const stopped = await call('acme', 'GET', `${base}/leased/wait?state=stopped&timeout=20`);
  assert.equal(stopped.status, 200, stopped.body);
  assert.notEqual(stopped.json().state, 'running');
  // Waiting for running while it is stopped: 408 with its state, after the timeout.
  const t0 = Date.now();
  const late = await call('acme', 'GET', `${base}/leased/wait?state=running&timeout=1`);
  assert.equal(late.status, 408, late.body);
  assert.equal(late.json().code, 'CONTAINER_WAIT_TIMEOUT');
  assert.equal(late.json().details.state, stopped.json().state);
  assert.ok(Date.now() - t0 >= 900, 'the wait lasted its timeout');
  // A wait that is running when the start comes answers then (the machine's events, not the timeout).
  const waiting = call('acme', 'GET', `${base}/leased/wait?state=running&timeout=60`);
  await new Promise((r) => setTimeout(r, 200));
  const t1 = Date.now();
  assert.equal((await call('acme', 'POST', `${base}/leased/start`, undefined, withNonce)).status, 204);
  const running = await waiting;
  assert.equal(running.status, 200, running.body);
  assert.equal(running.json().state, 'running');
  assert.equal(running.json().container.name, 'leased');
  assert.ok(Date.now() - t1 < 4000, `answered ${Date.now() - t1} ms after the start, before the 5 s re-check`);
  // The holder extends it with its nonce; then releases it; then anyone may change the container again.
  const ext = await call('acme', 'POST', `${base}/leased/lease`, { ttlSeconds: 120 }, withNonce);
  assert.equal(ext.status, 201, ext.body);
  assert.equal(ext.json().nonce, nonce);
  assert.equal((await call('acme', 'DELETE', `${base}/leased/lease`, undefined, withNonce)).status, 204);
  assert.equal((await call('acme', 'GET', `${base}/leased/lease`)).status, 404);
  assert.equal((await call('acme', 'DELETE', `${base}/leased/lease`, undefined, withNonce)).json().code, 'LEASE_NOT_FOUND');
  // A lease of 1 s expires by itself: no stale lease blocks the container.
  assert.equal((await call('acme', 'POST', `${base}/leased/lease`, { ttlSeconds: 1 })).status, 201);
  assert.equal((await call('acme', 'POST', `${base}/leased/stop?t=0`)).status, 409);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await call('acme', 'GET', `${base}/leased/lease`)).status, 404);
  assert.equal((await call('acme', 'GET', `${base}/leased`)).json().lease, undefined);
  // Waiting for removal answers when it is removed; the lease record goes with the container.
  const gone = call('acme', 'GET', `${base}/leased/wait?state=removed&timeout=60`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await call('acme', 'DELETE', `${base}/leased?force=true`)).status, 204);
  assert.deepEqual((await gone).json(), { state: 'removed' });
  assert.deepEqual(await ctl.store.list('ctl.container-lease'), []);
});

test('label filters: ?label=k=v (repeatable, all must match) and ?label=k, from the records', async () => {
  const base = '/v1/tenants/acme/projects/web/containers';
  const mk = (name: string, labels: Record<string, string>) =>
    call('acme', 'POST', base, { spec: { image: 'busybox', name, labels, process: { args: ['sleep', '600'] } }, start: false });
  assert.equal((await mk('f1', { tier: 'web', env: 'prod' })).status, 201);
  assert.equal((await mk('f2', { tier: 'web', env: 'dev' })).status, 201);
  assert.equal((await mk('f3', { tier: 'db', canary: '1' })).status, 201);
  const names = async (q: string): Promise<string[]> => {
    const r = await call('acme', 'GET', `${base}${q}`);
    assert.equal(r.status, 200, r.body);
    return (r.json() as Array<{ name: string }>).map((c) => c.name).sort();
  };
  assert.deepEqual(await names(''), ['f1', 'f2', 'f3']);
  assert.deepEqual(await names('?label=tier=web'), ['f1', 'f2']);
  assert.deepEqual(await names('?label=tier=web&label=env=prod'), ['f1']);
  assert.deepEqual(await names('?label=canary'), ['f3']);
  assert.deepEqual(await names('?label=tier=nope'), []);
  assert.deepEqual(
    await names(`?label=${encodeURIComponent('boson.tenant=acme')}`),
    [],
    "the controller's own labels are not the project's",
  );
  assert.equal((await call('acme', 'GET', `${base}?label==x`)).status, 400);
  // A created container is `stopped` for a wait (not running).
  assert.equal((await call('acme', 'GET', `${base}/f1/wait?state=stopped&timeout=0`)).json().state, 'created');
  for (const n of ['f1', 'f2', 'f3']) assert.equal((await call('acme', 'DELETE', `${base}/${n}?force=true`)).status, 204);
});

test('a restart-policy container of a LOST machine is placed again on another; its old copy goes when the machine is back', async () => {
  const spec = (name: string, restart: boolean) => ({
    spec: {
      image: 'busybox',
      name,
      process: { args: ['sleep', '600'] },
      ...(restart ? { restartPolicy: { name: 'always', maximumRetryCount: 0 } } : {}),
    },
    policy: 'binpack',
  });
  const r1 = await call('acme', 'POST', '/v1/tenants/acme/projects/web/containers', spec('r1', true));
  assert.equal(r1.status, 201, r1.body);
  const n0 = await call('acme', 'POST', '/v1/tenants/acme/projects/web/containers', spec('n0', false));
  assert.equal(n0.status, 201, n0.body);
  const holder = machines.find((m) => m.id === r1.json().machineId)!;
  const other = machines.find((m) => m !== holder)!;
  assert.equal(n0.json().machineId, holder.id, 'binpack: together');

  holder.tcp!.close();
  holder.tcp = undefined;
  clockMs += LOST_AFTER_MS * 2; // past lostAfter and the lag of lastSeen (Fleet.recordCheck)
  await fleet.checker.checkAll();
  assert.equal((await call('root', 'GET', `/v1/machines/${holder.id}`)).json().state, 'LOST');
  // r1 (restart policy always) now runs on the other machine, under the same id and name; n0 (no policy) stays.
  const moved = await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers/r1');
  assert.equal(moved.status, 200, moved.body);
  assert.equal(moved.json().machineId, other.id);
  assert.equal(moved.json().id, r1.json().id);
  assert.equal(moved.json().state, 'running');
  assert.ok((await other.runtime.list({}, { all: true })).some((c) => c.config.labels['boson.controller.id'] === r1.json().id));
  assert.equal((await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers/n0')).status, 503);
  // The quota still counts it once.
  assert.equal((await ctl.tenants.getProject('acme', 'web')).usage.find((u) => u.key === 'vm.count')?.value, 2);

  // The machine comes back: READY, and its stale copy of r1 is removed (n0 stays).
  await serveMachine(holder);
  await fleet.checker.checkAll();
  assert.equal((await call('root', 'GET', `/v1/machines/${holder.id}`)).json().state, 'READY');
  const left = (await holder.runtime.list({}, { all: true })).map((c) => c.config.labels['boson.controller.id']);
  assert.deepEqual(left, [n0.json().id]);
  for (const n of ['r1', 'n0'])
    assert.equal((await call('acme', 'DELETE', `/v1/tenants/acme/projects/web/containers/${n}?force=true`)).status, 204);
});

test('a drained machine gets nothing new and keeps what it has; a machine that stops answering goes LOST, then back', async () => {
  const [m1, m2] = machines as [TestMachine, TestMachine];
  const keep = await create('acme', 'keep', 'binpack');
  assert.equal(keep.status, 201, keep.body);
  const holder = keep.json().machineId === m1.id ? m1 : m2;
  const other = holder === m1 ? m2 : m1;
  const drained = await call('root', 'POST', `/v1/machines/${holder.id}/drain`);
  assert.equal(drained.status, 200, drained.body);
  assert.equal(drained.json().state, 'MAINTENANCE');
  // binpack would choose the holder (the fuller one); drained, it gets nothing.
  for (const n of ['n1', 'n2']) {
    const r = await create('acme', n, 'binpack');
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json().machineId, other.id);
  }
  // Its container stays, and answers.
  assert.equal((await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers/keep')).json().machineId, holder.id);
  // A machine with containers is not removed without --force.
  assert.equal((await call('root', 'DELETE', `/v1/machines/${holder.id}`)).status, 409);
  assert.equal((await call('root', 'POST', `/v1/machines/${holder.id}/undrain`)).json().state, 'READY');

  // Cut the other machine off: its checks fail; LOST once lostAfter has passed since it was last seen.
  other.tcp!.close();
  other.tcp = undefined;
  await fleet.checker.checkAll();
  assert.equal((await call('root', 'GET', `/v1/machines/${other.id}`)).json().state, 'READY', 'one failed check is not LOST');
  clockMs += LOST_AFTER_MS * 2; // past lostAfter and the lag of lastSeen (Fleet.recordCheck)
  await fleet.checker.checkAll();
  const lost = (await call('root', 'GET', `/v1/machines/${other.id}`)).json();
  assert.equal(lost.state, 'LOST');
  assert.ok(lost.lastError);
  // Nothing new goes to a LOST machine; a container on it answers as unreachable.
  const r = await create('acme', 'n3', 'binpack');
  assert.equal(r.status, 507, r.body);
  assert.match(r.json().detail, /quota/, 'vm.count=3: keep, n1, n2');
  const down = await call('acme', 'GET', '/v1/tenants/acme/projects/web/containers/n1');
  assert.equal(down.status, 503, down.body);
  assert.equal(down.json().code, 'MACHINE_UNREACHABLE');
  // It answers again: READY.
  await serveMachine(other);
  await fleet.checker.checkAll();
  assert.equal((await call('root', 'GET', `/v1/machines/${other.id}`)).json().state, 'READY');
  for (const n of ['keep', 'n1', 'n2'])
    assert.equal((await call('acme', 'DELETE', `/v1/tenants/acme/projects/web/containers/${n}?force=true`)).status, 204);
  // Empty now: removable.
  assert.equal((await call('root', 'DELETE', `/v1/machines/${holder.id}`)).status, 204);
  assert.equal((await call('root', 'GET', `/v1/machines/${holder.id}`)).status, 404);
});

test("docs/controller.md has the fleet routes' policy table as the routes declare it", async () => {
  const doc = await readFile(path.join(PACKAGE_ROOT, 'docs', 'controller.md'), 'utf8');
  const m = /<!-- fleet-policy-table:start -->\n([\s\S]*?)\n<!-- fleet-policy-table:end -->/.exec(doc);
  assert.ok(m, 'docs/controller.md has the fleet-policy-table markers');
  assert.equal(m[1], policyTable(fleetRouteEntries(routes) as never), 'regenerate with: npx tsx scripts/controller-doc.ts --fleet');
});

/**
 * The controller's REST API through fastify's inject (a TCP-like request: a token is needed) and a real UNIX
 * socket (the local admin): every route declares a policy; the table-driven cross-tenant walk (a principal of one
 * tenant never lists, inspects, updates or deletes another tenant's objects: 404, not 403); a viewer cannot
 * write; a revoked token is refused at once; idempotency keys; /openapi.json; the policy table in the docs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { asyncStore, MemoryStateStore, PACKAGE_ROOT } from '../../common/index.ts';
import { Controller } from '../model/controller.ts';
import { KINDS } from '../model/records.ts';
import { parseQuotaItem } from '../model/quota.ts';
import type { Grant } from '../model/schemas.ts';
import { installPolicy } from './policy.ts';
import { policyTable } from './policy-doc.ts';
import { buildControllerApi, type ControllerApi } from './server.ts';

let api: ControllerApi;
let ctl: Controller;
/** Tokens by principal name. */
const tok: Record<string, string> = {};
/** Ids of objects of tenant acme that routes address. */
const ids: Record<string, string> = {};

async function call(who: string | null, method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await api.app.inject({
    method: method as 'GET',
    url,
    headers: { ...(who ? { authorization: `Bearer ${tok[who]}` } : {}), ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  });
  return { status: res.statusCode, body: res.body, json: () => res.json() as Record<string, unknown>, headers: res.headers };
}

async function issue(name: string, user: string, tenant: string | undefined, grant: Grant): Promise<void> {
  await ctl.identity.createUser(user, tenant).catch(() => undefined);
  const made = await ctl.identity.createToken(user, grant);
  tok[name] = made.token;
  ids[`token:${name}`] = made.info.id;
}

before(async () => {
  ctl = new Controller(asyncStore(new MemoryStateStore()));
  await ctl.bootstrap();
  api = await buildControllerApi(ctl);
  await api.app.ready();
  for (const t of ['acme', 'bolt']) {
    await ctl.tenants.createTenant(t, [parseQuotaItem('vm.count=10')]);
    await ctl.tenants.createProject(t, 'web', [parseQuotaItem('vm.count=4')]);
    await ctl.tenants.createProject(t, 'tmp');
    await issue(`${t}-admin`, `${t}-admin`, t, { role: 'tenant-admin', tenant: t });
    await issue(`${t}-dev`, `${t}-dev`, t, { role: 'member', tenant: t, project: 'web' });
    await issue(`${t}-viewer`, `${t}-viewer`, t, { role: 'viewer', tenant: t, project: 'web' });
  }
  await issue('root', 'root', undefined, { role: 'system-admin' });
  await ctl.identity.createUser('acme-spare', 'acme');
  await ctl.flavors.create({ name: 'small', cpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 1024 ** 3 });
  await ctl.flavors.create({ name: 'spare', cpus: 1, memoryBytes: 1024 ** 2, diskBytes: 0 });
  const task = await ctl.deleteProject('acme', 'tmp');
  await ctl.tasks.wait(task.id, 5000);
  ids.task = task.id;
  await ctl.tenants.createProject('acme', 'tmp');
  await ctl.tenants.createProject('acme', 'gone');
  await ctl.tenants.createTenant('acme2');
  const spareTok = await ctl.identity.createToken('acme-spare', { role: 'viewer', tenant: 'acme', project: 'web' });
  ids.spareToken = spareTok.info.id;
});

after(async () => {
  await api.app.close();
});

test('every route declares a policy; a route without one cannot be registered', async () => {
  assert.ok(api.routes.length >= 25, `found the routes (${api.routes.length})`);
  const without = api.routes.filter((r) => !r.policy).map((r) => `${r.method} ${r.url}`);
  assert.deepEqual(without, []);
  const app = Fastify();
  installPolicy(app, ctl.identity, []);
  assert.throws(() => app.get('/v1/naked', async () => 'x'), /declares no policy/);
  assert.throws(() => app.get('/v1/half', { config: { policy: { allow: 'member' } } }, async () => 'x'), /needs a scope/);
  await app.close();
});

test("docs/controller.md has the policy table of the routes' declared policies", async () => {
  const doc = await readFile(path.join(PACKAGE_ROOT, 'docs', 'controller.md'), 'utf8');
  const m = /<!-- policy-table:start -->\n([\s\S]*?)\n<!-- policy-table:end -->/.exec(doc);
  assert.ok(m, 'docs/controller.md has the policy-table markers');
  assert.equal(m[1], policyTable(api.routes), 'regenerate with: npx tsx scripts/controller-doc.ts');
});

/**
 * One row per route: how to call it on tenant acme's objects, and what a principal of tenant bolt gets. `other`:
 * 'hidden' (404), 'filtered' (200 and nothing of acme in the answer), 'denied' (403: a system route, no names
 * involved), 'open' (public, or global objects). `owner` is what acme's own (the right role) gets afterwards.
 */
interface Row {
  route: string;
  url: string;
  body?: unknown;
  other: 'hidden' | 'filtered' | 'denied' | 'open';
  owner: { who: string; status: number };
}

const rows = (): Row[] => [
  { route: 'GET /healthz', url: '/healthz', other: 'open', owner: { who: 'acme-dev', status: 200 } },
  { route: 'GET /openapi.json', url: '/openapi.json', other: 'open', owner: { who: 'acme-dev', status: 200 } },
  { route: 'GET /v1/whoami', url: '/v1/whoami', other: 'filtered', owner: { who: 'acme-dev', status: 200 } },
  { route: 'GET /v1/tenants', url: '/v1/tenants', other: 'filtered', owner: { who: 'acme-viewer', status: 200 } },
  { route: 'POST /v1/tenants', url: '/v1/tenants', body: { name: 'acme3' }, other: 'denied', owner: { who: 'root', status: 201 } },
  { route: 'GET /v1/tenants/:tenant', url: '/v1/tenants/acme', other: 'hidden', owner: { who: 'acme-viewer', status: 200 } },
  {
    route: 'PUT /v1/tenants/:tenant/limits',
    url: '/v1/tenants/acme/limits',
    body: { limits: [{ key: 'vm.count', value: 12, unit: 'count' }] },
    other: 'hidden',
    owner: { who: 'root', status: 200 },
  },
  {
    route: 'GET /v1/tenants/:tenant/projects',
    url: '/v1/tenants/acme/projects',
    other: 'hidden',
    owner: { who: 'acme-viewer', status: 200 },
  },
  {
    route: 'POST /v1/tenants/:tenant/projects',
    url: '/v1/tenants/acme/projects',
    body: { name: 'new' },
    other: 'hidden',
    owner: { who: 'acme-admin', status: 201 },
  },
  {
    route: 'GET /v1/tenants/:tenant/projects/:project',
    url: '/v1/tenants/acme/projects/web',
    other: 'hidden',
    owner: { who: 'acme-viewer', status: 200 },
  },
  {
    route: 'PUT /v1/tenants/:tenant/projects/:project/limits',
    url: '/v1/tenants/acme/projects/web/limits',
    body: { limits: [{ key: 'vm.count', value: 5, unit: 'count' }] },
    other: 'hidden',
    owner: { who: 'acme-admin', status: 200 },
  },
  { route: 'GET /v1/flavors', url: '/v1/flavors', other: 'open', owner: { who: 'acme-viewer', status: 200 } },
  {
    route: 'POST /v1/flavors',
    url: '/v1/flavors',
    body: { name: 'big', cpus: 2, memoryBytes: 1024 ** 3 },
    other: 'denied',
    owner: { who: 'root', status: 201 },
  },
  { route: 'GET /v1/flavors/:name', url: '/v1/flavors/small', other: 'open', owner: { who: 'acme-viewer', status: 200 } },
  { route: 'GET /v1/users', url: '/v1/users', other: 'filtered', owner: { who: 'acme-admin', status: 200 } },
  {
    route: 'POST /v1/users',
    url: '/v1/users',
    body: { name: 'acme-new', tenant: 'acme' },
    other: 'hidden',
    owner: { who: 'acme-admin', status: 201 },
  },
  { route: 'GET /v1/users/:name', url: '/v1/users/acme-dev', other: 'hidden', owner: { who: 'acme-admin', status: 200 } },
  { route: 'GET /v1/tokens', url: '/v1/tokens', other: 'filtered', owner: { who: 'acme-admin', status: 200 } },
  {
    route: 'POST /v1/tokens',
    url: '/v1/tokens',
    body: { user: 'acme-dev', grant: { role: 'member', tenant: 'acme', project: 'web' } },
    other: 'hidden',
    owner: { who: 'acme-admin', status: 201 },
  },
  { route: 'GET /v1/tokens/:id', url: `/v1/tokens/${ids['token:acme-dev']}`, other: 'hidden', owner: { who: 'acme-admin', status: 200 } },
  { route: 'GET /v1/tasks', url: '/v1/tasks', other: 'filtered', owner: { who: 'acme-viewer', status: 200 } },
  { route: 'GET /v1/tasks/:id', url: `/v1/tasks/${ids.task}`, other: 'hidden', owner: { who: 'acme-admin', status: 200 } },
  {
    route: 'GET /v1/tasks/:id/wait',
    url: `/v1/tasks/${ids.task}/wait?timeout=1`,
    other: 'hidden',
    owner: { who: 'acme-admin', status: 200 },
  },
  // Removals last: each removes an object of its own.
  { route: 'DELETE /v1/flavors/:name', url: '/v1/flavors/spare', other: 'denied', owner: { who: 'root', status: 204 } },
  { route: 'DELETE /v1/tokens/:id', url: `/v1/tokens/${ids.spareToken}`, other: 'hidden', owner: { who: 'acme-admin', status: 204 } },
  { route: 'DELETE /v1/users/:name', url: '/v1/users/acme-spare', other: 'hidden', owner: { who: 'acme-admin', status: 204 } },
  {
    route: 'DELETE /v1/tenants/:tenant/projects/:project',
    url: '/v1/tenants/acme/projects/gone',
    other: 'hidden',
    owner: { who: 'acme-admin', status: 202 },
  },
  { route: 'DELETE /v1/tenants/:tenant', url: '/v1/tenants/acme2', other: 'hidden', owner: { who: 'root', status: 202 } },
];

test("the cross-tenant walk: bolt's principals never list, inspect, update or delete acme's objects (404, not 403)", async () => {
  const table = rows();
  const covered = new Set(table.map((r) => r.route));
  const missing = api.routes.map((r) => `${r.method} ${r.url}`).filter((r) => !covered.has(r));
  assert.deepEqual(missing, [], 'every route has a row in the walk');
  const problems: string[] = [];
  for (const row of table) {
    const [method] = row.route.split(' ') as [string];
    for (const who of ['bolt-admin', 'bolt-dev', 'bolt-viewer']) {
      const r = await call(who, method, row.url, row.body);
      const leaks = /acme/.test(r.body) && row.other !== 'open';
      const want = { hidden: [404], filtered: [200], denied: [403], open: [200] }[row.other];
      if (!want.includes(r.status)) problems.push(`${who} ${row.route}: ${r.status} ${r.body.slice(0, 120)} (want ${want.join('|')})`);
      if (leaks && r.status < 400) problems.push(`${who} ${row.route}: the answer names acme: ${r.body.slice(0, 200)}`);
    }
    // The owner with the right role gets it: the walk addressed real objects.
    const mine = await call(row.owner.who, method, row.url, row.body);
    if (mine.status !== row.owner.status)
      problems.push(`${row.owner.who} ${row.route}: ${mine.status} ${mine.body.slice(0, 160)} (want ${row.owner.status})`);
  }
  assert.deepEqual(problems, []);
});

test('a viewer cannot write in its own project, and a member cannot manage it', async () => {
  const writes: Array<[string, string, string, unknown]> = [
    ['acme-viewer', 'PUT', '/v1/tenants/acme/projects/web/limits', { limits: [] }],
    ['acme-viewer', 'DELETE', '/v1/tenants/acme/projects/web', undefined],
    ['acme-viewer', 'POST', '/v1/tenants/acme/projects', { name: 'x' }],
    ['acme-viewer', 'POST', '/v1/tokens', { grant: { role: 'member', tenant: 'acme', project: 'web' } }],
    ['acme-viewer', 'POST', '/v1/tokens', { grant: { role: 'viewer', tenant: 'acme', project: 'web' } }],
    ['acme-dev', 'POST', '/v1/tokens', { grant: { role: 'member', tenant: 'acme', project: 'web' } }],
    ['acme-dev', 'PUT', '/v1/tenants/acme/limits', { limits: [] }],
    ['acme-admin', 'PUT', '/v1/tenants/acme/limits', { limits: [] }],
    ['acme-admin', 'POST', '/v1/tokens', { grant: { role: 'system-admin' } }],
    ['acme-admin', 'POST', '/v1/users', { name: 'sys2' }],
  ];
  for (const [who, method, url, body] of writes) {
    const r = await call(who, method, url, body);
    assert.equal(r.status, 403, `${who} ${method} ${url}: ${r.body}`);
    assert.equal(r.json().code, 'PERMISSION_DENIED');
  }
  // A member or viewer sees its project only, not the tenant's others.
  const list = (await call('acme-viewer', 'GET', '/v1/tenants/acme/projects')).json() as unknown as Array<{ name: string }>;
  assert.deepEqual(
    list.map((p) => p.name),
    ['web'],
  );
  assert.equal((await call('acme-viewer', 'GET', '/v1/tenants/acme/projects/tmp')).status, 404);
});

test('a revoked token is refused from the next request on; no token or a bad one is 401', async () => {
  const made = await ctl.identity.createToken('acme-dev', { role: 'member', tenant: 'acme', project: 'web' });
  tok.short = made.token;
  assert.equal((await call('short', 'GET', '/v1/whoami')).json().user, 'acme-dev');
  assert.equal((await call('short', 'DELETE', `/v1/tokens/${made.info.id}`)).status, 204, 'anyone revokes its own token');
  const r = await call('short', 'GET', '/v1/whoami');
  assert.equal(r.status, 401);
  assert.equal(r.json().code, 'UNAUTHENTICATED');
  assert.match(String(r.headers['www-authenticate']), /Bearer/);
  assert.equal((await call(null, 'GET', '/v1/tenants')).status, 401, 'no token over TCP');
  assert.equal((await call(null, 'GET', '/v1/tenants', undefined, { authorization: 'Basic eDp5' })).status, 401);
  assert.equal((await call(null, 'GET', '/healthz')).status, 200);
});

test('the token list never shows secrets, and a user sees only its own tokens within its grant', async () => {
  const r = await call('acme-dev', 'GET', '/v1/tokens');
  const list = r.json() as unknown as Array<{ user: string; id: string }>;
  assert.ok(list.length >= 1);
  assert.ok(list.every((t) => t.user === 'acme-dev'));
  for (const t of Object.values(tok)) assert.ok(!r.body.includes(t.slice('boson_'.length + 13)));
  const admin = (await call('acme-admin', 'GET', '/v1/tokens')).json() as unknown as Array<{ grant: { tenant?: string } }>;
  assert.ok(admin.length >= 3 && admin.every((t) => t.grant.tenant === 'acme'));
});

test('an Idempotency-Key replays the first answer, and refuses a different request', async () => {
  const h = { 'idempotency-key': 'create-zeta' };
  const first = await call('root', 'POST', '/v1/tenants', { name: 'zeta' }, h);
  assert.equal(first.status, 201);
  const again = await call('root', 'POST', '/v1/tenants', { name: 'zeta' }, h);
  assert.equal(again.status, 201);
  assert.equal(again.headers['idempotent-replayed'], 'true');
  assert.deepEqual(again.json(), first.json());
  const other = await call('root', 'POST', '/v1/tenants', { name: 'zeta2' }, h);
  assert.equal(other.status, 409);
  assert.equal(other.json().code, 'IDEMPOTENCY_KEY_REUSED');
  // Without the key the same request is a conflict on the name.
  const plain = await call('root', 'POST', '/v1/tenants', { name: 'zeta' });
  assert.equal(plain.status, 409);
  assert.equal(plain.json().code, 'NAME_IN_USE');
});

test('quota errors leave as problem JSON with the key; bad input is 400', async () => {
  const r = await call('acme-admin', 'POST', '/v1/tenants/acme/projects', {
    name: 'huge',
    limits: [{ key: 'vm.count', value: 100, unit: 'count' }],
  });
  assert.equal(r.status, 507);
  const p = r.json();
  assert.equal(p.code, 'QUOTA_EXCEEDED');
  assert.equal((p.details as { key: string }).key, 'vm.count');
  assert.match(String(p.detail), /quota.*vm\.count/);
  assert.equal((await call('acme-admin', 'POST', '/v1/tenants/acme/projects', { name: 'Bad Name' })).status, 400);
  assert.equal((await call('acme-admin', 'POST', '/v1/tenants/acme/projects', { name: 'ok', extra: 1 })).status, 400);
});

test('/openapi.json documents every route with its answers', async () => {
  const doc = (await call(null, 'GET', '/openapi.json')).json() as {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  };
  for (const r of api.routes) {
    const op = doc.paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()];
    assert.ok(op, `${r.method} ${r.url} is in /openapi.json`);
    assert.ok(
      Object.keys(op.responses).some((c) => /^2/.test(c)),
      `${r.method} ${r.url} has a success answer`,
    );
  }
});

test('on the UNIX socket a request without a token is the local system admin; with one, that token', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-ctl-'));
  const socketPath = path.join(dir, 'c.sock');
  const local = await buildControllerApi(ctl);
  await local.app.listen({ path: socketPath });
  try {
    const get = (headers: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ socketPath, path: '/v1/whoami', headers }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const admin = await get();
    assert.equal(admin.status, 200);
    assert.deepEqual(JSON.parse(admin.body), { user: 'admin', grant: { role: 'system-admin' } });
    const dev = await get({ authorization: `Bearer ${tok['acme-dev']}` });
    assert.equal(JSON.parse(dev.body).user, 'acme-dev');
    assert.equal((await get({ authorization: 'Bearer nope' })).status, 401);
  } finally {
    await local.app.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a token answer's secret is never stored, not even for an Idempotency-Key; a repeat is refused, not replayed", async () => {
  const h = { 'idempotency-key': 'tok-1' };
  const body = { user: 'acme-dev', grant: { role: 'viewer', tenant: 'acme', project: 'web' } };
  const first = await call('acme-admin', 'POST', '/v1/tokens', body, h);
  assert.equal(first.status, 201);
  const secret = String(first.json().token).slice('boson_'.length + 13);
  const again = await call('acme-admin', 'POST', '/v1/tokens', body, h);
  assert.equal(again.status, 409);
  assert.equal(again.json().code, 'IDEMPOTENCY_KEY_REUSED');
  assert.match(String(again.json().detail), /shown only once/);
  const everything = JSON.stringify(await Promise.all(Object.values(KINDS).map((k) => ctl.store.list(k))));
  assert.ok(!everything.includes(secret), 'the secret is nowhere in the store');
  assert.equal((await ctl.identity.listTokens()).filter((t) => t.user === 'acme-dev' && t.grant.role === 'viewer').length, 1, 'made once');
});

test("a tenant admin cannot issue tokens for another tenant's users (they do not exist for it)", async () => {
  const r = await call('acme-admin', 'POST', '/v1/tokens', { user: 'bolt-dev', grant: { role: 'member', tenant: 'acme', project: 'web' } });
  assert.equal(r.status, 404);
  assert.equal(r.json().code, 'USER_NOT_FOUND');
  assert.ok(!r.body.includes('tenant bolt'), r.body);
  const sys = await call('acme-admin', 'POST', '/v1/tokens', { user: 'admin', grant: { role: 'tenant-admin', tenant: 'acme' } });
  assert.equal(sys.status, 404);
});

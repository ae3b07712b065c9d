/**
 * The controller end to end, with the real `boson` commands: `boson controller` alone (local socket, and TCP with
 * TLS client certificates from `boson tls init`), driven by `boson tenant|project|flavor|user|token|task|context`
 * with their --json output checked; quota errors, cross-tenant and role refusals, and revocation seen by the CLI
 * with their exit statuses. Then `boson up --controller`: the controller in the daemon's process, reached on this
 * host without a token, with its default tenant and project; and plain `boson up` without one.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { stat, access } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_CATALOGUE } from '../src/common/index.ts';
import { makeBareHost, makeTestHost, runBoson, startUntil, freePort, type TestHost, type BosonResult } from './helpers.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** A host of directories only: the controller needs nothing else. */
const bareHost = (): Promise<TestHost> => makeBareHost('boson-ctl-');

/** Runs boson and returns its stdout; fails with everything it printed when its status is not `want`. */
async function ok(host: TestHost, args: string[], want = 0): Promise<string> {
  const r = await runBoson(host, args);
  assert.equal(r.code, want, `boson ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout.toString()}`);
  return r.stdout.toString();
}
const json = async <T>(host: TestHost, args: string[]): Promise<T> => JSON.parse(await ok(host, [...args, '--json'])) as T;
const exit = (code: keyof typeof ERROR_CATALOGUE): number => ERROR_CATALOGUE[code].exit;
const errorOf = (r: BosonResult): { code: string; message: string; details: Record<string, unknown> } =>
  (JSON.parse(r.stderr.trim().split('\n').pop()!) as { error: { code: string; message: string; details: Record<string, unknown> } }).error;

type Project = { tenant: string; name: string; limits: Array<{ key: string; value: number; unit: string }>; usage: unknown[] };

test('boson controller: the CLI manages tenants, projects, flavors, users, tokens and tasks, locally and over TLS', async () => {
  const host = await bareHost();
  cleanups.push(host.cleanup);
  const configDir = host.env.BOSON_CONFIG_DIR!;
  await ok(host, ['tls', 'init']);
  // Plain TCP off loopback is refused before anything starts.
  const unsafe = await runBoson(host, ['controller', '--listen', '0.0.0.0:1']);
  assert.equal(unsafe.code, exit('INVALID_ARGUMENT'), unsafe.stderr);
  assert.match(unsafe.stderr, /--tlsverify/);

  const port = await freePort();
  const { child, result } = await startUntil(host, ['controller', '--listen', `127.0.0.1:${port}`, '--tlsverify'], 'listening');
  cleanups.push(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const socket = path.join(host.env.BOSON_RUN_DIR!, 'controller.sock');
  assert.equal((await stat(socket)).mode & 0o777, 0o660);

  // On this host, with no token: the system admin. The bootstrap made the default tenant and project.
  assert.deepEqual(await json(host, ['context', 'show']), {
    controller: `unix://${socket}`,
    user: 'admin',
    grant: { role: 'system-admin' },
  });
  const tenants0 = await json<Array<{ name: string }>>(host, ['tenant', 'ls']);
  assert.deepEqual(
    tenants0.map((t) => t.name),
    ['default'],
  );
  assert.deepEqual(
    (await json<Project[]>(host, ['project', 'ls'])).map((p) => `${p.tenant}/${p.name}`),
    ['default/default'],
  );

  // Tenants and projects, with limits carved from the tenant's.
  const acme = await json<{ name: string; limits: unknown[] }>(host, [
    'tenant',
    'create',
    'acme',
    '--limit',
    'vm.count=10',
    '--limit',
    'vm.memory=4GiB',
  ]);
  assert.deepEqual(acme.limits, [
    { key: 'vm.count', value: 10, unit: 'count' },
    { key: 'vm.memory', value: 4 * 1024 ** 3, unit: 'bytes' },
  ]);
  await ok(host, ['tenant', 'create', 'bolt']);
  const web = await json<Project>(host, ['project', 'create', 'acme/web', '--limit', 'vm.count=4', '--limit', 'vm.memory=2GiB']);
  assert.deepEqual(
    web.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 4],
      ['vm.memory', 2 * 1024 ** 3],
    ],
  );
  // Overdrawing the tenant: a quota error naming the key, in words and in --json, and nothing made.
  const over = await runBoson(host, ['project', 'create', 'acme/db', '--limit', 'vm.count=7', '--json']);
  assert.equal(over.code, exit('QUOTA_EXCEEDED'));
  const overErr = errorOf(over);
  assert.equal(overErr.code, 'QUOTA_EXCEEDED');
  assert.equal(overErr.details.key, 'vm.count');
  assert.match(overErr.message, /quota.*vm\.count/);
  const overText = await runBoson(host, ['project', 'create', 'acme/db', '--limit', 'vm.count=7']);
  assert.match(overText.stderr, /^boson: quota exceeded: tenant acme cannot carve vm\.count=7 but has 6 of 10 left\n$/);
  assert.equal((await runBoson(host, ['project', 'show', 'acme/db'])).code, exit('PROJECT_NOT_FOUND'));
  await ok(host, ['project', 'create', 'acme/db', '--limit', 'vm.count=6']);
  const shown = await json<Project>(host, ['project', 'show', 'acme/db']);
  assert.deepEqual(
    shown.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 6],
      ['vm.memory', 0],
    ],
    'a key the tenant limits is 0 unless carved',
  );
  assert.match(await ok(host, ['project', 'show', 'acme/web']), /vm\.memory\s+2GiB\s+0/);
  const bad = await runBoson(host, ['project', 'create', 'acme/x', '--limit', 'vm.count=two']);
  assert.equal(bad.code, exit('INVALID_ARGUMENT'), bad.stderr);

  // Flavors.
  const small = await json<{ cost: unknown[] }>(host, ['flavor', 'create', 'small', '--cpus', '1', '--memory', '512MiB', '--disk', '1GiB']);
  assert.deepEqual(small.cost, [
    { key: 'disk.capacity', value: 1024 ** 3, unit: 'bytes' },
    { key: 'vm.count', value: 1, unit: 'count' },
    { key: 'vm.cpu', value: 1, unit: 'count' },
    { key: 'vm.memory', value: 512 * 1024 ** 2, unit: 'bytes' },
  ]);
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host, ['flavor', 'ls'])).map((f) => f.name),
    ['small'],
  );
  assert.match(await ok(host, ['flavor', 'ls']), /^NAME\s+CPUS\s+MEMORY\s+DISK\s+KERNEL\s+COST\nsmall\s+1\s+512MiB\s+1GiB\s+default\s+/);

  // Users and tokens: printed once, only a hash kept.
  await ok(host, ['user', 'create', 'alice', '--tenant', 'acme']);
  await ok(host, ['user', 'create', 'bob', '--tenant', 'bolt']);
  const alice = (await ok(host, ['token', 'create', '--project', 'acme/web', '--user', 'alice'])).trim();
  assert.match(alice, /^boson_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  const viewer = (await ok(host, ['token', 'create', '--project', 'acme/web', '--role', 'viewer', '--user', 'alice'])).trim();
  const bob = (await ok(host, ['token', 'create', '--tenant', 'bolt', '--user', 'bob'])).trim();
  const tokens = await json<Array<{ id: string; user: string; grant: { role: string } }>>(host, ['token', 'ls']);
  assert.deepEqual(tokens.map((t) => `${t.user}:${t.grant.role}`).sort(), ['alice:member', 'alice:viewer', 'bob:tenant-admin']);
  const listed = await ok(host, ['token', 'ls', '--json']);
  for (const t of [alice, viewer, bob]) assert.ok(!listed.includes(t.slice(19)), 'no secret is listed');

  // Over TCP with TLS (boson tls init's client certificate, from the config dir) and a token, as a context.
  const url = `https://127.0.0.1:${port}`;
  await ok(host, ['context', 'create', 'alice', '--controller', url, '--token', alice, '--use']);
  assert.equal((await stat(path.join(configDir, 'contexts.json'))).mode & 0o777, 0o600);
  const ctxs = await json<Array<{ name: string; current: boolean; token: boolean }>>(host, ['context', 'ls']);
  assert.deepEqual(
    ctxs.map((c) => [c.name, c.current, c.token]),
    [
      ['local', false, false],
      ['alice', true, true],
    ],
  );
  assert.deepEqual(await json(host, ['context', 'show']), {
    controller: url,
    user: 'alice',
    tokenId: tokens.find((t) => t.user === 'alice' && t.grant.role === 'member')!.id,
    grant: { role: 'member', tenant: 'acme', project: 'web' },
  });
  // A member sees its project only; other tenants' objects do not exist for it; it cannot manage.
  assert.deepEqual(
    (await json<Project[]>(host, ['project', 'ls'])).map((p) => `${p.tenant}/${p.name}`),
    ['acme/web'],
  );
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host, ['tenant', 'ls'])).map((t) => t.name),
    ['acme'],
  );
  assert.equal((await runBoson(host, ['project', 'show', 'bolt/anything'])).code, exit('PROJECT_NOT_FOUND'));
  const hidden = await runBoson(host, ['project', 'ls', 'bolt']);
  assert.equal(hidden.code, exit('TENANT_NOT_FOUND'), hidden.stderr);
  assert.equal((await runBoson(host, ['project', 'show', 'acme/db'])).code, exit('PROJECT_NOT_FOUND'));
  const denied = await runBoson(host, ['tenant', 'create', 'evil']);
  assert.equal(denied.code, exit('PERMISSION_DENIED'), denied.stderr);
  assert.match(denied.stderr, /permission denied/);
  // The viewer cannot write, even in its own project; bob (another tenant's admin) cannot see acme at all.
  const vw = await runBoson(host, ['project', 'limits', 'acme/web', '--limit', 'vm.count=1', '--token', viewer]);
  assert.equal(vw.code, exit('PERMISSION_DENIED'), vw.stderr);
  const cross = await runBoson(host, ['project', 'rm', 'acme/web', '--token', bob]);
  assert.equal(cross.code, exit('PROJECT_NOT_FOUND'), cross.stderr);
  assert.deepEqual(await json(host, ['project', 'ls', '--token', bob]), []);
  // Without TLS material the TCP endpoint is refused; with a flag-given address the context's token is not used.
  const noTls = await runBoson(host, ['context', 'show', '--controller', url], { env: { BOSON_CONFIG_DIR: path.join(configDir, 'none') } });
  assert.equal(noTls.code, exit('CONTROLLER_UNAVAILABLE'), noTls.stderr);
  assert.match(noTls.stderr, /TLS/);
  assert.equal((await runBoson(host, ['context', 'show', '--controller', url])).code, exit('UNAUTHENTICATED'));

  // Tasks: a removal is one, waited for by the CLI; listed, shown and waited on by id.
  await ok(host, ['project', 'create', 'acme/tmp', '--controller', `unix://${socket}`]);
  const removal = await json<{ id: string; kind: string; state: string; steps: Array<{ name: string; state: string }> }>(host, [
    'project',
    'rm',
    'acme/tmp',
    '--controller',
    `unix://${socket}`,
  ]);
  assert.equal(removal.kind, 'project.delete');
  assert.equal(removal.state, 'succeeded');
  assert.deepEqual(
    removal.steps.map((s) => s.state),
    ['succeeded', 'succeeded'],
  );
  await ok(host, ['context', 'use', 'local']);
  assert.deepEqual(
    (await json<Array<{ id: string }>>(host, ['task', 'ls'])).map((t) => t.id),
    [removal.id],
  );
  assert.equal((await json<{ state: string }>(host, ['task', 'show', removal.id])).state, 'succeeded');
  assert.equal((await json<{ state: string }>(host, ['task', 'wait', removal.id])).state, 'succeeded');
  assert.equal((await runBoson(host, ['task', 'show', '0123456789abcdef'])).code, exit('TASK_NOT_FOUND'));
  // The member's token sees no task of a project it is not in.
  assert.deepEqual(await json(host, ['task', 'ls', '--controller', url, '--token', alice]), []);
  // A tenant with projects is not removed; its removal is refused with the reason.
  const inUse = await runBoson(host, ['tenant', 'rm', 'acme']);
  assert.equal(inUse.code, exit('TENANT_IN_USE'), inUse.stderr);

  // Revocation takes effect at once: the next request with the token is refused.
  const aliceId = tokens.find((t) => t.user === 'alice' && t.grant.role === 'member')!.id;
  assert.equal((await ok(host, ['token', 'revoke', aliceId])).trim(), aliceId);
  const revoked = await runBoson(host, ['project', 'ls', '--controller', url, '--token', alice, '--json']);
  assert.equal(revoked.code, exit('UNAUTHENTICATED'), revoked.stderr);
  assert.equal(errorOf(revoked).code, 'UNAUTHENTICATED');

  // Removing what was made: the project, then the tenant (its users and tokens with it).
  await ok(host, ['project', 'rm', 'acme/web']);
  await ok(host, ['project', 'rm', 'acme/db']);
  await ok(host, ['tenant', 'rm', 'acme']);
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host, ['tenant', 'ls'])).map((t) => t.name),
    ['bolt', 'default'],
  );
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host, ['user', 'ls'])).map((u) => u.name),
    ['admin', 'bob'],
  );
  await ok(host, ['flavor', 'rm', 'small']);

  child.kill('SIGTERM');
  assert.equal((await result).code, 0);
  await assert.rejects(access(socket), 'the socket is removed on exit');
  // Its state outlives it: a new controller has what the first left.
  const again = await startUntil(host, ['controller'], 'listening');
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host, ['tenant', 'ls'])).map((t) => t.name),
    ['bolt', 'default'],
  );
  again.child.kill('SIGTERM');
  assert.equal((await again.result).code, 0);
});

test('boson up --controller: the controller in the daemon, with its default tenant and project, and no token on this host', async () => {
  const host = await makeTestHost();
  cleanups.push(() => host.cleanup());
  const up = await startUntil(host, ['up', '--controller'], 'listening');
  try {
    assert.deepEqual(
      (await json<Project[]>(host, ['project', 'ls'])).map((p) => `${p.tenant}/${p.name}`),
      ['default/default'],
    );
    assert.equal((await json<{ grant: { role: string } }>(host, ['context', 'show'])).grant.role, 'system-admin');
    await access(path.join(host.stateDir, 'controller.db'));
    // The machine API answers as before, next to it.
    assert.equal((await runBoson(host, ['ps'])).code, 0);
  } finally {
    up.child.kill('SIGTERM');
    assert.equal((await up.result).code, 0);
  }
  // Without --controller there is none.
  const plain = await startUntil(host, ['up'], 'listening');
  try {
    const r = await runBoson(host, ['tenant', 'ls']);
    assert.equal(r.code, exit('CONTROLLER_UNAVAILABLE'), r.stderr);
  } finally {
    plain.child.kill('SIGTERM');
    assert.equal((await plain.result).code, 0);
  }
});

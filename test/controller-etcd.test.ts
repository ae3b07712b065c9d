/**
 * `boson controller --etcd`: the controller keeps its state in a real etcd (Debian's etcd-server, started here)
 * instead of <state dir>/controller.db. A first controller process makes a tenant and a project through the CLI and
 * stops; a second one, on another host's directories and told by BOSON_CONTROLLER_ETCD instead of the flag, has
 * them; neither wrote a controller.db. A malformed or unreachable etcd is refused at start with a typed error. Then
 * `boson up --controller` with the setting: the embedded controller on the same etcd state (the tests run in order,
 * the second reads what the first left), with this host as its first machine, and no controller.db either.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_CATALOGUE } from '../src/common/index.ts';
import { startTestEtcd } from '../src/machine/store/etcd-test-support.ts';
import { freePort, makeBareHost, makeTestHost, runBoson, startUntil, type TestHost } from './helpers.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** A host of directories only (the controller needs nothing else), removed after the suite. */
async function bareHost(extra: NodeJS.ProcessEnv = {}): Promise<TestHost> {
  const host = await makeBareHost('boson-ctletcd-', extra);
  cleanups.push(host.cleanup);
  return host;
}

async function ok(host: TestHost, args: string[]): Promise<string> {
  const r = await runBoson(host, args);
  assert.equal(r.code, 0, `boson ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout.toString()}`);
  return r.stdout.toString();
}
const json = async <T>(host: TestHost, args: string[]): Promise<T> => JSON.parse(await ok(host, [...args, '--json'])) as T;
const missing = async (file: string): Promise<boolean> =>
  access(file).then(
    () => false,
    () => true,
  );

const etcd = await startTestEtcd();
cleanups.push(() => etcd.stop());

type Project = { tenant: string; name: string; limits: Array<{ key: string; value: number; unit: string }> };

test("boson controller --etcd: the state lives in etcd, and a second controller on it sees the first one's", async () => {
  // Refused at start, with nothing left behind: a malformed URL, and an etcd nobody answers on.
  const host1 = await bareHost();
  const malformed = await runBoson(host1, ['controller', '--etcd', 'etcd.example:2379']);
  assert.equal(malformed.code, ERROR_CATALOGUE.INVALID_ARGUMENT.exit, malformed.stderr);
  assert.match(malformed.stderr, /--etcd: "etcd\.example:2379" is not an etcd client URL/);
  const nobody = `http://127.0.0.1:${await freePort()}`;
  const unreachable = await runBoson(host1, ['controller', '--etcd', nobody]);
  assert.equal(unreachable.code, ERROR_CATALOGUE.STORE_UNAVAILABLE.exit, unreachable.stderr);
  assert.ok(unreachable.stderr.includes(`the controller cannot use its state store, etcd ${nobody}`), unreachable.stderr);
  assert.ok(await missing(path.join(host1.stateDir, 'controller.db')));

  // The first controller: told by the flag; it makes a tenant and a project, and stops.
  const first = await startUntil(host1, ['controller', '--etcd', etcd.endpoint, '--etcd-prefix', 'fleet-a/'], 'listening');
  cleanups.push(async () => void (first.child.exitCode === null && first.child.kill('SIGKILL')));
  await ok(host1, ['tenant', 'create', 'acme', '--limit', 'vm.count=10']);
  const web = await json<Project>(host1, ['project', 'create', 'acme/web', '--limit', 'vm.count=4', '--limit', 'vm.memory=2GiB']);
  assert.deepEqual(
    web.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 4],
      ['vm.memory', 2 * 1024 ** 3],
    ],
  );
  first.child.kill('SIGTERM');
  assert.equal((await first.result).code, 0);

  // The second controller: another host's directories, told by the setting; it has the first one's state (and the
  // bootstrap did not make a second default tenant).
  const host2 = await bareHost({ BOSON_CONTROLLER_ETCD: etcd.endpoint, BOSON_CONTROLLER_ETCD_PREFIX: 'fleet-a/' });
  const second = await startUntil(host2, ['controller'], 'listening');
  cleanups.push(async () => void (second.child.exitCode === null && second.child.kill('SIGKILL')));
  assert.deepEqual((await json<Array<{ name: string }>>(host2, ['tenant', 'ls'])).map((t) => t.name).sort(), ['acme', 'default']);
  const shown = await json<Project>(host2, ['project', 'show', 'acme/web']);
  assert.deepEqual(
    shown.limits.map((l) => [l.key, l.value]),
    [
      ['vm.count', 4],
      ['vm.memory', 2 * 1024 ** 3],
    ],
  );
  // A write on the second is seen by a third under the same prefix, and not under another prefix.
  await ok(host2, ['tenant', 'create', 'bolt']);
  second.child.kill('SIGTERM');
  assert.equal((await second.result).code, 0);

  const host3 = await bareHost();
  const third = await startUntil(host3, ['controller', '--etcd', etcd.endpoint, '--etcd-prefix', 'fleet-b/'], 'listening');
  cleanups.push(async () => void (third.child.exitCode === null && third.child.kill('SIGKILL')));
  assert.deepEqual(
    (await json<Array<{ name: string }>>(host3, ['tenant', 'ls'])).map((t) => t.name),
    ['default'],
  );
  third.child.kill('SIGTERM');
  assert.equal((await third.result).code, 0);

  // None of them kept state in SQLite.
  for (const host of [host1, host2, host3]) assert.ok(await missing(path.join(host.stateDir, 'controller.db')), host.stateDir);
});

test('boson up --controller with BOSON_CONTROLLER_ETCD: the embedded controller on etcd, this host its first machine', async () => {
  const host = await makeTestHost();
  cleanups.push(() => host.cleanup());
  host.env.BOSON_CONTROLLER_ETCD = etcd.endpoint;
  host.env.BOSON_CONTROLLER_ETCD_PREFIX = 'fleet-a/';
  const up = await startUntil(host, ['up', '--controller'], 'listening');
  try {
    // The state the controllers of the first test left in fleet-a/.
    assert.deepEqual((await json<Array<{ name: string }>>(host, ['tenant', 'ls'])).map((t) => t.name).sort(), ['acme', 'bolt', 'default']);
    const machines = await json<Array<{ labels: Record<string, string> }>>(host, ['machine', 'ls']);
    assert.equal(machines.length, 1);
    assert.equal(machines[0]!.labels.local, 'true');
    assert.equal((await runBoson(host, ['ps'])).code, 0);
  } finally {
    up.child.kill('SIGTERM');
    assert.equal((await up.result).code, 0);
  }
  assert.ok(await missing(path.join(host.stateDir, 'controller.db')));
});

/**
 * `boson up --controller` on one host: the host is the fleet's first machine (reached over the daemon's own
 * socket), so a project's container created through the controller runs here, in a real micro-VM, with its quota
 * reserved and given back; `boson machine ls` shows the machine READY. A second start keeps the same machine.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ERROR_CATALOGUE } from '../src/common/index.ts';
import { ControllerClient, parseQuotaItem, type MachineInfo } from '../src/controller/index.ts';
import { makeTestHost, qemuPidsUsing, runBoson, startUntil, type BosonResult, type TestHost } from './helpers.ts';
import type { ChildProcess } from 'node:child_process';

let host: TestHost;
let daemon: { child: ChildProcess; result: Promise<BosonResult> } | undefined;
let client: ControllerClient;

async function up(): Promise<void> {
  daemon = await startUntil(host, ['up', '--controller'], 'listening', 60_000);
}
async function down(): Promise<void> {
  if (!daemon) return;
  daemon.child.kill('SIGTERM');
  await daemon.result;
  daemon = undefined;
}

before(async () => {
  host = await makeTestHost();
  await up();
  client = new ControllerClient({ url: `unix://${path.join(host.env.BOSON_RUN_DIR!, 'controller.sock')}` });
});
after(async () => {
  await down();
  const left = host ? await qemuPidsUsing(host.stateDir) : [];
  await host?.cleanup();
  assert.deepEqual(left, []);
});

test('the host is the first machine; a project container created through the controller runs on it', async () => {
  const ls = await runBoson(host, ['machine', 'ls', '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const machines = JSON.parse(ls.stdout.toString()) as MachineInfo[];
  assert.equal(machines.length, 1);
  assert.equal(machines[0]!.state, 'READY');
  assert.equal(machines[0]!.address, `unix://${path.join(host.env.BOSON_RUN_DIR!, 'boson.sock')}`);

  const base = '/v1/tenants/default/projects/default/containers';
  const c = await client.request<{ id: string; name: string; state: string; machineId: string }>('POST', base, {
    spec: { image: 'busybox', name: 'web', labels: { tier: 'front' }, process: { args: ['sleep', '600'] }, resources: { memoryMiB: 128 } },
  });
  assert.equal(c.state, 'running');
  assert.equal(c.machineId, machines[0]!.id);
  const ps = await runBoson(host, ['ps', '--json']);
  assert.deepEqual(
    (JSON.parse(ps.stdout.toString()) as Array<{ name: string }>).map((x) => x.name),
    [c.id],
  );
  const usage = await client.request<{ usage: Array<{ key: string; value: number }> }>('GET', '/v1/tenants/default/projects/default');
  assert.equal(usage.usage.find((u) => u.key === 'vm.count')?.value, 1);

  // boson container: label filters, a lease whose nonce every change needs, a wait for an explicit state.
  const cli = async (args: string[], want = 0): Promise<string> => {
    const r = await runBoson(host, ['container', ...args]);
    assert.equal(r.code, want, `boson container ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout.toString()}`);
    return r.stdout.toString();
  };
  const listed = (labels: string[]) =>
    cli(['ls', 'default/default', ...labels.flatMap((l) => ['--label', l]), '--json']).then((o) =>
      (JSON.parse(o) as Array<{ name: string }>).map((x) => x.name),
    );
  assert.deepEqual(await listed(['tier=front']), ['web']);
  assert.deepEqual(await listed(['tier=back']), []);
  const lease = JSON.parse(await cli(['lease', 'default/default', 'web', '--ttl', '120', '--description', 'ci', '--json'])) as {
    nonce: string;
    owner: string;
  };
  assert.equal(lease.owner, 'admin');
  const refused = await runBoson(host, ['container', 'stop', 'default/default', 'web', '--json']);
  assert.equal(refused.code, ERROR_CATALOGUE.CONTAINER_LEASED.exit, refused.stderr);
  assert.match(refused.stderr, /CONTAINER_LEASED/);
  assert.equal(JSON.parse(await cli(['lease-info', 'default/default', 'web', '--json'])).description, 'ci');
  await cli(['stop', 'default/default', 'web', '--nonce', lease.nonce]);
  assert.equal(
    JSON.parse(await cli(['wait', 'default/default', 'web', '--state', 'stopped', '--timeout', '60', '--json'])).state,
    'exited',
  );
  const timedOut = await runBoson(host, ['container', 'wait', 'default/default', 'web', '--state', 'running', '--timeout', '1']);
  assert.equal(timedOut.code, ERROR_CATALOGUE.CONTAINER_WAIT_TIMEOUT.exit, timedOut.stderr);
  await cli(['release', 'default/default', 'web', '--nonce', lease.nonce, '--json']);
  await cli(['rm', 'default/default', 'web', '--force']);
  assert.equal((await client.request<unknown[]>('GET', base)).length, 0);
  const after = await client.request<{ usage: Array<{ key: string; value: number }> }>('GET', '/v1/tenants/default/projects/default');
  assert.equal(after.usage.find((u) => u.key === 'vm.count')?.value ?? 0, 0);

  // Restarted, the host is the same machine (not a second one).
  await down();
  await up();
  const again = await client.request<MachineInfo[]>('GET', '/v1/machines');
  assert.deepEqual(
    again.map((m) => m.id),
    [machines[0]!.id],
  );
});

test("boson --project runs, execs into, logs and lists a project's containers through the controller; another tenant finds none of it", async () => {
  const p = ['--project', 'default/default'];
  const usage = async (): Promise<number> =>
    (await client.request<{ usage: Array<{ key: string; value: number }> }>('GET', '/v1/tenants/default/projects/default')).usage.find(
      (u) => u.key === 'vm.count',
    )?.value ?? 0;

  // A foreground run: output, stderr and exit status come back through the controller, from the guest's kernel.
  const run = await runBoson(host, [...p, 'run', '--rm', 'busybox', 'sh', '-c', 'echo out-$(uname -r); echo err-line >&2; exit 3'], {
    timeoutMs: 120_000,
  });
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stdout.toString(), /^out-\S*boson/m, run.stdout.toString());
  assert.match(run.stderr, /err-line/);
  // --rm went through the controller: the record and its quota are gone.
  assert.equal((await client.request<unknown[]>('GET', '/v1/tenants/default/projects/default/containers')).length, 0);
  assert.equal(await usage(), 0);

  const d = await runBoson(host, [...p, 'run', '-d', '--name', 'svc', 'busybox', 'sh', '-c', 'echo logged-line; sleep 600']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(await usage(), 1);
  const ex = await runBoson(host, [...p, 'exec', 'svc', 'sh', '-c', 'cat /proc/version; exit 5']);
  assert.equal(ex.code, 5, ex.stderr);
  assert.match(ex.stdout.toString(), /boson/);
  let logs = '';
  for (let i = 0; i < 50 && !logs.includes('logged-line'); i++) {
    const l = await runBoson(host, [...p, 'logs', 'svc']);
    assert.equal(l.code, 0, l.stderr);
    logs = l.stdout.toString();
    if (!logs.includes('logged-line')) await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(logs, /logged-line/);
  const ps = await runBoson(host, [...p, 'ps', '--json']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.deepEqual(
    (JSON.parse(ps.stdout.toString()) as Array<{ name: string }>).map((x) => x.name),
    ['svc'],
  );

  // Another tenant's member: the project does not exist for it (404), for reads, writes and upgraded streams alike.
  await client.createTenant('other', [parseQuotaItem('vm.count=2')]);
  await client.createProject('other', 'p', [parseQuotaItem('vm.count=1')]);
  await client.createUser('other-dev', 'other');
  await client.createUser('default-viewer', 'default');
  const socket = `unix://${path.join(host.env.BOSON_RUN_DIR!, 'controller.sock')}`;
  const as = async (user: string, grant: Parameters<ControllerClient['createToken']>[0]['grant']) =>
    new ControllerClient({ url: socket, token: (await client.createToken({ user, grant })).token }).projectMachine('default', 'default');
  const other = await as('other-dev', { role: 'member', tenant: 'other', project: 'p' });
  const viewer = await as('default-viewer', { role: 'viewer', tenant: 'default', project: 'default' });
  const code = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'ok',
      (err: { code?: string }) => String(err.code),
    );
  assert.equal(await code(other.request('GET', '/v1/containers/svc/logs?stdout=1')), 'PROJECT_NOT_FOUND');
  assert.equal(await code(other.request('GET', '/v1/containers?all=1')), 'PROJECT_NOT_FOUND');
  assert.equal(await code(other.request('POST', '/v1/containers/svc/stop')), 'PROJECT_NOT_FOUND');
  assert.equal(await code(other.upgrade('/v1/containers/svc/exec', { argv: ['true'] })), 'PROJECT_NOT_FOUND');
  // A viewer reads, and may not change or exec.
  assert.equal(await code(viewer.request('GET', '/v1/containers/svc/logs?stdout=1')), 'ok');
  assert.equal(await code(viewer.request('POST', '/v1/containers/svc/stop')), 'PERMISSION_DENIED');
  assert.equal(await code(viewer.upgrade('/v1/containers/svc/exec', { argv: ['true'] })), 'PERMISSION_DENIED');

  const rm = await runBoson(host, [...p, 'rm', '-f', 'svc']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(await usage(), 0);
  assert.deepEqual(await qemuPidsUsing(host.stateDir), []);
});

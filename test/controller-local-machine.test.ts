/**
 * `boson up --controller` on one host: the host is the fleet's first machine (reached over the daemon's own
 * socket), so a project's container created through the controller runs here, in a real micro-VM, with its quota
 * reserved and given back; `boson machine ls` shows the machine READY. A second start keeps the same machine.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ControllerClient, type MachineInfo } from '../src/controller/index.ts';
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
    spec: { image: 'busybox', name: 'web', process: { args: ['sleep', '600'] }, resources: { memoryMiB: 128 } },
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
  await client.request('DELETE', `${base}/web?force=true`);
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

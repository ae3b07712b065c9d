/**
 * `boson suspend` / `boson resume` with real micro-VMs: a process's memory (a shell counting in a variable) and its
 * disk writes survive; no QEMU runs while suspended; a daemon killed -9 and started again finds the container still
 * suspended and resumes it; stop and rm -f of a suspended container, and the typed errors of the wrong states.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { useDaemonHost, runBoson, qemuPidsUsing, waitFor } from './helpers.ts';
import { QmpClient } from '../src/vmm/qmp.ts';
import { saveState } from '../src/vmm/migration.ts';

const { host, daemon } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 120_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString();
/** The stock docker CLI against the daemon's Docker API. */
const docker = async (...args: string[]): Promise<string> =>
  (await promisify(execFile)('docker', args, { env: { ...process.env, DOCKER_HOST: `unix://${host().env.BOSON_RUN_DIR}/docker.sock` } }))
    .stdout;

interface Inspected {
  id: string;
  state: string;
  exitCode: number | null;
  vmPid: number | null;
  suspendedAt?: string;
  endpoint: { address: string; mac: string } | null;
}

async function inspect(ref: string): Promise<Inspected> {
  const r = await boson('inspect', ref);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(out(r))[0] as Inspected;
}

/** The counter the container's shell keeps in a variable (and writes to /tmp/n after each step). */
async function count(ref: string): Promise<number> {
  const r = await boson('exec', ref, 'cat', '/tmp/n');
  assert.equal(r.code, 0, r.stderr);
  return Number(out(r).trim());
}

const stateFile = (id: string): string => path.join(host().stateDir, 'containers', id, 'suspend.state');
const exists = (file: string): Promise<boolean> =>
  stat(file).then(
    () => true,
    () => false,
  );

/** Suspends `ref` and returns what the CLI printed (--json). */
async function suspend(ref: string): Promise<{ stateBytes: number; ms: number; state: string }> {
  const r = await boson('suspend', '--json', ref);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(out(r)) as { stateBytes: number; ms: number; state: string };
}

async function resume(ref: string): Promise<{ stateBytes: number; ms: number; state: string }> {
  const r = await boson('resume', '--json', ref);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(out(r)) as { stateBytes: number; ms: number; state: string };
}

const COUNTER = 'echo written-before > /before; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.2; done';

describe('suspend and resume', () => {
  test('a counting process keeps its memory and its disk writes; no QEMU runs while suspended; wrong states are refused', async () => {
    const t0 = Math.floor(Date.now() / 1000) - 1;
    assert.equal((await boson('run', '-d', '--name', 'counter', 'busybox', 'sh', '-c', COUNTER)).code, 0);
    const c = await inspect('counter');
    await waitFor(async () => (await count('counter').catch(() => 0)) >= 5, 60_000, 'the counter to reach 5');
    assert.equal((await boson('exec', 'counter', 'sh', '-c', 'echo exec-wrote > /exec-file')).code, 0);
    const before = await count('counter');
    const uptimeBefore = Number(out(await boson('exec', 'counter', 'cut', '-d.', '-f1', '/proc/uptime')).trim());

    const saved = await suspend('counter');
    assert.equal(saved.state, 'suspended');
    assert.ok(saved.stateBytes > 1_000_000, `a saved state of ${saved.stateBytes} bytes`);
    const s = await inspect('counter');
    assert.equal(s.state, 'suspended');
    assert.equal(s.vmPid, null);
    assert.ok(s.suspendedAt, 'suspendedAt is set');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [], 'no QEMU runs while the container is suspended');
    assert.equal((await stat(stateFile(c.id))).mode & 0o777, 0o600, 'the state file is 0600');
    assert.equal((await stat(stateFile(c.id))).size, saved.stateBytes);
    assert.match(out(await boson('ps')), /Suspended .* ago +counter/, 'ps lists it as suspended');
    // Docker has no suspended state: it shows a paused container, which docker ps lists.
    assert.match(await docker('ps', '--format', '{{.Names}} {{.State}}'), /^counter paused$/m);
    assert.equal(
      (await docker('inspect', '-f', '{{.State.Status}} {{.State.Running}} {{.State.Paused}}', 'counter')).trim(),
      'paused true true',
    );

    // The wrong states, each with its typed error (docs/api.md exit statuses).
    assert.equal((await boson('suspend', 'counter')).code, 150, 'suspend of a suspended container: CONTAINER_SUSPENDED');
    assert.equal((await boson('exec', 'counter', 'true')).code, 150, 'exec: CONTAINER_SUSPENDED');
    assert.equal((await boson('start', 'counter')).code, 150, 'start: CONTAINER_SUSPENDED');
    assert.equal((await boson('kill', 'counter')).code, 150, 'kill: CONTAINER_SUSPENDED');
    assert.equal((await boson('rm', 'counter')).code, 150, 'rm without --force: CONTAINER_SUSPENDED');
    assert.equal((await inspect('counter')).state, 'suspended', 'nothing changed');

    await new Promise((r) => setTimeout(r, 1500));
    const resumed = await resume('counter');
    assert.equal(resumed.state, 'running');
    assert.equal(resumed.stateBytes, saved.stateBytes);
    assert.equal(await exists(stateFile(c.id)), false, 'the state file goes once the VM runs');
    const after = await count('counter');
    assert.ok(after >= before && after < before + 40, `the counter continued from ${before} (now ${after}), it did not start again`);
    await waitFor(async () => (await count('counter')) > after, 30_000, 'the counter to go on counting');
    assert.equal(out(await boson('exec', 'counter', 'cat', '/before')), 'written-before\n');
    assert.equal(out(await boson('exec', 'counter', 'cat', '/exec-file')), 'exec-wrote\n');
    const uptimeAfter = Number(out(await boson('exec', 'counter', 'cut', '-d.', '-f1', '/proc/uptime')).trim());
    assert.ok(uptimeAfter >= uptimeBefore, `the guest did not boot again (uptime ${uptimeBefore} -> ${uptimeAfter})`);
    const guestNow = Number(out(await boson('exec', 'counter', 'date', '+%s')).trim());
    assert.ok(
      Math.abs(guestNow - Date.now() / 1000) < 15,
      `the guest clock was set after the resume (${guestNow} vs ${Date.now() / 1000})`,
    );
    assert.equal((await boson('resume', 'counter')).code, 151, 'resume of a running container: CONTAINER_NOT_SUSPENDED');
    const events = out(await boson('events', '--since', String(t0), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--json'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; actorId: string })
      .filter((e) => e.actorId === c.id)
      .map((e) => e.action);
    assert.deepEqual(
      events.filter((a) => a === 'suspend' || a === 'resume'),
      ['suspend', 'resume'],
      `events: ${events.join(' ')}`,
    );
    const r = await inspect('counter');
    assert.equal(r.state, 'running');
    assert.equal(r.endpoint?.address, c.endpoint?.address, 'the same address as before');
    // Its network works: the guest reaches the gateway (its bridge) with the address and MAC it had.
    const gw = out(await boson('exec', 'counter', 'sh', '-c', "ip route | awk '/default/ {print $3}'")).trim();
    assert.equal((await boson('exec', 'counter', 'ping', '-c', '1', '-W', '3', gw)).code, 0, `ping ${gw} after the resume`);
  });

  test('a suspended container survives kill -9 of the daemon and resumes under the next one', async () => {
    const before = await count('counter');
    await suspend('counter');
    await daemon.kill9();
    await daemon.start();
    const s = await inspect('counter');
    assert.equal(s.state, 'suspended', 'still suspended after the daemon restart');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [], 'no QEMU was started for it');
    await resume('counter');
    const after = await count('counter');
    assert.ok(after >= before && after < before + 40, `the counter continued from ${before} (now ${after})`);
    await waitFor(async () => (await count('counter')) > after, 30_000, 'the counter to go on counting');
  });

  test('stop of a suspended container ends it without resuming (137); rm -f removes it and its state', async () => {
    const c = await inspect('counter');
    await suspend('counter');
    // Through the Docker API (docker stop of a paused-looking container must not answer 304 "not modified").
    assert.equal((await docker('stop', 'counter')).trim(), 'counter');
    const s = await inspect('counter');
    assert.equal(s.state, 'exited');
    assert.equal(s.exitCode, 137);
    assert.equal(await exists(stateFile(c.id)), false, 'stop deletes the saved state');
    assert.equal((await boson('resume', 'counter')).code, 151, 'resume of an exited container: CONTAINER_NOT_SUSPENDED');
    assert.equal((await boson('suspend', 'counter')).code, 79, 'suspend of an exited container: CONTAINER_NOT_RUNNING');
    // The disk kept what the guest synced before the suspend: a new start sees /before.
    assert.equal((await boson('start', 'counter')).code, 0);
    assert.equal(out(await boson('exec', 'counter', 'cat', '/exec-file')).trim(), 'exec-wrote');
    await suspend('counter');
    assert.equal((await boson('rm', '-f', 'counter')).code, 0);
    assert.equal(await exists(path.join(host().stateDir, 'containers', c.id)), false, 'its directory and state are gone');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
  });

  test('containers with bind mounts are refused (QEMU cannot save virtiofs or 9p)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-suspend-bind-'));
    try {
      assert.equal((await boson('run', '-d', '--name', 'bound', '-v', `${dir}:/data`, 'busybox', 'sleep', '600')).code, 0);
      const r = await boson('suspend', 'bound');
      assert.equal(r.code, 152, r.stderr);
      assert.match(r.stderr, /bind mounts/);
      assert.equal((await inspect('bound')).state, 'running', 'nothing changed');
      assert.equal((await boson('rm', '-f', 'bound')).code, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a daemon killed in the middle of a suspend: its next start settles the container', async () => {
    assert.equal((await boson('run', '-d', '--name', 'crash', 'busybox', 'sh', '-c', COUNTER)).code, 0);
    const c = await inspect('crash');
    await waitFor(async () => (await count('crash').catch(() => 0)) >= 3, 60_000, 'the counter to reach 3');
    const rt = path.join(host().stateDir, 'run', 'vms', c.id.slice(0, 16));
    /** What the daemon's suspend does up to a point, done here over QMP while no daemon runs. */
    const saveBehindTheDaemon = async (file: string): Promise<void> => {
      const pid = Number((await readFile(path.join(rt, 'qemu.pid'), 'utf8')).trim());
      const qmp = new QmpClient(net.connect(path.join(rt, 'qmp.sock')));
      await qmp.ready;
      await qmp.execute('stop');
      await saveState(qmp, pid, rt, file);
      qmp.close();
    };

    // 1. Killed after the state was whole, before the record said suspended (its QEMU is left in postmigrate).
    const before = await count('crash');
    await daemon.stop();
    await saveBehindTheDaemon(stateFile(c.id));
    await writeFile(path.join(path.dirname(stateFile(c.id)), 'suspend.json'), JSON.stringify({ memoryMiB: 256, cpus: 1 }));
    await daemon.start();
    assert.equal((await inspect('crash')).state, 'suspended', 'a whole state and a stopped VM: the suspend had finished');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [], 'its stopped QEMU was ended');
    await resume('crash');
    const after = await count('crash');
    assert.ok(after >= before && after < before + 40, `the counter continued from ${before} (now ${after})`);

    // 2. Killed after QEMU had sent the whole state, before the daemon had it in its file: QEMU 7.2 can neither
    // continue such a VM (its disks' locks are gone) nor save it again, so the next daemon ends it (137); the partial
    // state goes, and the container starts again from its disks.
    await daemon.stop();
    await saveBehindTheDaemon(`${stateFile(c.id)}.partial`);
    await daemon.start();
    const lost = await inspect('crash');
    assert.equal(lost.state, 'exited');
    assert.equal(lost.exitCode, 137);
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [], 'its QEMU was ended');
    assert.equal(await exists(`${stateFile(c.id)}.partial`), false, 'the partial state is deleted');
    assert.equal((await boson('start', 'crash')).code, 0);
    await waitFor(async () => (await count('crash').catch(() => 0)) >= 2, 60_000, 'the counter after a new start');
    assert.equal((await boson('rm', '-f', 'crash')).code, 0);
  });
});

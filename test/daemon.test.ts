/**
 * The machine daemon with real micro-VMs, real SQLite and the real CLI: container lifecycle, restart policies,
 * errors, the API's own documents, and many operations fired at it concurrently.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { makeTestHost, useDaemonHost, runBoson, qemuPidsUsing, waitFor, assertGuestRelease, assertQemuOwns } from './helpers.ts';
import { MachineClient } from '../src/machine/index.ts';
import { writeOciLayout } from '../src/image/oci-writer.ts';
import { busyboxLayerTar, pushLayout, startRegistry, testConfig } from './registry-fixture.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString().trim();
const api = (): MachineClient => new MachineClient(path.join(host().stateDir, 'run', 'boson.sock'));

interface Inspected {
  state: string;
  exitCode: number | null;
  restartCount: number;
  name: string;
  id: string;
  vmPid: number | null;
  startedAt: string | null;
}

async function inspect(ref: string): Promise<Inspected> {
  const r = await boson('inspect', ref);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString())[0];
}

describe('boson daemon', () => {
  test('lifecycle: run -d, ps, stop, start, restart, kill, wait, rename, rm', async () => {
    const run = await boson('run', '-d', '--name', 'life', '--label', 'team=core', 'busybox', 'sleep', '600');
    assert.equal(run.code, 0, run.stderr);
    const id = out(run);
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 1, 'one micro-VM');

    const ps = await boson('ps');
    assert.match(out(ps), new RegExp(`^${id.slice(0, 12)}\\s+busybox\\s+"sleep 600"\\s+.*Up .*\\s+life$`, 'm'));
    const psJson = JSON.parse((await boson('ps', '--json')).stdout.toString());
    assert.equal(psJson[0].config.labels.team, 'core');

    assert.equal((await boson('stop', '-t', '5', 'life')).code, 0);
    let state = await inspect('life');
    assert.equal(state.state, 'exited');
    assert.equal(state.exitCode, 143, 'SIGTERM ended sleep');
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 0, 'the micro-VM is gone');
    assert.match(out(await boson('ps', '-a')), /Exited \(143\)/);
    assert.equal(out(await boson('ps', '-q')), '', 'ps without -a hides it');

    assert.equal((await boson('start', id.slice(0, 8))).code, 0, 'a unique id prefix works');
    const started = await inspect('life');
    assert.equal(started.state, 'running');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [started.vmPid], 'start booted one micro-VM, the one inspect names');
    assert.equal((await boson('restart', '-t', '1', 'life')).code, 0);
    const restarted = await inspect('life');
    assert.equal(restarted.state, 'running');
    assert.notEqual(restarted.vmPid, started.vmPid, 'restart booted a new micro-VM');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [restarted.vmPid], 'and the old one is gone');
    assert.ok(
      Date.parse(restarted.startedAt!) > Date.parse(started.startedAt!),
      `StartedAt moved on: ${started.startedAt} -> ${restarted.startedAt}`,
    );
    assert.equal(restarted.restartCount, 0, 'a restart asked for is not a policy restart (as Docker counts)');

    const waiter = boson('wait', 'life');
    assert.equal((await boson('kill', '-s', 'KILL', 'life')).code, 0);
    const waited = await waiter;
    assert.equal(out(waited), '137');
    assert.equal((await boson('rename', 'life', 'renamed')).code, 0);
    state = await inspect('renamed');
    assert.equal(state.id, id);
    assert.equal((await boson('rm', 'renamed')).code, 0);
    assert.equal(out(await boson('ps', '-aq')), '');
  });

  test('run -d, logs and exec run under the guest kernel, in the QEMU that owns the container', async () => {
    const run = await boson('run', '-d', '--name', 'kern', 'busybox', 'sh', '-c', 'uname -r; sleep 600');
    assert.equal(run.code, 0, run.stderr);
    const id = out(run);
    let logged = '';
    await waitFor(async () => (logged = out(await boson('logs', 'kern'))) !== '', 30_000, 'the release in the logs');
    assertGuestRelease(logged);
    const running = await inspect('kern');
    await assertQemuOwns(host().stateDir, running.vmPid, id);
    const exec = await boson('exec', 'kern', 'uname', '-r');
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(out(exec), logged, 'exec runs in the same guest kernel');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [running.vmPid], 'exec started no QEMU of its own');
    assert.equal((await boson('rm', '-f', 'kern')).code, 0);
    assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
  });

  test('an on-failure:2 restart policy boots a new micro-VM twice, then leaves the container exited', async () => {
    const run = await boson(
      'run',
      '-d',
      '--name',
      'flaky',
      '--restart',
      'on-failure:2',
      'busybox',
      'sh',
      '-c',
      'echo ran; sleep 2; exit 3',
    );
    assert.equal(run.code, 0, run.stderr);
    // Each run, by its restart count: the QEMU that ran it (seen among this host's QEMUs) and when it started.
    const runs = new Map<number, { vmPid: number; startedAt: string }>();
    await waitFor(
      async () => {
        const s = await api().request<Inspected>('GET', '/v1/containers/flaky');
        if (s.state === 'running' && s.vmPid !== null && (await qemuPidsUsing(host().stateDir)).includes(s.vmPid))
          runs.set(s.restartCount, { vmPid: s.vmPid, startedAt: s.startedAt! });
        return s.state === 'exited' && s.restartCount === 2;
      },
      90_000,
      'two restarts',
    );
    assert.deepEqual([...runs.keys()].sort(), [0, 1, 2], 'each run was seen in its own micro-VM');
    assert.equal(new Set([...runs.values()].map((r) => r.vmPid)).size, 3, 'three different QEMU processes');
    assert.ok(Date.parse(runs.get(0)!.startedAt) < Date.parse(runs.get(1)!.startedAt));
    assert.ok(Date.parse(runs.get(1)!.startedAt) < Date.parse(runs.get(2)!.startedAt));
    const s = await inspect('flaky');
    assert.equal(s.exitCode, 3);
    assert.equal(s.vmPid, null);
    assert.equal(out(await boson('logs', 'flaky')), 'ran\nran\nran');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
    assert.equal((await boson('rm', 'flaky')).code, 0);
  });

  test('--restart always and unless-stopped restart a container that exits 0, in a new micro-VM, until it is stopped', async () => {
    for (const policy of ['always', 'unless-stopped']) {
      const name = `again-${policy}`;
      const run = await boson('run', '-d', '--name', name, '--restart', policy, 'busybox', 'sh', '-c', 'sleep 1; exit 0');
      assert.equal(run.code, 0, run.stderr);
      const first = await inspect(name);
      let second: Inspected | undefined;
      await waitFor(
        async () => {
          const s = await api().request<Inspected>('GET', `/v1/containers/${name}`);
          if (s.state === 'running' && s.restartCount >= 1) second = s;
          return second !== undefined;
        },
        60_000,
        `${policy}: a restart after exit 0`,
      );
      assert.notEqual(second!.vmPid, first.vmPid, `${policy}: a new QEMU`);
      assert.ok(Date.parse(second!.startedAt!) > Date.parse(first.startedAt!));
      assert.equal((await boson('stop', '-t', '1', name)).code, 0);
      const stopped = await inspect(name);
      await new Promise((r) => setTimeout(r, 2000));
      const later = await inspect(name);
      assert.equal(later.state, 'exited', `${policy}: a stopped container stays stopped`);
      assert.equal(later.restartCount, stopped.restartCount);
      assert.equal((await boson('rm', name)).code, 0);
    }
    assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
  });

  test('errors: unknown container, name in use, running container removal, exec into a stopped container', async () => {
    const unknown = await boson('stop', 'no-such-container');
    assert.equal(unknown.code, 66, 'CONTAINER_NOT_FOUND');
    assert.match(unknown.stderr, /no such container: no-such-container/);
    const inspectUnknown = await boson('inspect', 'nope');
    assert.equal(inspectUnknown.code, 66);
    assert.match(inspectUnknown.stderr, /no such container/);

    assert.equal((await boson('run', '-d', '--name', 'taken', 'busybox', 'sleep', '600')).code, 0);
    const dup = await boson('run', '-d', '--name', 'taken', 'busybox', 'true');
    assert.equal(dup.code, 68);
    assert.match(dup.stderr, /already in use/);
    const rmRunning = await boson('rm', 'taken');
    assert.equal(rmRunning.code, 80, 'CONTAINER_RUNNING');
    assert.match(rmRunning.stderr, /is running/);
    // Several names: every failure is reported; one status when they agree, 1 when they differ.
    const twoMissing = await boson('rm', 'nope1', 'nope2');
    assert.equal(twoMissing.code, 66);
    assert.match(twoMissing.stderr, /nope1[\s\S]*nope2/);
    const mixed = await boson('rm', 'nope1', 'taken');
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /no such container: nope1/);
    assert.match(mixed.stderr, /is running/);
    assert.equal((await boson('stop', '-t', '0', 'taken')).code, 0);
    const exec = await boson('exec', 'taken', 'true');
    assert.equal(exec.code, 79);
    assert.match(exec.stderr, /not running/);
    assert.equal((await boson('rm', 'taken')).code, 0);

    const huge = await boson('run', '-d', '--name', 'huge', '-m', '4t', 'busybox', 'true');
    assert.equal(huge.code, 83, huge.stderr);
    assert.match(huge.stderr, /not enough memory on this host/);
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 0, 'no micro-VM was started');
    assert.equal((await boson('rm', '-f', 'huge')).code, 0);

    const badPolicy = await boson('run', '-d', '--restart', 'sometimes', 'busybox', 'true');
    assert.equal(badPolicy.code, 64);
    const noDaemon = await runBoson(host(), ['ps'], { env: { BOSON_HOST: '/nonexistent/boson.sock' } });
    assert.equal(noDaemon.code, 81);
    assert.match(noDaemon.stderr, /cannot reach the Boson daemon/);
  });

  test('the API documents itself (OpenAPI 3), reports health and Prometheus metrics, and answers bad input with problem JSON', async () => {
    const socketPath = path.join(host().stateDir, 'run', 'boson.sock');
    const get = (p: string): Promise<{ status: number; type: string; body: string }> =>
      new Promise((resolve, reject) => {
        http
          .get({ socketPath, path: p }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
          })
          .on('error', reject);
      });
    const doc = JSON.parse((await get('/openapi.json')).body);
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths['/v1/containers'], 'containers are documented');
    assert.ok(doc.paths['/v1/containers/{ref}/logs']);
    assert.equal((await get('/healthz')).status, 200);
    const metrics = await get('/metrics');
    assert.match(metrics.body, /^boson_vms_running \d+$/m);
    assert.match(metrics.body, /boson_vm_boot_seconds_count/);
    const missing = await get('/v1/containers/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.type, /application\/problem\+json/);
    assert.equal(JSON.parse(missing.body).code, 'CONTAINER_NOT_FOUND');
    await assert.rejects(
      api().request('POST', '/v1/containers', { image: 'busybox', bogus: 1 }),
      (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT',
    );
    await assert.rejects(
      api().request('POST', '/v1/containers', { image: 'no-such-image' }),
      (e: Error & { code?: string }) => e.code === 'IMAGE_NOT_FOUND',
    );
  });

  test('50 lifecycle operations fired concurrently leave a consistent state and a healthy daemon', async () => {
    const c = api();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (
          await c.request<{ id: string }>('POST', '/v1/containers', {
            image: 'busybox',
            process: { args: ['sleep', '600'] },
            name: `burst${i}`,
          })
        ).id,
      );
    const ops: Array<Promise<unknown>> = [];
    for (let round = 0; round < 10; round++) {
      for (const id of ids) {
        const op = round % 5;
        const path2 = `/v1/containers/${id}`;
        if (op === 0 || op === 3) ops.push(c.request('POST', `${path2}/start`));
        else if (op === 1) ops.push(c.request('GET', path2));
        else if (op === 2) ops.push(c.request('POST', `${path2}/stop?t=0`));
        else ops.push(c.request('GET', '/v1/containers?all=1'));
      }
    }
    const results = await Promise.allSettled(ops);
    assert.equal(results.length, 50);
    const unexpected = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(unexpected, [], 'every operation succeeded');
    // Every container ended in one consistent state: running, with exactly one VM each.
    for (const id of ids) assert.equal((await c.request<{ state: string }>('GET', `/v1/containers/${id}`)).state, 'running');
    assert.equal((await qemuPidsUsing(host().stateDir)).length, ids.length);
    await Promise.all(ids.map((id) => c.request('DELETE', `/v1/containers/${id}?force=1`)));
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 0);
    assert.deepEqual(await c.request('GET', '/healthz'), { status: 'ok' });
  });

  test('run -d pulls an image that is not here, as docker run does', async () => {
    const registry = await startRegistry();
    const layout = await mkdtemp(path.join(os.tmpdir(), 'boson-pull-d-'));
    try {
      await writeOciLayout(layout, [{ config: testConfig(), refName: 'v1', layers: [{ tar: await busyboxLayerTar() }] }]);
      const ref = `${registry.host}/test/pulled:v1`;
      await pushLayout(layout, 'v1', ref);
      const r = await boson('run', '-d', '--name', 'pulled', ref, 'echo', 'pulled and ran');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(out(await boson('wait', 'pulled')), '0');
      assert.equal(out(await boson('logs', 'pulled')), 'pulled and ran');
      assert.equal((await boson('rm', 'pulled')).code, 0);
      assert.match(out(await boson('images')), /test\/pulled/);
    } finally {
      await registry.stop();
      await rm(layout, { recursive: true, force: true });
    }
  });

  test('the README through the CLI: images -q, network inspect, kill -s, logs --since/--until, stats, events, exec -t', async () => {
    const since = new Date().toISOString();
    const ids = out(await boson('images', '-q')).split('\n');
    const images = JSON.parse((await boson('images', '--json')).stdout.toString()) as Array<{ id: string }>;
    assert.deepEqual(
      ids,
      images.map((i) => i.id.replace(/^sha256:/, '').slice(0, 12)),
      'one short id per image',
    );
    assert.ok(ids.every((i) => /^[0-9a-f]{12}$/.test(i)));

    assert.equal((await boson('network', 'create', 'readme-net')).code, 0);
    assert.match(out(await boson('network', 'ls')), /readme-net/);
    const net = await boson('network', 'inspect', 'readme-net');
    assert.equal(net.code, 0, net.stderr);
    const [netJson] = JSON.parse(net.stdout.toString());
    assert.equal(netJson.name, 'readme-net');
    assert.match(JSON.stringify(netJson), /"\d+\.\d+\.\d+\.\d+\/\d+"/, 'it shows its subnet');
    assert.equal(out(await boson('network', 'rm', 'readme-net')), 'readme-net');

    const run = await boson(
      'run',
      '-d',
      '--name',
      'readme',
      'busybox',
      'sh',
      '-c',
      'trap "echo got HUP" HUP; trap "echo got USR1" USR1; echo first; while true; do sleep 0.1; done',
    );
    assert.equal(run.code, 0, run.stderr);
    await waitFor(async () => out(await boson('logs', 'readme')) === 'first', 30_000, 'the first line');
    await new Promise((r) => setTimeout(r, 1100));
    const middle = new Date().toISOString();
    for (const signal of ['HUP', 'USR1']) assert.equal((await boson('kill', '-s', signal, 'readme')).code, 0, signal);
    await waitFor(async () => out(await boson('logs', 'readme')) === 'first\ngot HUP\ngot USR1', 30_000, 'both traps to run');
    assert.equal((await inspect('readme')).state, 'running', 'a trapped signal does not end the container');
    assert.equal(out(await boson('logs', '--until', middle, 'readme')), 'first');
    assert.equal(out(await boson('logs', '--since', middle, 'readme')), 'got HUP\ngot USR1');

    const stats = await boson('stats', '--no-stream', 'readme');
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(out(stats), /^\S{12}\s+readme\s+[\d.]+s\s+\S+ \/ 268\.4MB\s+\d+$/m, 'the 256 MiB default, in decimal units');
    const [statsJson] = JSON.parse((await boson('stats', '--json', 'readme')).stdout.toString());
    assert.ok(statsJson.memoryBytes > 0 && statsJson.cpuNs > 0, JSON.stringify(statsJson));

    const tty = await boson('exec', '-t', 'readme', 'tty');
    assert.equal(tty.code, 0, tty.stderr);
    assert.match(out(tty), /^\/dev\/pts\/\d+$/, 'exec -t runs on a pty in the guest');
    const noTty = await boson('exec', 'readme', 'tty');
    assert.equal(noTty.code, 1);
    assert.equal(out(noTty), 'not a tty');

    assert.equal((await boson('rm', '-f', 'readme')).code, 0);
    const events = await boson('events', '--since', since, '--until', new Date().toISOString(), '--json');
    assert.equal(events.code, 0, events.stderr);
    const actions = out(events)
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; attributes: Record<string, string> })
      .filter((e) => e.attributes.name === 'readme')
      .map((e) => e.action);
    assert.deepEqual(
      actions.filter((a) => ['create', 'start', 'kill', 'die', 'destroy'].includes(a)),
      ['create', 'start', 'kill', 'kill', 'die', 'destroy'],
      'a kill per kill -s; rm -f ends the micro-VM without one',
    );
  });

  test('up --detach runs the daemon in the background and prints its pid', async () => {
    const other = await makeTestHost();
    let pid = 0;
    try {
      const up = await runBoson(other, ['up', '--detach'], { timeoutMs: 60_000 });
      assert.equal(up.code, 0, up.stderr);
      pid = Number(out(up).match(/\d+/)?.[0]);
      assert.ok(pid > 0, `a pid in ${JSON.stringify(out(up))}`);
      process.kill(pid, 0);
      const ps = await runBoson(other, ['ps', '-q']);
      assert.equal(ps.code, 0, ps.stderr);
      assert.equal(out(ps), '');
    } finally {
      if (pid > 0) {
        process.kill(pid, 'SIGTERM');
        await waitFor(
          () => {
            try {
              process.kill(pid, 0);
              return false;
            } catch {
              return true;
            }
          },
          20_000,
          'the detached daemon to end',
        );
      }
      await other.cleanup();
    }
  });

  test('a second daemon on the same socket is refused', async () => {
    const second = await runBoson(host(), ['up'], { timeoutMs: 30_000 });
    assert.equal(second.code, 98, second.stderr);
    assert.match(second.stderr, /another Boson daemon \(pid \d+\) already runs on/);
  });
});

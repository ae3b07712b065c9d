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
import { useDaemonHost, runBoson, qemuPidsUsing, waitFor } from './helpers.ts';
import { MachineClient } from '../src/machine/index.ts';
import { writeOciLayout } from '../src/image/oci-writer.ts';
import { busyboxLayerTar, pushLayout, startRegistry, testConfig } from './registry-fixture.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString().trim();
const api = (): MachineClient => new MachineClient(path.join(host().stateDir, 'run', 'boson.sock'));

async function inspect(ref: string): Promise<{ state: string; exitCode: number | null; restartCount: number; name: string; id: string }> {
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
    assert.equal((await inspect('life')).state, 'running');
    assert.equal((await boson('restart', '-t', '1', 'life')).code, 0);
    assert.equal((await inspect('life')).state, 'running');

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

  test('an on-failure:2 restart policy restarts twice, then leaves the container exited', async () => {
    const run = await boson('run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 3');
    assert.equal(run.code, 0, run.stderr);
    await waitFor(
      async () => {
        const s = await inspect('flaky');
        return s.state === 'exited' && s.restartCount === 2;
      },
      60_000,
      'two restarts',
    );
    const s = await inspect('flaky');
    assert.equal(s.exitCode, 3);
    assert.equal((await boson('rm', 'flaky')).code, 0);
  });

  test('errors: unknown container, name in use, running container removal, exec into a stopped container', async () => {
    const unknown = await boson('stop', 'no-such-container');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no such container: no-such-container/);
    const inspectUnknown = await boson('inspect', 'nope');
    assert.match(inspectUnknown.stderr, /no such container/);

    assert.equal((await boson('run', '-d', '--name', 'taken', 'busybox', 'sleep', '600')).code, 0);
    const dup = await boson('run', '-d', '--name', 'taken', 'busybox', 'true');
    assert.equal(dup.code, 68);
    assert.match(dup.stderr, /already in use/);
    const rmRunning = await boson('rm', 'taken');
    assert.equal(rmRunning.code, 1);
    assert.match(rmRunning.stderr, /is running/);
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

  test('a second daemon on the same socket is refused', async () => {
    const second = await runBoson(host(), ['up'], { timeoutMs: 30_000 });
    assert.equal(second.code, 98, second.stderr);
    assert.match(second.stderr, /another Boson daemon \(pid \d+\) already runs on/);
  });
});

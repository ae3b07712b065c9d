/**
 * A daemon killed (-9) while a container's micro-VM boots leaves nothing behind once a daemon runs again: the QEMU
 * it was starting is killed (no record says it runs), and its tap, cgroup, runtime directory and mounts go with
 * it. And an embedded `boson run --rm` killed -9 (no daemon) leaves no cgroup once the next runtime has swept.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { qemuPidsUsing, runBoson, startBoson, testDaemon, useTestHost, waitFor } from './helpers.ts';

/** Cgroup directories named after one of `ids` (16 hex digits) under any controller's boson group. */
async function cgroupsOf(ids: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const controller of ['memory', 'pids', 'cpu', '']) {
    const parent = path.join('/sys/fs/cgroup', controller, 'boson');
    for (const name of await readdir(parent).catch(() => [] as string[]))
      if (ids.some((id) => id.startsWith(name) && name.length === 16)) found.push(path.join(parent, name));
  }
  return found;
}

async function containerIds(stateDir: string): Promise<string[]> {
  return (await readdir(path.join(stateDir, 'containers')).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}$/.test(n));
}

describe('kill -9 during a start', () => {
  const host = useTestHost();

  const stateOf = async (id: string): Promise<string> => {
    const r = await runBoson(host(), ['inspect', id]);
    const doc = JSON.parse(r.stdout.toString()) as unknown;
    return ((Array.isArray(doc) ? doc[0] : doc) as { state: string }).state;
  };

  test('a daemon killed while the VM boots: the next daemon leaves no QEMU, tap, cgroup, runtime directory or mount', async () => {
    const daemon = testDaemon(host);
    await daemon.start();
    const { stateDir, env } = host();
    try {
      const run = startBoson(host(), ['run', '-d', 'busybox', 'sleep', '600']);
      run.on('error', () => undefined);
      // The QEMU exists (the VM boots): kill the daemon before the container has started.
      await waitFor(async () => (await qemuPidsUsing(stateDir)).length > 0, 60_000, 'the QEMU of the container');
      const t0 = Date.now();
      const ids = await containerIds(stateDir);
      assert.equal(ids.length, 1);
      const id = ids[0]!;
      await daemon.kill9();
      run.kill('SIGKILL');
      console.log(`# killed the daemon ${Date.now() - t0} ms after the QEMU appeared`);
      assert.ok((await qemuPidsUsing(stateDir)).length > 0, 'the QEMU outlived its daemon');
      await daemon.start();
      const state = await stateOf(id);
      const adopted = state === 'running';
      console.log(`# after restart: ${state} (${adopted ? 'adopted' : 'not adopted'})`);
      if (!adopted) {
        await waitFor(async () => (await qemuPidsUsing(stateDir)).length === 0, 10_000, 'no QEMU of this host');
        assert.deepEqual(await cgroupsOf([id]), [], 'its cgroup is removed');
        const vmDir = path.join(env.BOSON_RUN_DIR!, 'vms', id.slice(0, 16));
        assert.equal(existsSync(vmDir), false, 'its runtime directory is removed');
        const links = await readdir('/sys/class/net');
        assert.deepEqual(
          links.filter((l) => l.startsWith(`${env.BOSON_NET_PREFIX}t`)),
          [],
          'no tap of this host',
        );
        const mounts = await readFile('/proc/self/mountinfo', 'utf8');
        assert.ok(!mounts.includes(stateDir), 'no mount under the state directory');
        // And the container starts again cleanly.
        const start = await runBoson(host(), ['start', id]);
        assert.equal(start.code, 0, start.stderr);
      }
      await runBoson(host(), ['rm', '-f', id]);
      await waitFor(async () => (await qemuPidsUsing(stateDir)).length === 0, 10_000, 'no QEMU after rm');
      assert.deepEqual(await cgroupsOf([id]), []);
    } finally {
      await daemon.stop();
    }
  });

  test('boson run --rm killed -9 without a daemon: the next boson command leaves no cgroup of it', async () => {
    const { stateDir } = host();
    const run = startBoson(host(), ['run', '--rm', 'busybox', 'sh', '-c', 'echo up; sleep 600']);
    let out = '';
    run.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('up'), 120_000, 'the container to run');
    const ids = await containerIds(stateDir);
    assert.ok((await cgroupsOf(ids)).length > 0 || ids.length === 0, 'the VM has a cgroup while it runs');
    run.kill('SIGKILL');
    await waitFor(async () => (await qemuPidsUsing(stateDir)).length === 0, 10_000, 'the VM to die with its boson run');
    // The next embedded runtime sweeps what the killed one left.
    const next = await runBoson(host(), ['run', '--rm', 'busybox', 'true'], { timeoutMs: 120_000 });
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(await cgroupsOf(ids), [], 'no cgroup left');
  });
});

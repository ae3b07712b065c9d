/**
 * A full host disk under a running container (its sparse writable layer cannot grow): the micro-VM pauses with the
 * write kept, the daemon says so (ps, inspect, a clear error for exec), and once there is room again it resumes by
 * itself and the data the container wrote is intact. The state directory lives on a small tmpfs of its own.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { collect, makeTestHost, qemuPidsUsing, runBoson, startBoson, testDaemon, waitFor, type TestHost } from './helpers.ts';

const run = promisify(execFile);
let mnt: string | undefined;
let host: TestHost | undefined;
const daemon = testDaemon(() => host!);
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host!, args, { timeoutMs: 90_000 });

before(async () => {
  mnt = await mkdtemp('/var/tmp/boson-full-');
  // Room for the image, the daemon's state and admission control's 512 MiB, but not for much more.
  await run('mount', ['-t', 'tmpfs', '-o', 'size=640m,mode=0700', 'boson-full', mnt]);
  host = await makeTestHost(mnt);
  await daemon.start();
});

after(async () => {
  await daemon.stop().catch(() => undefined);
  const left = host ? await qemuPidsUsing(host.stateDir) : [];
  await host?.cleanup();
  if (mnt) {
    // Processes that had the tmpfs open can take a moment to release it after they are gone: retry, then detach it.
    for (let i = 0; i < 30; i++) {
      if (
        await run('umount', [mnt]).then(
          () => true,
          () => false,
        )
      )
        break;
      if (i === 29) await run('umount', ['-l', mnt]).catch(() => undefined);
      else await new Promise((r) => setTimeout(r, 200));
    }
    await rm(mnt, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'the suite removed every container it ran');
});

describe('a full host disk', () => {
  test('pauses the micro-VM with its writes kept, is shown and refused clearly, and resumes once there is room', async () => {
    // Waits for /go, then writes 24 MiB of random data, noting its checksum as written and as read back from disk.
    const script =
      'while [ ! -f /go ]; do sleep 0.1; done; dd if=/dev/urandom bs=1M count=24 2>/dev/null | tee /big | md5sum > /sum.written; sync; ' +
      'echo 3 > /proc/sys/vm/drop_caches; md5sum < /big > /sum.read; echo written; sleep 600';
    const r = await boson('run', '-d', '--name', 'writer', 'busybox', 'sh', '-c', script);
    assert.equal(r.code, 0, r.stderr);
    const doomed = await boson(
      'run',
      '-d',
      '--name',
      'doomed',
      'busybox',
      'sh',
      '-c',
      'while [ ! -f /go ]; do sleep 0.1; done; dd if=/dev/zero of=/big bs=1M count=24; sync; sleep 600',
    );
    assert.equal(doomed.code, 0, doomed.stderr);
    // Leave 8 MiB on the host disk, then let the container write three times that.
    const fs = await statfs(mnt!);
    const filler = path.join(mnt!, 'filler');
    await run('fallocate', ['-l', String(fs.bavail * fs.bsize - 8 * 1024 * 1024), filler]);
    for (const name of ['writer', 'doomed']) {
      const go = await boson('exec', name, 'touch', '/go');
      assert.equal(go.code, 0, go.stderr);
    }
    const inspect = async (name = 'writer'): Promise<{ state: string; exitCode: number | null; pausedReason?: string }> =>
      JSON.parse((await boson('inspect', name)).stdout.toString())[0];
    await waitFor(
      async () => (await inspect()).pausedReason !== undefined && (await inspect('doomed')).pausedReason !== undefined,
      60_000,
      'both micro-VMs to pause on the full disk',
    );
    // A paused guest cannot act on a signal: kill -s KILL ends its micro-VM.
    assert.equal((await boson('kill', 'doomed')).code, 0);
    await waitFor(async () => (await inspect('doomed')).state === 'exited', 20_000, 'the killed paused container to end');
    assert.equal((await inspect('doomed')).exitCode, 137);
    // A daemon that starts while the VM is paused finds it paused (no event tells it).
    await daemon.kill9();
    await daemon.start();
    const paused = await inspect();
    assert.equal(paused.state, 'running');
    assert.match(paused.pausedReason!, /is full/);
    assert.match((await boson('ps')).stdout.toString(), /Up .* \(Paused: host disk full\)/);
    const exec = await boson('exec', 'writer', 'true');
    assert.equal(exec.code, 97, 'exec into a paused micro-VM is refused at once, not left hanging');
    assert.match(exec.stderr, /paused: the disk holding .* is full/);
    assert.equal((await qemuPidsUsing(host!.stateDir)).length, 1, 'the micro-VM is still there');
    await rm(filler);
    await waitFor(
      async () => (await boson('logs', 'writer')).stdout.toString() === 'written\n',
      90_000,
      'the container to finish its writes once the disk has room',
    );
    assert.equal((await inspect()).pausedReason, undefined, 'resumed');
    const sums = await boson('exec', 'writer', 'cat', '/sum.written', '/sum.read');
    const [written, read] = sums.stdout.toString().trim().split('\n');
    assert.ok(written && written === read, `every byte written before and after the pause is on the disk (${sums.stdout.toString()})`);
    assert.equal((await boson('rm', '-f', 'writer', 'doomed')).code, 0);
  });

  test('a foreground boson run on a full host disk says it is paused, resumes once there is room, and loses nothing', async () => {
    // The run is admitted while the disk has room (admission control wants 512 MiB free), then the disk fills up
    // under it: the container waits for /go, given once the filler leaves 24 MiB.
    const child = startBoson(host!, [
      'run',
      '--rm',
      '--name',
      'fgfull',
      'busybox',
      'sh',
      '-c',
      'while [ ! -f /go ]; do sleep 0.1; done; dd if=/dev/urandom bs=1M count=48 2>/dev/null | tee /big | md5sum; sync; echo 3 > /proc/sys/vm/drop_caches; md5sum < /big',
    ]);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = collect(child, undefined, 120_000, ['run']);
    const filler = path.join(mnt!, 'filler-fg');
    try {
      await waitFor(async () => /fgfull/.test((await boson('ps')).stdout.toString()), 60_000, 'the foreground run to be running');
      const fs = await statfs(mnt!);
      await run('fallocate', ['-l', String(fs.bavail * fs.bsize - 24 * 1024 * 1024), filler]);
      assert.equal((await boson('exec', 'fgfull', 'touch', '/go')).code, 0);
      await waitFor(() => /the micro-VM is paused: the disk holding .* is full/.test(stderr), 60_000, 'the run to say it is paused');
    } finally {
      await rm(filler, { force: true });
    }
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the micro-VM resumed/);
    const [written, read] = r.stdout.toString().trim().split('\n');
    assert.ok(written && written === read, `the data written across the pause is intact (${r.stdout.toString()})`);
  });

  test("a full writable layer is the container's own ENOSPC: its write fails, the micro-VM keeps running", async () => {
    const r = await boson(
      'run',
      '-d',
      '--name',
      'small',
      '--disk-size',
      '64m',
      'busybox',
      'sh',
      '-c',
      'dd if=/dev/zero of=/fill bs=1M count=100 2>&1 | grep -o "No space left on device" | head -1; echo alive',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await boson('wait', 'small')).stdout.toString().trim(), '0');
    assert.equal((await boson('logs', 'small')).stdout.toString(), 'No space left on device\nalive\n');
    assert.equal((await boson('rm', 'small')).code, 0);
  });
});

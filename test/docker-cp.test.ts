/**
 * `docker cp` of containers that are not running (created, exited), with Debian's docker CLI against `boson up`:
 * both directions, through a helper micro-VM booted from the container's own disks (the host never mounts them):
 * files of the image, of the writable layer, deleted ones (overlay whiteouts), volumes; what is copied in is what
 * the container sees when it starts; bind mounts (the host's files, through the helper's share); the helper goes away once idle, and a start
 * right after a copy is not disturbed by it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { qemuPidsUsing, useDaemonHost, waitFor, type BosonResult } from './helpers.ts';
import { debianDocker, dockerOn } from './docker-clis.ts';

const out = (r: BosonResult): string => r.stdout.toString();
const ok = (r: BosonResult, what: string): void => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

describe('docker cp of containers that are not running (Debian docker CLI)', () => {
  const cli = debianDocker();
  const { host } = useDaemonHost();
  let work: string;
  const docker = dockerOn(
    cli,
    () => host().env.BOSON_RUN_DIR!,
    () => path.join(work, 'docker-config'),
  );
  const noQemuLeft = (): Promise<void> =>
    waitFor(async () => (await qemuPidsUsing(host().stateDir)).length === 0, 30_000, 'the idle helper micro-VMs to end');

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'boson-docker-cp-'));
    await mkdir(path.join(work, 'docker-config'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('an exited container: its writable layer, its image, a deleted file, a volume; copied in, then seen at start', async () => {
    try {
      ok(
        await docker([
          'run',
          '--name',
          'cp-e',
          '-v',
          'cpvol:/data',
          'busybox',
          'sh',
          '-c',
          'echo made > /made.txt && rm -f /etc/group && echo in-volume > /data/v.txt',
        ]),
        'run',
      );
      assert.equal(out(await docker(['inspect', 'cp-e', '--format', '{{.State.Status}}'])).trim(), 'exited');
      const dest = path.join(work, 'out');
      await mkdir(dest);
      ok(await docker(['cp', 'cp-e:/made.txt', dest]), 'cp of a file of the writable layer');
      assert.equal(await readFile(path.join(dest, 'made.txt'), 'utf8'), 'made\n');
      ok(await docker(['cp', 'cp-e:/etc/passwd', dest]), 'cp of a file of the image');
      assert.match(await readFile(path.join(dest, 'passwd'), 'utf8'), /^root:/);
      ok(await docker(['cp', 'cp-e:/data/v.txt', dest]), 'cp of a file on a volume');
      assert.equal(await readFile(path.join(dest, 'v.txt'), 'utf8'), 'in-volume\n');
      const deleted = await docker(['cp', 'cp-e:/etc/group', dest]);
      assert.equal(deleted.code, 1);
      assert.match(deleted.stderr, /No such container:path|Could not find the file/);

      await writeFile(path.join(work, 'in.txt'), 'copied in while exited\n');
      ok(await docker(['cp', path.join(work, 'in.txt'), 'cp-e:/data/in.txt']), 'cp into the volume');
      ok(await docker(['cp', path.join(work, 'in.txt'), 'cp-e:/root.txt']), 'cp into the writable layer');
      // Started at once: the helper that served the copies is ended first (two VMs never write one disk).
      const started = await docker(['start', '-a', 'cp-e']);
      ok(started, 'start -a');
      const check = await docker(['run', '--rm', '-v', 'cpvol:/data', 'busybox', 'cat', '/data/in.txt']);
      ok(check, 'the volume in another container');
      assert.equal(out(check), 'copied in while exited\n');
      ok(await docker(['cp', 'cp-e:/root.txt', dest]), 'cp back');
      assert.equal(await readFile(path.join(dest, 'root.txt'), 'utf8'), 'copied in while exited\n');
      assert.equal(out(await docker(['inspect', 'cp-e', '--format', '{{.State.Status}}'])).trim(), 'exited');
      await noQemuLeft();
    } finally {
      await docker(['rm', '-f', 'cp-e']);
      await docker(['volume', 'rm', 'cpvol']);
    }
  });

  test('a created container: a file copied in before its first start is there when it runs; bind mounts both ways', async () => {
    try {
      ok(await docker(['create', '--name', 'cp-c', 'busybox', 'cat', '/etc/motd.txt']), 'create');
      await writeFile(path.join(work, 'motd.txt'), 'hello from the host\n');
      ok(await docker(['cp', path.join(work, 'motd.txt'), 'cp-c:/etc/motd.txt']), 'cp into a created container');
      const run = await docker(['start', '-a', 'cp-c']);
      ok(run, 'start -a');
      assert.equal(out(run), 'hello from the host\n');

      await mkdir(path.join(work, 'bind'));
      await writeFile(path.join(work, 'bind', 'b.txt'), 'bound\n');
      ok(await docker(['create', '--name', 'cp-b', '-v', `${path.join(work, 'bind')}:/mnt`, 'busybox', 'true']), 'create with a bind');
      ok(await docker(['cp', 'cp-b:/mnt/b.txt', path.join(work, 'b-out.txt')]), 'cp out of a bind mount');
      assert.equal(await readFile(path.join(work, 'b-out.txt'), 'utf8'), 'bound\n');
      ok(await docker(['cp', path.join(work, 'motd.txt'), 'cp-b:/mnt/from-cp.txt']), 'cp into a bind mount');
      assert.equal(await readFile(path.join(work, 'bind', 'from-cp.txt'), 'utf8'), 'hello from the host\n');
      await noQemuLeft();
    } finally {
      await docker(['rm', '-f', 'cp-c', 'cp-b']);
    }
  });
});

/**
 * `boson run` end to end with real micro-VMs: output, exit codes, configuration, isolation from the host, and
 * the image's whiteouts. Every container here boots its own guest kernel under QEMU.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, rm, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { useTestHost, runBoson, containerDirs, startUntil, coldQemuPidsUsing, waitFor } from './helpers.ts';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';

const testHost = useTestHost();

const text = (b: Buffer): string => b.toString('utf8');

describe('boson run', () => {
  test("prints a command's output from inside the micro-VM", async () => {
    const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'echo', 'hello']);
    assert.equal(r.stderr, '');
    assert.equal(text(r.stdout), 'hello\n');
    assert.equal(r.code, 0);
  });

  test('memory the guest frees goes back to the host (4 KiB guest RAM, free page reporting)', async () => {
    const script =
      'mkdir /t && mount -t tmpfs tmpfs /t && dd if=/dev/zero of=/t/x bs=1M count=160 2>/dev/null && echo filled && sleep 10 && rm /t/x && echo freed && sleep 60';
    const { child, result } = await startUntil(testHost(), ['run', '--rm', '-m', '384m', 'busybox', 'sh', '-c', script], 'filled', 60_000);
    try {
      // Its shape (-m 384m) is not a warm one: in a warm suite, the one QEMU the pool did not boot.
      const [pid] = await coldQemuPidsUsing(testHost().stateDir);
      assert.ok(pid, 'the micro-VM runs');
      // Guest RAM is the only shared memory QEMU has.
      const guestRamKb = async (): Promise<number> =>
        Number(/^RssShmem:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
      // The guest holds the memory for 10 s before it frees it: sample it (the host may be slow to look) in that time.
      let filled = 0;
      await waitFor(
        async () => (filled = await guestRamKb()) > 160 * 1024,
        8000,
        `the 160 MiB the guest wrote to be resident on the host (${filled} KiB)`,
      );
      const smaps = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
      assert.equal(Number(/^AnonHugePages:\s+(\d+)/m.exec(smaps)?.[1]) <= 32 * 1024, true, 'no huge pages beyond the translation cache');
      let now = filled;
      await waitFor(
        async () => (now = await guestRamKb()) < filled - 120 * 1024,
        20_000,
        `guest RAM to shrink after the free (still ${now} KiB of ${filled})`,
      );
    } finally {
      child.kill('SIGKILL');
      await result;
    }
  });

  test("runs under the guest kernel, not the host's", async () => {
    const r = await runBoson(testHost(), [
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'uname -r; cat /proc/cmdline; grep -c "^Seccomp:" /proc/self/status',
    ]);
    const [release, cmdline, seccomp] = text(r.stdout).split('\n');
    assert.equal(r.code, 0);
    assert.notEqual(release, os.release(), 'guest kernel differs from the host kernel');
    assert.match(release!, /^\d+\.\d+/);
    assert.match(cmdline!, /rdinit=\/init/, 'the kernel command line is the one Boson gave the micro-VM');
    assert.equal(seccomp, '1', 'the guest kernel has seccomp, which sandboxed programs (sshd, systemd units) need');
  });

  for (const [name, args, status] of [
    ['exit 0', ['true'], 0],
    ['exit 3', ['sh', '-c', 'exit 3'], 3],
    ['a signal (SIGKILL → 137)', ['sh', '-c', 'kill -9 $$'], 137],
    ['a signal (SIGTERM → 143)', ['sh', '-c', 'kill -15 $$'], 143],
  ] as const) {
    test(`exit status is the container's: ${name}`, async () => {
      const r = await runBoson(testHost(), ['run', '--rm', 'busybox', ...args]);
      assert.equal(r.code, status, r.stderr);
    });
  }

  test('a missing command exits 127 and a non-executable one 126, each with one error line', async () => {
    const missing = await runBoson(testHost(), ['run', '--rm', 'busybox', 'no-such-command']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /^boson: .*no-such-command.*\n$/);
    const notExec = await runBoson(testHost(), ['run', '--rm', 'busybox', '/etc/passwd']);
    assert.equal(notExec.code, 126);
    assert.match(notExec.stderr, /^boson: .*\/etc\/passwd.*\n$/);
  });

  test('env, env-file, workdir, user, hostname and entrypoint are honoured', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-envfile-'));
    const envFile = path.join(dir, 'env');
    await writeFile(envFile, '# comment\nFROM_FILE=file value\nFROM_HOST\n');
    try {
      const r = await runBoson(
        testHost(),
        [
          'run',
          '--rm',
          '-e',
          'A=1',
          '-e',
          'B=two words',
          '--env-file',
          envFile,
          '-w',
          '/made/by/init',
          '-u',
          'nobody',
          '--hostname',
          'box1',
          'busybox',
          'sh',
          '-c',
          'echo "$A|$B|$FROM_FILE|$FROM_HOST|$(pwd)|$(id -u):$(id -g)|$(hostname)|$HOSTNAME"',
        ],
        { env: { FROM_HOST: 'copied' } },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(text(r.stdout), '1|two words|file value|copied|/made/by/init|65534:65534|box1|box1\n');
      const numeric = await runBoson(testHost(), ['run', '--rm', '-u', '1234:5678', 'busybox', 'sh', '-c', 'echo $(id -u):$(id -g)']);
      assert.equal(text(numeric.stdout), '1234:5678\n');
      const entry = await runBoson(testHost(), ['run', '--rm', '--entrypoint', 'echo', 'busybox', 'from', 'entrypoint']);
      assert.equal(text(entry.stdout), 'from entrypoint\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the image's default command and environment apply", async () => {
    const r = await runBoson(testHost(), ['run', '--rm', '-i', 'busybox'], { input: 'echo "$PATH"; echo $((6*7))\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(text(r.stdout), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n42\n');
  });

  test("the container sees neither the host's processes nor its files", async () => {
    const marker = path.join('/tmp', `boson-host-marker-${process.pid}`);
    await writeFile(marker, 'secret');
    try {
      // Userspace processes only (kernel threads have an empty cmdline): the guest's own init and the shell.
      const script = `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep . ; echo ---; cat ${marker} 2>&1; true`;
      const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'sh', '-c', script]);
      const [procs, files] = text(r.stdout).split('---\n');
      const cmdlines = procs!.trim().split('\n');
      assert.ok(cmdlines.length < 8, `only the container's processes are visible: ${cmdlines.join(' | ')}`);
      assert.ok(!cmdlines.some((c) => /node|qemu|tsx/.test(c)), `no host process is visible: ${cmdlines.join(' | ')}`);
      assert.match(files!, /No such file/);
    } finally {
      await rm(marker, { force: true });
    }
  });

  test('writes go to the writable layer; the container can write anywhere in its root', async () => {
    const r = await runBoson(testHost(), [
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'echo data > /etc/new && cat /etc/new && rm /bin/ls && ls 2>&1; mount | grep " / "',
    ]);
    const out = text(r.stdout);
    assert.match(out, /^data\n/);
    assert.match(out, /overlay/);
    const again = await runBoson(testHost(), ['run', '--rm', 'busybox', 'ls', '/bin/ls']);
    assert.equal(text(again.stdout), '/bin/ls\n', 'the next container gets the image unchanged');
  });

  test('layers are flattened with OCI whiteouts and opaque directories', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-wh-'));
    try {
      const base = await makeTar([
        { name: 'data/', type: 'directory' },
        { name: 'data/keep', content: 'keep' },
        { name: 'data/gone', content: 'gone' },
        { name: 'opaque/', type: 'directory' },
        { name: 'opaque/old', content: 'old' },
      ]);
      const top = await makeTar([
        { name: 'data/.wh.gone' },
        { name: 'opaque/', type: 'directory' },
        { name: 'opaque/.wh..wh..opq' },
        { name: 'opaque/new', content: 'new' },
      ]);
      // Reuse busybox's own layer as the base of the test image.
      const { readFile } = await import('node:fs/promises');
      const { gunzipSync } = await import('node:zlib');
      const index = JSON.parse(await readFile(path.join('build/images/busybox-oci/index.json'), 'utf8')) as {
        manifests: Array<{ digest: string }>;
      };
      const manifest = JSON.parse(
        await readFile(path.join('build/images/busybox-oci/blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8'),
      ) as { layers: Array<{ digest: string }> };
      const busyboxTar = gunzipSync(
        await readFile(path.join('build/images/busybox-oci/blobs/sha256', manifest.layers[0]!.digest.slice(7))),
      );
      await writeOciLayout(dir, [
        {
          refName: 'whiteouts',
          config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'], Env: ['PATH=/bin'] } },
          layers: [{ tar: busyboxTar }, { tar: base }, { tar: top }],
        },
      ]);
      const imp = await runBoson(testHost(), ['image', 'import', '--tag', 'localhost/whiteouts:test', dir]);
      assert.equal(imp.code, 0, imp.stderr);
      const r = await runBoson(testHost(), ['run', '--rm', 'localhost/whiteouts:test', 'sh', '-c', 'ls /data /opaque']);
      assert.equal(text(r.stdout), '/data:\nkeep\n\n/opaque:\nnew\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("an image's Entrypoint, Cmd, Env, WorkingDir and User are honoured, and flags override them", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-cfg-'));
    try {
      const { readFile } = await import('node:fs/promises');
      const { gunzipSync } = await import('node:zlib');
      const layout = 'build/images/busybox-oci';
      const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      const manifest = JSON.parse(await readFile(path.join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as {
        layers: Array<{ digest: string }>;
      };
      const busyboxTar = gunzipSync(await readFile(path.join(layout, 'blobs/sha256', manifest.layers[0]!.digest.slice(7))));
      await writeOciLayout(dir, [
        {
          config: {
            architecture: 'amd64',
            os: 'linux',
            config: {
              Entrypoint: ['/bin/sh', '-c'],
              Cmd: ['echo "$(pwd) $(id -un) $GREETING"'],
              Env: ['PATH=/bin', 'GREETING=hi'],
              WorkingDir: '/srv',
              User: 'nobody',
            },
          },
          layers: [{ tar: busyboxTar }],
        },
      ]);
      const imp = await runBoson(testHost(), ['image', 'import', '--tag', 'localhost/configured:1', dir]);
      assert.equal(imp.code, 0, imp.stderr);
      const plain = await runBoson(testHost(), ['run', '--rm', 'localhost/configured:1']);
      assert.equal(text(plain.stdout), '/srv nobody hi\n', plain.stderr);
      const overridden = await runBoson(testHost(), [
        'run',
        '--rm',
        '-u',
        'root',
        '-w',
        '/tmp',
        '-e',
        'GREETING=yo',
        'localhost/configured:1',
        'echo "$(pwd) $(id -un) $GREETING"',
      ]);
      assert.equal(text(overridden.stdout), '/tmp root yo\n', overridden.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('--name must be unique while the container exists; records of --rm runs vanish', async () => {
    const first = await runBoson(testHost(), ['run', '--name', 'unique1', 'busybox', 'true']);
    assert.equal(first.code, 0, first.stderr);
    const second = await runBoson(testHost(), ['run', '--rm', '--name', 'unique1', 'busybox', 'true']);
    assert.equal(second.code, 68);
    assert.match(second.stderr, /already in use/);
    const before = (await containerDirs(testHost().stateDir)).length;
    await runBoson(testHost(), ['run', '--rm', 'busybox', 'true']);
    assert.equal((await containerDirs(testHost().stateDir)).length, before);
  });
});

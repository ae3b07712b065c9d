/**
 * Bind mounts under a policy (issue 12): host paths are canonicalised and checked before anything is made
 * (protected system and Boson paths, a symlink to one, a missing source, option injection); a share is nosuid and
 * nodev in the guest, and the host side makes no device node and no set-user-ID/set-group-ID file for a guest root
 * that asks (virtiofsd runs under virtiofsd-guard's seccomp filter: EPERM in the guest).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collect, runBoson, useDaemonHost } from './helpers.ts';
import { DEBIAN_DOCKER_PATH } from './docker-clis.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const BIND_NOT_ALLOWED = 102; // src/common/errors.ts
const INVALID_ARGUMENT = 64;

describe('bind mounts under a policy', () => {
  test('protected paths, links to them, missing sources and option injection are refused before anything is made', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bindpol-'));
    try {
      await symlink('/etc', path.join(dir, 'etc-link'));
      await mkdir(path.join(dir, 'a,b'));
      const cases: Array<[string, number, RegExp]> = [
        ['/', BIND_NOT_ALLOWED, /root directory is never shared/],
        ['/etc', BIND_NOT_ALLOWED, /\/etc is protected/],
        ['/proc', BIND_NOT_ALLOWED, /protected/],
        [path.join(dir, 'etc-link'), BIND_NOT_ALLOWED, /\/etc.*refused: \/etc is protected/],
        [host().stateDir, BIND_NOT_ALLOWED, /protected/],
        ['/var', BIND_NOT_ALLOWED, /protected/],
        [path.join(dir, 'missing'), INVALID_ARGUMENT, /does not exist/],
        [path.join(dir, 'a,b'), INVALID_ARGUMENT, /comma/],
      ];
      for (const [source, code, message] of cases) {
        const r = await boson('run', '-d', '-v', `${source}:/x`, 'busybox', 'true');
        assert.equal(r.code, code, `${source}: ${r.stderr}`);
        assert.match(r.stderr, message, source);
      }
      assert.equal((await boson('ps', '-aq')).stdout.toString(), '', 'no container was created');
      assert.deepEqual((await readdir(dir)).sort(), ['a,b', 'etc-link'], 'nothing was created on the host');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a shared directory is nosuid and nodev in the guest, and no device node reaches the host', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bindsafe-'));
    try {
      await writeFile(path.join(dir, 'hello'), 'hi\n');
      const r = await boson(
        'run',
        '--rm',
        '-v',
        `${dir}:/mnt/host`,
        'busybox',
        'sh',
        '-c',
        [
          'grep " /mnt/host " /proc/mounts | cut -d" " -f4',
          'mknod /mnt/host/null c 1 3 2>/dev/null && echo mknod-ok || echo mknod-refused',
          'echo written > /mnt/host/from-guest',
        ].join('; '),
      );
      assert.equal(r.code, 0, r.stderr);
      const [opts, mknod] = r.stdout.toString().trim().split('\n');
      assert.match(opts ?? '', /(^|,)nosuid(,|$)/, `mount options: ${opts}`);
      assert.match(opts ?? '', /(^|,)nodev(,|$)/, `mount options: ${opts}`);
      assert.equal(mknod, 'mknod-refused');
      await assert.rejects(stat(path.join(dir, 'null')), 'no device node on the host');
      assert.equal((await stat(path.join(dir, 'from-guest'))).isFile(), true, 'the share works for ordinary files');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  test('guest root plants no set-user-ID or set-group-ID file and no device node on the host (EPERM in the guest)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bindsuid-'));
    try {
      // A tar with a setuid-root and a setgid member, extracted by the guest's tar into the share.
      const src = await mkdtemp(path.join(os.tmpdir(), 'boson-bindsuid-src-'));
      await writeFile(path.join(src, 'su'), '#!/bin/sh\n');
      await chmod(path.join(src, 'su'), 0o4755);
      await writeFile(path.join(src, 'sg'), '#!/bin/sh\n');
      await chmod(path.join(src, 'sg'), 0o2755);
      execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-cf', path.join(dir, 'suid.tar'), '-C', src, 'su', 'sg']);
      await rm(src, { recursive: true, force: true });
      // A setuid-root file the host already had in the share: a write from the guest clears the bit (no CAP_FSETID).
      await writeFile(path.join(dir, 'hostsu'), '#!/bin/sh\n');
      await chmod(path.join(dir, 'hostsu'), 0o4755);
      const r = await boson(
        'run',
        '--rm',
        '-v',
        `${dir}:/x`,
        'busybox',
        'sh',
        '-c',
        [
          'try() { if "$@" 2>/tmp/err; then echo "$*: ok"; else echo "$*: $(cat /tmp/err)"; fi; }',
          'cp /bin/busybox /x/b',
          'try chmod 4755 /x/b',
          'try chmod 2755 /x/b',
          'try chmod u+s /x/b',
          'try chmod 0700 /x/b',
          'touch /x/t',
          'try chmod 6777 /x/t',
          'try mknod /x/null c 1 3',
          'try mknod /x/loop b 7 0',
          'mkdir /x/tar && cd /x/tar && try tar -xpf /x/suid.tar && cd /',
          'mkdir /x/d',
          'try chmod g+s /x/d',
          'try mkfifo /x/fifo',
          'echo appended >> /x/hostsu',
        ].join('\n'),
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.toString().trim().split('\n');
      const said = (cmd: string): string => lines.find((l) => l.startsWith(`${cmd}:`)) ?? `${cmd}: (no line)`;
      for (const cmd of ['chmod 4755 /x/b', 'chmod 2755 /x/b', 'chmod u+s /x/b', 'chmod 6777 /x/t', 'chmod g+s /x/d'])
        assert.match(said(cmd), /Operation not permitted/, cmd);
      for (const cmd of ['mknod /x/null c 1 3', 'mknod /x/loop b 7 0']) assert.match(said(cmd), /Operation not permitted/, cmd);
      assert.equal(said('chmod 0700 /x/b'), 'chmod 0700 /x/b: ok', 'ordinary modes still change');
      assert.equal(said('mkfifo /x/fifo'), 'mkfifo /x/fifo: ok', 'FIFOs are not devices');
      // What is on the host: no special bit on anything, no device node; root's files stay root's (Docker's way).
      const found: string[] = [];
      const walk = async (d: string): Promise<void> => {
        for (const name of await readdir(d)) {
          const p = path.join(d, name);
          const st = await lstat(p);
          if (st.mode & 0o6000) found.push(`${p} mode ${(st.mode & 0o7777).toString(8)} uid ${st.uid}`);
          if (st.isCharacterDevice() || st.isBlockDevice()) found.push(`${p} is a device`);
          if (st.isDirectory()) await walk(p);
        }
      };
      await walk(dir);
      assert.equal(await readFile(path.join(dir, 'hostsu'), 'utf8'), '#!/bin/sh\nappended\n', 'the write went through');
      assert.deepEqual(found, [], 'no set-user-ID/set-group-ID file and no device node on the host');
      const b = await stat(path.join(dir, 'b'));
      assert.deepEqual([b.uid, b.gid, b.mode & 0o7777], [0, 0, 0o700], "the guest root's file is root's on the host");
      // busybox tar creates a member with its mode at once (open with O_CREAT 04755): refused, the member is left out.
      assert.match(said('tar -xpf /x/suid.tar'), /Operation not permitted/);
      assert.deepEqual(await readdir(path.join(dir, 'tar')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  test('each virtiofsd runs sandboxed: seccomp, no_new_privs, its own mount namespace, without CAP_MKNOD and CAP_FSETID', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bindfsd-'));
    try {
      const r = await boson('run', '-d', '--name', 'fsd', '-v', `${dir}:/x`, 'busybox', 'sleep', '300');
      assert.equal(r.code, 0, r.stderr);
      const pids: number[] = [];
      for (const name of await readdir('/proc')) {
        if (!/^\d+$/.test(name)) continue;
        const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
        if (cmdline.split('\0')[0]?.endsWith('virtiofsd') && cmdline.includes(`source=${dir}\0`)) pids.push(Number(name));
      }
      // The namespace sandbox forks: the parent waits in the new namespaces, the child serves.
      assert.ok(pids.length >= 1, 'a virtiofsd serves the share');
      const ownNs = await readlink('/proc/self/ns/mnt');
      for (const pid of pids) {
        const status = await readFile(`/proc/${pid}/status`, 'utf8');
        const field = (k: string): string => status.match(new RegExp(`^${k}:\\s*(\\S+)`, 'm'))?.[1] ?? '';
        assert.equal(field('Seccomp'), '2', `virtiofsd ${pid} is under a seccomp filter`);
        assert.equal(field('NoNewPrivs'), '1', `virtiofsd ${pid} has no_new_privs`);
        const eff = BigInt(`0x${field('CapEff')}`);
        assert.equal(eff & (1n << 27n), 0n, `virtiofsd ${pid} lacks CAP_MKNOD`);
        assert.equal(eff & (1n << 4n), 0n, `virtiofsd ${pid} lacks CAP_FSETID`);
        assert.notEqual(await readlink(`/proc/${pid}/ns/mnt`), ownNs, `virtiofsd ${pid} has its own mount namespace`);
        assert.notEqual(await readlink(`/proc/${pid}/ns/net`), await readlink('/proc/self/ns/net'), `virtiofsd ${pid} has no network`);
      }
    } finally {
      await boson('rm', '-f', 'fsd');
      await rm(dir, { recursive: true, force: true });
    }
  });
  test("the stock docker CLI's `docker run -v` gets the same: no setuid-root file, no device node on the host", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-binddocker-'));
    const config = await mkdtemp(path.join(os.tmpdir(), 'boson-binddocker-config-'));
    try {
      const env = { ...process.env, DOCKER_HOST: `unix://${host().env.BOSON_RUN_DIR}/docker.sock`, DOCKER_CONFIG: config };
      const script = 'cp /bin/busybox /x/b; chmod 4755 /x/b; echo chmod=$?; mknod /x/null c 1 3; echo mknod=$?';
      const r = await collect(
        spawn(DEBIAN_DOCKER_PATH, ['run', '--rm', '-v', `${dir}:/x`, 'busybox', 'sh', '-c', script], {
          env,
          stdio: ['pipe', 'pipe', 'pipe'],
        }),
        undefined,
        90_000,
        ['docker', 'run'],
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'chmod=1\nmknod=1\n', 'both refused in the guest');
      assert.match(r.stderr, /chmod: \/x\/b: Operation not permitted/);
      const b = await lstat(path.join(dir, 'b'));
      assert.deepEqual([b.uid, b.mode & 0o7777], [0, 0o755], 'a root-owned file without the setuid bit');
      assert.deepEqual((await readdir(dir)).sort(), ['b'], 'no device node');
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(config, { recursive: true, force: true });
    }
  });
});

/**
 * Bind mounts under a policy (issue 12): host paths are canonicalised and checked before anything is made
 * (protected system and Boson paths, a symlink to one, a missing source, option injection); a share is nosuid and
 * nodev in the guest, and the host side makes no device node for a guest that asks.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runBoson, useDaemonHost } from './helpers.ts';

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
});

/**
 * The 9p fallback of bind mounts (virtiofsd missing, and a VMM without its jail: a jailed QEMU cannot reach the
 * source at all): 9p is served by QEMU itself, outside virtiofsd's guard, so a writable share keeps the guest's
 * modes in extended attributes (mapped-xattr) and guest root plants no set-user-ID file or device node on the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runBoson, useDaemonHost } from './helpers.ts';

// Read by makeTestHost when the daemon's host is made (before the tests run): this file's daemon only.
process.env.BOSON_VIRTIOFSD = '/nonexistent/virtiofsd';
process.env.BOSON_VMM_JAIL = 'off';
const { host } = useDaemonHost();

test('over 9p, guest root plants no set-user-ID file and no device node on the host; the guest keeps its view', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-bind9p-'));
  try {
    await writeFile(path.join(dir, 'from-host'), 'host data\n');
    const r = await runBoson(
      host(),
      [
        'run',
        '--rm',
        '-v',
        `${dir}:/x`,
        'busybox',
        'sh',
        '-c',
        [
          'grep " /x " /proc/mounts | cut -d" " -f3',
          'cat /x/from-host',
          'cp /bin/busybox /x/b && chmod 4755 /x/b && echo chmod-ok',
          'mknod /x/null c 1 3 && echo mknod-ok',
          'ls -ln /x/b /x/null | cut -c1-10',
        ].join('; '),
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), '9p\nhost data\nchmod-ok\nmknod-ok\n-rwsr-xr-x\ncrw-r--r--\n', 'the guest sees what it made');
    const found: string[] = [];
    for (const name of await readdir(dir)) {
      const st = await lstat(path.join(dir, name));
      if (st.mode & 0o6000 || st.isCharacterDevice() || st.isBlockDevice()) found.push(`${name} ${st.mode.toString(8)}`);
    }
    assert.deepEqual(found, [], 'no set-ID file and no device node on the host');
    assert.equal((await lstat(path.join(dir, 'b'))).mode & 0o7777, 0o600, 'a plain 0600 file on the host');
    assert.equal(await readFile(path.join(dir, 'from-host'), 'utf8'), 'host data\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

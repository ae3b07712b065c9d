/** virtiofsd-guard's filter, run around the host's own tools (as root), and the options virtiofsd is given. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstat, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_VIRTIOFSD_GUARD, describeVirtiofsd, virtiofsdGuard, virtiofsdOptions } from './virtiofsd.ts';

/** Runs `argv` under the guard; its exit code and stderr. */
function guarded(...argv: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(DEFAULT_VIRTIOFSD_GUARD, argv, { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

test('the guard refuses set-user-ID and set-group-ID modes and device nodes with EPERM, and allows the rest', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-fsguard-'));
  try {
    const f = path.join(dir, 'f');
    await writeFile(f, '#!/bin/sh\n');
    for (const mode of ['4755', '2755', '6777', 'u+s', 'g+s']) {
      const r = guarded('/bin/chmod', mode, f);
      assert.equal(r.code, 1, `chmod ${mode}`);
      assert.match(r.stderr, /Operation not permitted/, `chmod ${mode}`);
    }
    assert.equal(guarded('/bin/chmod', '0750', f).code, 0, 'an ordinary chmod');
    assert.match(guarded('/bin/mknod', path.join(dir, 'null'), 'c', '1', '3').stderr, /Operation not permitted/);
    assert.match(guarded('/bin/mknod', path.join(dir, 'loop'), 'b', '7', '0').stderr, /Operation not permitted/);
    // install creates with a mode, then sets it: refused at the chmod, the file stays without the bit.
    assert.match(guarded('/usr/bin/install', '-m', '4755', '/dev/null', path.join(dir, 'i')).stderr, /Operation not permitted/);
    assert.equal(guarded('/bin/mkfifo', path.join(dir, 'fifo')).code, 0, 'a FIFO is no device');
    assert.equal(guarded('/bin/sh', '-c', `echo x > ${dir}/w && mkdir ${dir}/d`).code, 0, 'files and directories are made');
    for (const name of await readdir(dir)) {
      const st = await lstat(path.join(dir, name));
      assert.equal(st.mode & 0o6000, 0, `${name} has no set-ID bit`);
      assert.ok(!st.isCharacterDevice() && !st.isBlockDevice(), `${name} is no device`);
    }
    assert.deepEqual((await readdir(dir)).sort(), ['d', 'f', 'fifo', 'i', 'w']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the guard runs nothing unfiltered: 126 when the program cannot run; a missing guard is TOOL_FAILED', () => {
  assert.equal(guarded('/nonexistent/virtiofsd').code, 126);
  assert.equal(spawnSync(DEFAULT_VIRTIOFSD_GUARD, ['/bin/grep', '-c', '^Seccomp:.2', '/proc/self/status']).status, 0, 'filtered');
  assert.throws(() => virtiofsdGuard('/nonexistent/guard'), { code: 'TOOL_FAILED' });
});

test('virtiofsd is asked for its namespace sandbox, no xattrs, and no CAP_MKNOD/CAP_FSETID', () => {
  const o = virtiofsdOptions('/srv/x').join(' ');
  assert.match(o, /-o source=\/srv\/x/);
  assert.match(o, /-o sandbox=namespace/);
  assert.match(o, /-o no_xattr/);
  assert.match(o, /-o modcaps=-mknod:-fsetid/);
});

test('boson info is told when the guard is missing', () => {
  assert.equal(describeVirtiofsd().problem, null, 'setup.sh built the guard');
  assert.match(
    describeVirtiofsd(undefined, '/nonexistent/guard').problem ?? '',
    /\/nonexistent\/guard is missing \(run scripts\/setup.sh\)/,
  );
});

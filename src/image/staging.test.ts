import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cgroupMemoryHeadroom, estimateTreeBytes, isNoSpace, stagingParent } from './staging.ts';
import { BosonError } from '../common/index.ts';
import { tempDir } from './test-support.ts';

test('the staging estimate, the BOSON_STAGING_DIR override and ENOSPC detection', async () => {
  assert.equal(
    estimateTreeBytes([
      { size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
      { size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
    ]),
    50,
  );
  assert.equal(await stagingParent(1, 'store'), null);
  const custom = await tempDir();
  try {
    // A private directory of ours inside the one named; one that exists loses group/other bits.
    const mine = path.join(custom, `boson-${process.geteuid!()}`);
    assert.equal(await stagingParent(1, custom), mine);
    assert.equal((await fs.lstat(mine)).mode & 0o7777, 0o700);
    await fs.chmod(mine, 0o755);
    assert.equal(await stagingParent(1, custom), mine);
    assert.equal((await fs.lstat(mine)).mode & 0o7777, 0o700);
    // A link there (to anywhere) is refused, not followed.
    await fs.rm(mine, { recursive: true });
    await fs.symlink('/tmp', mine);
    await assert.rejects(stagingParent(1, custom), /not a directory/);
    await assert.rejects(stagingParent(1, path.join(custom, 'missing')), /cannot create/);
  } finally {
    await fs.rm(custom, { recursive: true, force: true });
  }
  await assert.rejects(stagingParent(1, 'relative'), /absolute/);
  // Far more than any tmpfs or memory here: the store's own tmp directory.
  assert.equal(await stagingParent(2 ** 52), null);
  const full = new BosonError('STATE_DIR_UNWRITABLE', 'x', { cause: Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }) });
  assert.equal(isNoSpace(full), true);
  assert.equal(
    isNoSpace(new BosonError('STATE_DIR_UNWRITABLE', 'x', { cause: Object.assign(new Error('EACCES'), { code: 'EACCES' }) })),
    false,
  );
});

test('memory headroom of our cgroup: v2 and v1 files, no limit, unreadable', async () => {
  const dir = await tempDir();
  try {
    const proc = path.join(dir, 'cgroup');
    await fs.mkdir(path.join(dir, 'sys', 'svc'), { recursive: true });
    await fs.writeFile(proc, '0::/svc\n');
    await fs.writeFile(path.join(dir, 'sys', 'svc', 'memory.max'), '1000000\n');
    await fs.writeFile(path.join(dir, 'sys', 'svc', 'memory.current'), '400000\n');
    assert.equal(await cgroupMemoryHeadroom(proc, path.join(dir, 'sys')), 600000);
    await fs.writeFile(path.join(dir, 'sys', 'svc', 'memory.max'), 'max\n');
    assert.equal(await cgroupMemoryHeadroom(proc, path.join(dir, 'sys')), null);
    await fs.mkdir(path.join(dir, 'sys', 'memory', 'a', 'b'), { recursive: true });
    await fs.writeFile(proc, '5:cpu,cpuacct:/\n4:memory:/a/b\n0::/\n');
    await fs.writeFile(path.join(dir, 'sys', 'memory', 'a', 'b', 'memory.limit_in_bytes'), '2000\n');
    await fs.writeFile(path.join(dir, 'sys', 'memory', 'a', 'b', 'memory.usage_in_bytes'), '2500\n');
    assert.equal(await cgroupMemoryHeadroom(proc, path.join(dir, 'sys')), 0);
    await fs.writeFile(path.join(dir, 'sys', 'memory', 'a', 'b', 'memory.limit_in_bytes'), '9223372036854771712\n');
    assert.equal(await cgroupMemoryHeadroom(proc, path.join(dir, 'sys')), null);
    assert.equal(await cgroupMemoryHeadroom(path.join(dir, 'missing')), null);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

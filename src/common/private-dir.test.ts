import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isBosonError } from './errors.ts';
import { ensurePrivateDir } from './private-dir.ts';

test('a private directory is created 0700, and one that others own or can write is refused', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-private-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const fresh = path.join(dir, 'fresh');
  await ensurePrivateDir(fresh);
  assert.equal((await stat(fresh)).mode & 0o777, 0o700);
  await ensurePrivateDir(fresh); // an existing one of ours is fine

  const open = path.join(dir, 'open');
  await mkdir(open);
  await chmod(open, 0o777);
  await assert.rejects(ensurePrivateDir(open), (e) => isBosonError(e, 'STATE_DIR_UNWRITABLE'));

  const link = path.join(dir, 'link');
  await symlink(fresh, link);
  await assert.rejects(ensurePrivateDir(link), (e) => isBosonError(e, 'STATE_DIR_UNWRITABLE'));

  if (process.geteuid?.() === 0) {
    const foreign = path.join(dir, 'foreign');
    await mkdir(foreign, { mode: 0o700 });
    await chown(foreign, 65534, 65534);
    await assert.rejects(
      ensurePrivateDir(foreign),
      (e) => isBosonError(e, 'STATE_DIR_UNWRITABLE') && /belongs to uid 65534/.test(e.message),
    );
  }
});

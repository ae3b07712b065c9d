/** The whole tree typechecks under `strict` (tsx runs TypeScript without checking types, so this test does). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';

test('tsc --noEmit reports no errors', async () => {
  const tsc = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsc');
  const result = await promisify(execFile)(tsc, ['--noEmit', '-p', PACKAGE_ROOT]).then(
    () => '',
    (err: { stdout?: string }) => err.stdout ?? String(err),
  );
  assert.equal(result, '');
});

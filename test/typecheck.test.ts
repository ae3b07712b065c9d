/** The whole tree typechecks under `strict` (tsx runs TypeScript without checking types, so this test does). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';

test('tsc --noEmit reports no errors', async () => {
  const tsc = path.join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsc');
  // Every way tsc can fail counts: it cannot be run (missing, not executable), it exits non-zero, or it writes
  // anything to either stream (errors go to stdout, crashes to stderr).
  const result = await new Promise<{ error: string | null; code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(tsc, ['--noEmit', '-p', PACKAGE_ROOT], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ error: err && typeof err.code !== 'number' ? `${err.code ?? ''} ${err.message}` : null, code, stdout, stderr });
    });
  });
  assert.deepEqual(result, { error: null, code: 0, stdout: '', stderr: '' });
});

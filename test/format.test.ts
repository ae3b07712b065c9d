/**
 * The TypeScript sources are formatted by prettier (.prettierrc.json; `npm run format` fixes them). Runs the pinned
 * prettier from node_modules (never a downloaded one) over src/, test/, bench/, scripts/ and guest/ (its .ts test;
 * .prettierignore keeps the C sources out) and lists every file it would change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';

const DIRS = ['src', 'test', 'bench', 'scripts', 'guest'];

test('prettier --check finds every source file formatted', async () => {
  const prettier = path.join(PACKAGE_ROOT, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
  // --list-different prints one unformatted file a line; exit 1 means some were, 2 that prettier itself failed.
  const result = await promisify(execFile)(process.execPath, [prettier, '--list-different', ...DIRS], { cwd: PACKAGE_ROOT }).then(
    () => ({ code: 0, stdout: '', stderr: '' }),
    (err: { code?: number | string; stdout?: string; stderr?: string }) => ({
      code: err.code,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? String(err),
    }),
  );
  assert.notEqual(result.code, 2, `prettier failed: ${result.stderr}`);
  const files = result.stdout.split('\n').filter(Boolean);
  assert.deepEqual(files, [], `not formatted (run npm run format): ${files.join(', ')}`);
  assert.equal(result.code, 0, `prettier failed: ${result.stderr}`);
});

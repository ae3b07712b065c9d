import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_CATALOGUE, KIND_TRANSLATION, BosonError, toBosonError, isBosonError, PACKAGE_ROOT } from './index.ts';

test('docs/api.md lists every error code with the same kind and exit status, and nothing else', async () => {
  const doc = await readFile(path.join(PACKAGE_ROOT, 'docs', 'api.md'), 'utf8');
  const rows = new Map<string, { kind: string; exit: number }>();
  for (const m of doc.matchAll(/^\| `([A-Z_]+)` \| (\w+) \| (\d+) \|/gm)) rows.set(m[1]!, { kind: m[2]!, exit: Number(m[3]) });
  const codes = Object.keys(ERROR_CATALOGUE);
  assert.deepEqual([...rows.keys()].sort(), codes.sort());
  for (const [code, entry] of Object.entries(ERROR_CATALOGUE))
    assert.deepEqual(rows.get(code), { kind: entry.kind, exit: entry.exit }, code);
});

test('errors carry code and kind; unknown errors become INTERNAL with the cause kept', () => {
  const e = new BosonError('IMAGE_NOT_FOUND', 'no such image: x');
  assert.equal(e.kind, 'NotFound');
  assert.ok(isBosonError(e, 'IMAGE_NOT_FOUND'));
  assert.ok(!isBosonError(e, 'INTERNAL'));
  const cause = new TypeError('boom');
  const wrapped = toBosonError(cause);
  assert.equal(wrapped.code, 'INTERNAL');
  assert.equal(wrapped.cause, cause);
});

test('docs/api.md shows the one kind-to-status table as KIND_TRANSLATION has it', async () => {
  const doc = await readFile(path.join(PACKAGE_ROOT, 'docs', 'api.md'), 'utf8');
  const rows: Record<string, { rest: number; docker: number; grpc: number }> = {};
  for (const m of doc.matchAll(/^\| (\w+) \| (\d+) \| (\d+) \| (\d+) [A-Z_]+ \|$/gm))
    rows[m[1]!] = { rest: Number(m[2]), docker: Number(m[3]), grpc: Number(m[4]) };
  assert.deepEqual(rows, KIND_TRANSLATION);
});

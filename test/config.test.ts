/**
 * One table of settings: every BOSON_* variable that src/ or bin/ reads is listed in SETTINGS (src/main/config.ts),
 * nothing listed is read nowhere, and docs/config.md is the table as generated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { SETTINGS, configDoc } from '../src/main/config.ts';
import { loadConfig } from '../src/main/index.ts';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(full)));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

/** The BOSON_* names a text mentions outside the settings table itself. */
function mentioned(text: string): Set<string> {
  return new Set(text.match(/BOSON_[A-Z][A-Z0-9_]*/g) ?? []);
}

test('every BOSON_* variable read in src/ and bin/ is in the one settings table, and every listed one is read', async () => {
  const files = [...(await sources(path.join(PACKAGE_ROOT, 'src'))), path.join(PACKAGE_ROOT, 'bin', 'boson')];
  const read = new Set<string>();
  for (const f of files) {
    let text = await readFile(f, 'utf8');
    // The table itself names every variable: only the code around it counts as reading one.
    if (f.endsWith(path.join('main', 'config.ts'))) text = text.replace(/export const SETTINGS[\s\S]*?\n\];/, '');
    for (const name of mentioned(text)) read.add(name);
  }
  const listed = new Set(SETTINGS.map((s) => s.env));
  assert.deepEqual([...read].filter((n) => !listed.has(n)).sort(), [], 'read but not in SETTINGS');
  assert.deepEqual([...listed].filter((n) => !read.has(n)).sort(), [], 'in SETTINGS but read nowhere');
});

test('docs/config.md is the settings table as generated (npx tsx scripts/config-doc.ts > docs/config.md)', async () => {
  assert.equal(await readFile(path.join(PACKAGE_ROOT, 'docs', 'config.md'), 'utf8'), configDoc());
});

test('the configuration is typed: a malformed setting is refused with its name, defaults fill the rest', () => {
  assert.throws(() => loadConfig({ BOSON_BOOT_TIMEOUT_MS: 'soon' }), /bootTimeoutMs/);
  assert.throws(() => loadConfig({ BOSON_BOOT_TIMEOUT_MS: '-5' }), /bootTimeoutMs/);
  const c = loadConfig({ BOSON_STATE_DIR: '/tmp/x', BOSON_BOOT_TIMEOUT_MS: '9000' });
  assert.equal(c.bootTimeoutMs, 9000);
  assert.equal(c.virtiofsd, '/usr/lib/qemu/virtiofsd');
  assert.equal(c.paths.stateDir, '/tmp/x');
});

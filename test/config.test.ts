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

test("every setting but bin/boson's is read by the composition root, which hands it down typed", () => {
  assert.deepEqual(
    SETTINGS.filter((s) => s.readBy !== 'root').map((s) => `${s.env}: ${s.readBy}`),
    ['BOSON_NO_BUNDLE: bin/boson'],
  );
  const c = loadConfig({
    HOME: '/home/u',
    BOSON_HOST: 'unix:///tmp/b.sock',
    BOSON_GUEST_KERNEL: '/k/vmlinuz-x',
    BOSON_GUEST_MODULES: '/k/modules',
    BOSON_ACCEL: 'tcg',
    BOSON_QEMU: '/q/qemu',
    BOSON_TCG_TB_MIB: '32',
    BOSON_ROOTFS: 'ext4',
    BOSON_STAGING_DIR: 'store',
    BOSON_INSECURE_REGISTRIES: 'a:5000, b ,',
    BOSON_REGISTRY_CA: '/ca.pem',
    BOSON_QUIET: '1',
    BOSON_DOCKER_TRACE: '1',
  });
  assert.deepEqual(
    [c.host, c.guestKernel, c.guestModules, c.accel, c.qemu, c.tcgTbMiB, c.rootfs, c.stagingDir, c.insecureRegistries, c.registryCa],
    ['unix:///tmp/b.sock', '/k/vmlinuz-x', '/k/modules', 'tcg', '/q/qemu', 32, 'ext4', 'store', ['a:5000', 'b'], '/ca.pem'],
  );
  assert.equal(c.quiet && c.dockerTrace, true);
  assert.equal(c.configDir, '/home/u/.config/boson');
  assert.equal(c.dockerConfigFile, '/home/u/.docker/config.json');
  const d = loadConfig({ HOME: '/home/u', XDG_CONFIG_HOME: '/x', DOCKER_CONFIG: '/d', BOSON_TCG_TB_MIB: 'lots' });
  assert.deepEqual(
    [d.rootfs, d.tcgTbMiB, d.insecureRegistries, d.configDir, d.dockerConfigFile],
    ['erofs', 16, [], '/x/boson', '/d/config.json'],
  );
  assert.equal(loadConfig({ BOSON_CONFIG_DIR: '/c' }).configDir, '/c');
  assert.throws(() => loadConfig({ BOSON_ROOTFS: 'xfs' }), /BOSON_ROOTFS must be "erofs" or "ext4", not "xfs"/);
});

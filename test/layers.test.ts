/**
 * Enforces the architecture of DESIGN.md by reading every import in src/: which layer may import which, and that
 * other layers come in only through a layer's index.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';

const SRC = path.join(PACKAGE_ROOT, 'src');

/** For each layer, the layers it may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  common: [],
  guest: ['common'],
  vmm: ['common'],
  image: ['common'],
  machine: ['common', 'guest', 'vmm', 'image'],
  controller: ['common'],
  docker: ['common', 'machine', 'controller', 'image'],
  cri: ['common', 'machine', 'controller'],
  cli: ['common', 'machine', 'controller', 'image', 'guest', 'vmm', 'docker', 'cri', 'main'],
  // The composition root: the one place that builds implementations.
  main: ['common', 'guest', 'vmm', 'image', 'machine', 'docker', 'cri', 'controller'],
};

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

/** The relative imports of a TypeScript file. */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) specs.push((m[1] ?? m[2])!);
  return specs.filter((s) => s.startsWith('.'));
}

test('every import in src/ respects the layer rules and enters other layers through index.ts', async () => {
  const violations: string[] = [];
  const files = await sourceFiles(SRC);
  assert.ok(files.length > 10, 'found the sources');
  for (const file of files) {
    const layer = path.relative(SRC, file).split(path.sep)[0]!;
    assert.ok(layer in ALLOWED, `unknown layer folder src/${layer}`);
    for (const spec of importsOf(await readFile(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec);
      const rel = path.relative(SRC, target);
      if (rel.startsWith('..')) {
        violations.push(`${path.relative(PACKAGE_ROOT, file)} imports ${spec}, outside src/`);
        continue;
      }
      const targetLayer = rel.split(path.sep)[0]!;
      if (targetLayer === layer) continue;
      if (!ALLOWED[layer]!.includes(targetLayer)) violations.push(`${path.relative(PACKAGE_ROOT, file)}: layer "${layer}" may not import "${targetLayer}" (${spec})`);
      else if (rel !== path.join(targetLayer, 'index.ts')) violations.push(`${path.relative(PACKAGE_ROOT, file)}: imports ${spec}; other layers must be reached through ${targetLayer}/index.ts`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the import reader sees static, re-export and dynamic imports', () => {
  const text = "import a from './a.ts';\nexport { b } from '../b/index.ts';\nconst c = await import('./c.ts');\nimport x from 'node:fs';";
  assert.deepEqual(importsOf(text), ['./a.ts', '../b/index.ts', './c.ts']);
});

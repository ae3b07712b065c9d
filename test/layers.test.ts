/**
 * Enforces the architecture of DESIGN.md by reading every import in src/: which layer may import which, that other
 * layers come in only through a layer's index.ts, and that the edges (cli, docker, cri, controller) reach
 * src/machine only through its port and its client (machine/port/index.ts, machine/client/index.ts).
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

/** The edges: they speak to a machine through the port and the client, and build nothing (src/main does). */
const EDGES = ['cli', 'docker', 'cri', 'controller'];

/**
 * What an edge may import of src/machine: the port (schemas and interfaces) and the client (the typed client of
 * a machine behind a socket, its stream helpers, and the pure helpers that parse user syntax into port types).
 * The implementations (the runtime, the stores, the managers, the services) are built by src/main alone.
 */
const MACHINE_SURFACES = [path.join('machine', 'port', 'index.ts'), path.join('machine', 'client', 'index.ts')];

/**
 * Files of an edge still allowed the whole of src/machine (its index.ts), each with the reason. The list may only
 * shrink: a listed file that no longer needs it fails the test.
 */
const MACHINE_EXCEPTIONS: Record<string, string> = {
  // The Docker personality's one adapter to the runtime: the reach-ins the port does not cover (whether this
  // runtime holds a VM now, the log file an attach holds open, the image store's own calls, the event emitter).
  'docker/machine-access.ts': 'runtime internals, listed in its module comment',
  // Not yet switched to machine/port and machine/client: each uses a type the port has in another shape.
  'docker/index.ts': 'takes the MachineRuntime to build machine-access',
  'docker/streams.ts': 'MachineEvent (the port has Event, with timeNano as a string)',
  'docker/system.ts': 'MachineEvent and VolumeRecord (the port has Event and Volume)',
  'docker/containers.ts': 'ContainerRecord, for statusText (the port has Container)',
  'docker/routes/volumes.ts': 'DEFAULT_VOLUME_BYTES',
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
  const exceptionsUsed = new Set<string>();
  for (const file of files) {
    const fromRel = path.relative(SRC, file);
    const layer = fromRel.split(path.sep)[0]!;
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
      if (!ALLOWED[layer]!.includes(targetLayer))
        violations.push(`${path.relative(PACKAGE_ROOT, file)}: layer "${layer}" may not import "${targetLayer}" (${spec})`);
      else if (targetLayer === 'machine' && EDGES.includes(layer)) {
        if (MACHINE_SURFACES.includes(rel)) continue;
        const key = fromRel.split(path.sep).join('/');
        if (rel === path.join('machine', 'index.ts') && key in MACHINE_EXCEPTIONS) exceptionsUsed.add(key);
        else
          violations.push(
            `${path.relative(PACKAGE_ROOT, file)}: imports ${spec}; an edge reaches src/machine only through machine/port/index.ts and machine/client/index.ts`,
          );
      } else if (rel !== path.join(targetLayer, 'index.ts'))
        violations.push(
          `${path.relative(PACKAGE_ROOT, file)}: imports ${spec}; other layers must be reached through ${targetLayer}/index.ts`,
        );
    }
  }
  for (const key of Object.keys(MACHINE_EXCEPTIONS))
    if (!exceptionsUsed.has(key))
      violations.push(`src/${key} is listed as an exception but no longer needs it: take it off MACHINE_EXCEPTIONS`);
  assert.deepEqual(violations, []);
});

test('the import reader sees static, re-export and dynamic imports', () => {
  const text = "import a from './a.ts';\nexport { b } from '../b/index.ts';\nconst c = await import('./c.ts');\nimport x from 'node:fs';";
  assert.deepEqual(importsOf(text), ['./a.ts', '../b/index.ts', './c.ts']);
});

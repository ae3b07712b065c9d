/**
 * Enforces the architecture of DESIGN.md by reading every import in src/: which layer may import which, that other
 * layers come in only through a layer's index.ts, and that the edges (cli, docker, cri, controller) reach
 * src/machine only through its port and its client (machine/port/index.ts, machine/client/index.ts). And that the
 * environment is read by the composition root alone (src/main: loadConfig), which hands every layer its settings.
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
  controller: ['common', 'machine'],
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
const MACHINE_EXCEPTIONS: Record<string, string> = {};

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

/**
 * The places below the composition root that may still touch process.env, each an exact piece of code with the
 * reason. None of them reads a setting. The list may only shrink: an entry that no longer matches fails the test.
 */
const ENV_EXCEPTIONS: Array<{ file: string; code: string; why: string }> = [
  // `-e KEY` and --env-file lines without a value take it from the caller's shell, as docker run does.
  { file: 'cli/container-flags.ts', code: 'expandEnvArgs(flags.env, process.env)', why: '-e KEY from the user shell' },
  { file: 'cli/container-flags.ts', code: 'parseEnvFile(text, process.env, file)', why: '--env-file KEY from the user shell' },
  // The program search path, used as spawn itself uses it (finding qemu-system-x86_64, newuidmap): not a setting.
  { file: 'vmm/qemu-binary.ts', code: "(process.env.PATH ?? '/usr/bin:/bin')", why: 'PATH lookup of QEMU' },
  { file: 'image/userns.ts', code: "(process.env.PATH ?? '/usr/bin:/bin')", why: 'PATH lookup of newuidmap/newgidmap' },
  // The rootless disk builder's child runs with this process's environment (as any spawned child does by default).
  { file: 'image/userns.ts', code: 'env: process.env }', why: 'passes the environment on to a child' },
];

/** Code that passes the whole environment on to a child (`env: { ...process.env, X: ... }`): not a read. */
const PASSING_ON = /env:\s*\{\s*\.\.\.process\.env\s*[,}]/g;

/** Any reach into the environment: process.env, process['env'], or destructuring env out of process. */
const ENV_READ = /\bprocess\s*(?:\.\s*env\b|\[\s*['"`]env['"`]\s*\])|\{[^}]*\benv\b[^}]*\}\s*=\s*process\b/g;

/**
 * The environment reads of one file (`rel` below src/, with `/`), by line, leaving out the allowed ones; `used`
 * collects the exceptions that matched. Comments are not code: they are blanked first.
 */
export function envReadsOf(rel: string, text: string, used = new Set<string>()): string[] {
  // A line comment starts a line or follows a blank (not the // of 'unix://' or of a regular expression).
  let code = text.replace(/\/\*[\s\S]*?\*\/|(?<=^|\s)\/\/[^\n]*/g, (c) => c.replace(/[^\n]/g, ' '));
  const blank = (start: number, length: number): void => {
    code = code.slice(0, start) + ' '.repeat(length) + code.slice(start + length);
  };
  for (const m of code.matchAll(PASSING_ON)) blank(m.index, m[0].length);
  ENV_EXCEPTIONS.forEach((e, i) => {
    if (e.file !== rel) return;
    for (let at = code.indexOf(e.code); at >= 0; at = code.indexOf(e.code, at + 1)) {
      used.add(String(i));
      blank(at, e.code.length);
    }
  });
  const reads: string[] = [];
  for (const m of code.matchAll(ENV_READ)) {
    const line = code.slice(0, m.index).split('\n').length;
    reads.push(`src/${rel}:${line}: ${text.split('\n')[line - 1]!.trim()}`);
  }
  return reads;
}

test('below the composition root no code reads process.env: src/main reads the settings and passes them down', async () => {
  const used = new Set<string>();
  const reads: string[] = [];
  for (const file of await sourceFiles(SRC)) {
    const rel = path.relative(SRC, file).split(path.sep).join('/');
    // The composition root reads the environment (loadConfig); tests set up theirs as they like.
    if (rel.startsWith('main/') || rel.endsWith('.test.ts')) continue;
    reads.push(...envReadsOf(rel, await readFile(file, 'utf8'), used));
  }
  assert.deepEqual(reads, [], 'read the setting in src/main/config.ts (loadConfig) and pass it down as an option');
  const unused = ENV_EXCEPTIONS.filter((_, i) => !used.has(String(i))).map((e) => `${e.file}: ${e.code}`);
  assert.deepEqual(unused, [], 'exceptions that no longer match: take them off ENV_EXCEPTIONS');
});

test('the environment check sees every kind of read, and lets through only passing it on and the listed exceptions', () => {
  const reads = (text: string, rel = 'vmm/x.ts'): number => envReadsOf(rel, text).length;
  assert.equal(reads('const q = process.env.BOSON_QEMU;'), 1);
  assert.equal(reads("const q = process.env['BOSON_QEMU'];"), 1);
  assert.equal(reads("const q = process['env'].BOSON_QEMU;"), 1);
  assert.equal(reads('export function f(env: NodeJS.ProcessEnv = process.env) {}'), 1);
  assert.equal(reads('const { env } = process;'), 1);
  assert.equal(reads('const { env: e, argv } = process;'), 1);
  assert.equal(reads('spawn(cmd, args, { env: { ...process.env, LC_ALL: "C" } });'), 0);
  assert.equal(reads('// process.env.BOSON_QEMU is read by the root\n/* and process.env here */ const a = 1; // process.env'), 0);
  assert.equal(reads("const u = 'unix://' + process.env.BOSON_HOST;"), 1, 'a // inside a string is no comment');
  assert.equal(reads("(process.env.PATH ?? '/usr/bin:/bin')", 'vmm/qemu-binary.ts'), 0);
  assert.equal(reads("(process.env.PATH ?? '/usr/bin:/bin')", 'vmm/accel.ts'), 1, 'an exception holds for its file only');
  assert.equal(reads('const p = process.env.PATH;', 'vmm/qemu-binary.ts'), 1, 'and for its exact code only');
});

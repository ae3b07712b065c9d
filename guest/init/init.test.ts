/**
 * Builds boson-init and runs its C unit tests (`make -C guest/init test`), then checks that the binary PID 1
 * will be is a static ELF (no PT_INTERP program header, so it runs without a dynamic loader in the initramfs)
 * and smaller than 1 MiB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const binary = join(here, '..', '..', 'build', 'guest', 'boson-init');

/** Program header types of a 64- or 32-bit ELF file (little- or big-endian). */
function programHeaderTypes(elf: Buffer): number[] {
  assert.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF', 'not an ELF file');
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const phoff = is64 ? Number(le ? elf.readBigUInt64LE(0x20) : elf.readBigUInt64BE(0x20)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  const types: number[] = [];
  for (let i = 0; i < phnum; i++) types.push(u32(phoff + i * phentsize));
  return types;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

test('make -C guest/init test builds boson-init and passes its C unit tests', () => {
  const r = spawnSync('make', ['-C', here, 'test'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make test failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /boson-init unit tests: \d+ checks, 0 failed/);
});

test('boson-init is a static ELF smaller than 1 MiB', () => {
  const r = spawnSync('make', ['-C', here], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make failed:\n${r.stdout}\n${r.stderr}`);
  const elf = readFileSync(binary);
  const types = programHeaderTypes(elf);
  assert.ok(types.includes(PT_LOAD), 'no loadable segment');
  assert.ok(!types.includes(PT_INTERP), 'has a PT_INTERP (dynamically linked)');
  assert.ok(!types.includes(PT_DYNAMIC), 'has a PT_DYNAMIC segment (not fully static)');
  assert.ok(elf.length < 1024 * 1024, `${elf.length} bytes is not under 1 MiB`);
});

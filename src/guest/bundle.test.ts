import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, readdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { GUEST_MODULES, OPTIONAL_GUEST_MODULES, resolveModules } from './modules.ts';
import { writeCpio } from './cpio.ts';
import { assertBootableKernel, defaultKernelPath, kernelReleaseOf, kernelUsesAcpi } from './bundle.ts';
import { isBosonError, PACKAGE_ROOT } from '../common/index.ts';

test('modules come out dependencies first, built-ins skipped, each once', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-mods-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    path.join(dir, 'modules.dep'),
    [
      'kernel/a/virtio_ring.ko:',
      'kernel/a/virtio.ko: kernel/a/virtio_ring.ko',
      'kernel/a/virtio_blk.ko: kernel/a/virtio.ko kernel/a/virtio_ring.ko',
      'kernel/fs/erofs.ko: kernel/lib/libcrc32c.ko',
      'kernel/lib/libcrc32c.ko:',
    ].join('\n'),
  );
  await writeFile(path.join(dir, 'modules.builtin'), 'kernel/fs/ext4/ext4.ko\n');
  const mods = await resolveModules(dir, ['virtio_blk', 'ext4', 'erofs', 'virtio']);
  assert.deepEqual(
    mods.map((m) => m.name),
    ['virtio_ring', 'virtio', 'virtio_blk', 'libcrc32c', 'erofs'],
  );
  await assert.rejects(resolveModules(dir, ['nope']), (e) => isBosonError(e, 'GUEST_KERNEL_MISSING'));
});

test('optional modules are added when the kernel has them and all their dependencies, skipped otherwise', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-mods-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    path.join(dir, 'modules.dep'),
    [
      'kernel/a/virtio.ko:',
      'kernel/net/9p/9pnet.ko:',
      'kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/a/virtio.ko',
      'kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko',
      'kernel/x/half.ko: kernel/x/gone.ko',
    ].join('\n'),
  );
  const mods = await resolveModules(dir, ['virtio'], ['9pnet_virtio', '9p', 'absent', 'half']);
  // 9p needs netfs, which this tree lacks: skipped whole, nothing of it added.
  assert.deepEqual(
    mods.map((m) => m.name),
    ['virtio', '9pnet', '9pnet_virtio'],
  );
});

test("the default kernel: BOSON_GUEST_KERNEL, else Boson's own, else the newest cloud kernel in /boot", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-kernels-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const boot = path.join(dir, 'boot');
  const own = path.join(dir, 'own');
  await mkdir(boot);
  await mkdir(own);
  for (const n of ['vmlinuz-6.1.0-9-cloud-amd64', 'vmlinuz-6.1.0-10-cloud-amd64', 'vmlinuz-6.2.0-1-amd64'])
    await writeFile(path.join(boot, n), '');
  assert.equal(
    await defaultKernelPath(undefined, boot, own),
    path.join(boot, 'vmlinuz-6.1.0-10-cloud-amd64'),
    'no own kernel built: the newest cloud kernel',
  );
  await writeFile(path.join(own, 'vmlinuz-6.1.192-boson'), '');
  assert.equal(await defaultKernelPath(undefined, boot, own), path.join(own, 'vmlinuz-6.1.192-boson'));
  assert.equal(await defaultKernelPath('/k/vmlinuz-x', boot, own), '/k/vmlinuz-x');
  await assert.rejects(defaultKernelPath(undefined, path.join(dir, 'none'), path.join(dir, 'none')), (e) =>
    isBosonError(e, 'GUEST_KERNEL_MISSING'),
  );
});

test("ACPI or not is read from the kernel's config beside it; without a config, ACPI", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-kconfig-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'config-9.9-a'), 'CONFIG_X=y\nCONFIG_ACPI=y\n');
  await writeFile(path.join(dir, 'config-9.9-b'), 'CONFIG_X=y\n# CONFIG_ACPI is not set\n');
  assert.equal(await kernelUsesAcpi(path.join(dir, 'vmlinuz-9.9-a')), true);
  assert.equal(await kernelUsesAcpi(path.join(dir, 'vmlinuz-9.9-b')), false);
  assert.equal(await kernelUsesAcpi(path.join(dir, 'vmlinuz-9.9-c')), true);
});

test("Boson's own kernel (scripts/build-kernel.sh) has every driver built in and no ACPI", async (t) => {
  const ownDir = path.join(PACKAGE_ROOT, 'build', 'guest', 'kernel');
  const kernel = (await readdir(ownDir).catch(() => [] as string[])).find((n) => n.startsWith('vmlinuz-'));
  if (!kernel) {
    t.skip('the kernel is not built (scripts/setup.sh builds it)');
    return;
  }
  const release = kernelReleaseOf(kernel);
  const mods = await resolveModules(path.join(ownDir, 'modules', release), GUEST_MODULES, OPTIONAL_GUEST_MODULES);
  assert.deepEqual(mods, [], 'nothing to load: all built in, virtiofs and 9p included');
  assert.equal(await kernelUsesAcpi(path.join(ownDir, kernel)), false);
});

test("Debian's cloud kernel provides every module Boson needs", async (t) => {
  let kernel: string;
  try {
    kernel = await defaultKernelPath(undefined);
  } catch {
    t.skip('no guest kernel installed');
    return;
  }
  const mods = await resolveModules(path.join('/lib/modules', kernelReleaseOf(kernel)), GUEST_MODULES, OPTIONAL_GUEST_MODULES);
  const names = mods.map((m) => m.name);
  assert.ok(names.includes('virtio_net') && names.indexOf('net_failover') < names.indexOf('virtio_net'));
  assert.ok(names.indexOf('virtio') < names.indexOf('virtio_mmio'));
  assert.ok(names.includes('virtio_console') && names.includes('overlay'));
});

test('cpio archives unpack with the system cpio to the same tree and bytes', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-cpio-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const archive = writeCpio([
    { kind: 'dir', path: 'boson' },
    { kind: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
    { kind: 'file', path: 'boson/modules', data: Buffer.from('/m/a.ko\n') },
    { kind: 'file', path: 'odd', data: Buffer.alloc(5, 1) },
  ]);
  assert.equal(archive.length % 4, 0);
  const out = path.join(dir, 'out');
  await mkdir(out);
  execFileSync('cpio', ['-idm', '--quiet'], { cwd: out, input: archive });
  assert.deepEqual((await readdir(out)).sort(), ['boson', 'init', 'odd']);
  assert.equal(execFileSync('cat', [path.join(out, 'boson/modules')]).toString(), '/m/a.ko\n');
  assert.deepEqual(
    writeCpio([{ kind: 'file', path: 'x', data: Buffer.from('y') }]),
    writeCpio([{ kind: 'file', path: 'x', data: Buffer.from('y') }]),
  );
});

test('a guest kernel file is recognised by its header: an x86 bzImage or an ELF vmlinux; anything else is refused', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-kernel-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bz = Buffer.alloc(0x300);
  bz.write('HdrS', 0x202, 'latin1');
  await writeFile(path.join(dir, 'vmlinuz-bz'), bz);
  await writeFile(path.join(dir, 'vmlinux-elf'), Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(100)]));
  await writeFile(path.join(dir, 'vmlinuz-text'), 'not a kernel');
  await writeFile(path.join(dir, 'vmlinuz-empty'), '');
  await assertBootableKernel(path.join(dir, 'vmlinuz-bz'));
  await assertBootableKernel(path.join(dir, 'vmlinux-elf'));
  for (const name of ['vmlinuz-text', 'vmlinuz-empty'])
    await assert.rejects(
      assertBootableKernel(path.join(dir, name)),
      (e) => isBosonError(e, 'GUEST_KERNEL_MISSING') && /is not a kernel image/.test((e as Error).message),
    );
});

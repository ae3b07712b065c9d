/**
 * What a guest writes cannot grow the host without bound: its serial console is a fixed ring (not a file on
 * /run's tmpfs), whose tail is still there for boot-hang messages.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { prepareBootBundle } from '../src/guest/index.ts';
import { launchMicroVm } from '../src/vmm/index.ts';
import { runBoson, useDaemonHost, waitFor } from './helpers.ts';

const MiB = 1024 * 1024;

describe('output bounds', () => {
  const { host } = useDaemonHost();
  const boson = (...args: string[]) => runBoson(host(), args, { timeoutMs: 120_000 });

  test('a guest writing 16 MiB to /dev/console leaves no more than 1 MiB of it on the host', async () => {
    const size = Number(process.env.CONSOLE_MIB ?? 16) * MiB;
    const run = await boson(
      'run',
      '-d',
      'busybox',
      'sh',
      '-c',
      `head -c ${size} /dev/zero | tr '\\0' x > /dev/console; echo written; sleep 600`,
    );
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.toString().trim();
    try {
      const t0 = Date.now();
      await waitFor(async () => (await boson('logs', id)).stdout.toString().includes('written'), 900_000, 'the guest to write its console');
      console.log(`# ${size / MiB} MiB through the console in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const vmDir = path.join(host().stateDir, 'run', 'vms', id.slice(0, 16));
      let total = 0;
      // lstat: the directory is the QEMU's jail root too, with symlinks into /usr (dangling outside the jail).
      for (const name of await readdir(vmDir)) total += (await lstat(path.join(vmDir, name))).size;
      assert.ok(total <= MiB, `the VM's runtime directory holds ${total} bytes`);
    } finally {
      await boson('rm', '-f', id);
    }
  });
});

test("a detached VM's console tail is read from its ring (what boot-hang errors quote)", async () => {
  const dir = await mkdtemp('/var/tmp/boson-console-');
  const runtimeDir = path.join(dir, 'vm');
  await mkdir(runtimeDir);
  // A detached VM's sockets do not keep this process alive (a daemon has its server for that).
  const keepAlive = setInterval(() => undefined, 1000);
  const bundle = await prepareBootBundle({ guestDir: path.join(PACKAGE_ROOT, 'build', 'guest') });
  const vm = await launchMicroVm({
    kernel: bundle.kernelPath,
    initramfs: bundle.initramfsPath,
    acpi: bundle.acpi,
    memoryMiB: 256,
    cpus: 1,
    disks: [],
    runtimeDir,
    debug: true,
  });
  try {
    await waitFor(async () => /Linux version/.test(await vm.consoleTail(1000)), 120_000, 'the kernel banner in the console tail');
    assert.deepEqual(await readdir(runtimeDir).then((f) => f.filter((n) => n.startsWith('console'))), [], 'no console file');
  } finally {
    await vm.kill();
    clearInterval(keepAlive);
    await rm(dir, { recursive: true, force: true });
  }
});

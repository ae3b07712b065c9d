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
import { readFile } from 'node:fs/promises';
import { MachineClient, StreamDemuxer, type ExecStatus } from '../src/machine/index.ts';
import { runBoson, startBoson, useDaemonHost, waitFor } from './helpers.ts';

const MiB = 1024 * 1024;

/** The resident memory of process `pid`, in bytes. */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe('output bounds', () => {
  const { host, daemon } = useDaemonHost();
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

  test("exec output for a client that does not read waits in the guest, not in the daemon's memory", async () => {
    const run = await boson('run', '-d', 'busybox', 'sleep', '600');
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.toString().trim();
    const pid = daemon.pid()!;
    const size = 96 * MiB;
    // A one-request exec over the REST API whose client does not read: once the socket buffers are full, only the
    // daemon (or the guest) can hold the rest.
    const client = new MachineClient(path.join(host().stateDir, 'run', 'boson.sock'));
    const stream = await client.upgrade(`/v1/containers/${id}/exec`, { argv: ['head', '-c', String(size), '/dev/zero'] });
    try {
      const before = await rssOf(pid);
      let peak = before;
      // Long enough for the guest to have written it all, had nothing held it back (it ran at ~50 MiB/s here).
      const end = Date.now() + 20_000;
      while (Date.now() < end) {
        peak = Math.max(peak, await rssOf(pid));
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(
        `# daemon RSS ${(before / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB at most while the client did not read`,
      );
      assert.ok(peak - before < 32 * MiB, `the daemon grew by ${((peak - before) / MiB).toFixed(0)} MiB`);
      // Then the client reads: every byte arrives, and the exec ends with status 0.
      let got = 0;
      let status: ExecStatus | undefined;
      const demux = new StreamDemuxer(
        (d) => (got += d.length),
        () => undefined,
        (st) => (status = st),
      );
      stream.on('data', (d: Buffer) => demux.push(d));
      await new Promise((r) => stream.on('close', r));
      assert.equal(got, size);
      assert.equal(status?.exitCode, 0);
    } finally {
      stream.destroy();
      await boson('rm', '-f', id);
    }
  });

  test('boson exec whose stdout is not read holds the stream back instead of queuing it in the CLI', async () => {
    const run = await boson('run', '-d', 'busybox', 'sleep', '600');
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.toString().trim();
    const size = 96 * MiB;
    // The CLI's stdout is a pipe this test does not read until later.
    const cli = startBoson(host(), ['exec', id, 'head', '-c', String(size), '/dev/zero']);
    cli.stdin!.end();
    try {
      let peak = 0;
      const end = Date.now() + 15_000;
      while (Date.now() < end) {
        peak = Math.max(peak, await rssOf(cli.pid!).catch(() => 0));
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(`# the CLI's RSS at most ${(peak / MiB).toFixed(0)} MiB while its stdout was not read`);
      assert.ok(peak < 96 * MiB, `the CLI held ${(peak / MiB).toFixed(0)} MiB`);
      let got = 0;
      cli.stdout!.on('data', (d: Buffer) => (got += d.length));
      const code = await new Promise<number | null>((resolve) => cli.on('exit', resolve));
      assert.equal(code, 0);
      assert.equal(got, size);
    } finally {
      cli.kill('SIGKILL');
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

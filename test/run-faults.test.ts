/**
 * Bad input and faults around `boson run` and `boson image import`: each gives one clear error line, a distinct
 * exit status (docs/api.md), and leaves no QEMU process, container record or temp file behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { useTestHost, runBoson, qemuPidsUsing, containerDirs } from './helpers.ts';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';

const testHost = useTestHost();
let scratch: string;
before(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'boson-faults-'));
});
after(() => rm(scratch, { recursive: true, force: true }));

/** Asserts one error line on stderr, the exit status, and that nothing was left behind. */
async function expectFault(args: string[], status: number, pattern: RegExp, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = await runBoson(testHost(), args, { env, timeoutMs: 120_000 });
  assert.equal(r.code, status, `exit status of boson ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stdout.length, 0);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, pattern);
  assert.match(lines[0]!, /^boson: /);
  assert.deepEqual(await qemuPidsUsing(testHost().stateDir), []);
  assert.deepEqual(await containerDirs(testHost().stateDir), []);
  const tmp = await readdir(path.join(testHost().stateDir, 'images', 'tmp')).catch(() => []);
  assert.deepEqual(tmp, [], 'no temp files in the image store');
}

describe('faults', () => {
  test('a missing image', () => expectFault(['run', '--rm', 'no-such-image'], 66, /no such image: no-such-image/));
  test('an unknown flag', () => expectFault(['run', '--no-such-flag', 'busybox'], 64, /unknown option '--no-such-flag'/));
  test('a bad user', () => expectFault(['run', '--rm', '-u', 'ghost', 'busybox', 'true'], 67, /ghost/));
  test('a bad memory size', () => expectFault(['run', '--rm', '-m', '1k', 'busybox', 'true'], 64, /too small/));
  test('a bad disk size', () => expectFault(['run', '--rm', '--disk-size', 'huge', 'busybox', 'true'], 64, /invalid disk size/));
  test('a bad --cpus', () => expectFault(['run', '--rm', '--cpus', '99', 'busybox', 'true'], 64, /--cpus/));
  test('QEMU missing', () =>
    expectFault(['run', '--rm', 'busybox', 'true'], 69, /QEMU not found/, { BOSON_QEMU: '/nonexistent/qemu-system-x86_64' }));
  test('boson-init not built', () => expectFault(['run', '--rm', 'busybox', 'true'], 72, /boson-init/, { BOSON_GUEST_DIR: scratch }));
  // A modules tree that exists (the host's cloud kernel's), so that only the kernel check can refuse the file.
  const cloudModules = async (): Promise<string> =>
    `/lib/modules/${os.release().includes('cloud') ? os.release() : (await readdir('/lib/modules')).find((d) => d.endsWith('cloud-amd64'))}`;
  test('a guest kernel that is not a kernel', async () => {
    const fake = path.join(scratch, 'vmlinuz-fake');
    await writeFile(fake, 'not a kernel');
    await expectFault(['run', '--rm', 'busybox', 'true'], 72, new RegExp(`^boson: guest kernel at ${fake} is not a kernel image`), {
      BOSON_GUEST_KERNEL: fake,
      BOSON_GUEST_MODULES: await cloudModules(),
    });
  });
  test("QEMU exiting before the guest boots reports QEMU's own message", async () => {
    // A bzImage header (so Boson's check lets it through) of boot protocol 1.0, which QEMU refuses with an initrd.
    const fake = path.join(scratch, 'vmlinuz-crash');
    const image = Buffer.alloc(8192);
    image.write('not a kernel either');
    image.write('HdrS', 0x202, 'latin1');
    image.writeUInt16LE(0x0100, 0x206);
    await writeFile(fake, image);
    await expectFault(
      ['run', '--rm', 'busybox', 'true'],
      74,
      /exited before booting \(QEMU exit code \d+\): .*qemu.*too old to load a ram disk/i,
      {
        BOSON_GUEST_KERNEL: fake,
        BOSON_GUEST_MODULES: await cloudModules(),
      },
    );
  });
  test('a guest that never boots: watchdog, retries, then a clear error', async () => {
    const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'true'], { env: { BOSON_BOOT_TIMEOUT_MS: '300' } });
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /retrying \(attempt 2\)/);
    assert.match(r.stderr, /did not boot within 300 ms in 3 attempts/);
    assert.deepEqual(await qemuPidsUsing(testHost().stateDir), []);
    assert.deepEqual(await containerDirs(testHost().stateDir), []);
  });
  test('an unwritable state directory', async () => {
    const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'true'], { env: { BOSON_STATE_DIR: '/proc/version/state' } });
    assert.equal(r.code, 73, r.stderr);
    assert.match(r.stderr, /^boson: .*\/proc\/version\/state/);
  });

  test('a corrupt layer is refused on import and the store is unchanged', async () => {
    const dir = path.join(scratch, 'corrupt');
    const [img] = await writeOciLayout(dir, [
      {
        refName: 'localhost/corrupt:1',
        config: { architecture: 'amd64', os: 'linux' },
        layers: [{ tar: await makeTar([{ name: 'f', content: 'x'.repeat(1000) }]) }],
      },
    ]);
    const blob = path.join(dir, 'blobs', 'sha256', img!.layerDigests[0]!.slice(7));
    const bytes = await readFile(blob);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    await writeFile(blob, bytes);
    const before = await runBoson(testHost(), ['images', '--json']);
    await expectFault(['image', 'import', dir], 65, /sha256|digest|corrupt/i);
    const afterList = await runBoson(testHost(), ['images', '--json']);
    assert.deepEqual(afterList.stdout.toString(), before.stdout.toString());
  });

  test('a layer entry escaping the root is refused and nothing is written outside', async () => {
    const dir = path.join(scratch, 'escape');
    const target = `boson-escape-${process.pid}`;
    await writeOciLayout(dir, [
      {
        refName: 'localhost/escape:1',
        config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['true'] } },
        layers: [
          {
            tar: await makeTar([
              { name: 'evil', type: 'symlink', linkname: '../../../../../../../../tmp' },
              { name: `evil/${target}`, content: 'pwned' },
            ]),
          },
        ],
      },
    ]);
    const imp = await runBoson(testHost(), ['image', 'import', dir]);
    assert.equal(imp.code, 0, imp.stderr);
    await expectFault(['run', '--rm', 'localhost/escape:1'], 65, /escape|outside|unsafe/i);
    await assert.rejects(readFile(path.join('/tmp', target)), 'nothing was written through the link');
  });

  test('--memory, --cpus and --disk-size size the micro-VM', async () => {
    const r = await runBoson(testHost(), [
      'run',
      '--rm',
      '--memory',
      '512m',
      '--cpus',
      '2',
      '--disk-size',
      '200m',
      'busybox',
      'sh',
      '-c',
      "nproc; grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2; df -m / | tail -1 | tr -s ' ' | cut -d' ' -f2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [cpus, memKb, rootMb] = r.stdout.toString().trim().split('\n').map(Number);
    assert.ok(rootMb! > 150 && rootMb! <= 200, `the writable root is the 200m disk (df says ${rootMb} MB)`);
    assert.equal(cpus, 2);
    assert.ok(memKb! > 400 * 1024 && memKb! <= 512 * 1024, `MemTotal ${memKb} kB`);
  });
});

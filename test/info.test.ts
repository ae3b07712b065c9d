/** `boson info`: the accelerator and its reason, the guest kernel, initramfs and QEMU are all visible. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { makeTestHost, runBoson } from './helpers.ts';
import { probeAccelerator } from '../src/vmm/index.ts';
import { loadConfig } from '../src/main/index.ts';

test('boson info --json shows the accelerator with its reason, the guest bundle, QEMU and the paths', async (t) => {
  const host = await makeTestHost();
  t.after(() => host.cleanup());
  const r = await runBoson(host, ['info', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout.toString());
  const expected = await probeAccelerator(loadConfig().accel);
  assert.equal(info.accelerator.name, expected.accel);
  assert.ok(info.accelerator.reason.length > 10);
  assert.match(info.qemu.version, /^\d+\.\d+/);
  assert.match(info.guest.kernelRelease, /^\d+\.\d+/);
  await access(info.guest.initramfs);
  await access(info.guest.kernel);
  assert.ok(info.guest.drivers.includes('virtio_console'), 'the guest has the console driver, as a module or built in');
  assert.equal(typeof info.guest.acpi, 'boolean');
  assert.equal(info.paths.stateDir, host.stateDir);
  assert.deepEqual(info.problems, []);
  assert.equal(info.mode, process.geteuid?.() === 0 ? 'root' : 'rootless');
  if (info.mode === 'root') {
    await access(info.binds.guard);
    assert.match(info.binds.confinement.join(', '), /seccomp guard.*set-user-ID.*namespace sandbox/);
  }

  const human = await runBoson(host, ['info']);
  assert.match(human.stdout.toString(), new RegExp(`Accelerator: +${expected.accel} \\(`));
  assert.match(human.stdout.toString(), /^Bind mounts: +\S+virtiofsd under \S+virtiofsd-guard: seccomp guard/m);
  const noVirtiofsd = await runBoson(host, ['info', '--json'], { env: { BOSON_VIRTIOFSD: '/nonexistent/virtiofsd' } });
  assert.match(JSON.parse(noVirtiofsd.stdout.toString()).binds.confinement.join(), /virtiofsd missing: 9p/);
  const forced = await runBoson(host, ['info', '--json'], { env: { BOSON_ACCEL: 'kvm' } });
  assert.equal(JSON.parse(forced.stdout.toString()).accelerator.name, 'kvm');
});

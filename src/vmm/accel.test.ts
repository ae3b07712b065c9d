import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseAccelerator, gatherAccelFacts, type AccelFacts } from './accel.ts';
import { buildQemuArgv } from './argv.ts';

const base: AccelFacts = { override: undefined, kvmDeviceUsable: true, cpuFlags: new Set(['vmx', 'sse2']), kvmModules: ['kvm_intel'] };

test('KVM is chosen only with a usable /dev/kvm, vmx/svm and a hardware KVM module', () => {
  assert.equal(chooseAccelerator(base).accel, 'kvm');
  assert.equal(chooseAccelerator({ ...base, cpuFlags: new Set(['svm']), kvmModules: ['kvm_amd'] }).accel, 'kvm');
  assert.equal(chooseAccelerator({ ...base, kvmDeviceUsable: false }).accel, 'tcg');
  const pvm = chooseAccelerator({ ...base, cpuFlags: new Set(['sse2']), kvmModules: ['kvm_pvm'] });
  assert.equal(pvm.accel, 'tcg');
  assert.match(pvm.reason, /no vmx\/svm/);
  assert.equal(chooseAccelerator({ ...base, kvmModules: ['kvm_pvm'] }).accel, 'tcg');
});

test('BOSON_ACCEL forces either choice and says so', () => {
  assert.deepEqual(chooseAccelerator({ ...base, override: 'tcg' }), { accel: 'tcg', reason: 'forced by BOSON_ACCEL=tcg' });
  assert.equal(chooseAccelerator({ ...base, kvmDeviceUsable: false, override: 'kvm' }).accel, 'kvm');
});

test('the facts of this host are read without error', async () => {
  const facts = await gatherAccelFacts();
  assert.ok(facts.cpuFlags.size > 0, 'cpu flags were read from /proc/cpuinfo');
});

test('argv: the TCG path pins the TSC frequency, the KVM path uses the host CPU; disks carry serials', () => {
  const config = {
    kernel: '/k',
    initramfs: '/i',
    acpi: true,
    memoryMiB: 256,
    cpus: 2,
    disks: [
      { serial: 'boson-root', path: '/r,odd', readOnly: true },
      { serial: 'boson-scratch', fd: 9, readOnly: false },
    ],
  };
  const tcg = buildQemuArgv(config, 'tcg', 2600000, new Map([[1, 5]]));
  assert.equal(tcg[tcg.indexOf('-accel') + 1], 'tcg,tb-size=16', 'a small translation cache');
  assert.match(tcg[tcg.indexOf('-append') + 1]!, /tsc_early_khz=2600000/);
  assert.ok(
    tcg.includes('if=none,id=disk0,file=/r,,odd,format=raw,cache=unsafe,werror=enospc,rerror=report,readonly=on'),
    'commas in paths are escaped',
  );
  assert.ok(tcg.includes('if=none,id=disk1,file=/proc/self/fd/5,format=raw,cache=writeback,werror=enospc,rerror=report'));
  assert.ok(tcg.includes('virtio-blk-device,drive=disk1,serial=boson-scratch'));
  assert.ok(tcg.includes('memory-backend-memfd,id=mem,size=256M,share=on'), 'guest RAM is a shared memfd (no THP)');
  assert.match(tcg[tcg.indexOf('-M') + 1]!, /memory-backend=mem/);
  assert.ok(tcg.includes('virtio-balloon-device,free-page-reporting=on'), 'freed guest memory goes back to the host');
  assert.ok(!tcg.includes('virtio-mmio.force-legacy=false'), 'the legacy transport unless virtiofs needs the modern one');
  assert.match(tcg[tcg.indexOf('-M') + 1]!, /acpi=on/, 'ACPI unless the kernel does without');
  const noAcpi = buildQemuArgv({ ...config, acpi: false }, 'tcg', 2600000, new Map([[1, 5]]));
  assert.match(noAcpi[noAcpi.indexOf('-M') + 1]!, /acpi=off/, 'a kernel without ACPI finds its devices on the command line');
  const kvm = buildQemuArgv(config, 'kvm', 2600000, new Map([[1, 5]]));
  assert.equal(kvm[kvm.indexOf('-cpu') + 1], 'host');
  assert.doesNotMatch(kvm[kvm.indexOf('-append') + 1]!, /tsc_early_khz/);
});

test('file-backed guest RAM: a template shares its file, a clone maps it privately and waits for its state; no free page reporting', () => {
  const config = {
    kernel: '/k',
    initramfs: '/i',
    memoryMiB: 256,
    cpus: 1,
    acpi: false,
    disks: [],
    runtimeDir: '/run/vm',
  };
  const mem = (argv: string[]): string => argv[argv.indexOf('-object') + 1]!;
  const memfd = buildQemuArgv(config, 'tcg', undefined, new Map());
  assert.match(mem(memfd), /^memory-backend-memfd,id=mem,size=256M,share=on$/);
  assert.ok(memfd.includes('virtio-balloon-device,free-page-reporting=on'));
  assert.ok(!memfd.includes('-incoming'));
  const template = buildQemuArgv({ ...config, ram: { path: '/dev/shm/t,x/ram', shared: true } }, 'tcg', undefined, new Map());
  assert.equal(mem(template), 'memory-backend-file,id=mem,size=256M,mem-path=/dev/shm/t,,x/ram,share=on');
  assert.ok(template.includes('virtio-balloon-device') && !template.some((a) => a.includes('free-page-reporting')));
  const clone = buildQemuArgv(
    { ...config, ram: { path: '/dev/shm/t/ram', shared: false }, incoming: true },
    'tcg',
    undefined,
    new Map(),
    16,
    {
      diskFds: new Map(),
    },
  );
  assert.equal(mem(clone), 'memory-backend-file,id=mem,size=256M,mem-path=/ram,share=off', 'the jail binds the file at /ram');
  assert.deepEqual(clone.slice(clone.indexOf('-incoming'), clone.indexOf('-incoming') + 2), ['-incoming', 'defer']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capabilityMask } from './pod-capabilities.ts';
import { cgroupFiles, cpuWeightOf, parseStats } from './pod-cgroups.ts';

test('CPU shares become cpu.weight as runc converts them', () => {
  assert.deepEqual([2, 512, 1024, 262_144, 0, 1_000_000].map(cpuWeightOf), [1, 20, 39, 10_000, 1, 10_000]);
});

test('cgroupFiles: each limit in its file, absent or 0 as no limit', () => {
  assert.deepEqual(cgroupFiles({}), [
    ['cpu.max', 'max 100000'],
    ['cpu.weight', '100'],
    ['memory.max', 'max'],
    ['pids.max', 'max'],
  ]);
  assert.deepEqual(cgroupFiles({ cpuPeriodUs: 50_000, cpuQuotaUs: 25_000, cpuShares: 1024, memoryBytes: 1 << 26, pids: 9 }), [
    ['cpu.max', '25000 50000'],
    ['cpu.weight', '39'],
    ['memory.max', String(1 << 26)],
    ['pids.max', '9'],
  ]);
  assert.equal(cgroupFiles({ cpuQuotaUs: 10 })[0]![1], '1000 100000', "the kernel's smallest quota");
});

test("parseStats reads a cgroup's usage (working set: usage less inactive files) and the /proc fallback", () => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const stat = '42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 500 1000000 100 18446744073709551615';
  const text = `${a} cg 1500000 10485760 4194304\n${b} ${stat} | 300 25 20 1 0 30 0\nnoise\n`;
  assert.deepEqual(parseStats(text, '9'), [
    { id: a, timestampNs: '9', cpuNs: 1_500_000_000, memoryBytes: 6 * 1024 * 1024 },
    { id: b, timestampNs: '9', cpuNs: 100_000_000, memoryBytes: 25 * 4096 },
  ]);
});

test("capabilities: containerd's default set, changed as containerd changes it", () => {
  const hex = (n: bigint): string => n.toString(16);
  assert.equal(hex(capabilityMask()), 'a80425fb');
  assert.equal(hex(capabilityMask(['NET_BIND_SERVICE'], ['ALL'])), '400', 'drop ALL, then add the named one');
  assert.equal(hex(capabilityMask(['ALL'], ['CAP_CHOWN'])), (((1n << 41n) - 1n) & ~1n).toString(16));
  assert.equal(hex(capabilityMask(['cap_sys_admin'], ['MKNOD'])), 'a02425fb');
  assert.throws(() => capabilityMask(['FLY']), /unknown capability "FLY"/);
});

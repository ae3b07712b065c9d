/**
 * What QEMU itself costs per micro-VM, by accelerator: N detached VMs with Boson's own configuration (its kernel
 * and initramfs, a root and a scratch disk, the control, log and QMP channels, the balloon), and each QEMU's PSS
 * without its guest RAM (the memfd, Pss_Shmem) after a few seconds, averaged so that shared libraries count once
 * per N. Under TCG the guests boot. Under KVM on a host whose /dev/kvm cannot run a stock guest (a nested
 * kvm_pvm, as on Boson's CI machines) they never get past the real-mode setup code: the figure is then QEMU's own
 * memory without the work a running guest causes (a lower bound), and says so; there QEMU also aborts on an MSR
 * of `-cpu host`, which `--kvm-plain-cpu` swaps for `-cpu qemu64`. `--binary PATH` measures another QEMU build (e.g.
 * Debian's KVM-only qemu-system-x86_64-microvm).
 *
 *   npx tsx bench/vmm-memory.ts [--vms N] [--accel tcg|kvm] [--kvm-plain-cpu] [--binary PATH] [--json]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bootBundle } from '../src/machine/index.ts';
import { guestKernelOptions, loadConfig, qemuOptions } from '../src/main/index.ts';
import { launchMicroVm, type MicroVm } from '../src/vmm/index.ts';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const vms = Number(opt('--vms') ?? 10) || 10;
const accel = opt('--accel') ?? 'tcg';
const binary = opt('--binary');
const asJson = args.includes('--json');
if (accel !== 'tcg' && accel !== 'kvm') throw new Error('--accel takes tcg or kvm');
process.env.BOSON_ACCEL = accel;
const cpuMax = args.includes('--kvm-plain-cpu');

async function vmmKb(pid: number): Promise<{ pss: number; shmem: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { pss: field('Pss'), shmem: field('Pss_Shmem') };
}

const dir = await mkdtemp('/var/tmp/boson-vmm-memory-');
const started: MicroVm[] = [];
try {
  if (cpuMax) {
    // kvm_pvm refuses an MSR of -cpu host (QEMU aborts): a wrapper that asks for -cpu qemu64 instead, same process.
    const wrapper = path.join(dir, 'qemu');
    await writeFile(
      wrapper,
      `#!/bin/sh\nq=${binary ?? '/usr/bin/qemu-system-x86_64'}\nfor a; do shift; [ "$a" = host ] && a=qemu64; set -- "$@" "$a"; done\nexec "$q" "$@"\n`,
      { mode: 0o755 },
    );
    process.env.BOSON_QEMU = wrapper;
  } else if (binary) process.env.BOSON_QEMU = binary;
  // Read after BOSON_QEMU is set above, as the composition root reads it.
  const config = loadConfig();
  const bundle = await bootBundle(config.paths, guestKernelOptions(config));
  for (let i = 0; i < vms; i++) {
    const rt = path.join(dir, `vm${i}`);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(rt);
    const disk = (name: string): string => path.join(rt, name);
    await writeFile(disk('root.img'), Buffer.alloc(0));
    await writeFile(disk('scratch.img'), Buffer.alloc(0));
    const { truncate } = await import('node:fs/promises');
    await truncate(disk('root.img'), 64 << 20);
    await truncate(disk('scratch.img'), 64 << 20);
    started.push(
      await launchMicroVm(
        {
          kernel: bundle.kernelPath,
          initramfs: bundle.initramfsPath,
          acpi: bundle.acpi,
          memoryMiB: 128,
          cpus: 1,
          disks: [
            { serial: 'boson-root', path: disk('root.img'), readOnly: true },
            { serial: 'boson-scratch', path: disk('scratch.img'), readOnly: false },
          ],
          runtimeDir: rt,
          logFile: disk('container.log'),
        },
        qemuOptions(config),
      ),
    );
  }
  await new Promise((r) => setTimeout(r, 8000));
  const alive = started.filter((vm) => !vm.hasExited);
  const dead = started.find((vm) => vm.hasExited);
  if (dead) console.error(`a QEMU ended early: ${dead.qemuStderr.split('\n').slice(-3).join(' | ')}`);
  const kb = await Promise.all(alive.map((vm) => vmmKb(vm.pid)));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const vmmMiB = mean(kb.map((k) => k.pss - k.shmem)) / 1024;
  const result = {
    accel,
    binary: binary ?? 'qemu-system-x86_64',
    vms,
    alive: alive.length,
    vmmOverheadMiBPerVm: +vmmMiB.toFixed(1),
    guestRamResidentMiBPerVm: +(mean(kb.map((k) => k.shmem)) / 1024).toFixed(1),
    guestBooted:
      accel === 'tcg'
        ? 'yes (boson-init waits for its SPEC)'
        : 'only if /dev/kvm runs a stock guest; on kvm_pvm it spins in real-mode setup',
  };
  if (asJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else
    console.log(
      `${result.binary} --accel ${accel}: ${alive.length}/${vms} VMs alive, VMM overhead ${result.vmmOverheadMiBPerVm} MiB per VM (guest RAM resident ${result.guestRamResidentMiBPerVm} MiB); guest booted: ${result.guestBooted}`,
    );
} finally {
  // The detached QEMUs do not keep Node's event loop alive: poll (a referenced timer) until every one has gone.
  const killed = Promise.all(started.map((vm) => vm.kill()));
  while (!started.every((vm) => vm.hasExited)) await new Promise((r) => setTimeout(r, 50));
  await killed;
  await rm(dir, { recursive: true, force: true });
}

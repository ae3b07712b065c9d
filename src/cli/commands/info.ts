/** `boson info`: what this host will boot micro-VMs with, and why (accelerator, kernel, initramfs, QEMU, paths). */
import path from 'node:path';
import type { Command } from 'commander';
import { bosonPaths, toBosonError } from '../../common/index.ts';
import { defaultKernelPath, kernelReleaseOf } from '../../guest/index.ts';
import { checkUserNamespaceSetup } from '../../image/index.ts';
import {
  cgroupMode,
  checkPasst,
  describeCgroups,
  describeVirtiofsd,
  findQemu,
  probeAccelerator,
  qemuVersion,
  hostTscKhz,
  type VirtiofsdView,
} from '../../vmm/index.ts';
import { bootBundle, guestKernelOptions, hostSocketPath, jailPolicy, loadConfig, qemuOptions, type HostConfig } from '../../main/index.ts';
import { MachineClient } from '../../machine/client/index.ts';
import type { WarmPoolView } from '../../machine/port/index.ts';
import { printJson } from '../output.ts';

/** Adds `info` to the program. */
export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('Show the accelerator, guest kernel, initramfs, QEMU and state directories')
    .option('--json', 'print as JSON')
    .action(async (flags: { json?: boolean }) => {
      const info = await gatherInfo();
      if (flags.json) printJson(info);
      else printInfo(info);
      if (info.problems.length > 0) process.exitCode = 1;
    });
}

interface Info {
  version: string;
  /** "root", or "rootless" (not root: user-mode networking by passt, root disks built in a user namespace). */
  mode: 'root' | 'rootless';
  accelerator: { name: string; reason: string; tscKhz: number | null };
  guest: {
    kernel: string | null;
    kernelRelease: string | null;
    initramfs: string | null;
    init: string | null;
    modules: string[];
    drivers: string[];
    acpi: boolean | null;
  };
  qemu: { binary: string | null; version: string | null };
  /** How each QEMU is confined: by a daemon (all of it) and in a `boson run` without one. */
  confinement: { daemon: string[]; embedded: string[] };
  /** How bind mounts are served (root mode; null when rootless: no bind mounts). */
  binds: VirtiofsdView | null;
  paths: ReturnType<typeof bosonPaths>;
  /** The daemon's pool of pre-booted micro-VMs (GET /v1/warm); null when no daemon answers. */
  warm: WarmPoolView | null;
  problems: string[];
}

async function gatherInfo(): Promise<Info> {
  const config = loadConfig();
  const { paths } = config;
  const problems: string[] = [];
  const accel = await probeAccelerator(config.accel);
  const info: Info = {
    version: '0.1.0',
    mode: paths.rootless ? 'rootless' : 'root',
    accelerator: { name: accel.accel, reason: accel.reason, tscKhz: (await hostTscKhz()) ?? null },
    guest: { kernel: null, kernelRelease: null, initramfs: null, init: null, modules: [], drivers: [], acpi: null },
    qemu: { binary: null, version: null },
    confinement: confinementOf(config),
    binds: paths.rootless ? null : describeVirtiofsd(config.virtiofsd),
    paths,
    warm: null,
    problems,
  };
  if (info.binds?.problem) problems.push(info.binds.problem);
  // Asked of a running daemon only: the pool lives there.
  info.warm = await new MachineClient(hostSocketPath(config)).request<WarmPoolView>('GET', '/v1/warm').catch(() => null);
  try {
    info.qemu.binary = await findQemu(config.qemu);
    info.qemu.version = await qemuVersion(info.qemu.binary);
  } catch (err) {
    problems.push(toBosonError(err).message);
  }
  try {
    info.guest.kernel = await defaultKernelPath(config.guestKernel, '/boot', path.join(paths.guestDir, 'kernel'));
    info.guest.kernelRelease = kernelReleaseOf(info.guest.kernel);
    const bundle = await bootBundle(paths, guestKernelOptions(config));
    info.guest.initramfs = bundle.initramfsPath;
    info.guest.init = bundle.initPath;
    info.guest.modules = bundle.modules.map((m) => m.name);
    info.guest.drivers = bundle.drivers;
    info.guest.acpi = bundle.acpi;
  } catch (err) {
    problems.push(toBosonError(err).message);
  }
  if (paths.rootless) {
    try {
      await checkUserNamespaceSetup();
    } catch (err) {
      problems.push(toBosonError(err).message);
    }
    // A rootless container's network is a passt with its loopback guard.
    try {
      checkPasst(qemuOptions(config));
    } catch (err) {
      problems.push(toBosonError(err).message);
    }
  }
  return info;
}

function printInfo(info: Info): void {
  const lines = [
    `Boson:          ${info.version}`,
    `Mode:           ${info.mode === 'rootless' ? `rootless (uid ${process.geteuid?.()}: user-mode networking by passt, root disks built in a user namespace)` : 'root'}`,
    `Accelerator:    ${info.accelerator.name} (${info.accelerator.reason})`,
    `Host TSC:       ${info.accelerator.tscKhz ? `${info.accelerator.tscKhz} kHz` : 'unknown'}`,
    `QEMU:           ${info.qemu.binary ?? 'missing'}${info.qemu.version ? ` (${info.qemu.version})` : ''}`,
    `Guest kernel:   ${info.guest.kernel ?? 'missing'}${info.guest.kernelRelease ? ` (${info.guest.kernelRelease})` : ''}`,
    `Guest init:     ${info.guest.init ?? 'missing'}`,
    `Initramfs:      ${info.guest.initramfs ?? 'missing'}`,
    `Guest drivers:  ${info.guest.drivers.join(' ') || '-'}`,
    `Guest modules:  ${info.guest.modules.join(' ') || '- (all built in)'}`,
    `Guest devices:  ${info.guest.acpi === null ? '-' : info.guest.acpi ? 'found through ACPI' : 'on the kernel command line (no ACPI)'}`,
    `VMM jail:       ${info.confinement.daemon.join(', ') || 'none (BOSON_VMM_JAIL=off)'}`,
    `  without daemon: ${info.confinement.embedded.join(', ') || 'none'}`,
    `Bind mounts:    ${info.binds ? `${info.binds.virtiofsd} under ${info.binds.guard}: ${info.binds.confinement.join(', ')}` : 'none (rootless)'}`,
    `State dir:      ${info.paths.stateDir}`,
    `Run dir:        ${info.paths.runDir}`,
    `Guest dir:      ${info.paths.guestDir}`,
  ];
  lines.push(`Warm start:     ${warmText(info.warm)}`);
  for (const s of info.warm?.enabled ? info.warm.shapes : [])
    lines.push(
      info.warm?.mode === 'template'
        ? `  ${s.image} ${s.memoryMiB} MiB ${s.cpus} vCPU${s.nic ? '' : ', no network'}: ${s.ready ? `template ready (${s.ramMiB ?? 0} MiB, ${s.clones ?? 0} clones)` : s.booting ? 'template building' : 'no template'}`
        : `  ${s.image} ${s.memoryMiB} MiB ${s.cpus} vCPU${s.nic ? '' : ', no network'}${s.journal ? ', kept containers' : ', --rm'}: ${s.ready} ready, ${s.booting} booting`,
    );
  for (const p of info.problems) lines.push(`Problem:        ${p}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** One line about the daemon's warm pool. */
function warmText(w: WarmPoolView | null): string {
  if (!w) return 'no daemon running';
  if (!w.enabled) return 'off (set BOSON_WARM_IMAGES for `boson up`)';
  if (w.mode === 'template')
    return `${w.images.join(', ')}: template snapshots, ${w.memoryUsedMiB} of ${w.memoryBudgetMiB} MiB; ${w.hits} warm starts (clones), ${w.misses} cold (no match), ${w.fallbacks} fell back, ${w.bootFailures} failed template builds`;
  return `${w.images.join(', ')}: ${w.perShape} per shape, ${w.memoryUsedMiB} of ${w.memoryBudgetMiB} MiB; ${w.hits} warm starts, ${w.misses} cold (no match), ${w.fallbacks} fell back, ${w.bootFailures} failed boots`;
}

/** What confines each QEMU, from the composition root's policy and what this host has. */
function confinementOf(config: HostConfig): { daemon: string[]; embedded: string[] } {
  const policy = jailPolicy(config);
  if (!policy) return { daemon: [], embedded: [] };
  const common = [
    ...(policy.sandbox ? ['seccomp sandbox (obsolete, spawn, resourcecontrol denied)'] : []),
    ...(policy.chroot ? ['chroot', 'own mount namespace'] : []),
    ...(policy.cgroupParent ? [describeCgroups(cgroupMode(policy.cgroupParent))] : []),
  ];
  return {
    daemon: [
      ...(policy.user
        ? [`user ${policy.user} from exec (no_new_privs; set*id denied)`]
        : ['user root (no boson-vmm user: run scripts/setup.sh)']),
      ...common,
    ],
    embedded: ['user root (keeps the parent-death signal)', ...common],
  };
}

/**
 * QEMU microvm command line. Private to src/vmm: nothing outside this folder should know a QEMU flag.
 *
 * File descriptor layout of the QEMU process (set up by microvm.ts): 0 /dev/null, 1 serial console, 2 QEMU's own
 * stderr, 3 the guest control channel (virtio-serial port boson.ctl), 4 QMP, 5.. disks passed as open files.
 */
import path from 'node:path';
import type { MicroVmConfig } from './types.ts';

/** The fd at which QEMU finds the control channel socket. */
export const CONTROL_FD = 3;
/** The fd at which QEMU finds its QMP socket. */
export const QMP_FD = 4;
/** The first fd used for disks passed as open files. */
export const FIRST_DISK_FD = 5;

/** Names of a detached VM's files inside its runtime directory. */
export const RUNTIME_FILES = {
  control: 'ctl.sock',
  qmp: 'qmp.sock',
  pid: 'qemu.pid',
  /** The serial console of VMs started before it became a ring in QEMU's memory (CONSOLE_CHARDEV). */
  console: 'console.log',
  qemuLog: 'qemu.log',
} as const;

/**
 * A detached VM's serial console: a ring of CONSOLE_RING_BYTES in QEMU's memory, read through QMP ringbuf-read (a
 * file on /run's tmpfs would grow with whatever the guest writes to /dev/console).
 */
export const CONSOLE_CHARDEV = 'con';
export const CONSOLE_RING_BYTES = 64 * 1024;

/** The vhost-user socket of virtiofs share `i` in a runtime directory. */
export function virtiofsSocket(runtimeDir: string, i: number): string {
  return path.join(runtimeDir, `vfs${i}.sock`);
}

/**
 * TCG's translation-block cache in MiB. QEMU's default (1 GiB on 64-bit hosts) is filled lazily but a booted guest
 * still touches well over 100 MiB of it, which counts against every micro-VM; a small cache costs a little
 * retranslation instead. With Boson's own kernel, 16 MiB boots as fast as 32 (8 MiB costs ~200 ms); Debian's much
 * larger cloud kernel boots ~180 ms slower with 16 than with 32. BOSON_TCG_TB_MIB overrides (the composition root
 * reads it and passes it as QemuOptions.tcgTbMiB).
 */
export const DEFAULT_TCG_TB_MIB = 16;

/**
 * The guest RAM backend: a shared memfd, i.e. shmem, which the host never backs with transparent huge pages
 * (shmem_enabled is "never" by default) while QEMU asks for THP on anonymous guest RAM. With THP, every scattered
 * touch of the booting guest kernel made a whole 2 MiB resident (~131 MiB whatever the guest's size); with 4 KiB
 * pages the booted guest holds only what it touched, a boot is ~200 ms faster under TCG (no 2 MiB zeroing on each
 * fault), freed pages can be given back page by page, and virtiofsd can map the same memory. Measured in
 * docs/design.md "Density".
 */
export const GUEST_RAM_BACKEND = 'memory-backend-memfd';

/**
 * A virtio balloon that is never inflated: it is there for free page reporting, with which the guest kernel tells
 * QEMU about free 2 MiB blocks and QEMU drops them from the host, so memory a container used and freed goes back
 * to the host (a guest that filled and freed 200 MiB of tmpfs went from 307 to 107 MiB resident within 3 s).
 */
export const BALLOON_DEVICE = 'virtio-balloon-device,free-page-reporting=on';

/**
 * The balloon of a VM whose RAM is a file (templates and clones): without free page reporting, because QEMU 7.2 gives
 * reported pages back by punching holes in the file, which for a clone's private mapping is the template's shared
 * file (other clones would read zeros where their memory was). A template and its clones must agree on it.
 */
export const TEMPLATE_BALLOON_DEVICE = 'virtio-balloon-device';

/** Where a QEMU in its pre-exec jail finds its RAM file (bound there by PREJAIL_SCRIPT). */
export const JAIL_RAM_FILE = '/ram';

function escapeOpt(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * A QEMU started inside its pre-exec jail (prejail.ts): paths are the jail's (its runtime directory is `/`, the
 * kernel and initramfs are /kernel and /initrd), every disk and the log are inherited descriptors (child fd numbers),
 * and the sandbox denies set*id: there is no -runas or -chroot left for QEMU to do.
 */
export interface PreJailLayout {
  /** Disk index → its first child fd (read-only); a writable disk has its read-write fd right after. */
  diskFds: Map<number, number>;
  logFd?: number;
}

/**
 * Builds QEMU's argv (without the binary). `diskFds` maps the index of each fd-backed disk to its child fd; `nicFds`
 * the index of each user-mode NIC to the child fd of its socket to passt (passt.ts).
 */
export function buildQemuArgv(
  config: MicroVmConfig,
  accel: 'kvm' | 'tcg',
  tscKhz: number | undefined,
  diskFds: Map<number, number>,
  tcgTbMiB = DEFAULT_TCG_TB_MIB,
  prejail?: PreJailLayout,
  nicFds: Map<number, number> = new Map(),
): string[] {
  // no_timer_check: the kernel's boot test of the IO-APIC timer busy-waits a few ms for timer interrupts and panics
  // ("IO-APIC + timer doesn't work!") when none came, which is what a vCPU starved by a loaded host (TCG above all)
  // sees; a micro-VM's timer is QEMU's and always works, so the test only ever fails for the wrong reason.
  const cmdline = ['console=ttyS0', 'panic=-1', 'rdinit=/init', config.debug ? 'loglevel=7' : 'quiet', 'pci=off', 'no_timer_check'];
  // tsc=reliable: under TCG the guest's TSC is QEMU's, which follows the host's time; without it the kernel's
  // clocksource watchdog, comparing it with a timer a starved vCPU services late, marks it unstable and falls back to
  // ticks, and the guest's wall clock (which stamps every log line) drifts seconds behind the host on a loaded host.
  if (accel === 'tcg' && tscKhz) cmdline.push(`tsc_early_khz=${tscKhz}`, 'tsc=reliable');
  // Without ACPI there is no power off: boson-init resets the machine, and a triple fault is the reset that needs
  // no device (QEMU's -no-reboot then exits).
  if (!config.acpi) cmdline.push('reboot=t');
  cmdline.push(...(config.extraKernelArgs ?? []));
  // Guest RAM is always a shared memfd (see GUEST_RAM_BACKEND). virtiofs also needs the modern virtio-mmio
  // transport (libvhost-user refuses legacy devices).
  const virtiofs = (config.shares ?? []).some((sh) => sh.transport === 'virtiofs');
  const argv = [
    '-M',
    `microvm,acpi=${config.acpi ? 'on' : 'off'},rtc=on,memory-backend=mem`,
    '-accel',
    accel === 'tcg' ? `tcg,tb-size=${config.tcgTbMiB ?? tcgTbMiB}` : accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    `${config.memoryMiB}`,
    '-smp',
    `${config.cpus}`,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-object',
    config.ram
      ? `memory-backend-file,id=mem,size=${config.memoryMiB}M,mem-path=${prejail ? JAIL_RAM_FILE : escapeOpt(config.ram.path)},share=${config.ram.shared ? 'on' : 'off'}`
      : `${GUEST_RAM_BACKEND},id=mem,size=${config.memoryMiB}M,share=on`,
    ...(virtiofs ? ['-global', 'virtio-mmio.force-legacy=false'] : []),
    '-kernel',
    prejail ? '/kernel' : config.kernel,
    '-initrd',
    prejail ? '/initrd' : config.initramfs,
    '-append',
    cmdline.join(' '),
  ];
  const rt = prejail ? '/' : config.runtimeDir;
  // Names the runtime directory on QEMU's command line, as paths in it do without a pre-exec jail: the orphan
  // sweep and re-attachment recognise a VM's QEMU by it.
  if (prejail && config.runtimeDir) argv.push('-name', `guest=${escapeOpt(config.runtimeDir)}`);
  if (rt === undefined) {
    argv.push('-serial', 'stdio', '-chardev', `socket,id=ctl,fd=${CONTROL_FD}`, '-chardev', `socket,id=qmp,fd=${QMP_FD}`);
  } else {
    const at = (name: string): string => escapeOpt(path.join(rt, name));
    argv.push(
      '-chardev',
      `ringbuf,id=${CONSOLE_CHARDEV},size=${CONSOLE_RING_BYTES}`,
      '-serial',
      `chardev:${CONSOLE_CHARDEV}`,
      '-chardev',
      `socket,id=ctl,path=${at(RUNTIME_FILES.control)},server=on,wait=off`,
      '-chardev',
      `socket,id=qmp,path=${at(RUNTIME_FILES.qmp)},server=on,wait=off`,
      '-pidfile',
      path.join(rt, RUNTIME_FILES.pid),
    );
  }
  // Confinement: seccomp (QEMU 7.2 installs its filter before -runas changes the uid, so set*id cannot be denied
  // without killing -runas; once the uid is dropped they cannot regain root anyway), then chroot and the user.
  const jail = config.jail;
  if (prejail) argv.push('-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  else {
    if (jail?.sandbox) argv.push('-sandbox', 'on,obsolete=deny,spawn=deny,resourcecontrol=deny');
    if (jail?.chroot) argv.push('-chroot', jail.chroot);
    if (jail?.user) argv.push('-runas', jail.user);
  }
  argv.push('-device', config.ram ? TEMPLATE_BALLOON_DEVICE : BALLOON_DEVICE);
  // A VM filled from a saved state (suspend's resume, or a template's clone): QEMU waits for migrate-incoming.
  if (config.incoming) argv.push('-incoming', 'defer');
  argv.push('-mon', 'chardev=qmp,mode=control', '-device', 'virtio-serial-device', '-device', 'virtserialport,chardev=ctl,name=boson.ctl');
  if (config.logFile !== undefined) {
    // opaque= names the file the descriptor is (shown by query-fdsets, and on QEMU's command line, where tools and
    // tests look for a container's paths).
    if (prejail?.logFd !== undefined) argv.push('-add-fd', `fd=${prejail.logFd},set=${prejail.logFd},opaque=${escapeOpt(config.logFile)}`);
    argv.push(
      '-chardev',
      `file,id=log,path=${prejail?.logFd !== undefined ? `/dev/fdset/${prejail.logFd}` : escapeOpt(config.logFile)},append=on`,
      '-device',
      'virtserialport,chardev=log,name=boson.log',
    );
  }
  config.disks.forEach((disk, i) => {
    const childFd = diskFds.get(i);
    const jailFd = prejail?.diskFds.get(i);
    if (jailFd !== undefined) {
      const opaque = disk.path === undefined ? '' : `,opaque=${escapeOpt(disk.path)}`;
      argv.push('-add-fd', `fd=${jailFd},set=${jailFd}${opaque}`);
      if (!disk.readOnly) argv.push('-add-fd', `fd=${jailFd + 1},set=${jailFd}${opaque}`);
    }
    const file = jailFd !== undefined ? `/dev/fdset/${jailFd}` : childFd === undefined ? disk.path : `/proc/self/fd/${childFd}`;
    if (file === undefined) throw new Error(`disk ${disk.serial} has neither a path nor an fd`);
    // A write that finds the host's disk full pauses the VM with the write kept (MicroVm.onHostDiskFull), instead of
    // failing it in the guest, where ext4 would drop the data or go read-only; other errors reach the guest.
    const drive = [
      `if=none`,
      `id=disk${i}`,
      `file=${file.replace(/,/g, ',,')}`,
      `format=raw`,
      `cache=unsafe`,
      'werror=enospc',
      'rerror=report',
    ];
    if (disk.readOnly) drive.push('readonly=on');
    else drive.splice(drive.indexOf('cache=unsafe'), 1, 'cache=writeback');
    argv.push('-drive', drive.join(','), '-device', `virtio-blk-device,drive=disk${i},serial=${disk.serial}`);
  });
  (config.nics ?? []).forEach((nic, i) => {
    if (nic.kind === 'tap') {
      argv.push('-netdev', `tap,id=net${i},ifname=${nic.ifname},script=no,downscript=no`);
    } else {
      // User-mode networking is passt's (never QEMU's slirp, which hands the guest the host's loopback): QEMU
      // speaks its stream protocol over an inherited socket whose other end passt holds.
      const fd = nicFds.get(i);
      if (fd === undefined) throw new Error(`user-mode NIC ${i} has no socket to passt`);
      argv.push('-netdev', `stream,id=net${i},server=off,addr.type=fd,addr.str=${fd}`);
    }
    argv.push('-device', `virtio-net-device,netdev=net${i},mac=${nic.mac}`);
  });
  (config.shares ?? []).forEach((share, i) => {
    if (share.transport === 'virtiofs') {
      if (rt === undefined) throw new Error('virtiofs shares need a detached micro-VM (a runtime directory)');
      argv.push(
        '-chardev',
        `socket,id=vfs${i},path=${escapeOpt(virtiofsSocket(rt, i))}`,
        '-device',
        `vhost-user-fs-device,chardev=vfs${i},tag=${share.tag}`,
      );
      return;
    }
    // 9p is served by QEMU itself, outside virtiofsd's guard (virtiofsd.ts). A writable share keeps the guest's modes,
    // owners and device nodes in user.virtfs.* attributes (mapped-xattr): on the host its files are plain files of
    // QEMU's user, mode 0600 at creation, so no set-ID file or device node reaches the host.
    argv.push(
      '-fsdev',
      `local,id=fs${i},path=${escapeOpt(share.path)},security_model=${share.readOnly ? 'passthrough,readonly=on' : 'mapped-xattr'}`,
      '-device',
      `virtio-9p-device,fsdev=fs${i},mount_tag=${share.tag}`,
    );
  });
  return argv;
}

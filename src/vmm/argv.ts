/**
 * QEMU microvm command line. Private to src/vmm: nothing outside this folder should know a QEMU flag.
 *
 * File descriptor layout of the QEMU process (set up by microvm.ts): 0 /dev/null, 1 serial console, 2 QEMU's own
 * stderr, 3 the guest control channel (virtio-serial port boson.ctl), 4 QMP, 5.. disks passed as open files.
 */
import type { MicroVmConfig } from './types.ts';

/** The fd at which QEMU finds the control channel socket. */
export const CONTROL_FD = 3;
/** The fd at which QEMU finds its QMP socket. */
export const QMP_FD = 4;
/** The first fd used for disks passed as open files. */
export const FIRST_DISK_FD = 5;

/** Builds QEMU's argv (without the binary). `diskFds` maps the index of each fd-backed disk to its child fd. */
export function buildQemuArgv(config: MicroVmConfig, accel: 'kvm' | 'tcg', tscKhz: number | undefined, diskFds: Map<number, number>): string[] {
  const cmdline = ['console=ttyS0', 'panic=-1', 'rdinit=/init', config.debug ? 'loglevel=7' : 'quiet', 'pci=off'];
  if (accel === 'tcg' && tscKhz) cmdline.push(`tsc_early_khz=${tscKhz}`);
  cmdline.push(...(config.extraKernelArgs ?? []));
  const argv = [
    '-M', 'microvm,acpi=on,rtc=on',
    '-accel', accel,
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-m', `${config.memoryMiB}`,
    '-smp', `${config.cpus}`,
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', config.kernel,
    '-initrd', config.initramfs,
    '-append', cmdline.join(' '),
    '-serial', 'stdio',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=ctl,fd=${CONTROL_FD}`,
    '-device', 'virtserialport,chardev=ctl,name=boson.ctl',
    '-chardev', `socket,id=qmp,fd=${QMP_FD}`,
    '-mon', 'chardev=qmp,mode=control',
  ];
  config.disks.forEach((disk, i) => {
    const childFd = diskFds.get(i);
    const file = childFd === undefined ? disk.path : `/proc/self/fd/${childFd}`;
    if (file === undefined) throw new Error(`disk ${disk.serial} has neither a path nor an fd`);
    const drive = [`if=none`, `id=disk${i}`, `file=${file.replace(/,/g, ',,')}`, `format=raw`, `cache=unsafe`];
    if (disk.readOnly) drive.push('readonly=on');
    else drive.splice(drive.indexOf('cache=unsafe'), 1, 'cache=writeback');
    argv.push('-drive', drive.join(','), '-device', `virtio-blk-device,drive=disk${i},serial=${disk.serial}`);
  });
  return argv;
}

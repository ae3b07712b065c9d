/** The VMM's one narrow input: what a micro-VM is made of. */

/** A virtio-blk disk: a path QEMU opens, or an open file descriptor Boson passes in (e.g. an unlinked scratch file). */
export interface DiskSpec {
  /** virtio-blk serial (at most 20 bytes), how the guest finds the disk. */
  serial: string;
  path?: string;
  fd?: number;
  readOnly: boolean;
}

/** Everything needed to boot one micro-VM. */
export interface MicroVmConfig {
  kernel: string;
  initramfs: string;
  memoryMiB: number;
  cpus: number;
  disks: DiskSpec[];
  extraKernelArgs?: string[];
  /** Verbose kernel console, copied to stderr. */
  debug?: boolean;
}

/** How a QEMU process ended. */
export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The VMM's one narrow input: what a micro-VM is made of. */

/** A virtio-blk disk: a path QEMU opens, or an open file descriptor Boson passes in (e.g. an unlinked scratch file). */
export interface DiskSpec {
  /** virtio-blk serial (at most 20 bytes), how the guest finds the disk. */
  serial: string;
  path?: string;
  fd?: number;
  readOnly: boolean;
}

/** A port of the host forwarded to the guest by user-mode networking. */
export interface PortForward {
  protocol: 'tcp' | 'udp';
  /** The host address to bind ('0.0.0.0': every IPv4 address). */
  hostIp: string;
  hostPort: number;
  guestPort: number;
}

/**
 * A network interface: a tap device on the host (or in the network namespace at path `netns`, where QEMU then
 * runs: a pod's), or user-mode networking (rootless: a passt process per VM, see
 * passt.ts). A user-mode interface states the guest's view of its network (the guest configures exactly this, from
 * its SPEC, and passt is told the same) and the port forwards. Its DNS servers are the host's own resolvers, which the
 * guest reaches as any other address (passt's DNS forwarding does not answer in the version Debian 12 ships).
 */
export type NicSpec =
  | { kind: 'tap'; ifname: string; mac: string; netns?: string }
  | {
      kind: 'user';
      mac: string;
      /** The guest's IPv4 address, prefix length and gateway. */
      address: string;
      prefixLen: number;
      gateway: string;
      forwards: PortForward[];
    };

/**
 * A host directory shared into the guest, found there by its mount tag: over virtiofs (a virtiofsd per share;
 * detached VMs only) or virtio-9p (for guest kernels built with 9p).
 */
export interface ShareSpec {
  tag: string;
  path: string;
  readOnly: boolean;
  transport: 'virtiofs' | '9p';
}

/**
 * Guest RAM in a file on a tmpfs instead of a memfd: a template VM's, `shared` (its pages are the file's), or a clone's,
 * mapped privately (copy-on-write: what the clone writes is its own, the rest is the file's pages, shared by every
 * clone). See Vm.saveTemplate / Vm.restoreClone.
 */
export interface RamFile {
  path: string;
  shared: boolean;
}

/** Everything needed to boot one micro-VM. */
export interface MicroVmConfig {
  kernel: string;
  initramfs: string;
  memoryMiB: number;
  cpus: number;
  disks: DiskSpec[];
  nics?: NicSpec[];
  shares?: ShareSpec[];
  /** A file QEMU appends the guest's `boson.log` port to (daemon-managed containers). */
  logFile?: string;
  /**
   * Where the VM's runtime files live. Given: the VM is **detached** (own session, named control and QMP sockets,
   * console and QEMU logs, pid file in this directory) and outlives the process that started it. Absent: the VM
   * is **attached** (socketpairs, dies with its starter).
   */
  runtimeDir?: string;
  extraKernelArgs?: string[];
  /**
   * Whether the kernel finds its devices through ACPI (a boot bundle knows). Without, QEMU puts
   * virtio_mmio.device= entries on the kernel command line and the machine has no ACPI tables.
   */
  acpi: boolean;
  /** Verbose kernel console, copied to stderr. */
  debug?: boolean;
  /** How QEMU is confined (see VmJail); none when absent. */
  jail?: VmJail;
  /** Guest RAM in a file (templates and their clones); a memfd when absent. */
  ram?: RamFile;
  /**
   * TCG's translation cache of this VM, MiB, instead of the host's (QemuOptions.tcgTbMiB): a clone of a template never
   * boots, so the cache sized for a boot would only hold memory (QEMU backs it with transparent huge pages, so it is
   * all resident once touched).
   */
  tcgTbMiB?: number;
  /**
   * Start with no guest running, waiting for a saved state (`-incoming defer`): the VM is then Vm.loadState()'s to
   * fill (a suspended container), or Vm.restoreClone()'s (a template's clone). Its devices must be those of the VM
   * that was saved (same disks, cards, ports and memory, in the same order); the files behind them may be others.
   */
  incoming?: boolean;
}

/**
 * The confinement of one QEMU: its own unprivileged user (after it has opened its files), a seccomp sandbox, a
 * chroot into a directory holding only its own files, a private mount namespace, and a cgroup with limits.
 */
export interface VmJail {
  /** The user QEMU runs as: from exec on in its pre-exec jail (src/vmm/prejail.ts), else once its devices are open (-runas); absent: the caller's. */
  user?: string;
  /** Where QEMU chroots once its files are open (-chroot); needs root. */
  chroot?: string;
  /** QEMU's seccomp sandbox: obsolete system calls, spawning processes and resource control denied. */
  sandbox: boolean;
  /** A cgroup for the VM: its name under the host's Boson group, and its limits. */
  cgroup?: { parent: string; name: string; memoryBytes: number; pids: number; cpus: number };
}

/** How a QEMU process ended. */
export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What Boson uses of a running micro-VM (MicroVm is the QEMU one; tests may use a fake behind the same shape). */
export interface Vm {
  readonly pid: number;
  /** The byte stream to boson-init (virtio-serial port boson.ctl). */
  readonly channel: import('node:stream').Duplex;
  /** Resolves when the VM's process has exited (never rejects). */
  readonly exited: Promise<VmExit>;
  readonly hasExited: boolean;
  /** What the VMM itself printed last (why it failed). */
  readonly qemuStderr: string;
  /** The last lines the guest kernel printed on its console. */
  consoleTail(lines?: number): Promise<string>;
  /** Asks the VMM to quit (disks flushed); kills it after `graceMs`. */
  shutdown(graceMs?: number): Promise<VmExit>;
  /** Kills the VMM at once. */
  kill(): Promise<VmExit>;
  /** Closes this process's connections without stopping a detached VM. */
  detach(): void;
  /** Calls `handler` each time the VM pauses because a disk write found the host's filesystem full. */
  onHostDiskFull(handler: () => void): void;
  /** True when the VM is paused on a disk error now. */
  pausedOnDiskError(): Promise<boolean>;
  /** Resumes a paused VM. */
  resume(): Promise<void>;
  /** Pauses the VM (no vCPU runs: the guest writes nothing to its devices until resume()). */
  suspend(): Promise<void>;
  /** The VMM's run state of the VM ("running", "paused", "io-error", ...). */
  status(): Promise<string>;
  /** Pauses the guest (a warm VM waiting for its container); absent where the VMM cannot. */
  pause?(): Promise<void>;
  /**
   * Moves a detached VM's runtime directory to `dir` (same filesystem), and renames its cgroup to `cgroupName`, so
   * that a VM booted ahead of its container lives where the container's would; absent where the VMM cannot.
   */
  relocate?(dir: string, cgroupName?: string): Promise<void>;
  /**
   * Saves the whole VM (RAM and device state, disks flushed) into `file` (0600) and leaves it stopped; the caller
   * then ends it. Detached VMs only; absent where the VMM cannot.
   */
  saveState?(file: string): Promise<{ bytes: number; ms: number }>;
  /** Loads a state saved by saveState() into a VM launched with `incoming` (it stays paused: resume() runs it). */
  loadState?(file: string): Promise<{ bytes: number; ms: number }>;
  /**
   * Saves a paused template VM's device state to `file` (its RAM stays in its shared RAM file: QEMU's x-ignore-shared);
   * the VM stays paused. Detached VMs with a shared RamFile only; absent where the VMM cannot.
   */
  saveTemplate?(file: string): Promise<void>;
  /**
   * Loads a template's device state from `file` into a VM launched `incoming` with the template's RAM file mapped
   * privately, and runs it: the guest continues where the template was paused. Absent where the VMM cannot.
   */
  restoreClone?(file: string): Promise<void>;
}

/** The VMM driver's one narrow input: launch a micro-VM, re-attach to a detached one, say which accelerator. */
export interface Vmm {
  /** The accelerator boots will use. */
  accelerator(): Promise<'kvm' | 'tcg'>;
  /** Starts one micro-VM (booting; see bootWithWatchdog for waiting until it is up). */
  launch(config: MicroVmConfig): Promise<Vm>;
  /** Re-attaches to a detached micro-VM started earlier; null when it is no longer running. */
  attach(runtimeDir: string): Promise<Vm | null>;
  /** Releases what a detached micro-VM that is gone still holds on the host (its cgroup). */
  cleanup(runtimeDir: string): Promise<void>;
  /** Removes the cgroup `name` under `parent` if it is empty (a VM that ended with no one to release it). */
  releaseCgroup(parent: string, name: string): Promise<void>;
}

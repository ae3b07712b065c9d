/**
 * What one run of bench/tax.ts measured: the machine it ran on and every figure's paired samples (Boson beside
 * runc), as plain JSON. The report (report.ts) and the charts (charts.ts) are rendered from this object alone, so a
 * result saved with --json can be rendered again.
 */
import type { Better } from './stats.ts';

/** Where and when the bench ran, and with what. */
export interface TaxMeta {
  /** ISO time the run started. */
  date: string;
  /** The command that produced it (how to run it again). */
  command: string;
  quick: boolean;
  /** As `boson info --json` reports it: the accelerator Boson's micro-VMs ran with, and why. */
  accelerator: { name: string; reason: string };
  /** `virtualised`: the host itself runs under a hypervisor (the CPU's hypervisor flag), so runc's figures are a VM's too. */
  machine: { cpu: string; cores: number; memoryGiB: number; hostKernel: string; os: string; virtualised: boolean };
  versions: { qemu: string; guestKernel: string; runc: string; fio: string; iperf3: string; node: string; boson: string };
  /** Boson's micro-VM shape for every figure (the default): memory and vCPUs. */
  vmShape: { memoryMiB: number; cpus: number };
  /** The 1-minute load average and the number of QEMU processes that were not ours, at the start and the end. */
  load: { start: { loadavg1: number; otherQemus: number }; end: { loadavg1: number; otherQemus: number } };
}

/** One figure: the same workload's samples in Boson and in runc (sample i of each ran back to back). */
export interface TaxFigure {
  /** Stable id (chart and anchor names). */
  id: string;
  group: 'start' | 'exec' | 'cpu' | 'syscall' | 'disk' | 'network' | 'memory';
  /** What it is, for the tables and charts. */
  title: string;
  unit: string;
  better: Better;
  /** Exactly what runs, in both (one sentence for the method section). */
  method: string;
  /** The samples, or null with a reason when the figure was not measured (e.g. no warm start in this runtime). */
  boson: number[] | null;
  runc: number[] | null;
  notMeasured?: string;
}

/** Memory of idle containers: per-container means, split as Firecracker does (guest memory vs the VMM's own). */
export interface TaxMemory {
  /** How many idle containers of each were running at once when memory was read (PSS shares what they share). */
  containers: number;
  boson: {
    /** QEMU PSS per micro-VM, MiB (the samples are per VM). */
    pssMiB: number[];
    /** Of it, the guest's RAM that is resident (Pss_Shmem: the memfd behind guest memory), per VM. */
    guestRamMiB: number[];
    /** Of it, everything else: QEMU's binary, libraries, heap, TCG's translation cache (PSS - guest RAM), per VM. */
    vmmMiB: number[];
  };
  runc: {
    /** PSS of the container's processes, MiB, per container. */
    pssMiB: number[];
    /** The container's memory cgroup usage (includes the page cache it caused), MiB, per container. */
    cgroupMiB: number[];
  };
}

/** The whole run. */
export interface TaxResult {
  meta: TaxMeta;
  figures: TaxFigure[];
  memory: TaxMemory | null;
  /** Problems seen while it ran that a reader should know of (e.g. the guest clock disagreeing with the host's). */
  warnings: string[];
}

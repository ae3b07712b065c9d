/**
 * docs/vm-tax.md from a TaxResult: what produced it (accelerator, machine, date, versions), every figure as the
 * Boson/runc ratio with min/median/max over runs beside both medians, the memory split, containers per GiB, the
 * method, and the charts (rendered by charts.ts into docs/vm-tax/). Pure: the same result gives the same text.
 */
import type { TaxFigure, TaxResult } from './result.ts';
import { pairedRatios, sig, spread, taxFactor, type Spread } from './stats.ts';

/** One figure summarised: both medians and the spread of the paired ratios, or why it was not measured. */
export interface FigureSummary {
  figure: TaxFigure;
  boson: Spread | null;
  runc: Spread | null;
  ratio: Spread | null;
}

/** Summaries of every figure, in the result's order. */
export function summarise(result: TaxResult): FigureSummary[] {
  return result.figures.map((figure) => {
    if (!figure.boson || !figure.runc) return { figure, boson: null, runc: null, ratio: null };
    return {
      figure,
      boson: spread(figure.boson),
      runc: spread(figure.runc),
      ratio: spread(pairedRatios(figure.boson, figure.runc)),
    };
  });
}

/**
 * Containers per GiB from the PSS of N containers that ran at once: 1024 × N ÷ their total PSS (PSS divides shared
 * pages among their users, so the total counts each page once).
 */
export function perGiB(pssMiB: readonly number[]): number {
  const total = pssMiB.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('no memory measured');
  return (1024 * pssMiB.length) / total;
}

/** The chart files the report links (relative to docs/), in the order charts.ts writes them. */
export const CHART_FILES = { ratios: 'vm-tax/ratios.svg', absolute: 'vm-tax/absolute.svg', memory: 'vm-tax/memory.svg' } as const;

const ACCEL_NOTE: Record<string, string> = {
  tcg:
    "**This report was produced under TCG, QEMU's software emulator: there was no usable hardware virtualisation on this " +
    'machine.** Every instruction the guest runs is translated by QEMU, so the CPU-bound and syscall-heavy figures measure ' +
    '*emulation*, not virtualisation, and every figure that runs guest code (start, exec, disk, network) is inflated by it. ' +
    'They are not what a VM per container costs on a host with KVM; they are what it costs here. The same command on a host ' +
    'with working KVM produces the KVM report (the runtime detects the accelerator; `boson info` says which).',
  kvm:
    'This report was produced under KVM (hardware virtualisation): the guest runs its instructions natively, and the tax is ' +
    'what the VM boundary costs (exits, virtio, a guest kernel), not emulation.',
};

function fmtMedian(s: Spread | null): string {
  return s ? sig(s.median) : 'n/a';
}

function fmtRatio(s: Spread | null): string {
  if (!s) return 'n/a';
  return `${sig(s.min)} / **${sig(s.median)}** / ${sig(s.max)}`;
}

/** A table row for one figure. */
function row(s: FigureSummary): string {
  const f = s.figure;
  if (!s.ratio) return `| ${f.title} | ${f.unit} | n/a | n/a | ${f.notMeasured ?? 'n/a'} | |`;
  const tax = taxFactor(s.ratio.median, f.better);
  const verdict = Math.abs(tax - 1) < 0.05 ? 'about equal' : tax > 1 ? `Boson ${sig(tax)}× worse` : `Boson ${sig(1 / tax)}× better`;
  return `| ${f.title} | ${f.unit} | ${fmtMedian(s.runc)} | ${fmtMedian(s.boson)} | ${fmtRatio(s.ratio)} | ${f.better} is better: ${verdict} |`;
}

/** Whether other work ran beside the bench (other QEMUs, or a load above the core count), in one paragraph. */
export function loadNote(meta: TaxResult['meta']): string {
  const { start, end } = meta.load;
  const qemus = Math.max(start.otherQemus, end.otherQemus);
  const load = `load average ${start.loadavg1} at the start and ${end.loadavg1} at the end, on ${meta.machine.cores} cores`;
  if (qemus === 0 && Math.max(start.loadavg1, end.loadavg1) <= meta.machine.cores * 0.75)
    return `The machine was quiet while it ran (${load}; no other QEMU).`;
  const others = qemus > 0 ? `; up to ${qemus} QEMU process${qemus === 1 ? ' that was' : 'es that were'} not the bench's` : '';
  return (
    `**The machine was loaded while it ran** by other work (other sessions' test suites, booting micro-VMs) (${load}${others}). ` +
    'Both runtimes ran interleaved, so the load hit both, but absolute figures are slower and the spreads wider than on a quiet ' +
    'machine: run it again on a quiet one for the record.'
  );
}

/** The whole of docs/vm-tax.md. */
export function renderReport(result: TaxResult): string {
  const { meta } = result;
  const summaries = summarise(result);
  const accel = meta.accelerator.name;
  const out: string[] = [];
  const day = meta.date.slice(0, 10);
  out.push(`# The VM tax: Boson beside runc (${accel.toUpperCase()}, ${day})`);
  out.push('');
  out.push(
    'What does a micro-VM per container cost? `bench/tax.ts` runs the same workloads on the same root filesystem in ' +
      "runc (Debian's runc: a shared-kernel container) and in Boson (a QEMU microvm per container), interleaved in one " +
      'process, and reports each figure as the ratio **Boson / runc** (min / median / max over the paired runs). ' +
      'This file and its charts are generated by that command; do not edit them by hand.',
  );
  out.push('');
  out.push(ACCEL_NOTE[accel] ?? `Accelerator: ${accel} (${meta.accelerator.reason}).`);
  out.push('');
  out.push(loadNote(meta));
  if (meta.machine.virtualised) {
    out.push('');
    out.push(
      "The host is itself a virtual machine (its CPU reports a hypervisor), without nested virtualisation: runc's figures are " +
        "that VM's, and Boson's micro-VMs are emulated inside it.",
    );
  }
  if (meta.quick) {
    out.push('');
    out.push('**Quick run** (`--quick`): few iterations and small sizes; the spreads say little. Use the full run for the record.');
  }
  out.push('');
  out.push('## Where it ran');
  out.push('');
  out.push('| | |');
  out.push('|---|---|');
  out.push(`| date | ${meta.date} |`);
  out.push(`| accelerator | ${accel} (${meta.accelerator.reason}) |`);
  out.push(`| machine | ${meta.machine.cpu}, ${meta.machine.cores} cores, ${meta.machine.memoryGiB} GiB, ${meta.machine.os} |`);
  out.push(`| host kernel | ${meta.machine.hostKernel} |`);
  out.push(`| QEMU | ${meta.versions.qemu} |`);
  out.push(`| guest kernel | ${meta.versions.guestKernel} |`);
  out.push(`| micro-VM shape | ${meta.vmShape.memoryMiB} MiB, ${meta.vmShape.cpus} vCPU (Boson's default) |`);
  out.push(`| runc | ${meta.versions.runc} |`);
  out.push(`| fio, iperf3 | ${meta.versions.fio}, ${meta.versions.iperf3} |`);
  out.push(`| Node, Boson | ${meta.versions.node}, ${meta.versions.boson} |`);
  out.push(`| command | \`${meta.command}\` |`);
  out.push('');
  out.push('## The figures');
  out.push('');
  out.push(
    'Medians of each runtime; the ratio column is Boson / runc over the paired runs as min / **median** / max. For times and ' +
      'memory lower is better (a ratio above 1 is the tax); for throughputs higher is better (a ratio below 1 is the tax).',
  );
  out.push('');
  out.push('| figure | unit | runc | Boson | Boson / runc (min / median / max) | |');
  out.push('|---|---|---:|---:|---|---|');
  for (const s of summaries) out.push(row(s));
  out.push('');
  out.push(`![Boson / runc per figure](${CHART_FILES.ratios})`);
  out.push('');
  out.push(`![Medians of each figure, both runtimes](${CHART_FILES.absolute})`);
  out.push('');
  out.push(...renderMemory(result));
  out.push('## How each figure is measured');
  out.push('');
  for (const s of summaries) {
    const runs = s.ratio ? ` (${s.ratio.n} paired runs)` : '';
    out.push(`- **${s.figure.title}**${runs}: ${s.figure.method}${s.figure.notMeasured ? ` Not measured: ${s.figure.notMeasured}.` : ''}`);
  }
  out.push('');
  out.push(
    'Both runtimes use one root filesystem: the `bench` image of `scripts/build-app-images.sh` (Debian 12 essential plus fio and ' +
      "iperf3 from Debian's packages), imported into Boson and unpacked with umoci for runc. Every runc container gets a " +
      'minimal OCI config.json from `runc spec` (its default namespaces and capabilities, no seccomp profile); a ' +
      'long-running one gets an overlayfs writable layer on the host, as Docker would give it, and a network namespace joined ' +
      'to the host by a veth pair. Boson containers run through a daemon (`boson up`) on its default bridge network.',
  );
  if (result.warnings.length > 0) {
    out.push('');
    out.push('## Warnings from this run');
    out.push('');
    for (const w of result.warnings) out.push(`- ${w}`);
  }
  out.push('');
  return out.join('\n');
}

function renderMemory(result: TaxResult): string[] {
  const m = result.memory;
  if (!m) return ['## Memory per idle container', '', 'Not measured in this run.', ''];
  const b = { pss: spread(m.boson.pssMiB), guest: spread(m.boson.guestRamMiB), vmm: spread(m.boson.vmmMiB) };
  const r = { pss: spread(m.runc.pssMiB), cgroup: spread(m.runc.cgroupMiB) };
  const out = ['## Memory per idle container', ''];
  out.push(
    `${m.containers} idle containers of each (\`sleep\`), read after they settled. Boson's figure is the PSS of each QEMU process ` +
      "(`/proc/PID/smaps_rollup`), split as Firecracker counts it: the guest's RAM that is resident (Pss_Shmem, the memfd behind " +
      "guest memory) and the VMM's own overhead (the rest: QEMU's binary and libraries, heap, TCG's translation cache). runc's " +
      "is the PSS of the container's processes, beside its memory cgroup's usage (which also counts page cache it caused).",
  );
  out.push('');
  out.push('| per container (MiB, median, min–max) | runc | Boson |');
  out.push('|---|---:|---:|');
  const cell = (s: Spread): string => `${sig(s.median)} (${sig(s.min)}–${sig(s.max)})`;
  out.push(`| total (PSS) | ${cell(r.pss)} | ${cell(b.pss)} |`);
  out.push(`| of which guest RAM resident | — | ${cell(b.guest)} |`);
  out.push(`| of which VMM overhead | — | ${cell(b.vmm)} |`);
  out.push(`| memory cgroup usage | ${cell(r.cgroup)} | — |`);
  out.push(
    `| **containers per GiB** (1024 × N ÷ the total PSS of the N) | **${sig(perGiB(m.runc.pssMiB))}** | **${sig(perGiB(m.boson.pssMiB))}** |`,
  );
  out.push('');
  out.push(`![Memory per idle container](${CHART_FILES.memory})`);
  out.push('');
  return out;
}

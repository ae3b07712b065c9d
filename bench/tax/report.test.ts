/**
 * The pure parts of bench/tax.ts: its statistics, the parsers of what the workloads print, and the report and charts
 * rendered from a fixed result (the charts through the real Vega renderer).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { absoluteChart, memoryChart, ratioChart, renderSvg } from './charts.ts';
import { loadNote, perGiB, renderReport, summarise } from './report.ts';
import type { TaxResult } from './result.ts';
import { pairedRatios, sig, spread, taxFactor } from './stats.ts';
import { fio, parseElapsedUs, parseFioMiBps, parseIperfMbps, parseSmapsRollup } from './workloads.ts';

/** A small result as bench/tax.ts makes one: a time, a throughput, a figure not measured, and memory. */
function fixture(accel = 'tcg'): TaxResult {
  return {
    meta: {
      date: '2026-12-07T10:00:00Z',
      command: 'npx tsx bench/tax.ts',
      quick: false,
      accelerator: { name: accel, reason: accel === 'tcg' ? 'no vmx/svm' : '/dev/kvm works' },
      machine: {
        cpu: 'AMD EPYC',
        cores: 2,
        memoryGiB: 23.5,
        hostKernel: '6.1.0',
        os: 'Debian GNU/Linux 12 (bookworm)',
        virtualised: false,
      },
      versions: {
        qemu: '7.2.22',
        guestKernel: '6.1.192-boson',
        runc: 'runc version 1.1.5',
        fio: 'fio 3.33-3',
        iperf3: 'iperf3 3.12-1',
        node: 'v20',
        boson: '0.1.0',
      },
      vmShape: { memoryMiB: 256, cpus: 1 },
      load: { start: { loadavg1: 0.2, otherQemus: 0 }, end: { loadavg1: 0.4, otherQemus: 0 } },
    },
    figures: [
      {
        id: 'start',
        group: 'start',
        title: 'start to first output',
        unit: 'ms',
        better: 'lower',
        method: 'm1',
        boson: [1200, 1200, 900],
        runc: [25, 30, 30],
      },
      {
        id: 'net',
        group: 'network',
        title: 'TCP throughput',
        unit: 'Mbit/s',
        better: 'higher',
        method: 'm2',
        boson: [2000, 3000],
        runc: [16000, 15000],
      },
      {
        id: 'warm',
        group: 'start',
        title: 'warm start',
        unit: 'ms',
        better: 'lower',
        method: 'm3',
        boson: null,
        runc: null,
        notMeasured: 'n/a (not built)',
      },
    ],
    memory: {
      containers: 2,
      boson: { pssMiB: [64, 66], guestRamMiB: [25, 26], vmmMiB: [39, 40] },
      runc: { pssMiB: [0.5, 0.5], cgroupMiB: [0.3, 0.4] },
    },
    warnings: [],
  };
}

test('spread: min, median (odd and even counts), max; an empty or non-finite series is an error', () => {
  assert.deepEqual(spread([3, 1, 2]), { min: 1, median: 2, max: 3, n: 3 });
  assert.deepEqual(spread([4, 1, 3, 2]), { min: 1, median: 2.5, max: 4, n: 4 });
  assert.deepEqual(spread([7]), { min: 7, median: 7, max: 7, n: 1 });
  assert.throws(() => spread([]), /empty/);
  assert.throws(() => spread([1, NaN]), /finite/);
});

test('paired ratios divide run i by run i; unpaired series and a zero baseline are errors', () => {
  assert.deepEqual(pairedRatios([10, 30], [5, 10]), [2, 3]);
  assert.throws(() => pairedRatios([1, 2], [1]), /unpaired/);
  assert.throws(() => pairedRatios([1], [0]), /no ratio/);
});

test('the tax factor reads a ratio the way its figure is better; sig keeps 3 significant digits', () => {
  assert.equal(taxFactor(40, 'lower'), 40);
  assert.equal(taxFactor(0.125, 'higher'), 8);
  assert.equal(sig(1056.4), '1056');
  assert.equal(sig(0.08104), '0.081');
  assert.equal(sig(39.14), '39.1');
  assert.equal(sig(0), '0');
});

test('containers per GiB count the N containers that ran at once by their total PSS', () => {
  assert.equal(perGiB([64, 64]), 16);
  assert.equal(perGiB([0.5, 0.5]), 2048);
  assert.throws(() => perGiB([]), /no memory/);
});

test('the workload parsers read elapsed time, fio, iperf3 and smaps_rollup output', () => {
  assert.equal(parseElapsedUs('noise\nelapsed_us=1234\n'), 1234);
  assert.throws(() => parseElapsedUs('nothing'), /no elapsed_us/);
  const fioOut =
    'note: both iodepth >= 1 and synchronous I/O engine\n' +
    JSON.stringify({ jobs: [{ write: { bw: 204800, io_kbytes: 262144 }, read: { bw: 0, io_kbytes: 0 } }] });
  assert.equal(parseFioMiBps(fioOut, 'write'), 200);
  assert.throws(() => parseFioMiBps(fioOut, 'read'), /no data/);
  assert.equal(parseIperfMbps(JSON.stringify({ end: { sum_received: { bits_per_second: 2.5e9 } } })), 2500);
  assert.throws(() => parseIperfMbps(JSON.stringify({ error: 'unable to connect' })), /unable to connect/);
  assert.deepEqual(parseSmapsRollup('Rss:  70000 kB\nPss:  67000 kB\nPss_Anon: 1 kB\nPss_Shmem:  26000 kB\n'), {
    pssKb: 67000,
    pssShmemKb: 26000,
  });
  assert.throws(() => parseSmapsRollup('Rss: 1 kB\n'), /no Pss/);
  assert.ok(fio('/vol', 'write', 64).includes('--end_fsync=1'));
  assert.match(fio('/vol', 'read', 64).join(' '), /--rw=read.*rm -f \/vol\/tax\.fio/);
});

test('summaries pair the runs; a figure that was not measured has no ratio', () => {
  const [start, net, warm] = summarise(fixture());
  assert.equal(start!.ratio!.median, 40);
  assert.equal(start!.ratio!.min, 30);
  assert.equal(start!.ratio!.max, 48);
  assert.equal(start!.runc!.median, 30);
  assert.equal(net!.ratio!.median, (2000 / 16000 + 3000 / 15000) / 2);
  assert.equal(warm!.ratio, null);
});

test('the TCG report says the figures are emulation, and shows each figure as a Boson/runc ratio', () => {
  const md = renderReport(fixture());
  assert.match(md, /^# The VM tax: Boson beside runc \(TCG, 2026-12-07\)/);
  assert.match(md, /produced under TCG/);
  assert.match(md, /\*emulation\*, not virtualisation/);
  assert.match(md, /\| start to first output \| ms \| 30 \| 1200 \| 30 \/ \*\*40\*\* \/ 48 \| lower is better: Boson 40× worse \|/);
  assert.match(
    md,
    /\| TCP throughput \| Mbit\/s \| 15500 \| 2500 \| 0\.125 \/ \*\*0\.163\*\* \/ 0\.2 \| higher is better: Boson 6\.15× worse \|/,
  );
  assert.match(md, /\| warm start \| ms \| n\/a \| n\/a \| n\/a \(not built\) \| \|/);
  assert.match(md, /\| \*\*containers per GiB\*\* \(1024 × N ÷ the total PSS of the N\) \| \*\*2048\*\* \| \*\*15\.8\*\* \|/);
  assert.match(md, /\| of which VMM overhead \| — \| 39\.5 \(39–40\) \|/);
  assert.match(md, /!\[Boson \/ runc per figure\]\(vm-tax\/ratios\.svg\)/);
  assert.match(md, /The machine was quiet/);
  assert.doesNotMatch(md, /Quick run/);
  assert.equal(renderReport(fixture()), md, 'the same result renders the same text');
});

test('the KVM report says KVM, not emulation; a loaded machine and a quick run are said plainly', () => {
  const kvm = fixture('kvm');
  kvm.meta.quick = true;
  kvm.meta.load.end = { loadavg1: 6.5, otherQemus: 4 };
  const md = renderReport(kvm);
  assert.match(md, /\(KVM, 2026-12-07\)/);
  assert.match(md, /produced under KVM/);
  assert.doesNotMatch(md, /emulation\*/);
  assert.match(md, /Quick run/);
  assert.match(loadNote(kvm.meta), /loaded while it ran.*up to 4 QEMU processes/);
});

test('the charts carry the measured figures only, and render to SVG headless', async () => {
  const result = fixture();
  const ratios = ratioChart(result) as unknown as { layer: Array<{ data: { values: Array<{ figure?: string; median?: number }> } }> };
  assert.deepEqual(
    ratios.layer[1]!.data.values.map((v) => [v.figure, v.median]),
    [
      ['start to first output', 40],
      ['TCP throughput', (2000 / 16000 + 3000 / 15000) / 2],
    ],
  );
  for (const spec of [ratioChart(result), absoluteChart(result), memoryChart(result)!]) {
    const svg = await renderSvg(spec);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  }
  const svg = await renderSvg(ratioChart(result));
  assert.match(svg, /start to first output/);
  assert.match(svg, /TCP throughput/);
  assert.doesNotMatch(svg, /warm start/);
  assert.equal(memoryChart({ ...result, memory: null }), null);
});

/**
 * The charts of docs/vm-tax.md, as Vega-Lite specifications built from a TaxResult (pure), and their rendering to
 * SVG with Vega's headless view (no browser, no canvas: Vega's SVG renderer writes markup and estimates text widths).
 * Vega-Lite is used rather than hand-written SVG so that scales, log axes, error bars and facets are a library's
 * well-tested work, and the same specifications render anywhere Vega runs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { TaxResult } from './result.ts';
import { CHART_FILES, summarise } from './report.ts';
import { spread } from './stats.ts';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
const FONT = { font: 'Helvetica, Arial, sans-serif' };
const COLORS = { boson: '#d95f02', runc: '#1b9e77' };

/** Boson / runc per figure: the median as a point, min–max as a bar, on a log axis, with a rule at 1 (no tax). */
export function ratioChart(result: TaxResult): TopLevelSpec {
  const values = summarise(result)
    .filter((s) => s.ratio)
    .map((s) => ({
      figure: s.figure.title,
      min: s.ratio!.min,
      median: s.ratio!.median,
      max: s.ratio!.max,
      direction: s.figure.better === 'lower' ? 'time or memory: above 1 is the tax' : 'throughput: below 1 is the tax',
    }));
  const order = values.map((v) => v.figure);
  const y = { field: 'figure', type: 'nominal' as const, sort: order, title: null, axis: { labelLimit: 1000 } };
  const x = { type: 'quantitative' as const, scale: { type: 'log' as const }, title: 'Boson / runc (log scale; min–max, median)' };
  return {
    $schema: SCHEMA,
    title: { text: `The VM tax per figure (${result.meta.accelerator.name.toUpperCase()}, ${result.meta.date.slice(0, 10)})`, ...FONT },
    width: 480,
    config: { axis: { labelFont: FONT.font, titleFont: FONT.font }, legend: { labelFont: FONT.font, titleFont: FONT.font } },
    layer: [
      {
        data: { values: [{ one: 1 }] },
        mark: { type: 'rule', strokeDash: [4, 3], color: '#888' },
        encoding: { x: { field: 'one', ...x } },
      },
      {
        data: { values },
        mark: { type: 'rule', strokeWidth: 3, opacity: 0.6 },
        encoding: {
          y,
          x: { field: 'min', ...x },
          x2: { field: 'max' },
          color: {
            field: 'direction',
            type: 'nominal',
            title: null,
            legend: { orient: 'bottom', direction: 'vertical', labelLimit: 1000 },
          },
        },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, size: 70 },
        encoding: { y, x: { field: 'median', ...x }, color: { field: 'direction', type: 'nominal' } },
      },
      {
        data: { values },
        mark: { type: 'text', align: 'left', dx: 8, dy: -8, fontSize: 10 },
        encoding: { y, x: { field: 'median', ...x }, text: { field: 'median', type: 'quantitative', format: ',.3~r' } },
      },
    ],
  } as TopLevelSpec;
}

/** The medians of each figure in both runtimes, one small bar chart per figure (each on its own unit and scale). */
export function absoluteChart(result: TaxResult): TopLevelSpec {
  const values = summarise(result)
    .filter((s) => s.ratio)
    .flatMap((s) => [
      { figure: `${s.figure.title} (${s.figure.unit}, ${s.figure.better} is better)`, runtime: 'runc', median: s.runc!.median },
      { figure: `${s.figure.title} (${s.figure.unit}, ${s.figure.better} is better)`, runtime: 'Boson', median: s.boson!.median },
    ]);
  const order = [...new Set(values.map((v) => v.figure))];
  return {
    $schema: SCHEMA,
    title: { text: 'Medians, both runtimes', ...FONT },
    data: { values },
    config: { axis: { labelFont: FONT.font, titleFont: FONT.font }, header: { labelFont: FONT.font } },
    facet: {
      row: {
        field: 'figure',
        type: 'nominal',
        sort: order,
        title: null,
        header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top' },
      },
    },
    spec: {
      width: 420,
      height: { step: 14 },
      layer: [
        {
          mark: 'bar',
          encoding: {
            y: { field: 'runtime', type: 'nominal', title: null, sort: ['runc', 'Boson'] },
            x: { field: 'median', type: 'quantitative', title: null },
            color: {
              field: 'runtime',
              type: 'nominal',
              scale: { domain: ['runc', 'Boson'], range: [COLORS.runc, COLORS.boson] },
              legend: null,
            },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 3, fontSize: 9 },
          encoding: {
            y: { field: 'runtime', type: 'nominal', sort: ['runc', 'Boson'] },
            x: { field: 'median', type: 'quantitative' },
            text: { field: 'median', type: 'quantitative', format: ',.3~r' },
          },
        },
      ],
    },
    resolve: { scale: { x: 'independent' } },
  } as TopLevelSpec;
}

/** Memory per idle container: runc's PSS beside Boson's, split into guest RAM and VMM overhead (medians). */
export function memoryChart(result: TaxResult): TopLevelSpec | null {
  const m = result.memory;
  if (!m) return null;
  const values = [
    { runtime: 'runc', part: 'container processes', order: 0, mib: spread(m.runc.pssMiB).median },
    { runtime: 'Boson', part: 'guest RAM resident', order: 1, mib: spread(m.boson.guestRamMiB).median },
    { runtime: 'Boson', part: 'VMM overhead (QEMU)', order: 2, mib: spread(m.boson.vmmMiB).median },
  ];
  return {
    $schema: SCHEMA,
    title: { text: `Memory per idle container (PSS, MiB; ${m.containers} of each)`, ...FONT },
    data: { values },
    width: 420,
    config: { axis: { labelFont: FONT.font, titleFont: FONT.font }, legend: { labelFont: FONT.font, titleFont: FONT.font } },
    mark: 'bar',
    encoding: {
      y: { field: 'runtime', type: 'nominal', title: null, sort: ['runc', 'Boson'] },
      x: { field: 'mib', type: 'quantitative', stack: 'zero', title: 'MiB per container (median)' },
      color: {
        field: 'part',
        type: 'nominal',
        title: null,
        scale: {
          domain: ['container processes', 'guest RAM resident', 'VMM overhead (QEMU)'],
          range: [COLORS.runc, '#fc8d62', COLORS.boson],
        },
        legend: { orient: 'bottom', labelLimit: 1000 },
      },
      tooltip: [{ field: 'part' }, { field: 'mib', format: ',.3~r' }],
    },
  } as TopLevelSpec;
}

/** Renders a Vega-Lite specification to SVG markup, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes every chart of `result` under `docsDir` (at CHART_FILES' paths); returns the files written. */
export async function writeCharts(result: TaxResult, docsDir: string): Promise<string[]> {
  const charts: Array<[string, TopLevelSpec | null]> = [
    [CHART_FILES.ratios, ratioChart(result)],
    [CHART_FILES.absolute, absoluteChart(result)],
    [CHART_FILES.memory, memoryChart(result)],
  ];
  const written: string[] = [];
  for (const [rel, spec] of charts) {
    if (!spec) continue;
    const file = path.join(docsDir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, (await renderSvg(spec)) + '\n');
    written.push(file);
  }
  return written;
}

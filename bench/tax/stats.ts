/**
 * The statistics of bench/tax.ts: min/median/max of a series, and the Boson/runc ratio of paired samples (run i of
 * Boson against run i of runc, interleaved in one process so that machine noise hits both alike). Pure.
 */

/** Min, median and max of a series (the median of an even count is the mean of the middle two). */
export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

/** The spread of `values`; throws for an empty series (a figure without samples is a bug, not a zero). */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('spread of an empty series');
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`not a finite sample: ${v}`);
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

/**
 * The ratios boson[i] / runc[i] of paired samples. The series must be equally long and runc's samples positive
 * (a zero baseline has no ratio).
 */
export function pairedRatios(boson: readonly number[], runc: readonly number[]): number[] {
  if (boson.length !== runc.length) throw new Error(`unpaired samples: ${boson.length} Boson, ${runc.length} runc`);
  return boson.map((b, i) => {
    const r = runc[i]!;
    if (!(r > 0)) throw new Error(`runc sample ${i} is ${r}: no ratio`);
    return b / r;
  });
}

/** Which way is better for a figure: times and memory are lower-is-better, throughputs higher-is-better. */
export type Better = 'lower' | 'higher';

/**
 * How many times worse Boson is than runc at a median ratio, whichever way the figure is better (1 = no tax; below
 * 1 = Boson is better).
 */
export function taxFactor(medianRatio: number, better: Better): number {
  return better === 'lower' ? medianRatio : 1 / medianRatio;
}

/** A number rounded for a report: 3 significant digits, no exponent for the magnitudes we print. */
export function sig(x: number, digits = 3): string {
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 10 ** digits) return String(Math.round(x));
  return String(Number(x.toPrecision(digits)));
}

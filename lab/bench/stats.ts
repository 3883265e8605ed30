// Small order statistics for benchmarks: min, median, max of a sample and of
// per-run ratios. Pure, no I/O.

export interface Summary {
  min: number;
  median: number;
  max: number;
  /** Sample size. */
  n: number;
}

function checked(values: readonly number[], what: string): number[] {
  if (values.length === 0) throw new RangeError(`${what} of an empty sample`);
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`${what}: not a finite number: ${v}`);
  return [...values];
}

export function min(values: readonly number[]): number {
  return Math.min(...checked(values, 'min'));
}

export function max(values: readonly number[]): number {
  return Math.max(...checked(values, 'max'));
}

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: readonly number[]): number {
  const sorted = checked(values, 'median').sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summarize(values: readonly number[]): Summary {
  return { min: min(values), median: median(values), max: max(values), n: values.length };
}

/** Element-wise a[i] / b[i] (runs paired by index); the samples must have the same length. */
export function ratios(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new RangeError(`ratios: ${a.length} values against ${b.length}`);
  return a.map((x, i) => {
    const y = b[i]!;
    if (y === 0) throw new RangeError(`ratios: division by zero at run ${i}`);
    return x / y;
  });
}

/** `min / median / max` with a fixed number of decimals. */
export function formatSummary(s: Summary, decimals = 0): string {
  return [s.min, s.median, s.max].map((v) => v.toFixed(decimals)).join(' / ');
}

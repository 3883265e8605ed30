// Small order statistics for benchmarks: min, median, max of a sample and of
// per-run ratios, and nearest-rank percentiles. Pure, no I/O.

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

export interface Distribution {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles (p99 of 100 values is the 99th smallest); undefined for an empty sample. */
export function distribution(values: readonly number[]): Distribution | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
  return { n: s.length, min: s[0]!, p50: rank(50), p90: rank(90), p99: rank(99), max: s[s.length - 1]! };
}

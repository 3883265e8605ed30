// What the sockmap benchmark reports: per case (tool, message size) the
// paired off/on runs, their summaries and a verdict that holds only when
// every pair agrees. Pure.
import { ratios, summarize, type Summary } from '../stats.ts';

export type Mode = 'off' | 'on';

export interface RunSample {
  mode: Mode;
  /** The case's metric for this run (µs or Gbit/s). */
  value: number;
  /** sk_msg redirects on n1 during the run (must be > 0 when on, 0 when off). */
  redirected: number;
}

export interface BenchCase {
  name: string;
  tool: 'sockperf' | 'iperf3';
  kind: 'rr' | 'stream';
  size: number;
  metric: string;
  unit: string;
  better: 'lower' | 'higher';
  /** Per run, in run order; paired by index. */
  off: RunSample[];
  on: RunSample[];
  offSummary?: Summary;
  onSummary?: Summary;
  /** on / off per paired run. */
  ratio?: Summary;
  /** "on better in every run", "on worse in every run", or "no consistent difference". */
  verdict: string;
  /** Runs whose redirect counter contradicts their mode (sockmap did not do what the mode says). */
  invalidRuns: string[];
  errors: string[];
}

export interface SockmapBenchReport {
  lab: string;
  host: { kernel: string; cpus: number };
  runs: number;
  durationS: number;
  startedAt: string;
  durationMs: number;
  cases: BenchCase[];
}

/** The cases, not yet measured: sockperf ping-pong RTT per `rrSizes`, iperf3 throughput per `streamSizes` (bytes). */
export function benchCases(rrSizes: readonly number[], streamSizes: readonly number[]): BenchCase[] {
  return [
    ...rrSizes.map((size): BenchCase => ({
      name: `RR ${size} B`, tool: 'sockperf', kind: 'rr', size, metric: 'RTT p50', unit: 'µs', better: 'lower',
      off: [], on: [], verdict: '', invalidRuns: [], errors: [],
    })),
    ...streamSizes.map((size): BenchCase => ({
      name: `stream ${size} B writes`, tool: 'iperf3', kind: 'stream', size, metric: 'throughput', unit: 'Gbit/s', better: 'higher',
      off: [], on: [], verdict: '', invalidRuns: [], errors: [],
    })),
  ];
}

/** A redirect count that contradicts the run's mode, described; undefined when it agrees. */
export function invalidRun(run: number, s: RunSample): string | undefined {
  return (s.mode === 'on') !== s.redirected > 0 ? `run ${run} ${s.mode}: ${s.redirected} messages redirected` : undefined;
}

export function verdictOf(c: BenchCase): string {
  if (!c.ratio) return 'not measured';
  const r = c.on.map((s, i) => s.value / c.off[i]!.value);
  const better = (x: number) => (c.better === 'lower' ? x < 1 : x > 1);
  if (r.every(better)) return 'on better in every run';
  if (r.every((x) => !better(x) && x !== 1)) return 'on worse in every run';
  return 'no consistent difference';
}

/** Fills in a measured case's summaries, ratio and verdict. */
export function summarizeCase(c: BenchCase): void {
  if (c.off.length > 0) {
    c.offSummary = summarize(c.off.map((s) => s.value));
    c.onSummary = summarize(c.on.map((s) => s.value));
    c.ratio = summarize(ratios(c.on.map((s) => s.value), c.off.map((s) => s.value)));
  }
  c.verdict = verdictOf(c);
}

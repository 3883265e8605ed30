// The sockmap benchmark's cases, redirect checks and verdicts
// (lab/bench/sockmap/report.ts). Pure, no root.
import t from 'tap';
import { benchCases, invalidRun, summarizeCase, verdictOf, type BenchCase, type Mode, type RunSample } from '../../lab/bench/sockmap/report.ts';

const sample = (mode: Mode, value: number, redirected = mode === 'on' ? 12_000 : 0): RunSample => ({ mode, value, redirected });

function measured(kind: 'rr' | 'stream', off: number[], on: number[]): BenchCase {
  const c = benchCases(kind === 'rr' ? [64] : [], kind === 'stream' ? [65_536] : [])[0]!;
  c.off.push(...off.map((v) => sample('off', v)));
  c.on.push(...on.map((v) => sample('on', v)));
  summarizeCase(c);
  return c;
}

t.test('cases: sockperf RTT (lower is better), then iperf3 throughput (higher is better)', async (t) => {
  const cases = benchCases([64, 65_000], [64, 65_536]);
  t.same(cases.map((c) => [c.name, c.tool, c.metric, c.unit, c.better]), [
    ['RR 64 B', 'sockperf', 'RTT p50', 'µs', 'lower'],
    ['RR 65000 B', 'sockperf', 'RTT p50', 'µs', 'lower'],
    ['stream 64 B writes', 'iperf3', 'throughput', 'Gbit/s', 'higher'],
    ['stream 65536 B writes', 'iperf3', 'throughput', 'Gbit/s', 'higher'],
  ]);
  t.ok(cases.every((c) => c.off.length === 0 && c.verdict === ''));
});

t.test('verdicts need every pair to agree', async (t) => {
  t.equal(measured('rr', [33.1, 34], [27.3, 28]).verdict, 'on better in every run', 'lower RTT');
  t.equal(measured('rr', [33.1, 34], [35, 36]).verdict, 'on worse in every run');
  t.equal(measured('rr', [33.1, 34], [27.3, 36]).verdict, 'no consistent difference');
  t.equal(measured('rr', [33.1], [33.1]).verdict, 'no consistent difference', 'a tie is neither better nor worse');
  t.equal(measured('stream', [5.3, 5.1], [15.55, 14]).verdict, 'on better in every run', 'higher throughput');
  t.equal(measured('stream', [0.07], [0.02]).verdict, 'on worse in every run');
  const none = benchCases([64], [])[0]!;
  summarizeCase(none);
  t.equal(none.verdict, 'not measured');
  t.equal(verdictOf(none), 'not measured');
});

t.test('summaries and per-run on/off ratios', async (t) => {
  const c = measured('stream', [5, 4], [10, 12]);
  t.same(c.offSummary, { min: 4, median: 4.5, max: 5, n: 2 });
  t.same(c.ratio, { min: 2, median: 2.5, max: 3, n: 2 });
});

t.test('a run whose redirect counter contradicts its mode is invalid', async (t) => {
  t.equal(invalidRun(1, sample('on', 27.3)), undefined);
  t.equal(invalidRun(1, sample('off', 33.1)), undefined);
  t.equal(invalidRun(2, sample('on', 27.3, 0)), 'run 2 on: 0 messages redirected');
  t.equal(invalidRun(3, sample('off', 33.1, 5)), 'run 3 off: 5 messages redirected');
});

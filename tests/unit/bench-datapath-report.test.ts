// The datapath benchmark's arithmetic (lab/bench/datapath/report.ts): per
// round attached/detached ratios, the overhead, and the goals' verdicts,
// including NOISY ones. Pure, no root.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkGoals, DATAPATH_GOAL_OVERHEAD_PCT, summarizeRuns, type BenchDatapathReport, type DatapathMode, type DatapathRun } from '../../lab/bench/datapath/report.ts';

function runOf(round: number, mode: DatapathMode, rttP50Us: number, throughputGbps: number, backgroundBusy = 0.02): DatapathRun {
  return {
    round, mode, rttP50Us, rttAvgUs: rttP50Us + 5, rttP99Us: rttP50Us * 3, roundTrips: 50_000, throughputGbps, retransmits: 0,
    programPackets: mode === 'attached' ? 400_000 : 0, hostBusy: 0.5, backgroundBusy,
  };
}

// Two rounds in the order the benchmark runs them (round 2 starts detached).
const quiet = [
  runOf(1, 'attached', 42, 9.5), runOf(1, 'detached', 40, 10),
  runOf(2, 'detached', 41, 10), runOf(2, 'attached', 43.46, 9.4),
];

t.test('ratios pair runs by round, whatever order they ran in', async (t) => {
  const s = summarizeRuns(quiet);
  t.same(s.ratio.rttP50, { min: 42 / 40, median: (42 / 40 + 43.46 / 41) / 2, max: 43.46 / 41, n: 2 });
  t.equal(s.ratio.throughput.n, 2);
  t.equal(s.attached.programPackets.median, 400_000);
  t.equal(s.detached.programPackets.max, 0);
  t.ok(Math.abs(s.overheadPct.rttP50 - 5.5) < 1e-9, 'latency overhead = (median ratio − 1) × 100');
  t.ok(Math.abs(s.overheadPct.throughput - 5.5) < 1e-9, 'throughput overhead = (1 − median ratio) × 100');
  t.equal(s.rttP50DeltaUs, (42 + 43.46) / 2 - (40 + 41) / 2, 'median attached − median detached');
});

t.test('a round missing one mode cannot be paired', async (t) => {
  t.throws(() => summarizeRuns(quiet.slice(0, 3)), RangeError);
});

t.test('goals hold on a quiet host with agreeing rounds', async (t) => {
  const goals = checkGoals(summarizeRuns(quiet), quiet, 10);
  t.equal(goals.latency.holds, true);
  t.equal(goals.throughput.holds, true);
  t.equal(goals.latency.noisy, undefined);
  t.equal(goals.throughput.noisy, undefined);
  t.equal(goals.latency.detail, '+5.5 % (avg RTT +4.9 %, p99 RTT +5.5 %)');
  t.match(goals.throughput.detail, /^\+5\.5 % \(2 rounds, per-round ratios 0\.940 \/ 0\.945 \/ 0\.950\)$/);
});

t.test('the goal is 5 %: +5.5 % misses it', async (t) => {
  t.equal(DATAPATH_GOAL_OVERHEAD_PCT, 5);
  const goals = checkGoals(summarizeRuns(quiet), quiet);
  t.equal(goals.latency.holds, false);
  t.equal(goals.throughput.holds, false);
  t.match(goals.latency.goal, /≤ 5 %/);
});

t.test('goals are MISSED past 10 %', async (t) => {
  const slow = [runOf(1, 'attached', 48, 8.1), runOf(1, 'detached', 39.6, 9.9)];
  const goals = checkGoals(summarizeRuns(slow), slow);
  t.equal(goals.latency.holds, false);
  t.equal(goals.throughput.holds, false);
  t.match(goals.latency.detail, /^\+21\.2 %/);
});

t.test('NOISY: other jobs busy before a run', async (t) => {
  const busy = quiet.map((r, i) => (i === 2 ? { ...r, backgroundBusy: 0.94 } : r));
  const goals = checkGoals(summarizeRuns(busy), busy, 10);
  t.equal(goals.latency.holds, true, 'the verdict stays, flagged');
  t.equal(goals.latency.noisy, 'other jobs kept the CPUs up to 94 % busy before a run');
  t.equal(goals.throughput.noisy, 'other jobs kept the CPUs up to 94 % busy before a run');
});

t.test('NOISY: per-round ratios spread wider than the goal', async (t) => {
  const spread = [
    runOf(1, 'attached', 44, 9.5), runOf(1, 'detached', 40, 10),
    runOf(2, 'detached', 40, 10), runOf(2, 'attached', 39, 9.5),
  ];
  const goals = checkGoals(summarizeRuns(spread), spread, 10);
  t.equal(goals.latency.noisy, 'per-round ratios spread 0.975 / 1.038 / 1.100, wider than the 10 % goal');
  t.equal(goals.throughput.noisy, undefined, 'throughput rounds agree');
});

t.test("a real run's report re-derives from its runs", async (t) => {
  const file = join(import.meta.dirname, '../fixtures/bench/datapath-report.json');
  const r = JSON.parse(readFileSync(file, 'utf8')) as BenchDatapathReport;
  const s = summarizeRuns(r.runs);
  t.same(s, { attached: r.attached, detached: r.detached, ratio: r.ratio, overheadPct: r.overheadPct, rttP50DeltaUs: r.rttP50DeltaUs });
  // Against the goal that run was judged by (it predates the 5 % goal).
  const goal = Number(/≤ (\d+) %/.exec(r.goals.latency.goal)![1]);
  t.same(checkGoals(s, r.runs, goal), r.goals);
});

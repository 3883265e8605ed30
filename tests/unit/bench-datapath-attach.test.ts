// The datapath benchmark with two attach modes (tcx and clsact) against the
// same detached rounds: which runs each summary takes, the other mode's
// ratios, and the report's text for it. Also the attach lines lab/kernel/tc.ts
// sends to tc and to the tcx helper. Pure, no root.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatBenchDatapath } from '../../lab/bench/datapath/format.ts';
import {
  checkGoals, runsOfAttachMode, summarizeOtherAttach, summarizeRuns,
  type BenchDatapathReport, type DatapathRun,
} from '../../lab/bench/datapath/report.ts';
import { nodeNetns, tcxLinkPin } from '../../lab/core/names.ts';
import type { TcAttachMode } from '../../lab/kernel/tc.ts';
import { tcAttachLines, tcxAttachLines } from '../../lab/kernel/tc.ts';

function runOf(round: number, attach: TcAttachMode | undefined, rttP50Us: number, throughputGbps: number): DatapathRun {
  return {
    round, mode: attach ? 'attached' : 'detached', ...(attach ? { attach } : {}),
    rttP50Us, rttAvgUs: rttP50Us + 5, rttP99Us: rttP50Us * 3, roundTrips: 50_000, throughputGbps, retransmits: 0,
    programPackets: attach ? 400_000 : 0, hostBusy: 0.5, backgroundBusy: 0.02,
  };
}

// Two rounds as the benchmark runs them: tcx, clsact, detached, then reversed.
const runs = [
  runOf(1, 'tcx', 21, 9.8), runOf(1, 'clsact', 22, 9.6), runOf(1, undefined, 20, 10),
  runOf(2, undefined, 20, 10), runOf(2, 'clsact', 22.4, 9.5), runOf(2, 'tcx', 20.8, 9.9),
];

t.test('each attach mode is paired with the same detached runs', async (t) => {
  t.same(runsOfAttachMode(runs, 'tcx').map((r) => r.attach ?? 'none'), ['tcx', 'none', 'none', 'tcx']);
  t.same(runsOfAttachMode(runs, 'clsact').map((r) => r.attach ?? 'none'), ['clsact', 'none', 'none', 'clsact']);
  const own = summarizeRuns(runsOfAttachMode(runs, 'tcx'));
  t.same(own.ratio.rttP50, { min: 20.8 / 20, median: (21 / 20 + 20.8 / 20) / 2, max: 21 / 20, n: 2 });
  const other = summarizeOtherAttach(runs, 'clsact');
  t.equal(other.mode, 'clsact');
  t.same(other.ratio.rttP50, { min: 22 / 20, median: (22 / 20 + 22.4 / 20) / 2, max: 22.4 / 20, n: 2 });
  t.ok(Math.abs(other.overheadPct.rttP50 - 11) < 1e-9);
  t.ok(Math.abs(other.rttP50DeltaUs - 2.2) < 1e-9, 'median clsact − median detached');
  t.same(other.attached.throughputGbps, { min: 9.5, median: 9.55, max: 9.6, n: 2 });
});

t.test('runs from before tcx (no attach field) count as clsact', async (t) => {
  const old = runs.filter((r) => r.attach !== 'tcx').map(({ attach: _attach, ...r }) => r);
  t.equal(runsOfAttachMode(old, 'clsact').length, 4);
  t.equal(runsOfAttachMode(old, 'tcx').length, 2, 'only the detached runs');
});

t.test('the text names both modes and adds the other mode under the table', async (t) => {
  const base = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/bench/datapath-report.json'), 'utf8')) as BenchDatapathReport;
  const summary = summarizeRuns(runsOfAttachMode(runs, 'tcx'));
  const report: BenchDatapathReport = {
    ...base, rounds: 2, runs, ...summary, goals: checkGoals(summary, runs),
    attachMode: 'tcx', otherAttach: summarizeOtherAttach(runs, 'clsact'),
    liveProgramCost: { attach: 'tcx', nsPerRun: 512.4, runsPerRoundTrip: 4.6, usPerRoundTrip: 2.357, rttP50Us: 21.3 },
  };
  const lines = formatBenchDatapath(report).split('\n');
  t.match(lines[1], /^2 round\(s\) × \{attached tcx, attached clsact, detached\} alternating/);
  t.ok(lines.some((l) => /^\s+attached tcx\s+no programs\s+tcx\/none per round\s+overhead$/.test(l)), 'the main table says which mode it measured');
  const at = lines.indexOf('attached clsact instead (same rounds, same detached runs):');
  t.ok(at > 0, 'the other mode has its own lines');
  t.match(lines[at + 1], /clsact\s+no programs\s+clsact\/none per round\s+overhead/);
  t.match(lines[at + 2], /^ {2}RTT p50 µs\s+22\.0 \/ 22\.2 \/ 22\.4\s+20\.0 \/ 20\.0 \/ 20\.0\s+1\.100 \/ 1\.110 \/ 1\.120\s+\+11\.0 %$/);
  t.ok(lines.some((l) => /^programs attached tcx add \+0\.9 µs to the p50 round trip/.test(l)));
  t.ok(lines.some((l) => l === '  attached clsact: +2.2 µs, ≈ 0.55 µs per program run'));
  t.ok(lines.some((l) => /µs per round trip, hot in cache, one CPU$/.test(l)), 'BPF_PROG_RUN figures say what they leave out');
  t.ok(lines.includes('  the programs in the live flow (tcx, kernel run-time statistics over one more sockperf run): 512 ns per run, 4.60 runs per round trip, 2.36 µs per round trip (11.8 % of the detached p50)'));
  t.ok(lines.some((l) => /^ {2}round 1 attached clsact  RTT p50/.test(l)), 'runs in order name their attach mode');
});

t.test('attach lines: one clsact per device for tc, one pinned link per hook for the helper', async (t) => {
  const netns = nodeNetns('demo', 'n1');
  const attachments = [
    { dev: 'lxc-a', direction: 'ingress' as const, pin: '/p/from' },
    { dev: 'lxc-a', direction: 'egress' as const, pin: '/p/to' },
  ];
  t.same(tcAttachLines(attachments), [
    'qdisc replace dev lxc-a clsact',
    'filter replace dev lxc-a ingress prio 1 handle 1 bpf da pinned /p/from',
    'filter replace dev lxc-a egress prio 1 handle 1 bpf da pinned /p/to',
  ]);
  t.same(tcxAttachLines(netns, attachments), [
    `attach lxc-a ingress /p/from ${tcxLinkPin('demo', 'n1', 'lxc-a', 'ingress')}`,
    `attach lxc-a egress /p/to ${tcxLinkPin('demo', 'n1', 'lxc-a', 'egress')}`,
  ]);
  t.equal(tcxLinkPin('demo', 'n1', 'lxc-a', 'egress'), '/sys/fs/bpf/mtless-lab/demo/n1/links/lxc-a/egress');
  t.throws(() => tcxAttachLines('mtl_demo_fabric', attachments), /not a node namespace/);
});

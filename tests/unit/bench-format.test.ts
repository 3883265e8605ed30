// The benchmarks' text reports, pinned on real reports (`lab bench … --json`
// of one run each, tests/fixtures/bench/*-report.json): each formatter must
// print exactly the text beside its report.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatBenchAuth } from '../../lab/bench/auth/format.ts';
import { formatBenchDatapath } from '../../lab/bench/datapath/format.ts';
import { formatSockmapBench } from '../../lab/bench/sockmap/format.ts';
import { formatBenchUp } from '../../lab/bench/up/format.ts';
import type { BenchDatapathReport } from '../../lab/bench/datapath/report.ts';

const dir = join(import.meta.dirname, '../fixtures/bench');
const report = (bench: string) => JSON.parse(readFileSync(join(dir, `${bench}-report.json`), 'utf8'));
const text = (bench: string) => readFileSync(join(dir, `${bench}-report.txt`), 'utf8');

t.test('datapath', async (t) => {
  t.equal(formatBenchDatapath(report('datapath')) + '\n', text('datapath'));
});

t.test('datapath: a NOISY goal says why, notes close the report', async (t) => {
  const r = report('datapath') as BenchDatapathReport;
  r.goals.latency.noisy = 'other jobs kept the CPUs up to 94 % busy before a run';
  r.notes = ['round 1: detached, yet the programs counted 12 packets'];
  const lines = formatBenchDatapath(r).split('\n');
  const at = lines.findIndex((l) => l.startsWith('  [MISSED, NOISY] round-trip latency overhead'));
  t.ok(at > 0);
  t.equal(lines[at + 1], '      not conclusive: other jobs kept the CPUs up to 94 % busy before a run');
  t.same(lines.slice(-2), ['notes:', '  round 1: detached, yet the programs counted 12 packets']);
});

t.test('datapath: CT accounting off and on, as medians of the alternating live runs', async (t) => {
  const r = report('datapath') as BenchDatapathReport;
  const live = (nsPerRun: number, rttP50Us: number) => ({ attach: 'tcx' as const, nsPerRun, runsPerRoundTrip: 4.8, usPerRoundTrip: (nsPerRun * 4.8) / 1000, rttP50Us });
  r.ctAccounting = { off: [live(472, 39.5), live(493, 40.6), live(450, 35.9)], on: [live(603, 40.4), live(605, 41.0), live(583, 36.4)] };
  const line = formatBenchDatapath(r).split('\n').find((l) => l.includes('CT accounting'));
  t.equal(line, '  CT accounting (every packet counted, its entry rewritten each time) off / on, 3 + 3 live runs alternating: 472 / 603 ns per run (medians, -21.7 % without), RTT p50 39.5 / 40.4 µs');
  delete r.ctAccounting;
  t.notOk(formatBenchDatapath(r).includes('CT accounting'), 'older reports have no such line');
});

t.test('up', async (t) => {
  t.equal(formatBenchUp(report('up')) + '\n', text('up'));
});

t.test('auth', async (t) => {
  t.equal(formatBenchAuth(report('auth')) + '\n', text('auth'));
});

t.test('sockmap', async (t) => {
  t.equal(formatSockmapBench(report('sockmap')) + '\n', text('sockmap'));
});

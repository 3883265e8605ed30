// The datapath benchmark's report as text (`mtless bench datapath`).
import { PROGRAMS } from '../../abi/layouts.ts';
import { formatGoals } from '../goal.ts';
import { formatSummary, median, type Summary } from '../stats.ts';
import { formatNotes, signed, table } from '../text.ts';
import type { BenchDatapathReport, LiveProgramCost } from './report.ts';

export function formatBenchDatapath(report: BenchDatapathReport): string {
  const out: string[] = [];
  out.push(
    `datapath benchmark: lab ${report.lab} (${report.topologyFile}, no agents), ${report.client.node}/${report.client.pod} ${report.client.ip} -> ` +
      `${report.server.node}/${report.server.pod} ${report.server.ip}`,
  );
  const other = report.otherAttach;
  // Reports from before tcx name no attach mode: their attached runs are clsact.
  const own = report.attachMode ?? 'clsact';
  const modes = other ? `attached ${own}, attached ${other.mode}, detached` : report.attachMode ? `attached ${own}, detached` : 'attached, detached';
  out.push(
    `${report.rounds} round(s) × {${modes}} alternating, ${report.seconds} s per client run, policy mode ${report.policyMode}; kernel ${report.host.kernel}, ` +
      `${report.host.cpus} CPU(s), load ${report.host.loadavg}; took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('RTT = sockperf pp --tcp --full-rtt (µs); throughput = iperf3 receiver (Gbit/s); min / median / max over rounds');
  out.push('');
  const a = report.attached;
  const d = report.detached;
  const attachedHead = report.attachMode ? `attached ${own}` : 'attached';
  const rows: string[][] = [['', attachedHead, 'no programs', `${report.attachMode ? own : 'attached'}/none per round`, 'overhead']];
  rows.push(['RTT p50 µs', formatSummary(a.rttP50Us, 1), formatSummary(d.rttP50Us, 1), formatSummary(report.ratio.rttP50, 3), `${signed(report.overheadPct.rttP50)} %`]);
  rows.push(['RTT avg µs', formatSummary(a.rttAvgUs, 1), formatSummary(d.rttAvgUs, 1), formatSummary(report.ratio.rttAvg, 3), `${signed(report.overheadPct.rttAvg)} %`]);
  rows.push(['RTT p99 µs', formatSummary(a.rttP99Us, 1), formatSummary(d.rttP99Us, 1), formatSummary(report.ratio.rttP99, 3), `${signed(report.overheadPct.rttP99)} %`]);
  rows.push(['throughput Gbit/s', formatSummary(a.throughputGbps, 2), formatSummary(d.throughputGbps, 2), formatSummary(report.ratio.throughput, 3), `${signed(report.overheadPct.throughput)} %`]);
  rows.push(['packets seen by programs', formatSummary(a.programPackets, 0), formatSummary(d.programPackets, 0), '', '']);
  rows.push(['CPU busy % before run (others)', formatSummary(scale(a.backgroundBusy, 100), 0), formatSummary(scale(d.backgroundBusy, 100), 0), '', '']);
  rows.push(['CPU busy % during run', formatSummary(scale(a.hostBusy, 100), 0), formatSummary(scale(d.hostBusy, 100), 0), '', '']);
  out.push(...table(rows));
  if (other) {
    out.push(`attached ${other.mode} instead (same rounds, same detached runs):`);
    const orows: string[][] = [['', other.mode, 'no programs', `${other.mode}/none per round`, 'overhead']];
    orows.push(['RTT p50 µs', formatSummary(other.attached.rttP50Us, 1), formatSummary(d.rttP50Us, 1), formatSummary(other.ratio.rttP50, 3), `${signed(other.overheadPct.rttP50)} %`]);
    orows.push(['RTT avg µs', formatSummary(other.attached.rttAvgUs, 1), formatSummary(d.rttAvgUs, 1), formatSummary(other.ratio.rttAvg, 3), `${signed(other.overheadPct.rttAvg)} %`]);
    orows.push(['throughput Gbit/s', formatSummary(other.attached.throughputGbps, 2), formatSummary(d.throughputGbps, 2), formatSummary(other.ratio.throughput, 3), `${signed(other.overheadPct.throughput)} %`]);
    out.push(...table(orows).map((l) => '  ' + l));
  }
  const delta = report.rttP50DeltaUs;
  const via = report.attachMode ? ` attached ${own}` : '';
  out.push(`programs${via} add ${signed(delta)} µs to the p50 round trip: 4 program runs (from/to-container on both nodes), ≈ ${(delta / 4).toFixed(2)} µs each`);
  if (other) out.push(`  attached ${other.mode}: ${signed(other.rttP50DeltaUs)} µs, ≈ ${(other.rttP50DeltaUs / 4).toFixed(2)} µs per program run`);
  const live = report.liveProgramCost;
  if (live) {
    out.push(
      `  the programs in the live flow (${live.attach}, kernel run-time statistics over one more sockperf run): ${live.nsPerRun.toFixed(0)} ns per run, ` +
        `${live.runsPerRoundTrip.toFixed(2)} runs per round trip, ${live.usPerRoundTrip.toFixed(2)} µs per round trip (${((live.usPerRoundTrip / report.detached.rttP50Us.median) * 100).toFixed(1)} % of the detached p50)`,
    );
  }
  const acc = report.ctAccounting;
  if (acc && acc.on.length) {
    const med = (xs: LiveProgramCost[], f: (c: LiveProgramCost) => number) => median(xs.map(f));
    const off = med(acc.off, (c) => c.nsPerRun);
    const on = med(acc.on, (c) => c.nsPerRun);
    out.push(
      `  CT accounting (every packet counted, its entry rewritten each time) off / on, ${acc.off.length} + ${acc.on.length} live runs alternating: ` +
        `${off.toFixed(0)} / ${on.toFixed(0)} ns per run (medians, ${signed(((off - on) / on) * 100)} % without), ` +
        `RTT p50 ${med(acc.off, (c) => c.rttP50Us).toFixed(1)} / ${med(acc.on, (c) => c.rttP50Us).toFixed(1)} µs`,
    );
  }
  if (report.programCost) {
    const sum = report.programCost.reduce((a, c) => a + c.ns, 0);
    out.push(
      `  the programs alone (BPF_PROG_RUN, kernel-timed average of ${report.programCost[0]?.repeat ?? 0} runs): ` +
        report.programCost.map((c) => `${c.node} ${c.program === PROGRAMS.fromContainer ? 'from' : 'to'}-container ${c.packet} ${c.ns} ns`).join(', ') +
        `; ${(sum / 1000).toFixed(2)} µs per round trip, ` +
        // Beside the live figure the gap is plain: in the flow the same programs meet cold caches and conntrack entries written from both CPUs.
        (live ? 'hot in cache, one CPU' : `the rest is the tc hook (${own}) and cache effects`),
    );
  }
  out.push('');
  out.push('runs in order:');
  for (const r of report.runs) {
    out.push(
      `  round ${r.round} ${(r.attach ? `${r.mode} ${r.attach}` : r.mode).padEnd(report.attachMode ? 15 : 8)}  RTT p50 ${r.rttP50Us.toFixed(1).padStart(7)} µs  avg ${r.rttAvgUs.toFixed(1).padStart(7)}  p99 ${r.rttP99Us.toFixed(1).padStart(7)}` +
        `  ${r.throughputGbps.toFixed(2).padStart(6)} Gbit/s  retr ${String(r.retransmits).padStart(4)}  CPU busy ${(r.backgroundBusy * 100).toFixed(0).padStart(3)} % before, ${(r.hostBusy * 100).toFixed(0)} % during`,
    );
  }
  if (report.mapIo) {
    out.push('');
    out.push(`map I/O on ${report.mapIoNode}'s maps (bpftool through run(); ms per operation, min / median / max):`);
    const mrows: string[][] = [['operation', 'entries', 'ms per op', 'µs per entry', '']];
    for (const m of report.mapIo) {
      const dec = m.ms.median < 10 ? 2 : 1;
      mrows.push([m.op, String(m.entries), formatSummary(m.ms, dec), m.usPerEntry.toFixed(1), m.note ?? '']);
    }
    out.push(...table(mrows).map((l) => '  ' + l));
  }
  out.push('');
  out.push(...formatGoals(report.goals));
  out.push(...formatNotes(report.notes));
  return out.join('\n');
}

function scale(s: Summary, k: number): Summary {
  return { min: s.min * k, median: s.median * k, max: s.max * k, n: s.n };
}

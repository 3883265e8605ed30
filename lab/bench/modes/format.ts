// The modes benchmark's report as text (`mtless bench modes`).
import { formatSummary, type Summary } from '../stats.ts';
import { formatNotes, signed, table } from '../text.ts';
import type { BenchModesReport, VsFloor } from './report.ts';
import type { BenchMode } from './topology.ts';

export const MODE_LABELS: Record<BenchMode, string> = {
  floor: 'floor: native, no auth',
  native: 'native',
  'native-wireguard': 'native + WireGuard',
  tunnel: 'tunnel',
  'tunnel-wireguard': 'tunnel + WireGuard',
  'per-connection-mtls': 'per-connection mTLS',
};

const cell = (s: Summary | undefined, decimals: number) => (s ? formatSummary(s, decimals) : 'n/a');
const times = (v: VsFloor | undefined, decimals = 2) => (v ? `${formatSummary(v.ratio, decimals)} ×` : '');
const timesOne = (v: VsFloor | undefined, decimals = 1) => (v ? `${v.ratio.median.toFixed(decimals)} ×` : '');

export function formatBenchModes(r: BenchModesReport): string {
  const out: string[] = [];
  out.push(
    `modes benchmark: ${r.modes.length} lab(s) side by side (${Object.values(r.labs).join(', ')}), n1/client -> n2/server; ` +
      `${r.rounds} round(s) × every lab, rotated, ${r.seconds} s per client run; ${r.pairs} new identity pair(s) per mode timed twice`,
  );
  out.push(`kernel ${r.host.kernel}, ${r.host.cpus} CPU(s), load ${r.host.loadavg}; took ${(r.durationMs / 1000).toFixed(0)} s`);
  out.push('RTT = sockperf pp --tcp --full-rtt p50 (µs), throughput = iperf3 receiver (Gbit/s): min / median / max over rounds, ×floor per round');
  out.push('TTFB = a new connection\'s first SYN to the server\'s first payload byte on the pod\'s veth (ms, capture timestamps): min / median / max over pairs, ×floor of the medians');
  out.push('');
  const rows: string[][] = [['mode', 'RTT p50 µs', '×floor', 'Gbit/s', '×floor', 'TTFB new pair ms', '×floor', 'TTFB 2nd connection ms', '×floor']];
  for (const m of r.modes) {
    rows.push([
      MODE_LABELS[m.mode],
      cell(m.rttP50Us, 1), times(m.vsFloor.rttP50),
      cell(m.throughputGbps, 2), times(m.vsFloor.throughput),
      cell(m.ttfbNewPairMs, 1), timesOne(m.vsFloor.ttfbNewPair),
      cell(m.ttfbSamePairMs, 1), timesOne(m.vsFloor.ttfbSamePair),
    ]);
  }
  out.push(...table(rows));
  out.push('');
  out.push('extra over the floor (medians): RTT µs, throughput Gbit/s, TTFB new pair / 2nd connection ms');
  for (const m of r.modes.filter((x) => x.mode !== 'floor')) {
    const v = m.vsFloor;
    const d = (x: VsFloor | undefined, decimals: number) => (x ? signed(x.extra, decimals) : 'n/a');
    out.push(`  ${MODE_LABELS[m.mode].padEnd(20)} ${d(v.rttP50, 1)} µs, ${d(v.throughput, 2)} Gbit/s, ${d(v.ttfbNewPair, 1)} / ${d(v.ttfbSamePair, 1)} ms`);
  }
  if (r.wireguard.length > 0) {
    out.push('');
    out.push('user-space WireGuard (wireguard-go) against the same routing without it, per round:');
    for (const w of r.wireguard) {
      out.push(`  ${MODE_LABELS[w.with]} / ${MODE_LABELS[w.without]}: RTT p50 ${formatSummary(w.rttP50Ratio, 2)} ×, throughput ${formatSummary(w.throughputRatio, 2)} ×`);
    }
  }
  out.push('');
  out.push('runs in order:');
  for (const x of r.runs) {
    out.push(
      `  round ${x.round} ${x.mode.padEnd(19)} RTT p50 ${x.rttP50Us.toFixed(1).padStart(7)} µs  p99 ${x.rttP99Us.toFixed(1).padStart(8)}  ${x.throughputGbps.toFixed(2).padStart(6)} Gbit/s` +
        `  retr ${String(x.retransmits).padStart(4)}  ${x.carrier.what} ${x.carrier.count}  CPU busy ${(x.backgroundBusy * 100).toFixed(0).padStart(3)} % before, ${(x.hostBusy * 100).toFixed(0)} % during`,
    );
  }
  out.push('timed connections (ms on the veth, first / second; [the pod app\'s connect() to echo]):');
  const pods = [...new Set(r.connections.map((c) => c.pod))];
  for (const m of r.modes) {
    const of = (pod: string, n: 1 | 2) => {
      const c = r.connections.find((x) => x.mode === m.mode && x.pod === pod && x.connection === n);
      return c ? (c.ok ? `${c.ms?.toFixed(1) ?? '?'}${c.syns !== undefined && c.syns > 1 ? ` (${c.syns} SYNs)` : ''} [app ${c.appMs.toFixed(1)}]` : `failed (${c.error ?? 'no echo'})`) : '-';
    };
    out.push(`  ${m.mode.padEnd(19)} ${pods.map((p) => `${p} ${of(p, 1)} / ${of(p, 2)}`).join(',  ')}`);
  }
  const problems = [...r.errors.map((e) => `${e.mode}: ${e.error}`), ...r.modes.flatMap((m) => m.problems.map((p) => `${m.mode}: ${p}`))];
  if (problems.length > 0) {
    out.push('');
    out.push('problems (these numbers may not measure what their mode says):');
    for (const p of problems) out.push(`  ${p}`);
  }
  const notes = formatNotes(r.notes);
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

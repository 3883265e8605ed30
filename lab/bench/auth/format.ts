// The auth benchmark's report as text (`mtless bench auth`).
import { formatGoals } from '../goal.ts';
import type { Distribution } from '../stats.ts';
import { formatNotes, table } from '../text.ts';
import type { AuthPairResult, BenchAuthReport } from './report.ts';

/** Client time after its SYN got through: the echo's round trip plus process start, normally a few ms. */
const SLOW_AFTER_SYN_MS = 500;
const lateAfterSyn = (r: AuthPairResult) => (r.synGapMs === undefined ? 0 : r.clientMs - r.synGapMs);

const fmt = (v: number | undefined) => (v === undefined ? '?' : v.toFixed(1));

export function formatBenchAuth(report: BenchAuthReport): string {
  const out: string[] = [];
  out.push(
    `auth benchmark: lab ${report.lab}, ${report.clients} clients (n1) × ${report.servers} servers (n2) = ${report.pairs} new identity pairs` +
      `${report.runs > 1 ? ` × ${report.runs} rounds` : ''}, ` +
      `TCP :${report.port}, policy mode ${report.policyMode}`,
  );
  out.push(
    `one connection per pair, started every ${report.intervalMs} ms, ≤ ${report.maxInFlight} waiting, each bounded to ${report.connectTimeoutMs} ms; ` +
      `kernel ${report.host.kernel}, ${report.host.cpus} CPU(s), load ${report.host.loadavg}, ${(report.backgroundBusy * 100).toFixed(0)} % CPU busy before (other jobs); took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('');
  const rows: string[][] = [['ms', 'n', 'min', 'p50', 'p90', 'p99', 'max', 'p50/floor', 'p99/floor']];
  const floor = report.floor?.p50;
  const x = (v: number) => (floor ? `${(v / floor).toFixed(2)}×` : '-');
  const add = (name: string, d: Distribution | undefined, dec = 2, ratios = true) =>
    rows.push(d ? [name, String(d.n), ...[d.min, d.p50, d.p90, d.p99, d.max].map((v) => v.toFixed(dec)), ratios ? x(d.p50) : '', ratios ? x(d.p99) : ''] : [name, '0', '-', '-', '-', '-', '-', '', '']);
  add('floor: bare TLS 1.3 mutual handshake (connect → server close)', report.floor);
  add('  its client side (connect → secureConnect)', report.floorClientHandshake);
  add('drop → entry (flow event → the entry in the map)', report.dropToEntry);
  add('  drop → signal at agent (auth-requested)', report.dropToSignal);
  add('  signal → entry (agent totalMs)', report.signalToEntry);
  add('    handshake (agent handshakeMs)', report.handshake);
  add('    after handshake (the entry write)', report.afterHandshake);
  // Only where the writer timed the entry (map-batch; not bpftool, not older reports).
  if (report.answer) add('then: the writer\'s answer reaches the agent', report.answer, 2, false);
  add('drop → forwarded SYN (flow events)', report.synGap, 0, false);
  add('new connection, client wall time', report.ttfbNew, 0, false);
  add('authenticated pair, client wall time', report.ttfbWarm, 1, false);
  out.push(...table(rows, { alignRight: (c) => c > 0 }));
  if (report.floorFailures > 0) out.push(`floor handshakes that failed: ${report.floorFailures}`);
  if (report.runs > 1) {
    out.push('');
    out.push('by round (ms, and over that round\'s floor p50):');
    const rr: string[][] = [['round', 'pairs', 'drop→entry p50', 'p99', 'handshake p50', 'floor p50', 'p50/floor', 'p99/floor', 'first retransmit']];
    const f = (v: number | undefined, unit = '') => (v === undefined ? '-' : `${v.toFixed(2)}${unit}`);
    for (const r of report.rounds) {
      rr.push([String(r.round + 1), String(r.pairs), f(r.dropToEntryP50), f(r.dropToEntryP99), f(r.handshakeP50), f(r.floorP50), f(r.p50Ratio, '×'), f(r.p99Ratio, '×'), `${r.firstRetransmit}/${r.pairs}`]);
    }
    out.push(...table(rr, { alignRight: (c) => c > 0 }).map((l) => `  ${l}`));
  }
  out.push('');
  const p = report.passedOn;
  out.push(
    `SYN that passed: first retransmit ${p.first}, second ${p.second}, later ${p.later}, never ${p.never}` +
      (p['not-dropped'] ? `, not dropped ${p['not-dropped']}` : ''),
  );
  out.push(`auth entries of the pairs in n2's map at the end: ${report.entriesInMap}/${report.pairs}; drops during second connections: ${report.warmDrops}`);
  const fails = Object.entries(report.failures);
  out.push(`auth failures logged by n2's agent: ${fails.length ? fails.map(([r, n]) => `${r} ×${n}`).join(', ') : 'none'}`);
  const slow = [...report.results].filter((r) => r.dropToEntryMs !== undefined).sort((a, b) => b.dropToEntryMs! - a.dropToEntryMs!).slice(0, 3);
  if (slow.length > 0) {
    out.push('slowest pairs (drop → signal / handshake / entry, ms):');
    for (const r of slow) {
      out.push(
        `  ${r.client}->${r.server} key ${r.key}: ${r.dropToEntryMs!.toFixed(0)} ` +
          `(${fmt(r.dropToSignalMs)} / ${fmt(r.handshakeMs)} / ${fmt(r.signalToEntryMs !== undefined && r.handshakeMs !== undefined ? r.signalToEntryMs - r.handshakeMs : undefined)})`,
      );
    }
  }
  const bad = report.results.filter((r) => r.passedOn !== 'first' || !r.clientOk || r.otherDrops.length > 0 || lateAfterSyn(r) > SLOW_AFTER_SYN_MS);
  if (bad.length > 0) {
    out.push(`pairs not passing on the first retransmit, failing, with other drops, or whose client finished > ${SLOW_AFTER_SYN_MS} ms after its SYN passed:`);
    for (const r of bad.slice(0, 10)) {
      out.push(
        `  ${r.client}->${r.server}: ${r.passedOn}, ${r.drops} SYN drop(s), SYN passed at ${fmt(r.synGapMs)} ms, client ${r.clientOk ? 'ok' : `failed (${r.error ?? '?'})`} ` +
          `in ${r.clientMs.toFixed(0)} ms${r.failures.length ? `, auth-failed: ${r.failures.join(', ')}` : ''}${r.otherDrops.length ? `, other drops: ${r.otherDrops.join('; ')}` : ''}`,
      );
    }
    if (bad.length > 10) out.push(`  … and ${bad.length - 10} more`);
  }
  out.push('');
  out.push(...formatGoals(report.goals));
  out.push(...formatNotes(report.notes));
  return out.join('\n');
}

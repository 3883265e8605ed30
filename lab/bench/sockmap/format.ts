// The sockmap benchmark's report as text (`mtless bench sockmap`).
import { formatSummary } from '../stats.ts';
import { columnWidths, table } from '../text.ts';
import type { SockmapBenchReport } from './report.ts';

export function formatSockmapBench(r: SockmapBenchReport): string {
  const out: string[] = [];
  out.push(
    `sockmap benchmark: same-node TCP, pod local -> pod client on n1; ${r.runs} paired run(s) of ${r.durationS} s per case, ` +
      `off/on interleaved; kernel ${r.host.kernel}, ${r.host.cpus} CPU(s); took ${(r.durationMs / 1000).toFixed(0)} s`,
  );
  out.push('values: min / median / max over runs; on/off: per-run ratio (RTT: < 1 is faster; throughput: > 1 is faster)');
  out.push('');
  const rows: string[][] = [['case', 'tool', 'metric', 'off', 'on', 'on/off', 'verdict']];
  for (const c of r.cases) {
    const dec = c.unit === 'µs' ? 1 : 2;
    rows.push([
      c.name,
      c.tool,
      `${c.metric} (${c.unit})`,
      c.offSummary ? formatSummary(c.offSummary, dec) : 'n/a',
      c.onSummary ? formatSummary(c.onSummary, dec) : 'n/a',
      c.ratio ? formatSummary(c.ratio, 2) : 'n/a',
      c.verdict,
    ]);
  }
  out.push(...table(rows));
  const caseWidth = columnWidths(rows)[0]!;
  out.push('');
  out.push('per run (off | on):');
  for (const c of r.cases) {
    const dec = c.unit === 'µs' ? 1 : 2;
    out.push(`  ${c.name.padEnd(caseWidth)}  ${c.off.map((s, i) => `${s.value.toFixed(dec)} | ${c.on[i]!.value.toFixed(dec)}`).join(',  ')}`);
  }
  const problems = r.cases.flatMap((c) => [...c.invalidRuns.map((x) => `${c.name}: ${x}`), ...c.errors.map((x) => `${c.name}: ${x}`)]);
  if (problems.length > 0) {
    out.push('');
    out.push('problems (these runs do not measure what their mode says):');
    for (const p of problems) out.push(`  ${p}`);
  }
  return out.join('\n');
}

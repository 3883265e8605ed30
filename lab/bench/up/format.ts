// The bring-up benchmark's report as text (`mtless bench up`).
import { formatGoals } from '../goal.ts';
import { formatSummary } from '../stats.ts';
import { indent, table } from '../text.ts';
import type { BenchUpReport, BuilderResult } from './report.ts';

export function formatBenchUp(report: BenchUpReport): string {
  const out: string[] = [];
  out.push(
    `bring-up benchmark: ${report.runs} run(s) per size and builder, kernel ${report.host.kernel}, ${report.host.cpus} CPU(s), ` +
      `took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('times in ms, min / median / max; ratios per run, min / median / max');
  out.push('');
  const rows: string[][] = [['size', 'builder', 'up ms', 'down ms']];
  const dec = (s: { median: number }) => (s.median < 100 ? 1 : 0);
  for (const s of report.sizes) {
    const size = `${s.nodes}×${s.podsPerNode} = ${s.pods}`;
    const builders: [string, BuilderResult][] = [
      ['lab', s.lab],
      ['floor', s.floor],
      ['mininet', s.mininet],
    ];
    builders.forEach(([name, r], i) => {
      rows.push([
        i === 0 ? size : '',
        name,
        r.up ? formatSummary(r.up, dec(r.up)) : 'n/a',
        r.down ? formatSummary(r.down, dec(r.down)) : '',
      ]);
    });
    rows.push(['', 'lab/floor', s.labOverFloor.up ? formatSummary(s.labOverFloor.up, 2) + ' ×' : 'n/a', s.labOverFloor.down ? formatSummary(s.labOverFloor.down, 2) + ' ×' : '']);
    rows.push(['', 'mininet/lab', s.mininetOverLab.up ? formatSummary(s.mininetOverLab.up, 1) + ' ×' : 'n/a', s.mininetOverLab.down ? formatSummary(s.mininetOverLab.down, 1) + ' ×' : '']);
    rows.push(['', '', '', '']);
  }
  out.push(...table(rows));

  out.push('mtless up by step (median ms; `other` = preflight, plan, state file):');
  const stepRows: string[][] = [['size', ...Object.keys(report.sizes[0]?.lab.steps ?? {})]];
  for (const s of report.sizes) {
    stepRows.push([`${s.pods} pods`, ...Object.keys(report.sizes[0]?.lab.steps ?? {}).map((k) => (s.lab.steps[k] ? s.lab.steps[k]!.median.toFixed(1) : '-'))]);
  }
  out.push(...table(stepRows).map((l) => '  ' + l));
  out.push('');
  out.push('pods per second (pods / median up time):');
  const pps = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(0));
  const ppsRows: string[][] = [['size', 'lab', 'floor', 'mininet']];
  for (const s of report.sizes) ppsRows.push([`${s.pods} pods`, pps(s.podsPerSecond?.lab), pps(s.podsPerSecond?.floor), pps(s.podsPerSecond?.mininet)]);
  out.push(...table(ppsRows, { alignRight: (c) => c > 0 }).map((l) => '  ' + l));
  out.push('');

  if (!report.mininet.available) out.push(`mininet could not run here:\n${indent(report.mininet.error ?? 'unknown error')}`);
  for (const s of report.sizes) {
    for (const [name, r] of [['lab', s.lab], ['floor', s.floor], ['mininet', s.mininet]] as const) {
      if (r.error && !(name === 'mininet' && !report.mininet.available)) out.push(`${name} at ${s.pods} pods failed:\n${indent(r.error)}`);
    }
  }
  if (report.mininet.leftovers.length > 0) out.push(`mininet left things behind:\n${indent(report.mininet.leftovers.join('\n'))}`);

  out.push(...formatGoals(report.goals));
  return out.join('\n');
}

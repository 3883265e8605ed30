// The text of `mtless bench cli`.
import { formatSummary } from '../stats.ts';
import { formatGoals } from '../goal.ts';
import { table } from '../text.ts';
import { CLI_CASES, checkCliGoals, summarizeCase, type CliBenchReport } from './report.ts';

export function formatBenchCli(r: CliBenchReport): string {
  const rows = [['case', 'command', 'ms', 'node -e 0 ms', 'ratio']];
  for (const c of CLI_CASES) {
    if (r.samples[c].length === 0) continue;
    const s = summarizeCase(r.samples[c]);
    rows.push([c, r.commands[c], formatSummary(s.ms), formatSummary(s.floorMs), `${formatSummary(s.ratio, 2)} ×`]);
  }
  return [
    `cli benchmark: ${r.runs} run(s) per case, each right after the floor (node -e 0), ${r.machine.cpus} CPU(s), kernel ${r.machine.kernel}, node ${r.machine.node}, took ${(r.tookMs / 1000).toFixed(1)} s`,
    `load average before: ${r.machine.loadavgBefore}, after: ${r.machine.loadavgAfter}`,
    'times in ms, min / median / max; ratios per run, min / median / max',
    '',
    ...table(rows),
    '',
    ...formatGoals(checkCliGoals(r)),
  ].join('\n');
}

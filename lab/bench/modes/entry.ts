// The modes benchmark as `bench all` runs it (lab/bench/entry.ts).
import { prefixedLabName } from '../../core/names.ts';
import type { BenchEntry } from '../entry.ts';
import { formatBenchModes } from './format.ts';
import type { BenchModesReport } from './report.ts';
import { benchModes } from './run.ts';
import { MODES_LAB } from './topology.ts';

export const MODES_BENCH: BenchEntry<BenchModesReport> = {
  what: 'modes',
  lab: MODES_LAB,
  run: ({ runs, name, log, signal }) => benchModes({ rounds: runs, name: prefixedLabName(name, MODES_LAB), log, signal }),
  format: formatBenchModes,
};

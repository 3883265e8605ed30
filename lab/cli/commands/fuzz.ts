// `mtless fuzz`: see lab/cli/table.ts for its summary. Each target builds a
// throwaway node (namespace, veths, the datapath and the target's objects
// pinned under a lab named fuzz-<pid>), runs the cases, and removes it all
// again, also on Ctrl-C (exit 130). Exit 1 when any case mismatched.
import type { FuzzReport } from '../../fuzz/loop.ts';
import { requireRoot, UsageError, type Command } from '../command.ts';
import { listenForInterrupt } from '../../core/interrupt.ts';

const TARGETS = ['datapath', 'overlay', 'strict'] as const;
type Target = (typeof TARGETS)[number];

function count(value: string | boolean | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`fuzz: --${name} must be an integer >= ${min}, got "${String(value)}"`);
  return n;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}` : x), 2);

export const command: Command = {
  options: {
    cases: { type: 'string' },
    seed: { type: 'string' },
    from: { type: 'string' },
    group: { type: 'string' },
    explain: { type: 'string' },
    'no-shrink': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  run: async ([target, extra], v) => {
    if (!TARGETS.includes(target as Target)) throw new UsageError(`fuzz: expected ${TARGETS.join(', ')}${target ? `, got "${target}"` : ''}`);
    if (extra) throw new UsageError(`fuzz: unexpected argument "${extra}"`);
    const cases = count(v.cases, 'cases', 1000);
    const from = count(v.from, 'from', 0, 0);
    const groupSize = count(v.group, 'group', 250);
    const explain = count(v.explain, 'explain', 5, 0);
    if (v.seed !== undefined && !/^\d+$/.test(String(v.seed))) throw new UsageError(`fuzz: --seed must be a number from 0 to ${0xffffffff}`);
    const seedArg = v.seed === undefined ? undefined : Number(v.seed);
    if (seedArg !== undefined && seedArg > 0xffffffff) throw new UsageError(`fuzz: --seed must be a number from 0 to ${0xffffffff}`);
    requireRoot('fuzz');

    const [{ FuzzNode }, loop, { freshSeed }] = await Promise.all([import('../../fuzz/node.ts'), import('../../fuzz/loop.ts'), import('../../fuzz/prng.ts')]);
    const seed = seedArg ?? freshSeed();
    const log = (line: string) => process.stderr.write(`${line}\n`);
    log(`fuzz ${target}: seed ${seed}, ${cases} cases from ${from} (again: mtless fuzz ${target} --seed ${seed} --cases ${cases}${from ? ` --from ${from}` : ''})`);

    const abort = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => {
      if (abort.signal.aborted) return;
      log(`\n${sig}: finishing the current batch, then removing the fuzz node…`);
      abort.abort();
    };
    const stopListening = listenForInterrupt(onSignal);
    try {
      const node = await FuzzNode.create({ lab: `fuzz-${process.pid}` });
      let report: FuzzReport<unknown>;
      try {
        const opts = { cases, seed, from, groupSize, explain, shrink: !v['no-shrink'], log: v.json ? undefined : log, signal: abort.signal };
        if (target === 'datapath') report = await (await import('../../fuzz/run.ts')).fuzzDatapath(node, opts);
        else if (target === 'overlay') report = await (await import('../../fuzz/overlay.ts')).fuzzOverlay(node, opts);
        else report = await (await import('../../fuzz/strict.ts')).fuzzStrict(node, opts);
      } finally {
        await node.close();
      }
      if (v.json) {
        const { mismatches, ...rest } = report;
        console.log(json({
          ...rest,
          mismatches: mismatches.map((m) => ({
            index: m.index, reproducedAlone: m.reproducedAlone, shrinkSteps: m.shrinkSteps, diffs: (m.minimal ?? m).diffs, text: (m.minimal ?? m).text,
          })),
        }));
      } else {
        for (const m of report.mismatches) console.log(loop.formatMismatch(m).join('\n'));
        if (report.mismatchCount > report.mismatches.length) console.log(`… and ${report.mismatchCount - report.mismatches.length} more mismatching cases (--explain N shows more)`);
        const reached = Object.entries(report.coverage).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`);
        console.log(`reached: ${reached.join(', ')}`);
        console.log(loop.formatSummary(report));
      }
      if (report.interrupted) return 130;
      return report.mismatchCount ? 1 : 0;
    } finally {
      stopListening();
    }
  },
};

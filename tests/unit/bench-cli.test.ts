// The pure parts of `mtless bench cli`: the step time read from `up`'s
// progress lines, the per-case summaries and the goal verdicts.
import t from 'tap';
import { checkCliGoals, parseStepMs, summarizeCase, type CliBenchReport } from '../../lab/bench/cli/report.ts';

t.test('parseStepMs reads a step from up\'s progress lines, on a terminal or not', async (t) => {
  const piped = '  namespaces       21 ms\n  datapath        410 ms\n  control         350 ms\n  agents         1234 ms\n';
  t.equal(parseStepMs(piped, 'agents'), 1234);
  t.equal(parseStepMs(piped, 'datapath'), 410);
  // On a TTY the step line is first written with "…" and then rewritten after \r.
  t.equal(parseStepMs('  agents       …\r  agents          987 ms\n', 'agents'), 987);
  t.equal(parseStepMs(piped, 'wireguard'), undefined);
});

const report = (help: number[], floor: number[], exec: number[], up: number[]): CliBenchReport => ({
  machine: { kernel: 'k', cpus: 2, node: 'v20', loadavgBefore: '', loadavgAfter: '' },
  runs: help.length,
  commands: { help: 'bin/mtless --help', validate: 'v', exec: 'e', up: 'u' },
  samples: {
    help: help.map((ms, i) => ({ ms, floorMs: floor[i]! })),
    validate: [],
    exec: exec.map((ms, i) => ({ ms, floorMs: floor[i]! })),
    up: up.map((ms, i) => ({ ms, floorMs: floor[i]! })),
  },
  agentsStepMs: up.map((ms) => ms / 2),
  tookMs: 1,
});

t.test('summaries pair each run with its own floor', async (t) => {
  const s = summarizeCase([{ ms: 100, floorMs: 50 }, { ms: 90, floorMs: 30 }, { ms: 200, floorMs: 40 }]);
  t.same([s.ms.min, s.ms.median, s.ms.max], [90, 100, 200]);
  t.same([s.ratio.min, s.ratio.median, s.ratio.max], [2, 3, 5]);
});

t.test('goals: help needs both the absolute and the ratio bound', async (t) => {
  const ok = checkCliGoals(report([100, 110, 120], [40, 40, 40], [200, 210, 220], [2000, 2100, 2200]));
  t.same([ok.help.holds, ok.exec.holds, ok.up.holds], [true, true, true]);
  const slowRatio = checkCliGoals(report([100, 110, 120], [20, 20, 20], [300, 300, 300], [3000, 3000, 3000]));
  t.equal(slowRatio.help.holds, false, 'fast but 5.5× the floor is missed');
  t.equal(slowRatio.exec.holds, false);
  t.equal(slowRatio.up.holds, false);
  t.match(slowRatio.up.detail, /agents step 1500 ms/);
  const unmeasured = checkCliGoals(report([100], [40], [], []));
  t.equal(unmeasured.exec.holds, undefined, 'no exec sample: not measured');
});

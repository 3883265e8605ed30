// `mtless bench up --name PREFIX`: the three builders (lab, floor, mininet)
// build under PREFIX-bench-up, PREFIX-bench-floor and PREFIX-bench-mn, so two
// runs side by side never meet; a leftover of the prefixed names is refused
// by name. One tiny size, one run, no wait for a quiet host: this checks
// names, not times.
import t from 'tap';
import { watch } from 'node:fs';
import { benchUp } from '../../lab/bench/up/run.ts';
import { benchUpLabs } from '../../lab/bench/up/topology.ts';
import { labNetnsPrefix } from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import { labCli, labLeftovers, needsRoot } from '../helpers/kernel.ts';

const PREFIXES = ['t-bu1', 't-bu2'];
const SIZE = { nodes: 1, podsPerNode: 2 };

t.test('bench up --name PREFIX', { skip: needsRoot }, async (t) => {
  const labs = PREFIXES.map((p) => benchUpLabs(p));
  t.same(labs[0], { lab: 't-bu1-bench-up', floor: 't-bu1-bench-floor', mininet: 't-bu1-bench-mn' }, 'the builders\' names under a prefix');
  const all = labs.flatMap((l) => [l.lab, l.floor, l.mininet]);
  try {
    await t.test('a leftover of a prefixed name is refused by that name, and nothing is built', async (t) => {
      const stray = `${labNetnsPrefix(labs[0]!.floor)}stray`;
      await run(['ip', 'netns', 'add', stray]);
      try {
        await t.rejects(benchUp({ runs: 1, sizes: [SIZE], prefix: PREFIXES[0], waitForIdle: false }), /left objects behind \(t-bu1-bench-floor\): run `mtless down t-bu1-bench-floor` first/);
      } finally {
        await run(['ip', 'netns', 'delete', stray]);
      }
      t.same((await labLeftovers(labs[0]!.lab)).concat(await labLeftovers(labs[0]!.mininet)), [], 'nothing of the other builders was made');
    });

    await t.test('two runs side by side, each under its own names', async (t) => {
      // Every namespace made meanwhile, as the kernel names it.
      const seen = new Set<string>();
      const watcher = watch('/run/netns', (_, file) => file && seen.add(String(file)));
      let reports;
      try {
        reports = await Promise.all(PREFIXES.map((prefix) => benchUp({ runs: 1, sizes: [SIZE], prefix, waitForIdle: false })));
      } finally {
        watcher.close();
      }
      reports.forEach((r, i) => {
        const s = r.sizes[0]!;
        for (const builder of ['lab', 'floor', 'mininet'] as const) {
          t.equal(s[builder].upMs.length, 1, `${PREFIXES[i]}: ${builder} built ${s.pods} pods once${s[builder].error ? ` (${s[builder].error})` : ''}`);
        }
      });
      for (const name of all) {
        const made = [...seen].filter((ns) => ns.startsWith(labNetnsPrefix(name)));
        t.ok(made.length > 0, `${name}: its namespaces were made (${made.length}, e.g. ${made[0]})`);
      }
    });

    await t.test('the CLI takes --name for bench up; a bad prefix is a usage error', async (t) => {
      const bad = await labCli(['bench', 'up', '--name', 'Bad_Prefix']);
      t.equal(bad.exitCode, 2, String(bad.all));
      t.notMatch(String(bad.all), /not supported/);
    });
  } finally {
    for (const name of all) t.same(await labLeftovers(name), [], `${name}: nothing left`);
  }
});

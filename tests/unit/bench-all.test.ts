// `mtless bench all`'s file (lab/bench/all.ts): each benchmark's report under
// its name, failures in `errors`, the machine and load beside them; the keys
// the report reads (lab/report/gather.ts) are the benchmarks' names. No root.
import t from 'tap';
import { BENCH_ALL_ORDER, benchAllFile, machineFacts } from '../../lab/bench/all.ts';

t.test('the file: reports by name, errors apart, the run described', async (t) => {
  const f = benchAllFile({
    startedAt: new Date('2026-12-02T15:00:00Z'), finishedAt: new Date('2026-12-02T15:10:00Z'),
    machine: { kernel: '6.18', cpus: 2, cpuModel: 'x', memoryBytes: 1, node: 'v20' },
    load: { before: '1.0 0.5 0.2', after: '2.0 1.0 0.5', busyBefore: 0.1 },
    options: { runs: 2 },
    results: [{ name: 'auth', report: { pairs: 100 } }, { name: 'up', error: 'mininet exploded' }],
  });
  t.equal(f.kind, 'mtless-bench-all');
  t.equal(f.durationMs, 600_000);
  t.same(f.ran, ['auth', 'up']);
  t.same(f.auth, { pairs: 100 });
  t.equal(f.up, undefined, 'a failed benchmark has no report');
  t.same(f.errors, { up: 'mininet exploded' });
  t.same(f.options, { runs: 2 });
});

t.test('every benchmark once; quick ones first, bring-up last', async (t) => {
  t.same([...BENCH_ALL_ORDER].sort(), ['auth', 'cli', 'datapath', 'modes', 'sockmap', 'up']);
  t.equal(BENCH_ALL_ORDER.at(-1), 'up');
  const m = machineFacts();
  t.ok(m.cpus >= 1 && m.memoryBytes > 0 && m.node.startsWith('v'));
});

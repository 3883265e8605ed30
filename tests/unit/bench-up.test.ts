// The bring-up benchmark's pure parts: the generated topologies, the floor's
// ip-batch files and driver (lab/bench/up/floor.ts), mininet's result line,
// the per-size summaries and the goals (lab/bench/up/report.ts). No root.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allNetns, fabricLines, managementLines, nodeLines, podLines } from '../../lab/core/batches.ts';
import { planLab } from '../../lab/core/plan.ts';
import { validateTopology } from '../../lab/topology/validate.ts';
import { floorBatches, floorScript } from '../../lab/bench/up/floor.ts';
import { parseMininetResult } from '../../lab/bench/up/mininet.ts';
import { checkGoals, sizeReport, type BenchUpReport, type BuilderResult, type LabRuns, type SizeReport } from '../../lab/bench/up/report.ts';
import { benchTopology, DEFAULT_SIZES, FLOOR_LAB, parseBenchSizes } from '../../lab/bench/up/topology.ts';

t.test('the generated topologies are valid and as large as they say', async (t) => {
  t.same(DEFAULT_SIZES.map((s) => s.nodes * s.podsPerNode), [4, 100, 500, 2000]);
  for (const size of DEFAULT_SIZES) {
    const topo = benchTopology(size);
    t.same(validateTopology(topo), [], `${size.nodes}×${size.podsPerNode} validates`);
    t.equal(topo.nodes.flatMap((n) => n.pods).length, size.nodes * size.podsPerNode);
    t.equal(topo.policies.length, 0);
  }
  t.same(benchTopology({ nodes: 2, podsPerNode: 2 }).nodes.map((n) => n.pods.map((p) => p.name)), [['n1p1', 'n1p2'], ['n2p1', 'n2p2']]);
});

t.test('floor batches: the very lines up sends, one file per namespace', async (t) => {
  const plan = planLab(benchTopology({ nodes: 2, podsPerNode: 2 }, FLOOR_LAB), FLOOR_LAB);
  const f = floorBatches(plan);
  t.same(f.allNetns, allNetns(plan));
  t.equal(f.allNetns.length, 1 + 1 + 2 + 4, 'fabric, management, 2 nodes, 4 pods');
  t.same(f.batches['netns-add.batch'], f.allNetns.map((ns) => `netns add ${ns}`));
  t.same(f.batches['fabric.batch'], fabricLines(plan));
  t.same(f.batches['mgmt.batch'], managementLines(plan));
  plan.nodes.forEach((n, i) => t.same(f.batches[`node-${i}.batch`], nodeLines(plan, n), `node-${i}.batch is ${n.name}'s lines`));
  const pods = plan.nodes.flatMap((n) => n.pods);
  for (const p of pods) t.same(f.batches[`pod-${p.name}.batch`], podLines(plan.topology.addressing.podCIDR, p));
  t.same(f.podArgs, pods.map((p) => `-n ${p.netns} -batch pod-${p.name}.batch`), 'one xargs line per pod, in plan order');
  t.equal(Object.keys(f.batches).length, 3 + 2 + 4);
  t.match(f.batches['pod-n1p1.batch']!.join('\n'), /addr add 10\.244\.0\.2\/32 dev eth0/);
});

t.test('floor driver: fabric ∥ management, then the nodes, then the pods', async (t) => {
  const plan = planLab(benchTopology({ nodes: 2, podsPerNode: 2 }, FLOOR_LAB), FLOOR_LAB);
  const sh = floorScript(plan, "/tmp/it's here");
  t.equal(sh[0], 'set -e');
  t.equal(sh[1], `cd '/tmp/it'\\''s here'`, 'the directory is quoted for sh');
  const at = (re: RegExp) => sh.findIndex((l) => re.test(l));
  t.ok(at(/^ip -batch netns-add\.batch$/) < at(/fabric\.batch &/), 'namespaces first');
  t.ok(at(/^wait \$f; wait \$m$/) < at(/node-0\.batch &/), 'the networks before the nodes');
  t.equal(sh.filter((l) => /sysctl -qw net\.ipv4\.ip_forward=1 & s\d=\$!$/.test(l)).length, 2, 'forwarding on in each node, alongside its batch');
  t.match(sh.join('\n'), /nsenter --net=\/run\/netns\/mtl_bench-floor_n_n1 -- sysctl/);
  t.equal(sh.at(-1), 'xargs -P 4 -L 1 ip < pods.args', 'the pods last, 4 at a time');
});

t.test("mininet's result line", async (t) => {
  const out = 'some mininet chatter\n{"upMs": 10696.2, "hosts": 100, "switches": 5, "downMs": 6196.1}\n';
  t.same(parseMininetResult(out, '', 100), { upMs: 10696.2, downMs: 6196.1, hosts: 100 });
  t.throws(() => parseMininetResult(out, '', 500), /mininet built 100 hosts, expected 500/);
  t.throws(() => parseMininetResult('{"hosts": 4}', '', 4), /mininet result incomplete/);
  t.throws(() => parseMininetResult('', 'Traceback (most recent call last):\nImportError: No module named mininet', 4), /mininet printed no result: Traceback[\s\S]*ImportError/);
});

const labRuns = (upMs: number[]): LabRuns => ({ upMs, downMs: upMs.map((x) => x / 10), stepRuns: upMs.map((x) => ({ netns: x / 2, links: x / 4 })) });
const builder = (upMs: number[]): BuilderResult => ({ upMs, downMs: upMs.map((x) => x / 10) });

t.test('per-size summaries and ratios', async (t) => {
  const s = sizeReport({ nodes: 10, podsPerNode: 50 }, labRuns([6000, 4000]), builder([3000, 4000]), builder([90_000, 100_000]));
  t.equal(s.pods, 500);
  t.same(s.lab.up, { min: 4000, median: 5000, max: 6000, n: 2 });
  t.same(Object.keys(s.lab.steps), ['netns', 'links']);
  t.same(s.lab.steps.netns, { min: 2000, median: 2500, max: 3000, n: 2 });
  t.same(s.labOverFloor.up, { min: 1, median: 1.5, max: 2, n: 2 });
  t.same(s.mininetOverLab.up, { min: 15, median: 20, max: 25, n: 2 });
  const partial = sizeReport({ nodes: 2, podsPerNode: 2 }, labRuns([200, 220]), builder([100, 100]), { ...builder([1000]), error: 'boom' });
  t.same(partial.mininetOverLab, {}, 'a mininet run failed: no pairing');
  t.equal(partial.mininet.up?.n, 1);
  t.equal(partial.mininet.error, 'boom');
  t.same(sizeReport({ nodes: 1, podsPerNode: 1 }, labRuns([5]), builder([5]), builder([])).mininet, { upMs: [], downMs: [] }, 'no runs, no summaries');
});

t.test('goals: holds, MISSED and NOT MEASURED', async (t) => {
  const size = (pods: number, lab: number[], floor: number[], mn: number[]): SizeReport =>
    sizeReport({ nodes: pods / 2, podsPerNode: 2 }, labRuns(lab), builder(floor), builder(mn));
  const good = checkGoals([size(4, [200], [150], [2000]), size(500, [2900, 3100], [3000, 3000], [90_000, 95_000])]);
  t.equal(good.bigAtFloor.holds, true);
  t.equal(good.bigAtFloor.detail, '1.00× (min 0.97, max 1.03), 0 % under');
  t.equal(good.smallNearFloor.holds, true);
  t.equal(good.smallNearFloor.detail, '1.33× (min 1.33, max 1.33), 11 % under');
  t.equal(good.fasterThanMininet.holds, true);
  t.equal(good.fasterThanMininet.detail, '4 pods: 10.0×, 500 pods: 30.8×');

  const bad = checkGoals([size(4, [400], [150], [2000]), size(500, [3300], [3000], [12_000])]);
  t.equal(bad.bigAtFloor.holds, false, 'over 1.0× the floor at 500 pods misses');
  t.equal(bad.bigAtFloor.detail, '1.10× (min 1.10, max 1.10), 10 % over');
  t.equal(bad.smallNearFloor.holds, false, 'over 1.5× at 4 pods misses');
  t.equal(bad.fasterThanMininet.holds, false, 'under 8× misses');

  const noBig = checkGoals([size(4, [200], [150], [])]);
  t.equal(noBig.bigAtFloor.holds, undefined);
  t.equal(noBig.bigAtFloor.detail, 'no 500-pod size measured');
  t.equal(noBig.fasterThanMininet.holds, undefined, 'mininet never ran');
  t.equal(noBig.fasterThanMininet.detail, 'mininet not measured');
  const someMn = checkGoals([size(4, [200], [150], [2000]), size(100, [1000], [900], [])]);
  t.equal(someMn.fasterThanMininet.holds, false, 'a size without mininet fails "every size"');
  t.equal(checkGoals([]).smallNearFloor.holds, undefined);
});

t.test('pods per second, from each builder\'s median', async (t) => {
  const s = sizeReport({ nodes: 10, podsPerNode: 200 }, labRuns([2000, 2000]), builder([4000, 4000]), builder([]));
  t.same(s.podsPerSecond, { lab: 1000, floor: 500 }, 'no mininet runs, no rate');
});

t.test("a real run's sizes re-derive from its runs", async (t) => {
  const r = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/bench/up-report.json'), 'utf8')) as BenchUpReport;
  for (const s of r.sizes) {
    // The report keeps each step's summary, not its runs: re-derive the rest, and the steps from their medians.
    const stepRuns = [Object.fromEntries(Object.entries(s.lab.steps).map(([k, v]) => [k, v.median]))];
    const again = sizeReport(s, { upMs: s.lab.upMs, downMs: s.lab.downMs, stepRuns }, { upMs: s.floor.upMs, downMs: s.floor.downMs }, { upMs: s.mininet.upMs, downMs: s.mininet.downMs });
    t.same({ ...again, lab: { ...again.lab, steps: {} }, mininet: { ...again.mininet, error: s.mininet.error } }, { ...s, lab: { ...s.lab, steps: {} } }, `${s.pods} pods`);
    t.same(Object.fromEntries(Object.entries(again.lab.steps).map(([k, v]) => [k, v.median])), Object.fromEntries(Object.entries(s.lab.steps).map(([k, v]) => [k, v.median])), `${s.pods} pods: step medians`);
  }
  t.same(checkGoals(r.sizes), r.goals);
});

t.test('--sizes: NODESxPODS, comma-separated; anything else refused with what was wrong', async (t) => {
  t.same(parseBenchSizes('2x2,4x25'), [{ nodes: 2, podsPerNode: 2 }, { nodes: 4, podsPerNode: 25 }]);
  t.same(parseBenchSizes(' 10 × 200 '), [{ nodes: 10, podsPerNode: 200 }], 'spaces and × as in the report');
  t.throws(() => parseBenchSizes('2x'), /not a size .*"2x"/);
  t.throws(() => parseBenchSizes('2x2,,4x4'), /not a size/);
  t.throws(() => parseBenchSizes('0x2'), /out of range/);
  t.throws(() => parseBenchSizes('2x251'), /out of range/);
});

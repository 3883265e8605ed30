// Differential fuzzing of the BPF programs against their reference models
// (lab/fuzz): datapath.c with 20,000 cases of a fixed seed and a short run
// of a fresh seed (printed, so a failure can be repeated with
// `mtless fuzz datapath --seed S --cases N`), overlay.c and strict.c with
// smaller runs, and proof that the fuzzer can fail: a model with one rule
// broken must mismatch, shrunk to a minimal input. Needs root. Everything
// lives under a test-only lab name ("t-fuzz"): one throwaway node namespace
// and one pin folder, removed in teardown, which also checks that the
// programs are gone.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { labBpffsDir, nodeNetns } from '../../lab/core/names.ts';
import { caseSize, type DatapathCase } from '../../lab/fuzz/generate.ts';
import { formatMismatch, formatSummary, type FuzzReport } from '../../lab/fuzz/loop.ts';
import { DROP_INVALID_IDENTITY, DROP_UNENCRYPTED_TRAFFIC, VXLAN_PORT } from '../../lab/abi/generated.ts';
import { modelDatapath } from '../../lab/fuzz/model.ts';
import { FuzzNode } from '../../lab/fuzz/node.ts';
import { fuzzOverlay } from '../../lab/fuzz/overlay.ts';
import { modelFromOverlay } from '../../lab/fuzz/overlay-model.ts';
import { freshSeed } from '../../lab/fuzz/prng.ts';
import { fuzzDatapath } from '../../lab/fuzz/run.ts';
import { fuzzStrict } from '../../lab/fuzz/strict.ts';
import { modelStrict } from '../../lab/fuzz/strict-model.ts';
import { LAB_CLI, labCli, needsRoot } from '../helpers/kernel.ts';
import { expectProgramsGone, progId } from '../helpers/progrun.ts';

const LAB = 't-fuzz';
/** The seed of the long runs: fixed, so they test the same 20,000 cases every time. */
const SEED = 20251202;

let node: FuzzNode | undefined;

/** Ids of the programs pinned under a folder (the fuzz node's datapath, overlay, strict and harness objects). */
async function pinnedProgIds(dir: string): Promise<number[]> {
  const pins = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && /\/progs$/.test(e.parentPath))
    .map((e) => join(e.parentPath, e.name));
  return Promise.all(pins.map(progId));
}

t.before(async () => {
  if (needsRoot) return;
  node = await FuzzNode.create({ lab: LAB });
});

// Assertions after the tests run as a test of their own (the root test has
// ended by teardown time); teardown only closes what a failure left open.
t.teardown(async () => {
  await node?.close();
});

/** The run's summary and any mismatch (its minimal input) in the test output; 0 mismatches. */
function report<C>(t: Test, r: FuzzReport<C>, cases: number): void {
  t.comment(formatSummary(r as FuzzReport<unknown>));
  for (const m of r.mismatches) t.comment(formatMismatch(m).join('\n'));
  t.equal(r.cases, cases, 'every case ran');
  t.equal(r.mismatchCount, 0, 'no case mismatched');
  t.same(r.leftovers, [], 'no case left a map entry behind');
}

t.test('datapath: 20,000 cases of a fixed seed agree with the model', { skip: needsRoot }, async (t) => {
  const r = await fuzzDatapath(node!, { cases: 20_000, seed: SEED });
  report(t, r, 20_000);
  // The kernel, not only the model, went down every path.
  const reached = Object.keys(r.coverage);
  for (const want of ['pass', 'signal', 'ct created', 'ct refreshed', 'event, ct status 0', 'event, ct status 1', 'policy hit', ...[132, 133, 134, 139, 165, 181, 189, 197].map((d) => `drop ${d}`)]) {
    t.ok(reached.includes(want), `reached ${want}`);
  }
});

t.test('datapath: a fresh seed', { skip: needsRoot }, async (t) => {
  const seed = freshSeed();
  t.comment(`fresh seed ${seed}: mtless fuzz datapath --seed ${seed} --cases 500 repeats this run`);
  report(t, await fuzzDatapath(node!, { cases: 500, seed }), 500);
});

t.test('overlay: a fixed seed and a fresh one agree with the models', { skip: needsRoot }, async (t) => {
  const fixed = await fuzzOverlay(node!, { cases: 3000, seed: SEED });
  report(t, fixed, 3000);
  for (const want of ['to-overlay: into the tunnel', 'to-overlay: drop 160', `from-overlay: drop ${DROP_INVALID_IDENTITY}`, 'from-overlay: identity mark', 'from-overlay: VNI 0']) {
    t.ok(fixed.coverage[want], `reached ${want}`);
  }
  const seed = freshSeed();
  t.comment(`fresh seed ${seed}: mtless fuzz overlay --seed ${seed} --cases 300 repeats this run`);
  report(t, await fuzzOverlay(node!, { cases: 300, seed }), 300);
});

t.test('strict: a fixed seed and a fresh one agree with the model', { skip: needsRoot }, async (t) => {
  const fixed = await fuzzStrict(node!, { cases: 3000, seed: SEED });
  report(t, fixed, 3000);
  t.ok(fixed.coverage[`drop ${DROP_UNENCRYPTED_TRAFFIC}`], 'reached drop 195');
  t.ok(fixed.coverage[`drop ${DROP_UNENCRYPTED_TRAFFIC} inside VXLAN`], 'reached drop 195 inside VXLAN');
  const seed = freshSeed();
  t.comment(`fresh seed ${seed}: mtless fuzz strict --seed ${seed} --cases 300 repeats this run`);
  report(t, await fuzzStrict(node!, { cases: 300, seed }), 300);
});

t.test('the fuzzer can fail: a model with one rule broken mismatches, shrunk to a minimal input', { skip: needsRoot }, async (t) => {
  // Broken: established connections pass in every policy mode (per-packet mode re-checks them).
  const r = await fuzzDatapath(node!, {
    cases: 500, seed: 3, explain: 1,
    model: (input) => modelDatapath({ ...input, maps: { ...input.maps, policyMode: 1n } }),
  });
  t.ok(r.mismatchCount > 0, `${r.mismatchCount} mismatches`);
  const m = r.mismatches[0]!;
  t.ok(m.reproducedAlone, 'the mismatch happens alone too');
  t.ok(m.minimal, 'shrunk');
  t.ok(caseSize(m.minimal!.case as DatapathCase) < caseSize(m.case as DatapathCase), 'to a smaller case');
  const text = formatMismatch(m).join('\n');
  t.comment(text);
  t.match(text, /minimal input after \d+ shrink steps/);
  t.match(text, /packet \(\d+ bytes\): [0-9a-f]+/, 'the packet in hex');
  t.match(text, /ct \{"saddr"/, 'the map state');
  t.match(text, /model: .*established \(connection mode\), passes/, 'the model took the broken rule');
  // Which case the shrinker ends on depends on the seed's stream: the kernel either
  // dropped the packet at policy or let policy count it; both show the rule.
  t.match(text, /expected: retval 0/);
  t.match(text, /differs: (retval: expected 0, got 2|policy \{[^}]*\}: expected .*"packets":"0".*, got .*"packets":"1")/, 'the kernel met policy where the model did not');

  // Broken: a VNI claiming the host passes like any other.
  const overlay = await fuzzOverlay(node!, {
    cases: 400, seed: 3, explain: 1,
    fromOverlayModel: (input) => modelFromOverlay(input.tunnel && (input.tunnel.vni & 0xffffff) === 1 ? { ...input, tunnel: { ...input.tunnel, vni: 2 } } : input),
  });
  t.ok(overlay.mismatchCount > 0, `overlay: ${overlay.mismatchCount} mismatches`);
  t.match(formatMismatch(overlay.mismatches[0]!).join('\n'), /VNI \d+ from/);

  // Broken: strict mode ignores what rides inside VXLAN.
  const strict = await fuzzStrict(node!, {
    cases: 600, seed: 3, explain: 1,
    model: (input) => (input.packet.length > 42 && input.packet.readUInt16BE(36) === VXLAN_PORT ? modelStrict({ ...input, config: { net: '0.0.0.0', mask: '0.0.0.0' } }) : modelStrict(input)),
  });
  t.ok(strict.mismatchCount > 0, `strict: ${strict.mismatchCount} mismatches`);
  t.match(formatMismatch(strict.mismatches[0]!).join('\n'), /differs: retval: expected 0, got 2/);
});

t.test('mtless fuzz prints cases, mismatches, seed and time, and removes its node', { skip: needsRoot }, async (t) => {
  const run = labCli(['fuzz', 'strict', '--cases', '300', '--seed', '7']);
  const pid = run.pid;
  const r = await run;
  t.equal(r.exitCode, 0, r.all);
  t.match(r.stdout, /^fuzz strict: 300 cases, seed 7, 0 mismatches, [\d.]+ s/m);
  t.match(r.stdout, /reached: .*drop 195/);
  t.match(r.stderr, /mtless fuzz strict --seed 7 --cases 300/, 'the command that repeats the run');
  t.notOk(existsSync(labBpffsDir(`fuzz-${pid}`)), 'its pin folder is gone');
  t.notOk(existsSync(`/run/netns/${nodeNetns(`fuzz-${pid}`, 'n1')}`), 'its namespace is gone');
  const usage = await labCli(['fuzz', 'everything']);
  t.equal(usage.exitCode, 2);
  t.match(usage.stderr, /expected datapath, overlay, strict/);
});

t.test('a closed output pipe stops mtless fuzz like Ctrl-C: it still removes its node', { skip: needsRoot }, async (t) => {
  // `mtless fuzz … 2>&1 | head -1`: the reader goes away after the first line.
  const child = spawn(LAB_CLI, ['fuzz', 'datapath', '--cases', '20000', '--seed', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const first = await new Promise<string>((resolve) => child.stderr!.once('data', (d: Buffer) => resolve(String(d))));
  t.match(first, /^fuzz datapath: seed 1/);
  child.stdout!.destroy();
  child.stderr!.destroy();
  t.equal(await exited, 130, 'stopped as interrupted, not killed by the closed pipe');
  t.notOk(existsSync(labBpffsDir(`fuzz-${child.pid}`)), 'its pin folder is gone');
  t.notOk(existsSync(`/run/netns/${nodeNetns(`fuzz-${child.pid}`, 'n1')}`), 'its namespace is gone');
});

t.test('the throwaway node leaves nothing behind', { skip: needsRoot }, async (t) => {
  // Only this file's programs: others may load theirs meanwhile.
  const ours = await pinnedProgIds(labBpffsDir(LAB));
  t.ok(ours.length >= 4, `${ours.length} programs pinned (datapath, overlay, strict, harness)`);
  await node?.close();
  node = undefined;
  t.notOk(existsSync(labBpffsDir(LAB)), 'pin folder removed');
  t.notOk(existsSync(`/run/netns/${nodeNetns(LAB, 'n1')}`), 'namespace removed');
  await expectProgramsGone(ours);
});

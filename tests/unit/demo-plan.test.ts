// `mtless demo`'s pure parts: claim ids → scenarios, the labs each brings up,
// option parsing (bad claim ids, the jobs knob), and the claims table's
// verdicts from results (a failed deciding check fails its claim only).
import t from 'tap';
import { CLAIM_IDS, claimRows, labsOf, parseClaimList, scenariosFor, SHOWINGS, START_ORDER, stepGuide } from '../../lab/scenarios/demo-plan.ts';
import { SCENARIOS } from '../../lab/scenarios/index.ts';
import type { ScenarioResult } from '../../lab/scenarios/framework.ts';
import { demoOptions, formatClaims } from '../../lab/cli/demo.ts';
import { UsageError } from '../../lab/cli/command.ts';

t.test('claim lists', async (t) => {
  t.same(parseClaimList('C5,C6'), ['C5', 'C6']);
  t.same(parseClaimList('c10, C1,C1'), ['C1', 'C10'], 'case-insensitive, spaces, duplicates once, in claim order');
  t.throws(() => parseClaimList('C5,C11'), /unknown claim "C11" \(valid: C1, C2, C3, C4, C5, C6, C7, C8, C9, C10\)/);
  t.throws(() => parseClaimList('C5,x'), /unknown claim "x"/);
  t.throws(() => parseClaimList(','), /expected claim ids/);
});

t.test('claims → scenarios', async (t) => {
  t.same(scenariosFor(['C5', 'C6']), ['confusion-matrix', 'identity-confusion'], 'in start order');
  t.same(scenariosFor(['C1', 'C2', 'C3']), ['mtless-basic'], 'one scenario shows three claims');
  const every = scenariosFor([...CLAIM_IDS]);
  t.same([...every].sort(), Object.keys(SCENARIOS).sort(), 'every claim: every scenario, each once');
  t.same([...START_ORDER].sort(), Object.keys(SCENARIOS).sort(), 'the start order names every scenario');
  for (const c of CLAIM_IDS) t.ok(SCENARIOS[SHOWINGS[c].scenario]!.claims.includes(c), `${c}: its scenario says it shows it`);
});

t.test('labs of a scenario, side labs included', async (t) => {
  t.same(labsOf('mtless-basic', 'p'), ['p-mtless-basic']);
  t.same(labsOf('sockmap'), ['sc-sockmap', 'sc-sockmap-off']);
  t.equal(labsOf('confusion-matrix', 'p').length, 5);
  t.equal(labsOf('exposure-window', 'p').length, 3);
  for (const l of scenariosFor([...CLAIM_IDS]).flatMap((s) => labsOf(s, 'abcdefghij'))) t.ok(l.length <= 24, `${l} fits a lab name`);
  t.match(stepGuide('mtless-basic', 'p-mtless-basic').run.join('\n'), /mtless observe p-mtless-basic -f/);
});

t.test('options', async (t) => {
  const all = demoOptions({}, {});
  t.same(all.claims, [...CLAIM_IDS]);
  t.equal(all.scenarios.length, 8);
  t.equal(all.step, false);
  t.ok(all.jobs > 1, 'side by side by default');
  const only = demoOptions({ only: 'C9', keep: true, name: 'ci1', out: '/tmp/x' }, {});
  t.same([only.scenarios, only.keep, only.prefix, only.out], [['auth-lifetime'], true, 'ci1', '/tmp/x']);
  t.equal(demoOptions({ step: true }, {}).jobs, 1, '--step runs one scenario at a time');
  t.equal(demoOptions({}, { MTLAB_DEMO_JOBS: '2' }).jobs, 2);
  let usage: unknown;
  try {
    demoOptions({ only: 'C0' }, {});
  } catch (e) {
    usage = e;
  }
  t.ok(usage instanceof UsageError && /unknown claim "C0"/.test((usage as Error).message), 'a bad claim id is a usage error');
  t.throws(() => demoOptions({ name: 'Bad_Prefix' }, {}), /--name/);
  t.throws(() => demoOptions({}, { MTLAB_DEMO_JOBS: '0' }), /MTLAB_DEMO_JOBS/);
});

const result = (scenario: string, checks: [string, boolean][], extra: Partial<ScenarioResult> = {}): ScenarioResult => ({
  scenario, lab: `p-${scenario}`, checks: checks.map(([name, ok]) => ({ name, ok, detail: 'd' })), narrative: [], ok: checks.every(([, ok]) => ok), durationMs: 1, ...extra,
});

t.test('claims table', async (t) => {
  const basic = result('mtless-basic', [
    ['cross-node TCP: the first SYN is dropped with reason 189 at n2/to-container', true],
    ['cross-node TCP: the agents completed the handshake', true],
    ['capture: the application payload crosses the underlay in plaintext (C3)', false],
  ]);
  const rows = claimRows(['C1', 'C2', 'C3', 'C5'], [basic]);
  t.same(rows.map((r) => [r.claim, r.ok, r.held, r.total]), [['C1', true, 1, 1], ['C2', true, 1, 1], ['C3', false, 0, 1], ['C5', false, 0, 0]]);
  t.match(rows[2]!.problems[0], /^FAIL capture: the application payload/);
  t.same(rows[3]!.problems, ['identity-confusion did not run']);
  const broken = claimRows(['C9'], [result('auth-lifetime', [['x', true]], { error: 'agent on n1 not ready' })]);
  t.equal(broken[0]!.ok, false, 'an error fails the claim even when its checks held');
  const empty = claimRows(['C9'], [result('auth-lifetime', [])]);
  t.equal(empty[0]!.ok, false, 'no deciding check: FAIL, never a PASS on nothing');
  const lines = formatClaims(rows);
  t.match(lines[1], /^ {2}C1 {3}PASS {2}mtless-basic/);
  t.match(lines.join('\n'), /C3 {3}FAIL[\s\S]*! FAIL capture/);
});

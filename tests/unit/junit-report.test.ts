// The JUnit XML of `scenario run --junit`: well-formed (parsed by Python's
// XML parser, as CI tools parse it), one testcase per check, a failed check's
// evidence in its failure, a run error as an <error>; and the lab names of
// --name PREFIX.
import t from 'tap';
import { execa } from 'execa';
import { junitXml } from '../../lab/report/junit.ts';
import type { ScenarioResult } from '../../lab/scenarios/framework.ts';
import { prefixedLabName, scenarioLabName, RUN_PREFIX_RE } from '../../lab/core/names.ts';
import { LAB_NAME_RE } from '../../lab/topology/model.ts';

const passed: ScenarioResult = {
  scenario: 'mtless-basic', lab: 'sc-mtless-basic', ok: true, durationMs: 1234, capture: '/tmp/x/merged.pcapng', narrative: ['scenario mtless-basic: <first> & "last"'],
  checks: [{ name: 'the first SYN is dropped (189)', ok: true }, { name: 'a check', ok: true, detail: 'ok' }],
};
const failed: ScenarioResult = {
  scenario: 'wireguard', lab: 'ci-wireguard', ok: false, durationMs: 500, narrative: [], error: 'lab "ci-wireguard" failed: \x01boom',
  checks: [{ name: 'only UDP 51871 on the underlay', ok: false, detail: "3 TCP frames on fabric/underlay: 'port 8080' <plaintext>" }],
};

/** What a CI tool reads: per suite its counts, per case its name and failure/error message. */
async function parse(xml: string) {
  const py = `import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
print(json.dumps({"root": root.attrib, "suites": [{"attrib": s.attrib, "cases": [{"name": c.get("name"), "failure": (c.find("failure").get("message"), c.find("failure").text) if c.find("failure") is not None else None, "error": c.find("error").get("message") if c.find("error") is not None else None} for c in s.findall("testcase")], "out": s.findtext("system-out")} for s in root.findall("testsuite")]}))`;
  return JSON.parse((await execa('python3', ['-c', py], { input: xml })).stdout);
}

t.test('one testsuite per scenario, one testcase per check, the evidence in the failure', async (t) => {
  const doc = await parse(junitXml([passed, failed], new Date('2026-12-02T09:00:00.123Z')));
  t.same(doc.root, { name: 'mtless scenario run', tests: '4', failures: '1', errors: '1', time: '1.734' });
  const [a, b] = doc.suites;
  t.match(a.attrib, { name: 'mtless-basic', tests: '2', failures: '0', errors: '0', time: '1.234', timestamp: '2026-12-02T09:00:00' });
  t.same(a.cases.map((c: { name: string }) => c.name), passed.checks.map((c) => c.name));
  t.equal(a.out, 'scenario mtless-basic: <first> & "last"', 'markup in the narrative survives');
  t.match(b.attrib, { tests: '2', failures: '1', errors: '1' });
  t.same(b.cases[0].failure[0], failed.checks[0]!.detail, 'the failure message is the evidence');
  t.equal(b.cases[1].name, 'scenario ran to the end');
  t.equal(b.cases[1].error, 'lab "ci-wireguard" failed: boom', 'control characters dropped');
});

t.test('a run without checks fails in CI too', async (t) => {
  const doc = await parse(junitXml([{ ...passed, checks: [], ok: false }], new Date()));
  t.equal(doc.root.failures, '1');
  t.equal(doc.suites[0].cases[0].name, 'scenario made at least one check');
});

t.test('--name PREFIX: lab names keep the prefix and the lab-name rule', async (t) => {
  t.equal(scenarioLabName('mtless-basic'), 'sc-mtless-basic', 'default unchanged');
  t.equal(scenarioLabName('mtless-basic', 'ci1'), 'ci1-mtless-basic');
  t.equal(prefixedLabName('ci1', 'bench-dp'), 'ci1-bench-dp');
  t.equal(prefixedLabName(undefined, 'bench-dp'), 'bench-dp');
  for (const s of ['per-connection-mtls', 'confusion-matrix', 'exposure-window']) {
    const a = scenarioLabName(s, 'run-a1234');
    t.ok(LAB_NAME_RE.test(a), `${a} is a lab name`);
    t.not(a, scenarioLabName(s, 'run-b1234'), 'two prefixes, two labs');
  }
  t.notOk(RUN_PREFIX_RE.test('Bad'));
  t.notOk(RUN_PREFIX_RE.test('x-'));
  t.notOk(RUN_PREFIX_RE.test('abcdefghijk'), 'at most 10 characters');
});

// A real, cheap scenario run with the CI options: `mtless scenario run
// mtless-basic --name P --out DIR --junit FILE`. Its lab carries the prefix,
// its captures and report go to DIR (nothing under captures/), and the JUnit
// file has one testcase per check the run printed, with the same verdicts.
import t from 'tap';
import { execa } from 'execa';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO, labCli, labLeftovers, needsRoot } from '../helpers/kernel.ts';

const PREFIX = 't-sjunit';
const LAB = `${PREFIX}-mtless-basic`;

t.test('scenario run --name --out --junit', { skip: needsRoot }, async (t) => {
  const dir = await mkdtemp('/tmp/mtless-junit-');
  const junit = join(dir, 'ci', 'junit.xml');
  try {
    const r = await labCli(['scenario', 'run', 'mtless-basic', '--name', PREFIX, '--out', dir, '--junit', junit]);
    const out = String(r.stdout);
    t.equal(r.exitCode, 0, 'exit 0: every check held');
    if (r.exitCode !== 0) t.comment(String(r.all).slice(-3000));
    // "  PASS  <check>" or "  PASS  <check> (<detail>)": a check's name may hold parentheses itself.
    const printed = out.split('\n').filter((l) => /^ {2}(PASS|FAIL) {2}/.test(l));
    t.ok(printed.length > 0, 'the run printed its checks');
    const py = `import sys, json, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
s = root.find("testsuite")
print(json.dumps({"tests": root.get("tests"), "lab": s.find("properties/property[@name='lab']").get("value"), "cases": [{"name": c.get("name"), "ok": c.find("failure") is None and c.find("error") is None} for c in s.findall("testcase")]}))`;
    const doc = JSON.parse((await execa('python3', ['-c', py, junit])).stdout) as { tests: string; lab: string; cases: { name: string; ok: boolean }[] };
    t.equal(doc.lab, LAB, 'the lab has the prefix');
    t.equal(Number(doc.tests), printed.length, 'one testcase per check');
    const mismatched = doc.cases.filter((c, i) => printed[i] !== `  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}` && !printed[i]?.startsWith(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name} (`));
    t.same(mismatched, [], 'each testcase is the printed check, with its verdict, in order');
    t.ok((await stat(join(dir, LAB, 'mtless-basic', 'merged.pcapng'))).size > 0, 'the capture is in --out DIR');
    t.ok((await stat(join(dir, 'report.html'))).isFile(), 'the report is in --out DIR');
    t.match(out, new RegExp(`junit: ${junit}`));
    t.notOk((await readdir(join(REPO, 'captures')).catch(() => [] as string[])).includes(LAB), 'nothing under captures/');
    t.same(await labLeftovers(LAB), [], 'the lab is gone');
  } finally {
    await labCli(['down', LAB]);
    await rm(dir, { recursive: true, force: true });
  }
});

t.test('bad --name is refused before anything runs', { skip: needsRoot }, async (t) => {
  const r = await labCli(['scenario', 'run', 'mtless-basic', '--name', 'Bad_Prefix']);
  t.equal(r.exitCode, 2);
  t.match(String(r.all), /--name: "Bad_Prefix" is not a lab-name prefix[\s\S]*usage: mtless scenario /);
});

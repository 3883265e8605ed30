// The CLI's answers to bad input: clear messages, exit codes, nothing changed.
import t from 'tap';
import { execa } from 'execa';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { LAB_CLI, REPO, hostNetSnapshot, labCli, needsRoot } from '../helpers/kernel.ts';
import { labNetnsOnHost } from '../../lab/compose/down.ts';

t.test('not root: up refuses with the reason, validate still works', { skip: needsRoot }, async (t) => {
  const asNobody = (args: string[]) =>
    execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', LAB_CLI, ...args], { reject: false, all: true, cwd: REPO });
  const up = await asNobody(['up', `${REPO}/topologies/two-node.yaml`]);
  t.equal(up.exitCode, 1);
  t.match(String(up.all), /up needs root: .*run it with sudo/);
  const v = await asNobody(['validate', `${REPO}/topologies/two-node.yaml`]);
  t.equal(v.exitCode, 0, 'validate needs no root');
});

t.test('a malformed topology: every error at once, exit 2, nothing created', { skip: needsRoot }, async (t) => {
  const dir = await mkdtemp('/tmp/mtless-bad-topo-');
  try {
    const file = `${dir}/bad.yaml`;
    await writeFile(file, 'name: bad\nnodes:\n  - name: n1\n    pods:\n      - name: web\n        labels: {app: web}\n  - name: n1\n    pods:\n      - name: web\n        labels: {app: web}\n');
    // Only this lab's namespaces: other tests' labs may come and go meanwhile.
    const before = [await hostNetSnapshot(), await labNetnsOnHost('bad')];
    const r = await labCli(['up', file]);
    t.equal(r.exitCode, 2);
    t.match(String(r.all), /nodes\[1\]\.name: duplicate "n1"/);
    t.match(String(r.all), /nodes\[1\]\.pods\[0\]\.name: duplicate "web"/);
    t.same([await hostNetSnapshot(), await labNetnsOnHost('bad')], before, 'no namespace or link was created');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

t.test('IPsec is reported unavailable and nothing is created', { skip: needsRoot }, async (t) => {
  const dir = await mkdtemp('/tmp/mtless-ipsec-');
  try {
    await writeFile(`${dir}/ipsec.yaml`, 'name: t-ipsec\nencryption: {mode: ipsec}\nnodes:\n  - name: n1\n    pods:\n      - name: a\n        labels: {app: a}\n');
    const before = await labNetnsOnHost('t-ipsec');
    const r = await labCli(['up', `${dir}/ipsec.yaml`]);
    t.equal(r.exitCode, 1);
    t.match(String(r.all), /encryption\.mode "ipsec" is unavailable: this kernel has no ESP/);
    t.same(await labNetnsOnHost('t-ipsec'), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

t.test('usage errors exit 2 with the usage; doctor reports IPsec missing', { skip: needsRoot }, async (t) => {
  const unknown = await labCli(['frobnicate']);
  t.equal(unknown.exitCode, 2);
  t.match(String(unknown.all), /unknown command "frobnicate"[\s\S]*usage:/);
  const badName = await labCli(['down', 'Bad_Name']);
  t.equal(badName.exitCode, 2);
  const doctor = await labCli(['doctor', '--json']);
  t.equal(doctor.exitCode, 0, 'every required feature and tool is present here');
  const report = JSON.parse(String(doctor.stdout)) as { kernel: { name: string; ok: boolean; optional?: boolean; detail: string }[] };
  const esp = report.kernel.find((c) => c.name === 'ESP/IPsec');
  t.equal(esp?.ok, false);
  t.match(esp?.detail, /encryption mode "ipsec" is unavailable/);
  t.ok(report.kernel.find((c) => c.name === 'clsact qdisc')?.ok, 'clsact tried for real');
});

// The lab core on a real kernel: up/down of each shipped topology, pod
// connectivity, nothing left behind, rollback on failure, labs side by side.
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { destroyLab } from '../../lab/compose/down.ts';
import { planLab, findPod } from '../../lab/core/plan.ts';
import { upLab, FAIL_AFTER_ENV, HOLD_AFTER_ENV, LabInUseError } from '../../lab/compose/up.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { echoSend, hostNetSnapshot, LAB_CLI, labCli, labLeftovers, needsRoot, ping, REPO, startEchoServer } from '../helpers/kernel.ts';

const topologies = (await readdir(`${REPO}/topologies`)).filter((f) => f.endsWith('.yaml')).sort();

t.test('each shipped topology comes up, connects, and goes away completely', { skip: needsRoot }, async (t) => {
  for (const file of topologies) {
    await t.test(file, async (t) => {
      // The whole lab (datapath, tunnel, WireGuard, sockmap as the file asks) without agents,
      // and without policies: this checks that every shipped topology connects.
      const topo = { ...(await loadTopologyFile(`${REPO}/topologies/${file}`)), policies: [] };
      const lab = `t-core-${topologies.indexOf(file)}`;
      const before = await hostNetSnapshot();
      try {
        const { upWithDatapath } = await import('../../lab/compose/lab.ts');
        const plan = await upWithDatapath(topo, { name: lab, agents: false });
        t.same(await labLeftovers(lab).then((l) => l.filter((x) => x.startsWith('netns')).length),
          2 + plan.nodes.length + plan.nodes.reduce((n, x) => n + x.pods.length, 0), 'one namespace per pod and node, plus fabric and control plane');
        const pods = plan.nodes.flatMap((n) => n.pods);
        // ping every pod from the first pod: same node and across nodes
        const from = pods[0]!;
        for (const to of pods.slice(1)) {
          const r = await ping(lab, from.name, to.ip);
          t.equal(r.exitCode, 0, `ping ${from.name} (${from.node}) -> ${to.name} (${to.node})`);
        }
      } finally {
        await destroyLab(lab);
      }
      t.same(await labLeftovers(lab), [], 'nothing of the lab is left');
      t.equal(await hostNetSnapshot(), before, 'host links, addresses and routes are unchanged');
    });
  }
});

t.test('pod to pod TCP, same node and across nodes (two-node)', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const lab = 't-core-tcp';
  const plan = planLab(topo, lab);
  try {
    await upLab(topo, { name: lab });
    const server = await startEchoServer(lab, 'server', 'tcp', 8080);
    const local = await startEchoServer(lab, 'local', 'tcp', 8080);
    try {
      const across = await echoSend(lab, 'client', 'tcp', findPod(plan, 'server')!.ip, 8080, 'hello-across');
      t.equal(across.exitCode, 0, `client(n1) -> server(n2): ${across.stderr}`);
      t.match(across.stdout, /ECHO hello-across/);
      t.ok(await server.sawText('hello-across'), 'the server printed its RECV line');
      t.match(server.lines.join('\n'), new RegExp(`RECV ${findPod(plan, 'client')!.ip.replace(/\./g, '\\.')}:\\d+ hello-across`), 'server saw the client address (no NAT)');
      const same = await echoSend(lab, 'client', 'tcp', findPod(plan, 'local')!.ip, 8080, 'hello-local');
      t.equal(same.exitCode, 0, `client(n1) -> local(n1): ${same.stderr}`);
      t.match(same.stdout, /ECHO hello-local/);
    } finally {
      await server.stop();
      await local.stop();
    }
  } finally {
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), []);
});

t.test('a failure injected mid-up leaves nothing behind', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  for (const stepName of ['namespaces', 'nodes', 'pods']) {
    const lab = 't-core-fail';
    const before = await hostNetSnapshot();
    process.env[FAIL_AFTER_ENV] = stepName;
    try {
      await t.rejects(upLab(topo, { name: lab }), new RegExp(`failure injected after step "${stepName}"`));
    } finally {
      delete process.env[FAIL_AFTER_ENV];
      await destroyLab(lab);
    }
    t.same(await labLeftovers(lab), [], `nothing left after a failure after "${stepName}"`);
    t.equal(await hostNetSnapshot(), before, 'host unchanged');
  }
});

t.test('a BPF verifier refusal stops up with the verifier\'s message and rolls back', { skip: needsRoot }, async (t) => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { run } = await import('../../lab/kernel/run.ts');
  const { upWithDatapath } = await import('../../lab/compose/lab.ts');
  const dir = await mkdtemp('/tmp/mtless-bad-');
  const lab = 't-core-verifier';
  try {
    // Reads packet data without a bounds check: the verifier must refuse it.
    await writeFile(`${dir}/bad.c`, '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n' +
      'SEC("tc") int bad(struct __sk_buff *skb) { return *(int *)(long)skb->data; }\nchar _license[] SEC("license") = "GPL";\n');
    const multiarch = (await run(['clang', '-print-multiarch'])).stdout.trim();
    await run(['clang', '-g', '-O2', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', `${dir}/bad.c`, '-o', `${dir}/bad.o`]);
    const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
    const before = await hostNetSnapshot();
    await t.rejects(upWithDatapath(topo, { name: lab, datapathObject: `${dir}/bad.o` }), /invalid access to packet/);
    t.same(await labLeftovers(lab), [], 'nothing left');
    t.equal(await hostNetSnapshot(), before, 'host unchanged');
  } finally {
    await destroyLab(lab);
    await rm(dir, { recursive: true, force: true });
  }
});

t.test('SIGINT during `mtless up` rolls back', { skip: needsRoot }, async (t) => {
  const lab = 't-core-sigint';
  const { execa } = await import('execa');
  const child = execa(LAB_CLI, ['up', `${REPO}/topologies/two-node.yaml`, '--name', lab], {
    reject: false, env: { [HOLD_AFTER_ENV]: 'nodes' },
  });
  let err = '';
  // Interrupt while `up` holds after the nodes step (a signal, not a sleep).
  await new Promise<void>((resolve) => {
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (/holding after step "nodes"/.test(err)) resolve();
    });
    child.on('exit', () => resolve());
  });
  child.kill('SIGINT');
  const r = await child;
  t.equal(r.exitCode, 130, 'up exits 130, the shell\'s code for an interrupt');
  t.match(String(r.stderr), /rolling back/);
  t.same(await labLeftovers(lab), [], 'nothing left after SIGINT');
  await destroyLab(lab);
});

t.test('a second up of a running name is refused; two labs run side by side', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const [a, b] = ['t-core-a', 't-core-b'];
  try {
    await Promise.all([upLab(topo, { name: a }), upLab(topo, { name: b })]);
    await t.rejects(upLab(topo, { name: a }), LabInUseError, 'second up of the same name');
    const cli = await labCli(['up', `${REPO}/topologies/two-node.yaml`, '--name', a]);
    t.equal(cli.exitCode, 2, 'the CLI exits 2');
    t.match(String(cli.all), /already in use/);
    // Same addresses in both labs, and each still works: they never share anything.
    const ip = findPod(planLab(topo, a), 'server')!.ip;
    t.equal((await ping(a, 'client', ip)).exitCode, 0, `ping in ${a}`);
    t.equal((await ping(b, 'client', ip)).exitCode, 0, `ping in ${b}`);
    await destroyLab(a);
    t.equal((await ping(b, 'client', ip)).exitCode, 0, `${b} still works after ${a} is down`);
  } finally {
    await destroyLab(a);
    await destroyLab(b);
  }
  t.same([...(await labLeftovers(a)), ...(await labLeftovers(b))], []);
});

t.test('CLI: status, exec and down without the topology file', { skip: needsRoot }, async (t) => {
  const lab = 't-core-cli';
  try {
    const up = await labCli(['up', `${REPO}/topologies/two-node.yaml`, '--name', lab]);
    t.equal(up.exitCode, 0, String(up.all));
    t.match(String(up.all), /networks\s+\d+ ms/, 'progress per step with timings');
    const st = await labCli(['status', lab, '--json']);
    t.equal(st.exitCode, 0);
    const status = JSON.parse(String(st.stdout));
    t.equal(status.phase, 'up');
    t.same(status.pods.map((p: { name: string }) => p.name).sort(), ['client', 'local', 'server']);
    const ex = await labCli(['exec', `${lab}/client`, '--', 'ip', '-o', 'addr', 'show', 'dev', 'eth0']);
    t.equal(ex.exitCode, 0);
    t.match(String(ex.stdout), /10\.244\.0\.2\/32/);
    const bad = await labCli(['exec', `${lab}/nobody`, '--', 'true']);
    t.equal(bad.exitCode, 1);
    t.match(String(bad.all), /has no pod or node "nobody" \(valid: client, local, server, n1, n2\)/);
  } finally {
    const down = await labCli(['down', lab]);
    t.equal(down.exitCode, 0, String(down.all));
  }
  t.same(await labLeftovers(lab), []);
  const again = await labCli(['down', lab]);
  t.equal(again.exitCode, 0, 'down of a lab that is gone is not an error');
});

// Nothing outlives `down`, however often and wherever `up` is stopped:
//  - 30 up/down cycles of one lab in a row (its kernel build): after each
//    nothing of the lab is left, and at the end the host's links, addresses
//    and routes are as before;
//  - `mtless up` killed with SIGKILL (no rollback can run) at 12 moments —
//    held after each of its 8 steps, and inside 4 of them (the first pin of
//    the datapath, the control plane's log, an agent's log, the relay's
//    config) — then `mtless down`: nothing of the lab is left.
import t from 'tap';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destroyLab } from '../../lab/compose/down.ts';
import { HOLD_AFTER_ENV, upLab } from '../../lab/compose/up.ts';
import { AGENT, CONTROL_PLANE, CONTROL_PLANE_NODE } from '../../lab/core/daemons.ts';
import { daemonLogFile, nodeMapPins, relayConfigFile } from '../../lab/core/names.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { hostNetSnapshot, LAB_CLI, labCli, labLeftovers, needsRoot, REPO } from '../helpers/kernel.ts';

const CYCLES = 30;
const STEPS = ['namespaces', 'networks', 'nodes', 'pods', 'datapath', 'control', 'agents', 'relay'];

/** Polls until `probe` holds; the deadline only ends a broken run. */
async function until(what: string, probe: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test(`${CYCLES} up/down cycles of one lab leave nothing behind`, { skip: needsRoot }, async (t) => {
  // The kernel build (namespaces, veths, addresses, routes) of two-node: 30 cycles stay
  // short; the datapath, control plane, agents and relay go up and down in every
  // run of the SIGKILL test below and in lab-core's shipped topologies.
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const lab = 't-repeat-cycles';
  const before = await hostNetSnapshot();
  const left: string[] = [];
  let namespaces = 0;
  try {
    for (let i = 1; i <= CYCLES; i++) {
      await upLab(topo, { name: lab });
      namespaces += (await labLeftovers(lab)).filter((l) => l.startsWith('netns')).length;
      await destroyLab(lab);
      for (const l of await labLeftovers(lab)) left.push(`cycle ${i}: ${l}`);
    }
  } finally {
    await destroyLab(lab);
  }
  t.equal(namespaces, CYCLES * 7, 'every up made its 7 namespaces (fabric, control plane, 2 nodes, 3 pods)');
  t.same(left, [], `no namespace, pin, cgroup, state or process after any of the ${CYCLES} downs`);
  t.equal(await hostNetSnapshot(), before, 'host links, addresses and routes are unchanged');
});

t.test('SIGKILL of `mtless up` at 12 moments, then `mtless down`: nothing is left', { skip: needsRoot }, async (t) => {
  // One node, one pod: every step runs (datapath, control plane, an agent, the relay) at the least cost.
  const dir = await mkdtemp(join(tmpdir(), 't-repeat-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'one.yaml');
  await writeFile(file, 'name: one\nnodes:\n  - name: n1\n    pods:\n      - name: a\n        labels: {app: a}\n');
  const before = await hostNetSnapshot();
  const exists = (path: string) => () => existsSync(path);
  // Held after each step (the step done, the next not begun), and inside four of them.
  const moments: { name: string; hold?: string; when?: (lab: string) => () => boolean }[] = [
    ...STEPS.map((s) => ({ name: `held after "${s}"`, hold: s })),
    { name: 'inside "datapath": n1\'s maps pinned', when: (lab: string) => exists(nodeMapPins(lab, 'n1')) },
    { name: 'inside "control": the control plane has started its log', when: (lab: string) => exists(daemonLogFile(lab, CONTROL_PLANE_NODE, CONTROL_PLANE.role)) },
    { name: 'inside "agents": n1\'s agent has started its log', when: (lab: string) => exists(daemonLogFile(lab, 'n1', AGENT.role)) },
    { name: 'inside "relay": its config is written', when: (lab: string) => exists(relayConfigFile(lab)) },
  ];
  t.equal(moments.length, 12);
  // Two kills at a time (distinct labs) keep the test short on 2 CPUs.
  const queue = moments.map((m, i) => ({ ...m, lab: `t-repeat-kill-${i + 1}` }));
  const results: { name: string; lab: string; killedAt: string; down: string; left: string[] }[] = [];
  const worker = async () => {
    for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
      const child = execa(LAB_CLI, ['up', file, '--name', m.lab], { reject: false, env: m.hold ? { [HOLD_AFTER_ENV]: m.hold } : {} });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      let exited = false;
      let early = false;
      void child.then(() => (exited = true));
      try {
        await until(m.name, m.hold ? () => err.includes(`holding after step "${m.hold}"`) || exited : () => m.when!(m.lab)() || exited);
      } finally {
        early = exited;
        child.kill('SIGKILL');
      }
      const r = await child;
      const down = await labCli(['down', m.lab]);
      results.push({ name: m.name, lab: m.lab, killedAt: early ? `exited first (${r.exitCode}): ${err}` : String(r.signal), down: `${down.exitCode} ${String(down.all).trim()}`, left: await labLeftovers(m.lab) });
    }
  };
  try {
    await Promise.all([worker(), worker()]);
  } finally {
    for (const m of moments.map((_, i) => `t-repeat-kill-${i + 1}`)) await destroyLab(m);
  }
  for (const r of results.sort((a, b) => a.lab.localeCompare(b.lab, 'en', { numeric: true }))) {
    t.equal(r.killedAt, 'SIGKILL', `${r.name}: up was killed there`);
    t.match(r.down, /^0 lab "t-repeat-kill-\d+" is down \(removed 4 namespaces/, `${r.name}: down: ${r.down}`);
    t.same(r.left, [], `${r.name}: nothing of the lab is left`);
  }
  t.equal(await hostNetSnapshot(), before, 'host links, addresses and routes are unchanged');
  t.same((await readdir('/run/netns').catch(() => [])).filter((n) => n.startsWith('mtl_t-repeat-')), [], 'no namespace of these labs');
});

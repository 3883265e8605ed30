// WireGuard strict mode on a real lab (two-node.yaml, encryption wireguard):
// with strict mode, pod TCP across nodes works through the tunnel, and when
// n1's route to n2's pod CIDR is moved from the WireGuard device back onto
// eth0 (a missing/failed tunnel), cil_to_netdev_strict drops it at eth0
// egress: the connection fails, n1's flow events show DROPPED reason 195,
// and n1's cilium_metrics count reason 195. Without strict mode the same
// route change sends the payload in plaintext over the underlay (captured).
//
// Built with upLab and the steps upWithDatapath runs with agents: false
// (datapath, wireguard, then strict), since lab/core/lab.ts does not export
// installDatapath; the datapath step below does what it does.
import t from 'tap';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { upLab } from '../../lab/compose/up.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { writeState } from '../../lab/core/state.ts';
import { stateDir } from '../../lab/core/names.ts';
import type { LabPlan } from '../../lab/core/plan.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { attachEndpoints, loadNodeDatapath, readIfindexes } from '../../lab/datapath/load.ts';
import { compileNodeState, writeNodeState } from '../../lab/datapath/state.ts';
import { streamFlows } from '../../lab/datapath/events.ts';
import { readMetrics } from '../../lab/datapath/maps.ts';
import { DIR_EGRESS, OBS_FROM_ENDPOINT, VERDICT_DROPPED, type FlowEvent } from '../../lab/abi/generated.ts';
import { run } from '../../lab/kernel/run.ts';
import { startCapture } from '../../lab/capture/capture.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import type { Topology } from '../../lab/topology/model.ts';
import { WIREGUARD_STEP } from '../../lab/wireguard/wireguard.ts';
import { DROP_UNENCRYPTED, STRICT_STEP, strictAttached, strictConfigPin } from '../../lab/wireguard/strict.ts';
import { echoSend, labLeftovers, needsRoot, ping, REPO, startEchoServer, type Server } from '../helpers/kernel.ts';
import { type ExtraStep } from '../../lab/core/steps.ts';

const TOPOLOGY = resolve(REPO, 'topologies/two-node.yaml');
const PORT = 8080;

/** The datapath step of upWithDatapath (lab/core/lab.ts installDatapath, not exported). */
function datapathStep(topology: Topology): ExtraStep {
  const identities = allocateIdentities(topology);
  return {
    name: 'datapath',
    run: async (plan, state) => {
      for (const p of state.pods) p.identity = identities.byPod.get(p.name);
      await writeState(state);
      await Promise.all(
        plan.nodes.map(async (n) => {
          const dp = await loadNodeDatapath(plan.lab, n.name);
          const ifindexes = await readIfindexes(n.netns);
          await writeNodeState(plan.lab, n.name, compileNodeState(plan, n.name, identities), ifindexes);
          await attachEndpoints(n.netns, n.pods.map((p) => p.lxc), dp.progPins);
        }),
      );
    },
  };
}

async function upWireguardLab(lab: string, strict: boolean): Promise<{ plan: LabPlan; topology: Topology }> {
  const base = await loadTopologyFile(TOPOLOGY);
  const topology: Topology = { ...base, encryption: { mode: 'wireguard', strict } };
  const steps = [datapathStep(topology), WIREGUARD_STEP, ...(strict ? [STRICT_STEP] : [])];
  return { plan: await upLab(topology, { name: lab, extraSteps: steps }), topology };
}

/** Simulates a missing tunnel on n1: n2's pod CIDR goes back to the native route via eth0. */
async function bypassTunnel(plan: LabPlan): Promise<string> {
  const [n1, n2] = plan.nodes;
  await run(['ip', 'route', 'replace', n2!.podCidr, 'via', n2!.underlayIp, 'dev', 'eth0'], { netns: n1!.netns });
  return (await run(['ip', '-o', 'route', 'get', n2!.pods[0]!.ip], { netns: n1!.netns })).stdout;
}

t.test('wireguard strict: unencrypted pod traffic to a remote node is dropped (195)', { skip: needsRoot }, async (t) => {
  const lab = 't-wg-strict';
  await destroyLab(lab);
  let server: Server | undefined;
  try {
    const { plan, topology } = await upWireguardLab(lab, true);
    const [n1, n2] = plan.nodes;
    const serverIp = n2!.pods[0]!.ip;
    for (const n of plan.nodes) t.ok(await strictAttached(n.netns), `${n.name}: cil_to_netdev_strict at eth0 egress`);
    const cfg = (await run(['bpftool', '-j', 'map', 'dump', 'pinned', strictConfigPin(lab, 'n1')])).stdout;
    t.match(cfg, /"0x0a","0xf4","0x00","0x00","0xff","0xff","0x00","0x00"/, `strict_config holds the pod range ${topology.addressing.podCIDR}`);

    server = await startEchoServer(lab, 'server', 'tcp', PORT);
    const ok = await echoSend(lab, 'client', 'tcp', serverIp, PORT, 'through-the-tunnel');
    t.equal(ok.exitCode, 0, 'client (n1) -> server (n2) over TCP works through WireGuard with strict mode on');
    t.ok(await server.sawText('through-the-tunnel'), 'the server got it');
    t.equal((await ping(lab, 'local', n1!.pods[0]!.ip)).exitCode, 0, 'same-node pod traffic is untouched');
    t.equal((await run(['ping', '-c', '1', '-W', '2', n2!.underlayIp], { netns: n1!.netns, okCodes: [0, 1] })).exitCode, 0,
      'node-to-node traffic (node IPs) passes eth0 egress');

    const before = (await readMetrics(lab, 'n1')).find((r) => r.reason === DROP_UNENCRYPTED);
    t.notOk(before, 'no drop 195 while the tunnel carries the traffic (WireGuard UDP 51871 between node IPs passes)');

    const flows: FlowEvent[] = [];
    const stream = streamFlows(lab, 'n1', (f) => flows.push(f));
    let failed;
    try {
      await stream.ready;
      const route = await bypassTunnel(plan);
      t.match(route, /dev eth0/, `n1 now routes ${serverIp} via eth0, not the WireGuard device`);
      failed = await echoSend(lab, 'client', 'tcp', serverIp, PORT, 'must-not-leak', ['--timeout', '2500']);
      // Events travel through bpftool and a pipe: wait for the drop, not for a guessed time.
      await waitFor(() => flows.some((f) => f.verdict === VERDICT_DROPPED && f.dropReason === DROP_UNENCRYPTED), 15_000);
    } finally {
      await stream.stop();
    }
    t.not(failed.exitCode, 0, `the connection fails (${failed.stderr.trim()})`);
    t.notMatch(server.lines.join('\n'), 'must-not-leak', 'the server never got the plaintext');
    const drops = flows.filter((f) => f.verdict === VERDICT_DROPPED && f.dropReason === DROP_UNENCRYPTED);
    t.ok(drops.length >= 1, `n1's flow events: ${drops.length} DROPPED with reason 195`);
    const d = drops[0];
    if (d) {
      t.equal(d.daddr, serverIp, 'to the server');
      t.equal(d.saddr, n1!.pods[0]!.ip, 'from the client');
      t.equal(d.dport, PORT, `dport ${PORT}`);
      t.equal(d.obsPoint, OBS_FROM_ENDPOINT, 'observation point: from-endpoint (reused; the layouts have no to-network)');
      const eth0 = (await readIfindexesOf(n1!.netns)).get('eth0');
      t.equal(d.ifindex, eth0, "ifindex is n1's eth0");
      t.equal(d.remoteNodeId, n2!.id, "remote node: n2's id");
      t.ok(d.srcIdentity >= 256 && d.dstIdentity >= 256, 'cluster identities of both pods');
    }
    const metrics = await readMetrics(lab, 'n1');
    const m = metrics.find((r) => r.reason === DROP_UNENCRYPTED && r.dir === DIR_EGRESS);
    t.ok(m && m.packets >= 1n, `n1's cilium_metrics: reason 195 egress ${m?.packets ?? 0} packets`);
    t.comment(`evidence: ${JSON.stringify(drops.map((f) => ({ ...f, timestamp: String(f.timestamp) })))}`);
  } finally {
    await server?.stop();
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), [], 'nothing of the lab left (namespaces, pins, processes)');
});

t.test('wireguard without strict: the same route change leaks plaintext onto the underlay', { skip: needsRoot }, async (t) => {
  const lab = 't-wg-nostrict';
  await destroyLab(lab);
  let server: Server | undefined;
  try {
    const { plan } = await upWireguardLab(lab, false);
    const [n1, n2] = plan.nodes;
    const serverIp = n2!.pods[0]!.ip;
    t.notOk(await strictAttached(n1!.netns), 'n1: no strict program');
    server = await startEchoServer(lab, 'server', 'tcp', PORT);

    await bypassTunnel(plan);
    // The lab's capture: started once tcpdump listens, stopped once it has written all it saw.
    const dir = `${stateDir(lab)}/n1-eth0-capture`;
    const capture = await startCapture(lab, ['n1/eth0'], dir, { filter: `tcp and host ${serverIp}` });
    let sent;
    let file;
    try {
      sent = await echoSend(lab, 'client', 'tcp', serverIp, PORT, 'plaintext-on-the-wire');
    } finally {
      file = (await capture.stop()).links[0]!.file;
    }
    t.equal(sent.exitCode, 0, 'without strict mode the connection succeeds over the native route');
    const text = (await run(['tcpdump', '-r', file, '-n', '-A'])).stdout;
    t.match(text, 'plaintext-on-the-wire', "the payload is readable in a capture of n1's eth0");
    t.match(text, new RegExp(`${n1!.pods[0]!.ip.replaceAll('.', '\\.')}\\.\\d+ > ${serverIp.replaceAll('.', '\\.')}\\.${PORT}`), 'pod addresses in the clear on the underlay');
    await rm(dir, { recursive: true, force: true });
  } finally {
    await server?.stop();
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), [], 'nothing of the lab left (namespaces, pins, processes)');
});

async function readIfindexesOf(netns: string): Promise<Map<string, number>> {
  const r = await run(['ip', '-j', 'link', 'show'], { netns });
  return new Map((JSON.parse(r.stdout) as { ifname: string; ifindex: number }[]).map((l) => [l.ifname, l.ifindex]));
}

async function waitFor(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

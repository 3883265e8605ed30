// WireGuard strict mode's program (bpf/strict.c, cil_to_netdev_strict at the
// node's eth0 egress) on crafted packets (BPF_PROG_RUN), loaded as
// lab/wireguard/strict.ts loads it: next to a node's datapath, reusing all of
// its pinned maps, so its drops land in the node's cilium_events and
// cilium_metrics. Needs root. Everything lives under a test-only lab name
// ("t-progrun-strict"): one throwaway node namespace holding a veth pair
// (lxc-client, a pod's device, and eth0, the underlay) and one pin folder,
// both removed in teardown, which also checks that the programs are gone.
import t from 'tap';
import { nodeNetns } from '../../lab/core/names.ts';
import {
  ETH_P_ARP,
  ETH_P_IPV6,
  ethernetFrame,
  ipv4Packet,
  loadNodeDatapath,
  mapUpdate,
  progPin,
  readMetrics,
  runProgram,
  writeNodeState,
  type Ipv4PacketSpec,
  type NodeDatapathState,
} from '../../lab/datapath/index.ts';
import * as gen from '../../lab/abi/generated.ts';
import { loadStrict, strictConfigPin, strictConfigValue, strictProgPin } from '../../lab/wireguard/strict.ts';
import { needsRoot } from '../helpers/kernel.ts';
import { expectProgramsGone, observe, progId, RUN_CPU, TC_ACT_OK, TC_ACT_SHOT, type Sentinel, removeThrowawayNode, throwawayNode } from '../helpers/progrun.ts';

const LAB = 't-progrun-strict';
const NODE = 'n1';
const NETNS = nodeNetns(LAB, NODE);
const UNDERLAY = 'eth0';
const POD_CIDR = '10.244.0.0/16';

// n1 (172.30.0.10) hosts client and server; remote runs on n2 (node id 2), far
// on n3, whose node IP has no node ID.
const HOST_IP = '172.30.0.10';
const PEER_NODE = { ip: '172.30.0.11', id: 2 };
const FAR_NODE = '172.30.0.12';
const CLIENT = { ip: '10.244.0.2', id: 256, lxc: 'lxc-client' };
const SERVER = { ip: '10.244.0.3', id: 258 };
const REMOTE = { ip: '10.244.1.2', id: 257 };
const FAR = { ip: '10.244.2.2', id: 259 };
const OTHER_REMOTE = { ip: '10.244.1.3', id: 260 };

const state: NodeDatapathState = {
  node: NODE,
  ipcache: [
    { cidr: `${HOST_IP}/32`, identity: gen.IDENTITY_HOST },
    { cidr: `${PEER_NODE.ip}/32`, identity: gen.IDENTITY_REMOTE_NODE, tunnelEndpoint: PEER_NODE.ip },
    { cidr: `${FAR_NODE}/32`, identity: gen.IDENTITY_REMOTE_NODE, tunnelEndpoint: FAR_NODE },
    { cidr: `${CLIENT.ip}/32`, identity: CLIENT.id },
    { cidr: `${SERVER.ip}/32`, identity: SERVER.id },
    { cidr: `${REMOTE.ip}/32`, identity: REMOTE.id, tunnelEndpoint: PEER_NODE.ip },
    { cidr: `${OTHER_REMOTE.ip}/32`, identity: OTHER_REMOTE.id, tunnelEndpoint: PEER_NODE.ip },
    { cidr: `${FAR.ip}/32`, identity: FAR.id, tunnelEndpoint: FAR_NODE },
  ],
  nodes: [PEER_NODE],
  // The client's egress is enforced with no entries: the sentinel's packet is always denied.
  endpoints: [{ pod: 'client', lxc: CLIENT.lxc, ip: CLIENT.ip, identity: CLIENT.id, ingressEnforced: false, egressEnforced: true }],
  policy: [],
};

let ifindex: { client: number; underlay: number };
const progIds: number[] = [];
const strictProg = () => strictProgPin(LAB, NODE);

let nextPort = 42000;
const port = () => nextPort++;

/** cil_to_netdev_strict on a packet leaving the node by eth0. */
async function leave(spec: Ipv4PacketSpec | Buffer): Promise<number> {
  const packet = Buffer.isBuffer(spec) ? spec : ipv4Packet(spec);
  return (await runProgram(strictProg(), packet, { netns: NETNS, ifindex: ifindex.underlay, cpu: RUN_CPU })).retval;
}

/** A policy drop at the client's egress (datapath.c, not strict.c), with a port no test uses. */
function sentinel(): Sentinel {
  const sport = port();
  return {
    send: async () => {
      const packet = ipv4Packet({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 1 });
      const r = await runProgram(progPin(LAB, NODE, 'cil_from_container'), packet, { netns: NETNS, ifindex: ifindex.client, cpu: RUN_CPU });
      if (r.retval !== TC_ACT_SHOT) throw new Error(`the sentinel packet passed (retval ${r.retval}): it raises no record to wait for`);
    },
    isFlow: (f) => f.sport === sport && f.obsPoint === gen.OBS_FROM_ENDPOINT && f.dropReason === gen.DROP_POLICY,
  };
}
const observed = <T>(during: () => Promise<T>) => observe(LAB, NODE, sentinel(), during);

const unencryptedDrops = async () =>
  (await readMetrics(LAB, NODE)).find((m) => m.reason === gen.DROP_UNENCRYPTED_TRAFFIC && m.dir === gen.DIR_EGRESS)?.packets ?? 0n;

const cleanup = () => removeThrowawayNode(LAB, NODE);

t.before(async () => {
  if (needsRoot) return;
  const links = await throwawayNode(LAB, NODE, [[CLIENT.lxc, UNDERLAY]]);
  ifindex = { client: links.get(CLIENT.lxc)!, underlay: links.get(UNDERLAY)! };
  await loadNodeDatapath(LAB, NODE);
  await writeNodeState(LAB, NODE, state, new Map([[CLIENT.lxc, ifindex.client]]));
  await loadStrict(LAB, NODE, POD_CIDR);
  for (const p of [strictProg(), progPin(LAB, NODE, 'cil_from_container')]) progIds.push(await progId(p));
});

t.teardown(async () => {
  if (needsRoot) return;
  await cleanup();
  await expectProgramsGone(progIds);
});

t.test('pod traffic to another node\'s pod leaving unencrypted: dropped with 195 and reported', { skip: needsRoot }, async (t) => {
  const before = await unencryptedDrops();
  const sport = port();
  const { result, flows } = await observed(() => leave({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 8080 }));
  t.equal(result, TC_ACT_SHOT);
  t.equal(flows.length, 1, 'one flow event');
  t.match(flows[0], {
    verdict: gen.VERDICT_DROPPED,
    dropReason: gen.DROP_UNENCRYPTED_TRAFFIC,
    obsPoint: gen.OBS_FROM_ENDPOINT,
    ifindex: ifindex.underlay, // told apart from cil_from_container's drops (an lxc ifindex)
    srcIdentity: CLIENT.id,
    dstIdentity: REMOTE.id,
    remoteNodeId: PEER_NODE.id,
    saddr: CLIENT.ip,
    daddr: REMOTE.ip,
    sport,
    dport: 8080,
    protocol: 6,
    tcpFlags: gen.TCP_F_SYN,
  });
  t.equal(await unencryptedDrops() - before, 1n, "counted in the node's cilium_metrics (reason 195, egress)");
});

t.test('every protocol is held to it: UDP, ICMP, an established TCP segment', { skip: needsRoot }, async (t) => {
  const { result, flows } = await observed(async () => [
    await leave({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'udp', sport: port(), dport: 53 }),
    await leave({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'icmp', icmpType: 8, icmpId: 9 }),
    await leave({ src: SERVER.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 8080, tcpFlags: gen.TCP_F_ACK }),
  ]);
  t.same(result, [TC_ACT_SHOT, TC_ACT_SHOT, TC_ACT_SHOT]);
  t.match(flows, [
    { protocol: 17, dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, srcIdentity: CLIENT.id },
    { protocol: 1, dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, srcIdentity: CLIENT.id },
    { protocol: 6, dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, srcIdentity: SERVER.id, tcpFlags: gen.TCP_F_ACK },
  ]);
});

t.test('a remote node without a node ID, an unknown source of the pod range: still dropped', { skip: needsRoot }, async (t) => {
  const { result, flows } = await observed(async () => [
    await leave({ src: CLIENT.ip, dst: FAR.ip, protocol: 'tcp', sport: port(), dport: 80 }),
    await leave({ src: '10.244.0.99', dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 80 }),
  ]);
  t.same(result, [TC_ACT_SHOT, TC_ACT_SHOT]);
  t.match(flows, [
    { dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, dstIdentity: FAR.id, remoteNodeId: 0 },
    { dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, srcIdentity: gen.IDENTITY_WORLD, saddr: '10.244.0.99', dstIdentity: REMOTE.id },
  ]);
});

t.test('what passes: encrypted traffic and everything that is not pod-to-remote-pod', { skip: needsRoot }, async (t) => {
  const before = await unencryptedDrops();
  const good = ipv4Packet({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 8080 });
  const badIhl = Buffer.from(good);
  badIhl[14] = 0x44;
  const { result, flows } = await observed(async () => ({
    // What WireGuard makes of pod traffic: UDP between the node IPs, outside the pod range.
    wireguard: await leave({ src: HOST_IP, dst: PEER_NODE.ip, protocol: 'udp', sport: gen.WG_PORT, dport: gen.WG_PORT }),
    nodeToRemotePod: await leave({ src: HOST_IP, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: gen.AUTH_PORT }),
    podToRemoteNode: await leave({ src: CLIENT.ip, dst: PEER_NODE.ip, protocol: 'tcp', sport: port(), dport: 80 }),
    podToLocalPod: await leave({ src: CLIENT.ip, dst: SERVER.ip, protocol: 'tcp', sport: port(), dport: 80 }),
    podToWorld: await leave({ src: CLIENT.ip, dst: '8.8.8.8', protocol: 'udp', sport: port(), dport: 53 }),
    podToUnknownPodAddress: await leave({ src: CLIENT.ip, dst: '10.244.1.99', protocol: 'tcp', sport: port(), dport: 80 }),
    // Not a pod of this node: e.g. a reply routed through.
    remoteToRemote: await leave({ src: OTHER_REMOTE.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 80 }),
    arp: await leave(ethernetFrame(ETH_P_ARP, Buffer.alloc(28))),
    ipv6: await leave(ethernetFrame(ETH_P_IPV6, Buffer.alloc(40))),
    malformed: await leave(badIhl),
  }));
  t.same(result, {
    wireguard: TC_ACT_OK, nodeToRemotePod: TC_ACT_OK, podToRemoteNode: TC_ACT_OK, podToLocalPod: TC_ACT_OK, podToWorld: TC_ACT_OK,
    podToUnknownPodAddress: TC_ACT_OK, remoteToRemote: TC_ACT_OK, arp: TC_ACT_OK, ipv6: TC_ACT_OK, malformed: TC_ACT_OK,
  });
  t.same(flows, [], 'no flow event');
  t.equal(await unencryptedDrops(), before, 'nothing counted');
});

t.test('strict mode unconfigured (mask 0): nothing is dropped', { skip: needsRoot }, async (t) => {
  const packet = () => ({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp' as const, sport: port(), dport: 8080 });
  await mapUpdate(strictConfigPin(LAB, NODE), Buffer.alloc(4), Buffer.alloc(8));
  try {
    const off = await observed(() => leave(packet()));
    t.equal(off.result, TC_ACT_OK);
    t.same(off.flows, []);
  } finally {
    await mapUpdate(strictConfigPin(LAB, NODE), Buffer.alloc(4), strictConfigValue(POD_CIDR));
  }
  t.equal(await leave(packet()), TC_ACT_SHOT, 'configured again: dropped again');
});

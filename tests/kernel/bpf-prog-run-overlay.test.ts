// Tunnel mode's programs (bpf/overlay.c) on crafted packets (BPF_PROG_RUN),
// loaded as lab/tunnel loads them: next to a node's datapath, reusing its
// pinned maps. Needs root. Everything lives under a test-only lab name
// ("t-progrun-ovl"): one throwaway node namespace holding two veths (their
// ifindexes stand for two pods' lxc devices) and one pin folder, both removed
// in teardown, which also checks that the programs are gone.
//
// What BPF_PROG_RUN can and cannot show here:
// - cil_from_overlay reads the VNI from the skb's tunnel metadata, which
//   BPF_PROG_RUN cannot pass in. tests/fixtures/bpf/identity-harness.c sets a
//   tunnel key (VNI from skb->priority), as the VXLAN device does on receive,
//   and tail-calls the real program; ctx_out then shows the mark it wrote.
// - cil_to_overlay's verdicts show, but not the tunnel key it sets: ctx_out
//   has no tunnel fields and the packet is unchanged, and this kernel refuses
//   fexit programs and has no kprobe events, so nothing can watch the key.
//   The VNI and outer destination on the wire are checked with real traffic
//   in tunnel-lab.test.ts.
// - Both programs report every drop as a flow event in the node's
//   cilium_events (observation point to-overlay / from-overlay) and count it
//   in cilium_metrics, as datapath.c does.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { labBpffsDir, nodeMapPins, nodeNetns } from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import {
  ETH_P_ARP,
  ETH_P_IPV6,
  ethernetFrame,
  identityFromMark,
  identityToMark,
  ipv4Packet,
  loadNodeDatapath,
  progPin,
  readMetrics,
  runProgram,
  writeNodeState,
  type Ipv4PacketSpec,
  type NodeDatapathState,
  type ProgRunOptions,
} from '../../lab/datapath/index.ts';
import * as gen from '../../lab/abi/generated.ts';
import { loadOverlay, overlayProgPin } from '../../lab/tunnel/index.ts';
import { needsRoot } from '../helpers/kernel.ts';
import { expectProgramsGone, loadFixture, observe, progId, RUN_CPU, TC_ACT_OK, TC_ACT_SHOT, type Sentinel, removeThrowawayNode, throwawayNode } from '../helpers/progrun.ts';

const LAB = 't-progrun-ovl';
const NODE = 'n1';
const NETNS = nodeNetns(LAB, NODE);

// n1 (172.30.0.10) hosts client and server; remote runs on n2 (172.30.0.11, node id 2).
const HOST_IP = '172.30.0.10';
const PEER_NODE = { ip: '172.30.0.11', id: 2 };
const CLIENT = { ip: '10.244.0.2', id: 256, lxc: 'lxc-client' };
const SERVER = { ip: '10.244.0.3', id: 258, lxc: 'lxc-server' };
const REMOTE = { ip: '10.244.1.2', id: 257 };
/** A mark left on the skb before cil_from_overlay runs: whatever it writes must replace it. */
const STALE_MARK = 0x12340f56;

const state: NodeDatapathState = {
  node: NODE,
  ipcache: [
    { cidr: `${HOST_IP}/32`, identity: gen.IDENTITY_HOST },
    { cidr: `${PEER_NODE.ip}/32`, identity: gen.IDENTITY_REMOTE_NODE, tunnelEndpoint: PEER_NODE.ip },
    { cidr: `${CLIENT.ip}/32`, identity: CLIENT.id },
    { cidr: `${SERVER.ip}/32`, identity: SERVER.id },
    { cidr: `${REMOTE.ip}/32`, identity: REMOTE.id, tunnelEndpoint: PEER_NODE.ip },
  ],
  nodes: [PEER_NODE],
  endpoints: [
    // The client's egress is enforced with no entries: the sentinel's packet is always denied.
    { pod: 'client', lxc: CLIENT.lxc, ip: CLIENT.ip, identity: CLIENT.id, ingressEnforced: false, egressEnforced: true },
    { pod: 'server', lxc: SERVER.lxc, ip: SERVER.ip, identity: SERVER.id, ingressEnforced: true, egressEnforced: false },
  ],
  policy: [
    // The server takes DNS from the client's identity only; nothing from REMOTE, world or remote-node.
    { lxc: SERVER.lxc, direction: 'ingress', peerIdentity: CLIENT.id, protocol: 17, port: 53, deny: false, authType: 0 },
  ],
};

let ifindex: { client: number; server: number };
let harnessProgs = '';
const progIds: number[] = [];

const toOverlay = () => overlayProgPin(LAB, NODE, 'cil_to_overlay');
const fromOverlay = () => overlayProgPin(LAB, NODE, 'cil_from_overlay');
const withVni = () => join(harnessProgs, 'from_overlay_with_vni');
const toContainer = () => progPin(LAB, NODE, 'cil_to_container');

let nextPort = 41000;
const port = () => nextPort++;

async function send(prog: string, spec: Ipv4PacketSpec | Buffer, opts: ProgRunOptions = {}) {
  const packet = Buffer.isBuffer(spec) ? spec : ipv4Packet(spec);
  return runProgram(prog, packet, { netns: NETNS, cpu: RUN_CPU, ...opts });
}

/** cil_from_overlay on a packet that arrived with this VNI: the mark it leaves. */
async function markFromVni(vni: number, spec: Ipv4PacketSpec): Promise<{ retval: number; mark: number }> {
  return send(withVni(), spec, { priority: vni, mark: STALE_MARK });
}

/** A policy drop at the client's egress (datapath.c, not overlay.c), with a port no test uses. */
function sentinel(): Sentinel {
  const sport = port();
  return {
    send: async () => {
      const r = await send(progPin(LAB, NODE, 'cil_from_container'), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 1 }, { ifindex: ifindex.client });
      if (r.retval !== TC_ACT_SHOT) throw new Error(`the sentinel packet passed (retval ${r.retval}): it raises no record to wait for`);
    },
    isFlow: (f) => f.sport === sport && f.obsPoint === gen.OBS_FROM_ENDPOINT && f.dropReason === gen.DROP_POLICY,
  };
}
const observed = <T>(during: () => Promise<T>) => observe(LAB, NODE, sentinel(), during);

const cleanup = () => removeThrowawayNode(LAB, NODE);

t.before(async () => {
  if (needsRoot) return;
  const links = await throwawayNode(LAB, NODE, [[CLIENT.lxc, SERVER.lxc]]);
  ifindex = { client: links.get(CLIENT.lxc)!, server: links.get(SERVER.lxc)! };
  await loadNodeDatapath(LAB, NODE);
  await writeNodeState(LAB, NODE, state, new Map([[CLIENT.lxc, ifindex.client], [SERVER.lxc, ifindex.server]]));
  await loadOverlay(LAB, NODE);
  const harness = await loadFixture('identity-harness.c', join(labBpffsDir(LAB), 'harness'));
  harnessProgs = harness.progs;
  // The harness's tail call lands in the node's own cil_from_overlay.
  await run(['bpftool', 'map', 'update', 'pinned', join(harness.maps, 'harness_progs'), 'key', '0', '0', '0', '0', 'value', 'pinned', fromOverlay()]);
  for (const p of [toOverlay(), fromOverlay(), withVni(), toContainer()]) progIds.push(await progId(p));
});

t.teardown(async () => {
  if (needsRoot) return;
  await cleanup();
  await expectProgramsGone(progIds);
});

const udpTo = (src: string, dst: string): Ipv4PacketSpec => ({ src, dst, protocol: 'udp', sport: port(), dport: 53 });

t.test('the overlay reuses the node datapath\'s pinned maps', { skip: needsRoot }, async (t) => {
  const pinned = new Set<number>();
  for (const name of await readdir(nodeMapPins(LAB, NODE))) {
    pinned.add((JSON.parse((await run(['bpftool', '-j', 'map', 'show', 'pinned', join(nodeMapPins(LAB, NODE), name)])).stdout) as { id: number }).id);
  }
  const mapIds = async (pin: string) => (JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'pinned', pin])).stdout) as { map_ids?: number[] }).map_ids ?? [];
  for (const [name, pin] of [['cil_to_overlay', toOverlay()], ['cil_from_overlay', fromOverlay()]] as const) {
    const ids = await mapIds(pin);
    t.ok(ids.length > 0, `${name} uses maps (ipcache, lxc, events, metrics)`);
    t.same(ids.filter((id) => !pinned.has(id)), [], `${name}: all of them the node's pinned ones`);
  }
});

/** The node's cilium_metrics packets for (reason, direction), summed over the CPUs. */
const metricPackets = async (reason: number, dir: number) =>
  (await readMetrics(LAB, NODE)).find((m) => m.reason === reason && m.dir === dir)?.packets ?? 0n;

t.test('cil_from_overlay: the VNI becomes the identity mark', { skip: needsRoot }, async (t) => {
  const vnis = [CLIENT.id, REMOTE.id, gen.IDENTITY_WORLD, gen.IDENTITY_REMOTE_NODE, 0xffffff];
  for (const vni of vnis) {
    const r = await markFromVni(vni, udpTo(REMOTE.ip, SERVER.ip));
    t.equal(r.retval, TC_ACT_OK, `VNI ${vni}: passes`);
    t.equal(r.mark, identityToMark(vni), `VNI ${vni}: mark 0x${r.mark.toString(16)}`);
    t.equal(identityFromMark(r.mark), vni, `VNI ${vni}: the mark reads back as identity ${vni}`);
  }
});

t.test('cil_from_overlay: VNI 0 says nothing, and the mark is cleared', { skip: needsRoot }, async (t) => {
  const r = await markFromVni(0, udpTo(REMOTE.ip, SERVER.ip));
  t.equal(r.retval, TC_ACT_OK);
  t.equal(r.mark, 0, 'no identity magic: the receiver falls back to its ipcache (and a stale mark is not believed)');
});

t.test('cil_from_overlay: only the 24 bits of a VNI count', { skip: needsRoot }, async (t) => {
  const r = await markFromVni(gen.IDENTITY_LOCAL_FLAG | CLIENT.id, udpTo(REMOTE.ip, SERVER.ip));
  t.equal(r.retval, TC_ACT_OK);
  t.equal(r.mark, identityToMark(CLIENT.id));
});

t.test('cil_from_overlay: a VNI that claims the host is dropped with 171, and reported', { skip: needsRoot }, async (t) => {
  // Cilium: a sending node presents its host as remote-node, so VNI 1 is forged.
  const spec: Ipv4PacketSpec = { src: REMOTE.ip, dst: SERVER.ip, protocol: 'tcp', sport: port(), dport: 8080, tcpFlags: gen.TCP_F_SYN };
  const before = await metricPackets(gen.DROP_INVALID_IDENTITY, gen.DIR_INGRESS);
  const { result, flows } = await observed(() => markFromVni(gen.IDENTITY_HOST, spec));
  t.equal(result.retval, TC_ACT_SHOT, 'dropped');
  t.equal(result.mark, STALE_MARK, 'no identity mark written');
  t.match(flows, [{
    verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_INVALID_IDENTITY, obsPoint: gen.OBS_FROM_OVERLAY,
    srcIdentity: gen.IDENTITY_HOST, dstIdentity: SERVER.id, saddr: REMOTE.ip, daddr: SERVER.ip, sport: spec.sport, dport: 8080,
    protocol: gen.IPPROTO_TCP, tcpFlags: gen.TCP_F_SYN, remoteNodeId: PEER_NODE.id,
  }], 'one flow event: Invalid identity at from-overlay, naming the sending node');
  t.equal(flows.length, 1);
  t.equal(gen.DROP_REASON_TEXT[flows[0]!.dropReason], 'Invalid identity', "Cilium's text");
  t.equal(await metricPackets(gen.DROP_INVALID_IDENTITY, gen.DIR_INGRESS), before + 1n, 'counted in cilium_metrics (ingress)');
});

t.test('cil_from_overlay: a packet without tunnel metadata is dropped, and reported', { skip: needsRoot }, async (t) => {
  // Not from the collect-metadata device: no VNI, so no identity to vouch for.
  const spec = udpTo(REMOTE.ip, SERVER.ip);
  const { result, flows } = await observed(() => send(fromOverlay(), spec, { mark: STALE_MARK }));
  t.equal(result.retval, TC_ACT_SHOT);
  t.match(flows, [{ verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_NO_TUNNEL_KEY, obsPoint: gen.OBS_FROM_OVERLAY, srcIdentity: 0, sport: spec.sport, remoteNodeId: 0 }]);
  t.equal(flows.length, 1);
});

t.test('cil_from_overlay: IPv6 is dropped (IPv4-only, like Cilium without IPv6), other frames pass to the stack', { skip: needsRoot }, async (t) => {
  const { result, flows } = await observed(async () => ({
    ipv6: (await send(withVni(), ethernetFrame(ETH_P_IPV6, Buffer.alloc(40)), { priority: CLIENT.id })).retval,
    arp: (await send(withVni(), ethernetFrame(ETH_P_ARP, Buffer.alloc(28)), { priority: CLIENT.id })).retval,
  }));
  t.same(result, { ipv6: TC_ACT_SHOT, arp: TC_ACT_OK });
  t.match(flows, [{ dropReason: gen.DROP_UNKNOWN_L3, obsPoint: gen.OBS_FROM_OVERLAY }]);
  t.equal(flows.length, 1, 'one report, for the IPv6 frame');
});

t.test('the receiving pod\'s cil_to_container believes the VNI, not its ipcache', { skip: needsRoot }, async (t) => {
  // REMOTE's address, which the ipcache maps to REMOTE (no policy): only the identity from the tunnel can let it in.
  const deliver = async (vni: number) => {
    const spec = udpTo(REMOTE.ip, SERVER.ip);
    const { mark } = await markFromVni(vni, spec);
    return observed(() => send(toContainer(), spec, { ifindex: ifindex.server, mark }));
  };
  const client = await deliver(CLIENT.id);
  t.equal(client.result.retval, TC_ACT_OK, 'VNI = client: allowed by the client\'s entry');
  t.match(client.flows, [{ verdict: gen.VERDICT_FORWARDED, srcIdentity: CLIENT.id, dstIdentity: SERVER.id, saddr: REMOTE.ip, obsPoint: gen.OBS_TO_ENDPOINT }]);

  const none = await deliver(0);
  t.equal(none.result.retval, TC_ACT_SHOT, 'VNI 0: the ipcache decides');
  t.match(none.flows, [{ verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_POLICY, srcIdentity: REMOTE.id }]);

  for (const reserved of [gen.IDENTITY_WORLD, gen.IDENTITY_REMOTE_NODE]) {
    const r = await deliver(reserved);
    t.equal(r.result.retval, TC_ACT_SHOT, `VNI ${reserved} (${gen.RESERVED_IDENTITY_TEXT[reserved]}): denied`);
    t.match(r.flows, [{ dropReason: gen.DROP_POLICY, srcIdentity: reserved }], `reported as ${gen.RESERVED_IDENTITY_TEXT[reserved]}, not as REMOTE`);
  }
  // VNI = host never gets this far: cil_from_overlay drops it (171, above).
});

t.test('cil_to_overlay: only IPv4 to a node with a tunnel endpoint enters the tunnel', { skip: needsRoot }, async (t) => {
  const fromClient = (dst: string): [Ipv4PacketSpec, ProgRunOptions] => [
    { src: CLIENT.ip, dst, protocol: 'tcp', sport: port(), dport: 8080 },
    { ingressIfindex: ifindex.client },
  ];
  const { result, flows } = await observed(async () => ({
    remotePod: (await send(toOverlay(), ...fromClient(REMOTE.ip))).retval,
    remoteNode: (await send(toOverlay(), ...fromClient(PEER_NODE.ip))).retval,
    nodeTraffic: (await send(toOverlay(), { src: HOST_IP, dst: REMOTE.ip, protocol: 'icmp', icmpType: 8, icmpId: 7 })).retval,
    localPod: (await send(toOverlay(), ...fromClient(SERVER.ip))).retval,
    world: (await send(toOverlay(), ...fromClient('8.8.8.8'))).retval,
    arp: (await send(toOverlay(), ethernetFrame(ETH_P_ARP, Buffer.alloc(28)))).retval,
    ipv6: (await send(toOverlay(), ethernetFrame(ETH_P_IPV6, Buffer.alloc(40)))).retval,
    badIhl: (await send(toOverlay(), withIhl(ipv4Packet(fromClient(REMOTE.ip)[0]), 4))).retval,
  }));
  t.same(result, {
    remotePod: TC_ACT_OK, // a tunnel key for n2 was set
    remoteNode: TC_ACT_OK,
    nodeTraffic: TC_ACT_OK, // the host leaves as remote-node (tunnel-lab.test.ts sees VNIs on the wire)
    localPod: TC_ACT_SHOT, // no tunnel endpoint: Cilium's DROP_NO_TUNNEL_ENDPOINT
    world: TC_ACT_SHOT,
    arp: TC_ACT_SHOT, // static neighbours: nothing but IPv4 rides the tunnel
    ipv6: TC_ACT_SHOT,
    badIhl: TC_ACT_SHOT,
  });
  // One report per drop, in the order sent (one CPU), none for what entered the tunnel.
  t.match(flows, [
    { dropReason: gen.DROP_NO_TUNNEL_ENDPOINT, daddr: SERVER.ip, srcIdentity: CLIENT.id, dstIdentity: SERVER.id },
    { dropReason: gen.DROP_NO_TUNNEL_ENDPOINT, daddr: '8.8.8.8', srcIdentity: CLIENT.id, dstIdentity: 0 },
    { dropReason: gen.DROP_UNKNOWN_L3 },
    { dropReason: gen.DROP_UNKNOWN_L3 },
    { dropReason: gen.DROP_INVALID },
  ]);
  t.equal(flows.length, 5);
  t.ok(flows.every((f) => f.verdict === gen.VERDICT_DROPPED && f.obsPoint === gen.OBS_TO_OVERLAY), 'all dropped at to-overlay');
});

t.test('a tunnel endpoint of 0.0.0.0 is no endpoint', { skip: needsRoot }, async (t) => {
  const broken = '10.244.1.99';
  const withBroken = { ...state, ipcache: [...state.ipcache, { cidr: `${broken}/32`, identity: REMOTE.id, tunnelEndpoint: '0.0.0.0' }] };
  const indexes = new Map([[CLIENT.lxc, ifindex.client], [SERVER.lxc, ifindex.server]]);
  await writeNodeState(LAB, NODE, withBroken, indexes, { only: ['ipcache'] });
  try {
    const { result, flows } = await observed(() => send(toOverlay(), { src: CLIENT.ip, dst: broken, protocol: 'tcp', sport: port(), dport: 80 }, { ingressIfindex: ifindex.client }));
    t.equal(result.retval, TC_ACT_SHOT);
    t.match(flows, [{ dropReason: gen.DROP_NO_TUNNEL_ENDPOINT, daddr: broken, dstIdentity: REMOTE.id }]);
  } finally {
    await writeNodeState(LAB, NODE, state, indexes, { only: ['ipcache'] });
  }
});

function withIhl(frame: Buffer, ihl: number): Buffer {
  const copy = Buffer.from(frame);
  copy[14] = 0x40 | ihl;
  return copy;
}

// A reference model of bpf/overlay.c (tunnel mode) and random cases for it,
// from overlay.c's comments and Cilium's tunnel facts:
//   cil_from_overlay  VNI (24 bits) -> skb->mark with Cilium's identity
//                     encoding; VNI 0 says nothing and leaves mark 0; a VNI
//                     claiming the host identity drops with 171; a packet
//                     without tunnel metadata with 147; IPv6 with 139;
//                     other non-IPv4 passes untouched.
//   cil_to_overlay    only IPv4 whose destination has an IPv4 tunnel
//                     endpoint (not 0.0.0.0) in the ipcache enters the
//                     tunnel (else 160; non-IPv4 139, malformed 134):
//                     remote = that node, VNI = the source's identity (the
//                     endpoint it was forwarded from, when the source address
//                     is that endpoint's; else the ipcache's, the host
//                     presented as remote-node; else world), TTL 64.
// Every drop sends a flow event (to-overlay / from-overlay, the device's
// ifindex) and counts in cilium_metrics; nothing else is reported. A
// received packet's mark then decides the source identity at
// cil_to_container (model.ts), reserved identities included. Pure.
import {
  DIR_EGRESS,
  DIR_INGRESS,
  DROP_INVALID_IDENTITY,
  DROP_NO_TUNNEL_ENDPOINT,
  DROP_NO_TUNNEL_KEY,
  DROP_UNKNOWN_L3,
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  MARK_MAGIC_IDENTITY,
  OBS_FROM_OVERLAY,
  OBS_TO_OVERLAY,
  VERDICT_DROPPED,
  VXLAN_VNI_MASK,
  type EndpointInfo,
  type IpcacheKey,
  type NodeKey,
  type NodeValue,
  type RemoteEndpointInfo,
} from '../abi/generated.ts';
import { caseSize, generateDatapathCase, packetShrinks, packetSize, shrinkCandidates, type DatapathCase } from './generate.ts';
import {
  ETH_P_IP,
  ETH_P_IPV6,
  TC_ACT_OK,
  TC_ACT_SHOT,
  etherType,
  ipcacheLookup,
  nodeIdLookup,
  parseIpv4,
  tunnelEndpoint,
  type Entry,
  type FlowFields,
  type MetricsIncrement,
  type Tuple,
} from './model.ts';
import { caseRng } from './prng.ts';

export const OVERLAY_TUNNEL_TTL = 64;

/** Cilium's identity mark: identity bits 15..0 in 31..16, magic 0xF in 11..8, bits 23..16 in 7..0. */
export function markOfIdentity(identity: number): number {
  return (((identity & 0xffff) << 16) | MARK_MAGIC_IDENTITY | ((identity >>> 16) & 0xff)) >>> 0;
}

export interface OverlayMaps {
  endpoints: Entry<number, EndpointInfo>[];
  ipcache: Entry<IpcacheKey, RemoteEndpointInfo>[];
  nodes: Entry<NodeKey, NodeValue>[];
}

/** What an overlay program reports: verdict, its drop's flow event and counter. */
export interface OverlayReports {
  retval: number;
  flow: FlowFields | null;
  metrics: MetricsIncrement | null;
  trace: string[];
}

function flowBase(obsPoint: number, ifindex: number, len: number): FlowFields {
  return {
    srcIdentity: 0, dstIdentity: 0, saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0, protocol: 0, tcpFlags: 0,
    verdict: 0, dropReason: 0, obsPoint, authType: 0, remoteNodeId: 0, ifindex, pktLen: len, ctStatus: 0,
  };
}

function fill(ev: FlowFields, t: Tuple): void {
  Object.assign(ev, { saddr: t.saddr, daddr: t.daddr, sport: t.sport, dport: t.dport, protocol: t.protocol, tcpFlags: t.tcpFlags });
}

function dropped(ev: FlowFields, reason: number, dir: number, len: number, trace: string[]): OverlayReports {
  ev.verdict = VERDICT_DROPPED;
  ev.dropReason = reason;
  return { retval: TC_ACT_SHOT, flow: ev, metrics: { reason, dir, packets: 1n, bytes: BigInt(len) }, trace };
}

export interface FromOverlayInput {
  packet: Buffer;
  /** skb->ifindex: the VXLAN device stand-in. */
  ifindex: number;
  /** The tunnel key the device handed over, or null for a packet without tunnel metadata. */
  tunnel: { vni: number; sender: string } | null;
  /** skb->mark before the program runs. */
  mark: number;
  maps: Pick<OverlayMaps, 'ipcache' | 'nodes'>;
}

/** cil_from_overlay: the reports, and skb->mark afterwards. */
export function modelFromOverlay(input: FromOverlayInput): OverlayReports & { mark: number } {
  const len = input.packet.length;
  const ev = flowBase(OBS_FROM_OVERLAY, input.ifindex, len);
  const drop = (reason: number, why: string) => ({ ...dropped(ev, reason, DIR_INGRESS, len, [why]), mark: input.mark });
  const proto = etherType(input.packet);
  if (proto === ETH_P_IPV6) return drop(DROP_UNKNOWN_L3, 'IPv6: unsupported');
  if (proto !== ETH_P_IP) return { retval: TC_ACT_OK, flow: null, metrics: null, mark: input.mark, trace: ['not IPv4: passed to the stack untouched'] };
  const parsed = parseIpv4(input.packet);
  if ('drop' in parsed) {
    fill(ev, parsed.partial);
    return drop(parsed.drop, `malformed: ${parsed.why}`);
  }
  fill(ev, parsed.tuple);
  ev.dstIdentity = ipcacheLookup(input.maps, parsed.tuple.daddr)?.secIdentity ?? 0;
  if (!input.tunnel) return drop(DROP_NO_TUNNEL_KEY, 'no tunnel metadata');
  const identity = (input.tunnel.vni & VXLAN_VNI_MASK) >>> 0;
  ev.srcIdentity = identity;
  ev.remoteNodeId = nodeIdLookup(input.maps, input.tunnel.sender);
  if (identity === IDENTITY_HOST) return drop(DROP_INVALID_IDENTITY, 'VNI claims the host identity');
  return {
    retval: TC_ACT_OK, flow: null, metrics: null,
    mark: identity ? markOfIdentity(identity) : 0,
    trace: [identity ? `VNI ${identity}: identity mark` : 'VNI 0: mark cleared, the ipcache decides'],
  };
}

export interface ToOverlayInput {
  packet: Buffer;
  /** skb->ifindex: the VXLAN device stand-in. */
  ifindex: number;
  /** skb->ingress_ifindex: the lxc a pod's packet was forwarded from. */
  ingressIfindex: number;
  maps: OverlayMaps;
}

export interface TunnelKey {
  vni: number;
  /** Outer destination: the node. */
  remote: string;
  ttl: number;
}

export function modelToOverlay(input: ToOverlayInput): OverlayReports & { key: TunnelKey | null } {
  const len = input.packet.length;
  const ev = flowBase(OBS_TO_OVERLAY, input.ifindex, len);
  const drop = (reason: number, why: string) => ({ ...dropped(ev, reason, DIR_EGRESS, len, [why]), key: null });
  if (etherType(input.packet) !== ETH_P_IP) return drop(DROP_UNKNOWN_L3, 'not IPv4: nothing else rides the tunnel');
  const parsed = parseIpv4(input.packet);
  if ('drop' in parsed) {
    fill(ev, parsed.partial);
    return drop(parsed.drop, `malformed: ${parsed.why}`);
  }
  const t = parsed.tuple;
  fill(ev, t);
  const ep = input.maps.endpoints.find((e) => e.key === input.ingressIfindex)?.value;
  let from: string;
  if (ep && ep.ipv4 === t.saddr && ep.secIdentity) {
    ev.srcIdentity = ep.secIdentity;
    from = `the endpoint at ifindex ${input.ingressIfindex}`;
  } else {
    const src = ipcacheLookup(input.maps, t.saddr);
    ev.srcIdentity = src?.secIdentity === IDENTITY_HOST ? IDENTITY_REMOTE_NODE : src && src.secIdentity ? src.secIdentity : IDENTITY_WORLD;
    from = src?.secIdentity === IDENTITY_HOST ? 'the ipcache (host, presented as remote-node)' : src && src.secIdentity ? 'the ipcache' : 'nowhere (world)';
  }
  const info = ipcacheLookup(input.maps, t.daddr);
  if (info) ev.dstIdentity = info.secIdentity;
  // Cilium: no tunnel endpoint for the destination -> DROP_NO_TUNNEL_ENDPOINT (0.0.0.0 is none).
  const remote = tunnelEndpoint(info);
  if (remote === '0.0.0.0') return drop(DROP_NO_TUNNEL_ENDPOINT, `no IPv4 tunnel endpoint for ${t.daddr}`);
  return {
    retval: TC_ACT_OK, flow: null, metrics: null,
    key: { vni: (ev.srcIdentity & VXLAN_VNI_MASK) >>> 0, remote, ttl: OVERLAY_TUNNEL_TTL },
    trace: [`to ${remote}, identity ${ev.srcIdentity} from ${from}`],
  };
}

// ---- cases -------------------------------------------------------------------------

export type OverlayCase =
  | {
      kind: 'to';
      packet: Buffer;
      /** skb->ifindex: the VXLAN device stand-in. */
      ifindex: number;
      ingressIfindex: number;
      endpoints: Entry<number, EndpointInfo>[];
      ipcache: Entry<IpcacheKey, RemoteEndpointInfo>[];
      aim: string;
    }
  | {
      kind: 'from';
      /** The received VNI (any 32 bits: only 24 count). */
      vni: number;
      /** The outer source of the VXLAN packet: the sending node. */
      sender: string;
      /** skb->ifindex: the VXLAN device stand-in. */
      ifindex: number;
      /** skb->mark before cil_from_overlay runs: whatever it writes must replace it. */
      staleMark: number;
      /** cil_from_overlay without tunnel metadata (not from the collect-metadata device). */
      direct: boolean;
      /** What the receiving pod's cil_to_container then does, with the mark cil_from_overlay left. */
      receive: DatapathCase;
      aim: string;
    };

const RESERVED = [1, 2, 3, 4, 5, 6];

/** Case `index` of an overlay run. */
export function overlayCase(seed: number, index: number, env: { ifindexes: number[] }): OverlayCase {
  const rng = caseRng(seed, index);
  if (rng.chance(0.5)) {
    const base = generateDatapathCase(rng, env, { program: 'from-container' });
    const ingressIfindex = rng.weighted<number>([[8, base.ifindex], [1, rng.pick(env.ifindexes)], [1, 0]]);
    // The node's own traffic now and then: its host address, presented as remote-node.
    const ipcache = rng.chance(0.1) ? base.ipcache.map((e) => (rng.chance(0.5) ? { key: e.key, value: { ...e.value, secIdentity: IDENTITY_HOST } } : e)) : base.ipcache;
    return { kind: 'to', packet: base.packet, ifindex: rng.pick(env.ifindexes), ingressIfindex, endpoints: base.endpoints, ipcache, aim: base.aim };
  }
  const receive = generateDatapathCase(rng, env, { program: 'to-container' });
  const allowed = [...new Set(receive.policy.map((p) => p.key.secLabel).filter((id) => id !== 0))];
  const vni = rng.weighted<number>([
    [2, 0],
    [3, rng.pick(RESERVED)],
    [4, allowed.length ? rng.pick(allowed) : rng.int(256, 300)],
    [2, rng.int(256, 0xffffff)],
    [1, 0xffffff],
    [1, (0x1000000 | rng.int(0, 0xffffff)) >>> 0],
    [1, rng.u32()],
  ]);
  const staleMark = rng.weighted<number>([[2, 0], [2, 0x12340f56], [1, rng.u32()], [1, markOfIdentity(rng.int(1, 0xffffff))]]);
  const direct = rng.chance(0.05);
  const senders = [...receive.nodes.map((n) => Array.from(n.key.ip.subarray(0, 4)).join('.')), '172.30.0.11', '172.30.0.12', '0.0.0.0'];
  return {
    kind: 'from', vni, sender: rng.pick(senders), ifindex: rng.pick(env.ifindexes), staleMark, direct, receive,
    aim: `VNI ${vni}${direct ? ', no tunnel metadata' : ''}; ${receive.aim}`,
  };
}

export function shrinkOverlayCase(c: OverlayCase): OverlayCase[] {
  if (c.kind === 'from') {
    const out: OverlayCase[] = shrinkCandidates(c.receive).map((receive) => ({ ...c, receive }));
    if (c.staleMark) out.push({ ...c, staleMark: 0 });
    return out;
  }
  const out: OverlayCase[] = [];
  for (let i = 0; i < c.endpoints.length; i++) out.push({ ...c, endpoints: c.endpoints.filter((_, j) => j !== i) });
  for (let i = 0; i < c.ipcache.length; i++) out.push({ ...c, ipcache: c.ipcache.filter((_, j) => j !== i) });
  for (const p of packetShrinks(c.packet)) out.push({ ...c, packet: p });
  return out;
}

export function overlayCaseSize(c: OverlayCase): number {
  if (c.kind === 'from') return caseSize(c.receive) + (c.staleMark ? 1 : 0);
  return (c.endpoints.length + c.ipcache.length) * 10_000 + packetSize(c.packet);
}

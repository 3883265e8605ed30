// A reference model of bpf/strict.c (WireGuard strict mode at the node's
// eth0 egress) and random cases for it. Rules, from strict.c's header:
// unencrypted pod traffic to a pod of another node drops with 195, when
// source and destination are both in the strict CIDR, the destination's
// ipcache entry has a tunnel endpoint and the source's has none; strict mode
// off (mask 0), non-IPv4 and malformed packets pass. A VXLAN packet (UDP to
// the VXLAN port) that reaches eth0 missed WireGuard: the pod packet inside
// it is judged the same way (a malformed or non-IPv4 inner frame passes).
// Only a drop is reported (flow event, counter 195 egress). Pure.
import {
  DIR_EGRESS,
  DROP_UNENCRYPTED_TRAFFIC,
  IDENTITY_WORLD,
  IPPROTO_TCP,
  IPPROTO_UDP,
  VXLAN_PORT,
  OBS_FROM_ENDPOINT,
  VERDICT_DROPPED,
  type StrictConfig,
} from '../abi/generated.ts';
import { generateDatapathCase, packetShrinks, packetSize, type DatapathCase } from './generate.ts';
import {
  ETH_HLEN,
  ETH_P_IP,
  TC_ACT_OK,
  TC_ACT_SHOT,
  etherType,
  ipcacheLookup,
  nodeIdLookup,
  parseIpv4,
  tunnelEndpoint,
  type DatapathMaps,
  type FlowFields,
  type MetricsIncrement,
  type Tuple,
} from './model.ts';
import { buildFrame, runnable } from './packet.ts';
import { caseRng, type Rng } from './prng.ts';

export interface StrictInput {
  packet: Buffer;
  /** skb->ifindex: the underlay device. */
  ifindex: number;
  /** strict_config slot 0. */
  config: StrictConfig;
  maps: Pick<DatapathMaps, 'ipcache' | 'nodes'>;
}

export interface StrictOutcome {
  retval: number;
  flow: FlowFields | null;
  /** The counter moved, if any (only drops count). */
  metrics: MetricsIncrement | null;
  trace: string[];
}

const u32 = (ip: string) => ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);

export function modelStrict(input: StrictInput): StrictOutcome {
  const trace: string[] = [];
  const pass = (why: string): StrictOutcome => ({ retval: TC_ACT_OK, flow: null, metrics: null, trace: [...trace, why] });
  if (etherType(input.packet) !== ETH_P_IP) return pass('not IPv4: passes');
  const mask = u32(input.config.mask);
  if (!mask) return pass('strict mode off (mask 0)');
  const parsed = parseIpv4(input.packet);
  if ('drop' in parsed) return pass(`malformed (${parsed.why}): passes, not ours to judge`);
  let t = parsed.tuple;
  if (t.protocol === IPPROTO_UDP && t.dport === VXLAN_PORT) {
    const inner = vxlanInner(input.packet);
    if ('why' in inner) return pass(`VXLAN packet: ${inner.why}`);
    trace.push('VXLAN packet: judged by the pod packet inside');
    t = inner;
  }
  const inCidr = (ip: string) => ((u32(ip) & mask) >>> 0) === u32(input.config.net);
  if (!inCidr(t.saddr) || !inCidr(t.daddr)) return pass('source or destination outside the strict CIDR');
  const dst = ipcacheLookup(input.maps, t.daddr);
  const nodeIp = tunnelEndpoint(dst);
  if (nodeIp === '0.0.0.0') return pass('destination is no pod of another node');
  const src = ipcacheLookup(input.maps, t.saddr);
  if (tunnelEndpoint(src) !== '0.0.0.0') return pass('source is no pod of this node');
  trace.push(`pod ${t.saddr} to ${t.daddr} on node ${nodeIp}, unencrypted`);
  const len = input.packet.length;
  return {
    retval: TC_ACT_SHOT,
    flow: {
      srcIdentity: src && src.secIdentity ? src.secIdentity : IDENTITY_WORLD,
      dstIdentity: dst!.secIdentity ? dst!.secIdentity : IDENTITY_WORLD,
      saddr: t.saddr, daddr: t.daddr, sport: t.sport, dport: t.dport, protocol: t.protocol, tcpFlags: t.tcpFlags,
      verdict: VERDICT_DROPPED, dropReason: DROP_UNENCRYPTED_TRAFFIC, obsPoint: OBS_FROM_ENDPOINT, authType: 0,
      remoteNodeId: nodeIdLookup(input.maps, nodeIp), ifindex: input.ifindex, pktLen: len, ctStatus: 0,
    },
    metrics: { reason: DROP_UNENCRYPTED_TRAFFIC, dir: DIR_EGRESS, packets: 1n, bytes: BigInt(len) },
    trace,
  };
}

/** UDP and VXLAN headers between the outer IPv4 header and the inner Ethernet frame. */
const VXLAN_ENCAP_HLEN = 16;

/**
 * The IPv4 packet inside a VXLAN packet, as strict.c reads it: addresses,
 * protocol, and for TCP/UDP (not later fragments) ports and TCP flags;
 * other protocols (ICMP too) have ports 0.
 */
export function vxlanInner(packet: Buffer): Tuple | { why: string } {
  const fits = (off: number, len: number) => off + len <= packet.length;
  let off = ETH_HLEN + (packet[ETH_HLEN]! & 0xf) * 4 + VXLAN_ENCAP_HLEN;
  if (!fits(off + 12, 2)) return { why: 'no inner Ethernet header' };
  if (packet.readUInt16BE(off + 12) !== ETH_P_IP) return { why: 'inner frame not IPv4' };
  off += ETH_HLEN;
  if (!fits(off, 20)) return { why: 'inner IPv4 header cut short' };
  const version = packet[off]! >> 4;
  const ihl = packet[off]! & 0xf;
  if (version !== 4 || ihl < 5) return { why: 'inner IPv4 header malformed' };
  const ip = (at: number) => `${packet[at]}.${packet[at + 1]}.${packet[at + 2]}.${packet[at + 3]}`;
  const t: Tuple = { saddr: ip(off + 12), daddr: ip(off + 16), sport: 0, dport: 0, protocol: packet[off + 9]!, tcpFlags: 0 };
  if (packet.readUInt16BE(off + 6) & 0x1fff) return t;
  off += ihl * 4;
  if (t.protocol === IPPROTO_TCP) {
    if (!fits(off, 14)) return { why: 'inner TCP header cut short' };
    t.tcpFlags = packet[off + 13]! & 0x3f;
  } else if (t.protocol === IPPROTO_UDP) {
    if (!fits(off, 4)) return { why: 'inner UDP header cut short' };
  } else return t;
  t.sport = packet.readUInt16BE(off);
  t.dport = packet.readUInt16BE(off + 2);
  return t;
}

// ---- cases -------------------------------------------------------------------------

export interface StrictCase {
  packet: Buffer;
  ifindex: number;
  config: StrictConfig;
  ipcache: DatapathCase['ipcache'];
  nodes: DatapathCase['nodes'];
  aim: string;
}

const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
const maskOf = (bits: number) => (bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0);

function config(rng: Rng): StrictConfig {
  return rng.weighted<() => StrictConfig>([
    [8, () => ({ net: '10.244.0.0', mask: '255.255.0.0' })],
    [1, () => ({ net: '10.0.0.0', mask: '255.0.0.0' })],
    [1, () => ({ net: '10.244.1.0', mask: '255.255.255.0' })],
    [1, () => ({ net: '0.0.0.0', mask: '0.0.0.0' })],
    [1, () => ({ net: '0.0.0.0', mask: dotted(maskOf(1)) })],
    // A net with bits outside its mask matches nothing; a mask with holes still masks bit by bit.
    [0.5, () => ({ net: '10.244.0.1', mask: '255.255.0.0' })],
    [0.5, () => ({ net: dotted(rng.u32() & 0x0aff00ff), mask: dotted(0xff00ff00) })],
    [0.5, () => {
      const bits = rng.int(0, 32);
      return { net: dotted((rng.u32() & maskOf(bits)) >>> 0), mask: dotted(maskOf(bits)) };
    }],
  ])();
}

/** Case `index` of a strict-mode run: a pod's packet (the datapath generator's, leaving by eth0) and a strict CIDR. */
export function strictCase(seed: number, index: number, env: { ifindexes: number[] }): StrictCase {
  const rng = caseRng(seed, index);
  const base = generateDatapathCase(rng, env, { program: rng.chance(0.8) ? 'from-container' : 'to-container' });
  let packet = base.packet;
  let aim = base.aim;
  if (rng.chance(0.3)) {
    // Tunnel mode with WireGuard: the pod packet inside VXLAN between node IPs, here missing the WireGuard device.
    const vxlan = Buffer.alloc(8);
    vxlan[0] = 0x08;
    vxlan.writeUInt32BE((rng.int(0, 0xffffff) << 8) >>> 0, 4);
    const outer = buildFrame({
      src: rng.pick(['172.30.0.10', '10.244.0.2']), dst: rng.pick(['172.30.0.11', '172.30.0.12', '10.244.1.2']), protocol: IPPROTO_UDP,
      sport: rng.int(32768, 65535), dport: rng.chance(0.9) ? VXLAN_PORT : rng.int(0, 65535), ihl: rng.chance(0.9) ? 5 : rng.int(6, 8),
      payload: Buffer.concat([vxlan, base.packet]),
    });
    packet = rng.chance(0.85) ? outer : outer.subarray(0, rng.int(34, outer.length - 1));
    if (!runnable(packet)) packet = outer;
    aim = `in VXLAN: ${aim}`;
  }
  return { packet, ifindex: rng.pick(env.ifindexes), config: config(rng), ipcache: base.ipcache, nodes: base.nodes, aim };
}

/** Smaller variants: without one map entry, then a shorter packet or one byte zeroed. */
export function shrinkStrictCase(c: StrictCase): StrictCase[] {
  const out: StrictCase[] = [];
  for (let i = 0; i < c.ipcache.length; i++) out.push({ ...c, ipcache: c.ipcache.filter((_, j) => j !== i) });
  for (let i = 0; i < c.nodes.length; i++) out.push({ ...c, nodes: c.nodes.filter((_, j) => j !== i) });
  for (const p of packetShrinks(c.packet)) out.push({ ...c, packet: p });
  return out;
}

export const strictCaseSize = (c: StrictCase) => (c.ipcache.length + c.nodes.length) * 10_000 + packetSize(c.packet);

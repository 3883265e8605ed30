// A reference model of bpf/datapath.c: what cil_from_container and
// cil_to_container must decide for one packet, given the node's maps. It is
// written from the C's documented rules (datapath.c's header comment,
// bpf/lib/*.h, Cilium's behaviour in /work/shared/design/cilium-facts.md),
// not by calling any lab code, so that the fuzzer (lab/fuzz/run.ts) compares
// two independent readings of the same rules. Pure: no I/O, no clock (the
// caller says what "now" is).
//
// The model sees maps as the kernel holds them (decoded keys and values, all
// times absolute) and returns everything the program leaves behind: the
// verdict, the flow event, the auth signal, the metrics increment, the policy
// hit counters and the conntrack table afterwards.
import {
  AUTH_EXPIRATION_SHIFT,
  AUTH_TYPE_DISABLED,
  AUTH_TYPE_EXPLICIT,
  CT_CLOSE_TIMEOUT_S,
  CT_REFRESH_MIN_NS,
  CT_ESTABLISHED,
  CT_LIFETIME_NONTCP_S,
  CT_LIFETIME_TCP_S,
  CT_NEW,
  CT_REPLY,
  CT_SYN_TIMEOUT_S,
  DIR_EGRESS,
  DIR_INGRESS,
  DROP_INVALID,
  DROP_INVALID_SIP,
  DROP_NO_CONFIG,
  DROP_NO_NODE_ID,
  DROP_POLICY,
  DROP_POLICY_AUTH_REQUIRED,
  DROP_POLICY_DENY,
  DROP_UNKNOWN_L3,
  ENDPOINT_KEY_IPV4,
  EP_F_EGRESS_ENFORCED,
  EP_F_INGRESS_ENFORCED,
  IDENTITY_WORLD,
  IPCACHE_F_HAS_TUNNEL_EP,
  IPCACHE_F_IPV6_TUNNEL_EP,
  IPCACHE_PREFIX_BITS_BEFORE_IP,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  MARK_MAGIC_HOST_MASK,
  MARK_MAGIC_IDENTITY,
  OBS_FROM_ENDPOINT,
  OBS_TO_ENDPOINT,
  POLICY_F_DENY,
  POLICY_MODE_CONNECTION,
  SIGNAL_AUTH_REQUIRED,
  TCP_F_ACK,
  TCP_F_FIN,
  TCP_F_RST,
  VERDICT_DROPPED,
  VERDICT_FORWARDED,
  type AuthKey,
  type Ct4Key,
  type CtEntry,
  type EndpointInfo,
  type FlowEvent,
  type IpcacheKey,
  type NodeKey,
  type NodeValue,
  type PolicyEntry,
  type PolicyKey,
  type RemoteEndpointInfo,
} from '../abi/generated.ts';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

const NSEC_PER_SEC = 1_000_000_000n;
const U64 = (v: bigint) => BigInt.asUintN(64, v);

/** Which of the two programs runs. */
export type Program = 'from-container' | 'to-container';

// ---- map state ---------------------------------------------------------------------

export interface Entry<K, V> {
  key: K;
  value: V;
}

/** The datapath's maps as the kernel holds them, times absolute. */
export interface DatapathMaps {
  /** cilium_lxc: ifindex → endpoint. */
  endpoints: Entry<number, EndpointInfo>[];
  ipcache: Entry<IpcacheKey, RemoteEndpointInfo>[];
  nodes: Entry<NodeKey, NodeValue>[];
  policy: Entry<PolicyKey, PolicyEntry>[];
  /** cilium_auth_map: expiration in Unix ns >> AUTH_EXPIRATION_SHIFT. */
  auth: Entry<AuthKey, bigint>[];
  /** cilium_ct4: expires/created in bpf_ktime_get_ns() ns. */
  ct: Entry<Ct4Key, CtEntry>[];
  /** RUNTIME_CONFIG_POLICY_MODE slot. */
  policyMode: bigint;
  /** RUNTIME_CONFIG_CT_ACCOUNTING slot (any non-zero value: on). */
  ctAccounting: bigint;
}

/** What the program reads of the clock: bpf_ktime_get_ns() and the Unix time derived from it. */
export interface Clock {
  monoNs: bigint;
  /** Unix-epoch ns (monotonic + the loader's offset). */
  unixNs: bigint;
}

export interface DatapathInput {
  program: Program;
  /** The frame, Ethernet header first (BPF_PROG_RUN's data_in). */
  packet: Buffer;
  /** skb->ifindex: the lxc device the program runs on. */
  ifindex: number;
  /** skb->mark. */
  mark: number;
  maps: DatapathMaps;
  now: Clock;
}

// ---- the outcome -----------------------------------------------------------------

/** A time the program writes: "now + n ns" (the caller knows now only as a window). */
export interface NowPlus {
  nowPlus: bigint;
}
/**
 * A refresh without CT accounting: "now + nowPlus", unless that would move
 * `old` forward by less than `within` ns, in which case `old` stays. Which
 * one depends on the exact now, so the comparison decides it over the window.
 */
export interface RefreshedUnlessRecent extends NowPlus {
  old: bigint;
  within: bigint;
}
export type TimeValue = bigint | NowPlus | RefreshedUnlessRecent;

export type ExpectedCtEntry = Omit<CtEntry, 'expires' | 'created'> & { expires: TimeValue; created: TimeValue };

export type FlowFields = Omit<FlowEvent, 'timestamp'>;

export interface MetricsIncrement {
  reason: number;
  dir: number;
  packets: bigint;
  bytes: bigint;
}

export type CtEffect =
  | { kind: 'none' }
  | { kind: 'created'; key: Ct4Key }
  | { kind: 'refreshed'; key: Ct4Key };

export interface DatapathOutcome {
  /** The program's return value. */
  retval: number;
  /** DROP_* as a positive number, 0 when the packet passes. */
  dropReason: number;
  /** The flow event sent (every drop, every allowed NEW connection), without its timestamp. */
  flow: FlowFields | null;
  /** The auth key of the SIGNAL_AUTH_REQUIRED sent, if any. */
  signal: AuthKey | null;
  metrics: MetricsIncrement;
  /** cilium_policy afterwards (hit counters). */
  policy: Entry<PolicyKey, PolicyEntry>[];
  /** The policy entry whose counters went up, if any. */
  policyHit: PolicyKey | null;
  /** cilium_ct4 afterwards. */
  ct: Entry<Ct4Key, ExpectedCtEntry>[];
  ctEffect: CtEffect;
  /** The decisions taken, in order, for reports. */
  trace: string[];
}

// ---- parsing -----------------------------------------------------------------------

export interface Tuple {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  protocol: number;
  tcpFlags: number;
}

const ipv4At = (b: Buffer, off: number) => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;

/** bpf_skb_load_bytes(off, len) succeeds only inside the packet. */
const loadable = (b: Buffer, off: number, len: number) => off + len <= b.length;

/** The EtherType (host order), 0 when the frame is too short. */
export function etherType(packet: Buffer): number {
  return loadable(packet, 12, 2) ? packet.readUInt16BE(12) : 0;
}

/**
 * The IPv4 header and the few L4 fields policy needs. A later fragment has
 * no L4 header: ports 0. ICMP echo's identifier stands in for a port
 * (request: source port, reply: destination port). A malformed packet's
 * `partial` is what parse_ipv4() had filled in when it gave up (addresses
 * and protocol once the IPv4 header was good).
 */
export function parseIpv4(packet: Buffer): { tuple: Tuple } | { drop: number; why: string; partial: Tuple } {
  const none: Tuple = { saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0, protocol: 0, tcpFlags: 0 };
  if (!loadable(packet, ETH_HLEN, 20)) return { drop: DROP_INVALID, why: 'shorter than an IPv4 header', partial: none };
  const version = packet[ETH_HLEN]! >> 4;
  const ihl = packet[ETH_HLEN]! & 0xf;
  if (version !== 4) return { drop: DROP_INVALID, why: `IP version ${version}`, partial: none };
  if (ihl < 5) return { drop: DROP_INVALID, why: `IHL ${ihl} < 5`, partial: none };
  const tuple: Tuple = {
    saddr: ipv4At(packet, ETH_HLEN + 12),
    daddr: ipv4At(packet, ETH_HLEN + 16),
    sport: 0,
    dport: 0,
    protocol: packet[ETH_HLEN + 9]!,
    tcpFlags: 0,
  };
  if (packet.readUInt16BE(ETH_HLEN + 6) & 0x1fff) return { tuple };
  const l4 = ETH_HLEN + ihl * 4;
  if (tuple.protocol === IPPROTO_TCP) {
    if (!loadable(packet, l4, 14)) return { drop: DROP_INVALID, why: 'TCP header cut short', partial: tuple };
    tuple.sport = packet.readUInt16BE(l4);
    tuple.dport = packet.readUInt16BE(l4 + 2);
    tuple.tcpFlags = packet[l4 + 13]! & 0x3f;
  } else if (tuple.protocol === IPPROTO_UDP) {
    if (!loadable(packet, l4, 4)) return { drop: DROP_INVALID, why: 'UDP header cut short', partial: tuple };
    tuple.sport = packet.readUInt16BE(l4);
    tuple.dport = packet.readUInt16BE(l4 + 2);
  } else if (tuple.protocol === IPPROTO_ICMP) {
    if (!loadable(packet, l4, 6)) return { drop: DROP_INVALID, why: 'ICMP header cut short', partial: tuple };
    const type = packet[l4]!;
    if (type === 8) tuple.sport = packet.readUInt16BE(l4 + 4);
    else if (type === 0) tuple.dport = packet.readUInt16BE(l4 + 4);
  }
  return { tuple };
}

// ---- lookups ---------------------------------------------------------------------

const ipBytes = (ip: string) => Buffer.from(ip.split('.').map(Number));

/** The bytes an LPM trie compares: everything after prefixlen. */
function lpmData(key: IpcacheKey): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(key.clusterId, 0);
  b[3] = key.family;
  key.ip.copy(b, 4, 0, 16);
  return b;
}

function prefixMatches(a: Buffer, b: Buffer, bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i & 7);
    if ((a[i >> 3]! & mask) !== (b[i >> 3]! & mask)) return false;
  }
  return true;
}

/** Longest-prefix match of an IPv4 address: a key of 32 + 32 bits (cluster 0, family IPv4, the address). */
export function ipcacheLookup(maps: Pick<DatapathMaps, 'ipcache'>, addr: string): RemoteEndpointInfo | undefined {
  const lookupLen = IPCACHE_PREFIX_BITS_BEFORE_IP + 32;
  const want = lpmData({ prefixlen: lookupLen, clusterId: 0, family: ENDPOINT_KEY_IPV4, ip: Buffer.concat([ipBytes(addr), Buffer.alloc(12)]) });
  let best: Entry<IpcacheKey, RemoteEndpointInfo> | undefined;
  for (const e of maps.ipcache) {
    if (e.key.prefixlen > lookupLen) continue; // a longer prefix than the lookup's never matches
    if (best && best.key.prefixlen >= e.key.prefixlen) continue;
    if (prefixMatches(lpmData(e.key), want, e.key.prefixlen)) best = e;
  }
  return best?.value;
}

/** The IPv4 node hosting an ipcache entry, "0.0.0.0" for none. */
export function tunnelEndpoint(info: RemoteEndpointInfo | undefined): string {
  if (!info || !(info.flags & IPCACHE_F_HAS_TUNNEL_EP) || info.flags & IPCACHE_F_IPV6_TUNNEL_EP) return '0.0.0.0';
  return ipv4At(info.tunnelEndpoint, 0);
}

/** Node ID of a node IP; 0 for "no IP" and for an IP without an entry. */
export function nodeIdLookup(maps: Pick<DatapathMaps, 'nodes'>, nodeIp: string): number {
  if (nodeIp === '0.0.0.0') return 0;
  const want = Buffer.concat([ipBytes(nodeIp), Buffer.alloc(12)]);
  const e = maps.nodes.find((n) => n.key.family === ENDPOINT_KEY_IPV4 && n.key.ip.equals(want));
  return e?.value.id ?? 0;
}

/** The identity Cilium's skb->mark encoding carries (0: the mark carries none). */
export function markIdentity(mark: number): number {
  if ((mark & MARK_MAGIC_HOST_MASK) !== MARK_MAGIC_IDENTITY) return 0;
  return (((mark & 0xff) << 16) | (mark >>> 16)) >>> 0;
}

const samePolicyKey = (a: PolicyKey, b: PolicyKey) =>
  a.epIfindex === b.epIfindex && a.secLabel === b.secLabel && a.dport === b.dport && a.protocol === b.protocol && a.direction === b.direction;

export const sameAuthKey = (a: AuthKey, b: AuthKey) =>
  a.localSecLabel === b.localSecLabel && a.remoteSecLabel === b.remoteSecLabel && a.remoteNodeId === b.remoteNodeId && a.authType === b.authType;

export const sameCtKey = (a: Ct4Key, b: Ct4Key) =>
  a.saddr === b.saddr && a.daddr === b.daddr && a.sport === b.sport && a.dport === b.dport && a.protocol === b.protocol && a.scope === b.scope;

/** The six policy lookups, most specific first; the first hit wins. */
export function policyLookupKeys(ifindex: number, peer: number, dport: number, protocol: number, dir: number): PolicyKey[] {
  const k = (secLabel: number, proto: number, port: number): PolicyKey => ({ epIfindex: ifindex, secLabel, dport: port, protocol: proto, direction: dir });
  return [k(peer, protocol, dport), k(peer, protocol, 0), k(peer, 0, 0), k(0, protocol, dport), k(0, protocol, 0), k(0, 0, 0)];
}

// ---- conntrack ---------------------------------------------------------------------

export function ctLifetimeNs(protocol: number, seenFlags: number): bigint {
  if (protocol !== IPPROTO_TCP) return BigInt(CT_LIFETIME_NONTCP_S) * NSEC_PER_SEC;
  if (seenFlags & (TCP_F_FIN | TCP_F_RST)) return BigInt(CT_CLOSE_TIMEOUT_S) * NSEC_PER_SEC;
  if (!(seenFlags & TCP_F_ACK)) return BigInt(CT_SYN_TIMEOUT_S) * NSEC_PER_SEC;
  return BigInt(CT_LIFETIME_TCP_S) * NSEC_PER_SEC;
}

export function ctKey(t: Tuple, scope: number, reverse: boolean): Ct4Key {
  return reverse
    ? { saddr: t.daddr, daddr: t.saddr, sport: t.dport, dport: t.sport, protocol: t.protocol, scope }
    : { saddr: t.saddr, daddr: t.daddr, sport: t.sport, dport: t.dport, protocol: t.protocol, scope };
}

const otherDir = (dir: number) => (dir === DIR_EGRESS ? DIR_INGRESS : DIR_EGRESS);

// ---- the programs ------------------------------------------------------------------

interface Peer {
  identity: number;
  nodeIp: string;
  /** The peer's address has an ipcache entry (egress: always true, unknown is "world"). */
  known: boolean;
}

class Run {
  readonly trace: string[] = [];
  readonly flow: FlowFields;
  signal: AuthKey | null = null;
  policy: Entry<PolicyKey, PolicyEntry>[];
  policyHit: PolicyKey | null = null;
  ct: Entry<Ct4Key, ExpectedCtEntry>[];
  ctEffect: CtEffect = { kind: 'none' };
  readonly len: number;

  constructor(readonly input: DatapathInput, readonly dir: number) {
    this.len = input.packet.length;
    this.flow = {
      srcIdentity: 0, dstIdentity: 0, saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0, protocol: 0, tcpFlags: 0,
      verdict: 0, dropReason: 0, obsPoint: input.program === 'from-container' ? OBS_FROM_ENDPOINT : OBS_TO_ENDPOINT,
      authType: 0, remoteNodeId: 0, ifindex: input.ifindex, pktLen: this.len, ctStatus: 0,
    };
    this.policy = input.maps.policy.map((e) => ({ key: e.key, value: { ...e.value } }));
    this.ct = input.maps.ct.map((e) => ({ key: e.key, value: { ...e.value } }));
  }

  note(s: string): void {
    this.trace.push(s);
  }

  /** ct_lookup4: forward tuple in this scope, else reversed tuple in the other scope; expired entries count as absent. */
  ctLookup(t: Tuple): { status: number; entry?: Entry<Ct4Key, ExpectedCtEntry> } {
    const now = this.input.now.monoNs;
    const live = (key: Ct4Key) => this.ct.find((e) => sameCtKey(e.key, key) && (e.value.expires as bigint) > now);
    const fwd = live(ctKey(t, this.dir, false));
    if (fwd) return { status: CT_ESTABLISHED, entry: fwd };
    const rev = live(ctKey(t, otherDir(this.dir), true));
    if (rev) return { status: CT_REPLY, entry: rev };
    return { status: CT_NEW };
  }

  /** ct_refresh: with accounting, count and refresh; without, rewrite only on new flags or a deadline a second later. */
  ctRefresh(entry: Entry<Ct4Key, ExpectedCtEntry>, t: Tuple): void {
    const seen = entry.value.tcpFlags | t.tcpFlags;
    const nowPlus = ctLifetimeNs(t.protocol, seen);
    const old = entry.value.expires;
    if (this.input.maps.ctAccounting !== 0n) {
      entry.value.packets = U64(entry.value.packets + 1n);
      entry.value.bytes = U64(entry.value.bytes + BigInt(this.len));
      entry.value.expires = { nowPlus };
    } else if (seen === entry.value.tcpFlags && typeof old === 'bigint') {
      entry.value.expires = { nowPlus, old, within: BigInt(CT_REFRESH_MIN_NS) };
    } else {
      entry.value.expires = { nowPlus };
    }
    entry.value.tcpFlags = seen;
    this.ctEffect = { kind: 'refreshed', key: entry.key };
  }

  ctCreate(t: Tuple, peerIdentity: number, remoteNodeId: number, authType: number): void {
    const key = ctKey(t, this.dir, false);
    const value: ExpectedCtEntry = {
      expires: { nowPlus: ctLifetimeNs(t.protocol, t.tcpFlags) },
      created: { nowPlus: 0n },
      packets: 1n,
      bytes: BigInt(this.len),
      peerIdentity,
      remoteNodeId,
      tcpFlags: t.tcpFlags,
      authType,
    };
    const at = this.ct.findIndex((e) => sameCtKey(e.key, key));
    if (at >= 0) this.ct[at] = { key, value };
    else this.ct.push({ key, value });
    this.ctEffect = { kind: 'created', key };
  }

  /** policy_can_access: CTX_ACT_OK with the auth type to require, or a drop reason. */
  policyCanAccess(ep: EndpointInfo, peer: number, t: Tuple): { drop: number } | { authType: number } {
    const enforced = this.dir === DIR_EGRESS ? EP_F_EGRESS_ENFORCED : EP_F_INGRESS_ENFORCED;
    if (!(ep.flags & enforced)) {
      this.note('policy not enforced in this direction: allowed');
      return { authType: AUTH_TYPE_DISABLED };
    }
    for (const key of policyLookupKeys(this.input.ifindex, peer, t.dport, t.protocol, this.dir)) {
      const hit = this.policy.find((e) => samePolicyKey(e.key, key));
      if (!hit) continue;
      hit.value.packets = U64(hit.value.packets + 1n);
      hit.value.bytes = U64(hit.value.bytes + BigInt(this.len));
      this.policyHit = hit.key;
      this.note(`policy entry {id ${key.secLabel}, proto ${key.protocol}, port ${key.dport}}: flags ${hit.value.flags}, auth ${hit.value.authType}`);
      if (hit.value.flags & POLICY_F_DENY) return { drop: DROP_POLICY_DENY };
      return { authType: hit.value.authType & ~AUTH_TYPE_EXPLICIT & 0xff };
    }
    this.note('no policy entry: default deny');
    return { drop: DROP_POLICY };
  }

  authLookup(key: AuthKey): number | undefined {
    const utimeNow = this.input.now.unixNs >> BigInt(AUTH_EXPIRATION_SHIFT);
    const e = this.input.maps.auth.find((a) => sameAuthKey(a.key, key));
    if (e && utimeNow < e.value) {
      this.note('auth entry present and unexpired');
      return undefined;
    }
    this.note(e ? 'auth entry expired: signal' : 'no auth entry: signal');
    this.signal = { ...key };
    return DROP_POLICY_AUTH_REQUIRED;
  }

  /** Steps 3-5 of datapath.c: conntrack, policy, auth, conntrack entry and verdict event. */
  enforce(ep: EndpointInfo, t: Tuple, peer: Peer): number | undefined {
    const { status, entry } = this.ctLookup(t);
    this.flow.ctStatus = status;
    const connectionMode = this.input.maps.policyMode === BigInt(POLICY_MODE_CONNECTION);
    if (status === CT_REPLY || (status === CT_ESTABLISHED && connectionMode)) {
      this.note(status === CT_REPLY ? 'conntrack: reply, passes' : 'conntrack: established (connection mode), passes');
      this.ctRefresh(entry!, t);
      return undefined;
    }
    this.note(status === CT_NEW ? 'conntrack: new' : 'conntrack: established (per-packet mode): policy again');
    const access = this.policyCanAccess(ep, peer.identity, t);
    if ('drop' in access) return access.drop;
    this.flow.authType = access.authType;
    if (access.authType !== AUTH_TYPE_DISABLED) {
      if (!peer.known) {
        this.note('auth required for a source without an ipcache entry: no peer to authenticate');
        return DROP_POLICY_AUTH_REQUIRED;
      }
      if (peer.nodeIp !== '0.0.0.0' && this.flow.remoteNodeId === 0) {
        this.note(`auth required but node ${peer.nodeIp} has no node ID`);
        return DROP_NO_NODE_ID;
      }
      const drop = this.authLookup({ localSecLabel: ep.secIdentity, remoteSecLabel: peer.identity, remoteNodeId: this.flow.remoteNodeId, authType: access.authType });
      if (drop !== undefined) return drop;
    }
    if (status === CT_ESTABLISHED) {
      this.ctRefresh(entry!, t);
      return undefined;
    }
    this.ctCreate(t, peer.identity, this.flow.remoteNodeId, access.authType);
    this.flow.verdict = VERDICT_FORWARDED;
    this.flow.dropReason = 0;
    this.note('new connection allowed: conntrack entry and verdict event');
    return undefined;
  }

  fromPacket(t: Tuple): void {
    Object.assign(this.flow, { saddr: t.saddr, daddr: t.daddr, sport: t.sport, dport: t.dport, protocol: t.protocol, tcpFlags: t.tcpFlags });
  }

  /** The common head of both programs: ARP, endpoint, L3, parse. */
  head(): { ep: EndpointInfo; tuple: Tuple } | { pass: true } | { drop: number } {
    const proto = etherType(this.input.packet);
    if (proto === ETH_P_ARP) {
      this.note('ARP: passes, not subject to policy');
      return { pass: true };
    }
    const ep = this.input.maps.endpoints.find((e) => e.key === this.input.ifindex)?.value;
    if (!ep) {
      this.note(`ifindex ${this.input.ifindex} is no endpoint`);
      return { drop: DROP_NO_CONFIG };
    }
    if (this.dir === DIR_EGRESS) this.flow.srcIdentity = ep.secIdentity;
    else this.flow.dstIdentity = ep.secIdentity;
    if (proto !== ETH_P_IP) {
      this.note(`EtherType 0x${proto.toString(16)}: not IPv4`);
      return { drop: DROP_UNKNOWN_L3 };
    }
    const parsed = parseIpv4(this.input.packet);
    if ('drop' in parsed) {
      this.note(`malformed: ${parsed.why}`);
      return { drop: parsed.drop };
    }
    this.fromPacket(parsed.tuple);
    return { ep, tuple: parsed.tuple };
  }

  fromContainer(): number | undefined {
    const head = this.head();
    if ('pass' in head) return undefined;
    if ('drop' in head) return head.drop;
    const { ep, tuple } = head;
    if (tuple.saddr !== ep.ipv4) {
      this.note(`source ${tuple.saddr} is not the endpoint's ${ep.ipv4}: spoofed`);
      return DROP_INVALID_SIP;
    }
    const info = ipcacheLookup(this.input.maps, tuple.daddr);
    const peer: Peer = {
      identity: info && info.secIdentity ? info.secIdentity : IDENTITY_WORLD,
      nodeIp: tunnelEndpoint(info),
      known: true,
    };
    this.flow.dstIdentity = peer.identity;
    this.flow.remoteNodeId = nodeIdLookup(this.input.maps, peer.nodeIp);
    this.note(`destination identity ${peer.identity}, node ${peer.nodeIp} (id ${this.flow.remoteNodeId})`);
    return this.enforce(ep, tuple, peer);
  }

  toContainer(): number | undefined {
    const head = this.head();
    if ('pass' in head) return undefined;
    if ('drop' in head) return head.drop;
    const { ep, tuple } = head;
    const info = ipcacheLookup(this.input.maps, tuple.saddr);
    const fromMark = markIdentity(this.input.mark);
    const peer: Peer = {
      identity: fromMark || (info && info.secIdentity ? info.secIdentity : IDENTITY_WORLD),
      nodeIp: tunnelEndpoint(info),
      known: info !== undefined,
    };
    this.flow.srcIdentity = peer.identity;
    this.flow.remoteNodeId = nodeIdLookup(this.input.maps, peer.nodeIp);
    this.note(`source identity ${peer.identity}${fromMark ? ' (from skb->mark)' : ''}, node ${peer.nodeIp} (id ${this.flow.remoteNodeId})${info ? '' : ', no ipcache entry'}`);
    return this.enforce(ep, tuple, peer);
  }
}

/** What cil_from_container / cil_to_container do with one packet. */
export function modelDatapath(input: DatapathInput): DatapathOutcome {
  const dir = input.program === 'from-container' ? DIR_EGRESS : DIR_INGRESS;
  const r = new Run(input, dir);
  const drop = input.program === 'from-container' ? r.fromContainer() : r.toContainer();
  const len = BigInt(r.len);
  let flow: FlowFields | null = null;
  if (drop !== undefined) {
    r.flow.verdict = VERDICT_DROPPED;
    r.flow.dropReason = drop;
    flow = r.flow;
  } else if (r.flow.verdict === VERDICT_FORWARDED) flow = r.flow;
  return {
    retval: drop === undefined ? TC_ACT_OK : TC_ACT_SHOT,
    dropReason: drop ?? 0,
    flow,
    signal: r.signal,
    metrics: { reason: drop ?? 0, dir, packets: 1n, bytes: len },
    policy: r.policy,
    policyHit: r.policyHit,
    ct: r.ct,
    ctEffect: r.ctEffect,
    trace: r.trace,
  };
}

export { SIGNAL_AUTH_REQUIRED };

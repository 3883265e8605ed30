// Random datapath cases: a node's map state and one packet, built around the
// packet so that the interesting paths are hit often (policy entries at each
// of the six lookup levels, auth entries for the exact key or a near miss,
// conntrack entries for the tuple or its reverse, in either scope, alive or
// expired), then mutated (fragments, bad IHL/version, cut headers, VLAN
// tags, IPv6, ARP, random bytes). Times are relative to "now" and made
// absolute only when the case runs (concretize), far enough from now that
// the few seconds a batch takes cannot change a verdict. Also the shrinker's
// candidates: smaller variants of a case. Pure.
import {
  AUTH_EXPIRATION_SHIFT,
  AUTH_PORT,
  AUTH_TYPE_ALWAYS_FAIL,
  AUTH_TYPE_EXPLICIT,
  AUTH_TYPE_SPIRE,
  CT_LIFETIME_TCP_S,
  CT_SYN_TIMEOUT_S,
  DIR_EGRESS,
  DIR_INGRESS,
  ENDPOINT_KEY_IPV4,
  ENDPOINT_KEY_IPV6,
  EP_F_EGRESS_ENFORCED,
  EP_F_INGRESS_ENFORCED,
  IDENTITY_HOST,
  IDENTITY_LOCAL_FLAG,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  IPCACHE_F_HAS_TUNNEL_EP,
  IPCACHE_F_IPV6_TUNNEL_EP,
  IPCACHE_F_REMOTE_CLUSTER,
  IPCACHE_F_SKIP_TUNNEL,
  IPCACHE_PREFIX_BITS_BEFORE_IP,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  MARK_MAGIC_IDENTITY,
  POLICY_F_DENY,
  POLICY_MODE_CONNECTION,
  POLICY_MODE_PER_PACKET,
  TCP_F_ACK,
  TCP_F_FIN,
  TCP_F_PSH,
  TCP_F_RST,
  TCP_F_SYN,
  VXLAN_PORT,
  WG_PORT,
  type AuthKey,
  type Ct4Key,
  type CtEntry,
  type EndpointInfo,
  type IpcacheKey,
  type NodeKey,
  type NodeValue,
  type PolicyEntry,
  type PolicyKey,
  type RemoteEndpointInfo,
} from '../abi/generated.ts';
import {
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  ctKey,
  policyLookupKeys,
  type Clock,
  type DatapathInput,
  type DatapathMaps,
  type Entry,
  type Program,
  type Tuple,
} from './model.ts';
import { buildFrame, MAX_FRAME, runnable, type FrameSpec } from './packet.ts';
import { caseRng, type Rng } from './prng.ts';

// ---- relative times ----------------------------------------------------------------

/** A time relative to when the case runs, or an absolute value (0, 2^64-1 …). */
export type TimeSpec = { rel: bigint } | { abs: bigint };

/**
 * Relative times are at least this far from now. A batch of cases must run
 * within it (the runner checks), so no expiry flips while it runs.
 */
export const TIME_MARGIN_NS = 30_000_000_000n;
const HOUR_NS = 3_600_000_000_000n;
const SEC_NS = 1_000_000_000n;
const U64_MAX = (1n << 64n) - 1n;
const AUTH_SHIFT = BigInt(AUTH_EXPIRATION_SHIFT);

export function absoluteTime(t: TimeSpec, now: bigint): bigint {
  if ('abs' in t) return t.abs;
  const v = now + t.rel;
  return v < 0n ? 0n : v > U64_MAX ? U64_MAX : v;
}

// ---- a case --------------------------------------------------------------------------

export type CtSpecEntry = Entry<Ct4Key, Omit<CtEntry, 'expires' | 'created'> & { expires: TimeSpec; created: TimeSpec }>;

/** One datapath case as generated: maps with relative times, the packet, where it runs. */
export interface DatapathCase {
  program: Program;
  ifindex: number;
  mark: number;
  packet: Buffer;
  policyMode: bigint;
  /** RUNTIME_CONFIG_CT_ACCOUNTING. */
  ctAccounting: bigint;
  endpoints: Entry<number, EndpointInfo>[];
  ipcache: Entry<IpcacheKey, RemoteEndpointInfo>[];
  nodes: Entry<NodeKey, NodeValue>[];
  policy: Entry<PolicyKey, PolicyEntry>[];
  /** Expiration relative to now in ns of Unix time (converted to >> 9 units when made absolute). */
  auth: Entry<AuthKey, TimeSpec>[];
  ct: CtSpecEntry[];
  /** What the generator aimed at, for reports. */
  aim: string;
}

/** Where cases may run: the lxc-like devices of the fuzz node (ifindexes the kernel knows). */
export interface DatapathEnv {
  /** Devices cases may use as endpoints (or leave without one). */
  ifindexes: number[];
}

/**
 * Addresses and identities no generated map entry uses: the runner's
 * sentinel packet (see run.ts) lives there, so a case's writes and deletes
 * never touch it. 198.18.0.0/15 is the benchmarking range (RFC 2544).
 */
export const RESERVED_NET = '198.18.0.0/15';
export const RESERVED_IDENTITY = 0xfffff0;

export const inReserved = (ip: string) => {
  const [a, b] = ip.split('.').map(Number);
  return a === 198 && (b === 18 || b === 19);
};

/** The maps of a case with its times made absolute at `now`. */
export function concreteMaps(c: DatapathCase, now: Clock): DatapathMaps {
  const utimeNow = now.unixNs >> AUTH_SHIFT;
  return {
    endpoints: c.endpoints,
    ipcache: c.ipcache,
    nodes: c.nodes,
    policy: c.policy,
    auth: c.auth.map((a) => ({
      key: a.key,
      value: 'abs' in a.value ? a.value.abs : absoluteTime({ rel: a.value.rel >> AUTH_SHIFT }, utimeNow),
    })),
    ct: c.ct.map((e) => ({
      key: e.key,
      value: { ...e.value, expires: absoluteTime(e.value.expires, now.monoNs), created: absoluteTime(e.value.created, now.monoNs) },
    })),
    policyMode: c.policyMode,
    ctAccounting: c.ctAccounting,
  };
}

export function concretize(c: DatapathCase, now: Clock): DatapathInput {
  return { program: c.program, packet: c.packet, ifindex: c.ifindex, mark: c.mark, maps: concreteMaps(c, now), now };
}

// ---- pools -------------------------------------------------------------------------

const LOCAL_PODS = ['10.244.0.2', '10.244.0.3', '10.244.0.4', '10.244.0.5'];
const REMOTE_PODS = ['10.244.1.2', '10.244.1.3', '10.244.2.2', '10.244.3.7'];
const NODE_IPS = ['172.30.0.10', '172.30.0.11', '172.30.0.12', '172.30.0.13'];
const WORLD = ['8.8.8.8', '1.1.1.1', '192.0.2.7'];
const ODD = ['0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1'];

const CLUSTER_IDS = [256, 257, 258, 259, 260, 300];
const IDENTITIES = [...CLUSTER_IDS, IDENTITY_HOST, IDENTITY_WORLD, 3, 4, 5, IDENTITY_REMOTE_NODE, 0xffff, 0x10000, 0xfffffe];
const PORTS = [80, 443, 53, 8080, 7070, 22, 0, 1, 65535, AUTH_PORT, VXLAN_PORT, WG_PORT];

function randomIp(rng: Rng): string {
  for (;;) {
    const ip = [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)].join('.');
    if (!inReserved(ip)) return ip;
  }
}

function address(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.pick(LOCAL_PODS)],
    [4, () => rng.pick(REMOTE_PODS)],
    [1, () => rng.pick(NODE_IPS)],
    [1, () => rng.pick(WORLD)],
    [0.5, () => rng.pick(ODD)],
    [0.5, () => randomIp(rng)],
  ])();
}

function identity(rng: Rng): number {
  return rng.weighted<() => number>([
    [8, () => rng.pick(IDENTITIES)],
    [1, () => rng.int(1, 0xffffff)],
    [0.5, () => (IDENTITY_LOCAL_FLAG | rng.int(1, 0xff)) >>> 0],
    [0.3, () => rng.u32()],
  ])();
}
const safeIdentity = (rng: Rng) => {
  for (;;) {
    const id = identity(rng);
    if (id !== RESERVED_IDENTITY) return id;
  }
};

const port = (rng: Rng) => (rng.chance(0.8) ? rng.pick(PORTS) : rng.int(0, 65535));

function tcpFlags(rng: Rng): number {
  return rng.weighted<number>([
    [4, TCP_F_SYN],
    [3, TCP_F_ACK],
    [2, TCP_F_SYN | TCP_F_ACK],
    [1, TCP_F_ACK | TCP_F_PSH],
    [1, TCP_F_FIN | TCP_F_ACK],
    [1, TCP_F_RST],
    [1, 0],
    [1, rng.int(0, 255)],
  ]);
}

function timeSpec(rng: Rng, alive: boolean): TimeSpec {
  if (rng.chance(0.1)) return { abs: alive ? U64_MAX : rng.pick([0n, 1n]) };
  const span = rng.bigint(TIME_MARGIN_NS, rng.chance(0.5) ? 2n * TIME_MARGIN_NS : 7n * HOUR_NS);
  return { rel: alive ? span : -span };
}

// ---- map entries ---------------------------------------------------------------------

const ip16 = (ip: string) => Buffer.concat([Buffer.from(ip.split('.').map(Number)), Buffer.alloc(12)]);

function ipcacheKey(rng: Rng, ip: string): IpcacheKey {
  const bits = rng.weighted<number>([
    [10, 32],
    [3, rng.int(16, 31)],
    [1, rng.int(1, 15)],
    [0.5, 0],
  ]);
  const key: IpcacheKey = { prefixlen: IPCACHE_PREFIX_BITS_BEFORE_IP + bits, clusterId: 0, family: ENDPOINT_KEY_IPV4, ip: ip16(ip) };
  // Now and then a key no IPv4 lookup should match (another cluster, IPv6, longer than the lookup),
  // or a short one that covers the cluster/family bits only.
  rng.weighted<() => void>([
    [20, () => {}],
    [1, () => (key.clusterId = rng.int(1, 0xffff))],
    [1, () => (key.family = ENDPOINT_KEY_IPV6)],
    [1, () => (key.prefixlen = IPCACHE_PREFIX_BITS_BEFORE_IP + 32 + rng.int(1, 96))],
    [0.5, () => (key.prefixlen = rng.int(0, IPCACHE_PREFIX_BITS_BEFORE_IP - 1))],
  ])();
  return canonicalIpcacheKey(key);
}

/** The LPM trie keeps one entry per (prefixlen, prefix): clear the bits after the prefix. */
export function canonicalIpcacheKey(key: IpcacheKey): IpcacheKey {
  const data = Buffer.alloc(20);
  data.writeUInt16LE(key.clusterId, 0);
  data[3] = key.family;
  key.ip.copy(data, 4, 0, 16);
  for (let bit = key.prefixlen; bit < 160; bit++) data[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { prefixlen: key.prefixlen, clusterId: data.readUInt16LE(0), family: data[3]!, ip: Buffer.from(data.subarray(4, 20)) };
}

function ipcacheValue(rng: Rng, tunnel: string | undefined): RemoteEndpointInfo {
  let flags = tunnel ? IPCACHE_F_HAS_TUNNEL_EP : 0;
  if (rng.chance(0.1)) flags |= IPCACHE_F_IPV6_TUNNEL_EP;
  if (rng.chance(0.05)) flags |= IPCACHE_F_HAS_TUNNEL_EP; // a flag without an address
  if (rng.chance(0.1)) flags |= rng.pick([IPCACHE_F_SKIP_TUNNEL, IPCACHE_F_REMOTE_CLUSTER, 0xf0]);
  return {
    secIdentity: rng.chance(0.1) ? 0 : safeIdentity(rng),
    tunnelEndpoint: tunnel ? ip16(tunnel) : rng.chance(0.05) ? rng.bytes(16) : Buffer.alloc(16),
    key: rng.chance(0.05) ? rng.int(0, 255) : 0,
    flags,
  };
}

function endpointFlags(rng: Rng): number {
  return rng.weighted<number>([
    [3, EP_F_INGRESS_ENFORCED | EP_F_EGRESS_ENFORCED],
    [2, EP_F_INGRESS_ENFORCED],
    [2, EP_F_EGRESS_ENFORCED],
    [1, 0],
    [0.3, rng.int(0, 255)],
  ]);
}

function authTypeByte(rng: Rng): number {
  return rng.weighted<number>([
    [6, 0],
    [3, AUTH_TYPE_SPIRE | AUTH_TYPE_EXPLICIT],
    [2, AUTH_TYPE_SPIRE],
    [1, AUTH_TYPE_ALWAYS_FAIL],
    [1, AUTH_TYPE_EXPLICIT],
    [0.5, rng.int(0, 255)],
  ]);
}

function policyEntry(rng: Rng): PolicyEntry {
  return {
    flags: rng.weighted<number>([
      [8, 0],
      [2, POLICY_F_DENY],
      [0.3, rng.int(0, 255)],
    ]),
    authType: authTypeByte(rng),
    packets: rng.chance(0.8) ? 0n : rng.chance(0.5) ? rng.bigint(0n, 1000n) : U64_MAX - rng.bigint(0n, 2n),
    bytes: rng.chance(0.8) ? 0n : rng.chance(0.5) ? rng.bigint(0n, 100000n) : U64_MAX - rng.bigint(0n, 100n),
  };
}

/** Adds an entry unless one with an equal key is there (a map holds one value per key). */
function addUnique<K, V>(list: Entry<K, V>[], entry: Entry<K, V>, same: (a: K, b: K) => boolean): void {
  if (!list.some((e) => same(e.key, entry.key))) list.push(entry);
}
const sameIpcacheKey = (a: IpcacheKey, b: IpcacheKey) => a.prefixlen === b.prefixlen && a.clusterId === b.clusterId && a.family === b.family && a.ip.equals(b.ip);
const sameNodeKey = (a: NodeKey, b: NodeKey) => a.family === b.family && a.ip.equals(b.ip);
const samePolicyKey = (a: PolicyKey, b: PolicyKey) =>
  a.epIfindex === b.epIfindex && a.secLabel === b.secLabel && a.dport === b.dport && a.protocol === b.protocol && a.direction === b.direction;
const sameAuthKey = (a: AuthKey, b: AuthKey) =>
  a.localSecLabel === b.localSecLabel && a.remoteSecLabel === b.remoteSecLabel && a.remoteNodeId === b.remoteNodeId && a.authType === b.authType;
const sameCtKey = (a: Ct4Key, b: Ct4Key) =>
  a.saddr === b.saddr && a.daddr === b.daddr && a.sport === b.sport && a.dport === b.dport && a.protocol === b.protocol && a.scope === b.scope;
export const KEY_EQUALS = { ipcache: sameIpcacheKey, nodes: sameNodeKey, policy: samePolicyKey, auth: sameAuthKey, ct: sameCtKey };

// ---- packets -------------------------------------------------------------------------

function protocol(rng: Rng): number {
  return rng.weighted<number>([
    [5, IPPROTO_TCP],
    [3, IPPROTO_UDP],
    [2, IPPROTO_ICMP],
    [0.5, rng.pick([0, 47, 50, 132, 255])],
  ]);
}

function frameSpec(rng: Rng, src: string, dst: string): FrameSpec {
  const proto = protocol(rng);
  const spec: FrameSpec = { src, dst, protocol: proto, sport: port(rng), dport: port(rng) };
  if (proto === IPPROTO_TCP) spec.tcpFlags = tcpFlags(rng);
  if (proto === IPPROTO_ICMP) {
    spec.icmpType = rng.weighted<number>([[4, 8], [3, 0], [1, 3], [1, 11], [0.5, rng.int(0, 255)]]);
    spec.icmpId = rng.chance(0.5) ? rng.pick([0, 1, 4242, 65535]) : rng.int(0, 65535);
  }
  if (rng.chance(0.2)) spec.payload = rng.bytes(rng.int(1, 64));
  return spec;
}

/** The tuple the datapath should read from an unmutated frame of `spec`. */
function specTuple(spec: FrameSpec): Tuple {
  const t: Tuple = { saddr: spec.src, daddr: spec.dst, sport: 0, dport: 0, protocol: spec.protocol, tcpFlags: 0 };
  if (spec.protocol === IPPROTO_TCP || spec.protocol === IPPROTO_UDP) {
    t.sport = spec.sport ?? 0;
    t.dport = spec.dport ?? 0;
    if (spec.protocol === IPPROTO_TCP) t.tcpFlags = (spec.tcpFlags ?? 0) & 0x3f;
  } else if (spec.protocol === IPPROTO_ICMP) {
    if (spec.icmpType === 8) t.sport = spec.icmpId ?? 0;
    if (spec.icmpType === 0) t.dport = spec.icmpId ?? 0;
  }
  return t;
}

/** Mutations of a frame, each a different malformation; the result is always runnable. */
function mutateFrame(rng: Rng, spec: FrameSpec): { frame: Buffer; how: string } {
  const kind = rng.weighted<string>([
    [60, 'none'],
    [5, 'later fragment'],
    [3, 'first fragment'],
    [4, 'ip options'],
    [3, 'ihl < 5'],
    [3, 'ihl past the end'],
    [3, 'version'],
    [5, 'cut l4'],
    [2, 'padding'],
    [3, 'vlan'],
    [3, 'ipv6'],
    [2, 'arp'],
    [2, 'ethertype'],
    [2, 'bit flips'],
    [2, 'random bytes'],
  ]);
  switch (kind) {
    case 'later fragment':
      return { frame: buildFrame({ ...spec, fragOffset: rng.int(1, 0x1fff), moreFragments: rng.chance(0.5) }), how: kind };
    case 'first fragment':
      return { frame: buildFrame({ ...spec, moreFragments: true }), how: kind };
    case 'ip options': {
      const ihl = rng.int(6, 15);
      return { frame: buildFrame({ ...spec, ihl, options: rng.bytes((ihl - 5) * 4) }), how: `${kind} (ihl ${ihl})` };
    }
    case 'ihl < 5':
      return { frame: buildFrame({ ...spec, ihl: rng.int(0, 4) }), how: kind };
    case 'ihl past the end': {
      // The header claims more words than the frame carries: L4 is read past the end.
      const frame = buildFrame(spec);
      frame[14] = (frame[14]! & 0xf0) | rng.int(6, 15);
      return { frame, how: kind };
    }
    case 'version': {
      const frame = buildFrame(spec);
      frame[14] = (rng.pick([0, 6, 5, 15]) << 4) | (frame[14]! & 0xf);
      return { frame, how: kind };
    }
    case 'cut l4': {
      const full = buildFrame(spec);
      const l3end = 14 + 20;
      return { frame: full.subarray(0, rng.int(l3end, Math.max(l3end, full.length - 1))), how: kind };
    }
    case 'padding':
      return { frame: Buffer.concat([buildFrame(spec), rng.bytes(rng.int(1, 200))]), how: kind };
    case 'vlan': {
      const tags: [number, number][] = [[rng.pick([ETH_P_8021Q, ETH_P_8021AD]), rng.int(0, 0xffff)]];
      if (rng.chance(0.3)) tags.push([ETH_P_8021Q, rng.int(0, 0xffff)]);
      return { frame: buildFrame({ ...spec, vlan: tags }), how: kind };
    }
    case 'ipv6': {
      const body = rng.bytes(rng.int(40, 120));
      body[0] = 0x60 | (body[0]! & 0xf);
      return { frame: ethernet(ETH_P_IPV6, body), how: kind };
    }
    case 'arp':
      return { frame: ethernet(ETH_P_ARP, rng.bytes(rng.chance(0.8) ? 28 : rng.int(0, 60))), how: kind };
    case 'ethertype': {
      const type = rng.pick([0x0000, 0x0600, 0x05dc, 0x88cc, 0x8847, 0xffff, rng.int(0, 0xffff)]);
      const frame = buildFrame(spec);
      frame.writeUInt16BE(type, 12);
      return { frame: fix(rng, frame), how: `${kind} 0x${type.toString(16)}` };
    }
    case 'bit flips': {
      const frame = buildFrame(spec);
      const flips = rng.int(1, 4);
      for (let i = 0; i < flips; i++) {
        const at = rng.int(12, frame.length - 1);
        frame[at]! ^= 1 << rng.int(0, 7);
      }
      return { frame: fix(rng, frame), how: kind };
    }
    case 'random bytes': {
      const frame = rng.bytes(rng.int(14, 200));
      if (rng.chance(0.5)) frame.writeUInt16BE(ETH_P_IP, 12);
      return { frame: fix(rng, frame), how: kind };
    }
    default:
      return { frame: buildFrame(spec), how: 'well-formed' };
  }
}

function ethernet(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(14);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, body]);
}

/** Pads a frame until BPF_PROG_RUN takes it. */
function fix(rng: Rng, frame: Buffer): Buffer {
  let f = frame.length > MAX_FRAME ? frame.subarray(0, MAX_FRAME) : frame;
  while (!runnable(f)) f = Buffer.concat([f, rng.bytes(1)]);
  return f;
}

// ---- the case --------------------------------------------------------------------------

/** Case `index` of a run seeded with `seed`. */
export function datapathCase(seed: number, index: number, env: DatapathEnv): DatapathCase {
  return generateDatapathCase(caseRng(seed, index), env);
}

/** A case; `program` fixes which program it is for (the overlay and strict fuzzers reuse its maps and packet). */
export function generateDatapathCase(rng: Rng, env: DatapathEnv, opts: { program?: Program } = {}): DatapathCase {
  const drawn: Program = rng.chance(0.5) ? 'from-container' : 'to-container';
  const program = opts.program ?? drawn;
  const dir = program === 'from-container' ? DIR_EGRESS : DIR_INGRESS;
  const aims: string[] = [program];

  // Endpoints on some of the devices.
  const endpoints: Entry<number, EndpointInfo>[] = [];
  for (const ifindex of env.ifindexes) {
    if (!rng.chance(0.6)) continue;
    endpoints.push({ key: ifindex, value: { secIdentity: rng.chance(0.9) ? rng.pick(CLUSTER_IDS) : safeIdentity(rng), ipv4: rng.pick([...LOCAL_PODS, ...LOCAL_PODS, address(rng)]), flags: endpointFlags(rng) } });
  }
  const ep = endpoints.length && rng.chance(0.9) ? rng.pick(endpoints) : undefined;
  const ifindex = ep ? ep.key : rng.chance(0.7) ? rng.pick(env.ifindexes) : 1;
  if (!ep) aims.push('no endpoint here');

  // The packet, as the endpoint would send or receive it.
  const own = ep?.value.ipv4 ?? rng.pick(LOCAL_PODS);
  const peerIp = address(rng);
  let src = program === 'from-container' ? own : peerIp;
  const dst = program === 'from-container' ? peerIp : own;
  if (program === 'from-container' && rng.chance(0.08)) {
    src = address(rng);
    aims.push('maybe spoofed');
  }
  const spec = frameSpec(rng, src, dst);
  const { frame, how } = mutateFrame(rng, spec);
  aims.push(how);
  const tuple = specTuple(spec);

  // ipcache: the peer (and the own address), plus noise.
  const ipcache: Entry<IpcacheKey, RemoteEndpointInfo>[] = [];
  const tunnels: string[] = [];
  const peerKnown = rng.chance(0.8);
  if (peerKnown) {
    const tunnel = rng.chance(0.5) ? rng.pick([...NODE_IPS.slice(1), '0.0.0.0', address(rng)]) : undefined;
    if (tunnel) tunnels.push(tunnel);
    addUnique(ipcache, { key: ipcacheKey(rng, peerIp), value: ipcacheValue(rng, tunnel) }, sameIpcacheKey);
    if (rng.chance(0.3)) addUnique(ipcache, { key: ipcacheKey(rng, peerIp), value: ipcacheValue(rng, tunnel) }, sameIpcacheKey);
  } else aims.push('peer not in ipcache');
  if (rng.chance(0.5)) addUnique(ipcache, { key: ipcacheKey(rng, own), value: ipcacheValue(rng, undefined) }, sameIpcacheKey);
  for (let i = rng.int(0, 3); i > 0; i--) {
    const tunnel = rng.chance(0.4) ? rng.pick(NODE_IPS) : undefined;
    if (tunnel) tunnels.push(tunnel);
    addUnique(ipcache, { key: ipcacheKey(rng, address(rng)), value: ipcacheValue(rng, tunnel) }, sameIpcacheKey);
  }
  const filteredIpcache = ipcache.filter((e) => !(e.key.prefixlen >= IPCACHE_PREFIX_BITS_BEFORE_IP + 15 && inReserved(ipOf(e.key))));

  // Node IDs for some tunnel endpoints (id 0 now and then: present but useless).
  const nodes: Entry<NodeKey, NodeValue>[] = [];
  for (const ip of [...new Set([...tunnels, ...rng.some(NODE_IPS, 0.2)])]) {
    if (!rng.chance(0.7)) continue;
    const key: NodeKey = { family: rng.chance(0.95) ? ENDPOINT_KEY_IPV4 : ENDPOINT_KEY_IPV6, ip: ip16(ip) };
    addUnique(nodes, { key, value: { id: rng.chance(0.9) ? rng.int(1, 12) : rng.pick([0, 0xffff]), spi: rng.chance(0.9) ? 0 : rng.int(0, 255) } }, sameNodeKey);
  }

  // The identity the program will most likely see for the peer.
  const peerIdentities = [...new Set([
    ...filteredIpcache.map((e) => e.value.secIdentity).filter((id) => id !== 0),
    IDENTITY_WORLD,
  ])];
  let mark = 0;
  if (program === 'to-container' && rng.chance(0.25)) {
    const id = rng.chance(0.8) ? rng.pick([...peerIdentities, ...CLUSTER_IDS]) : identity(rng);
    mark = (((id & 0xffff) << 16) | MARK_MAGIC_IDENTITY | ((id >>> 16) & 0xff)) >>> 0;
    aims.push('identity in mark');
  } else if (rng.chance(0.1)) mark = rng.u32();
  const peerGuess = () => rng.chance(0.85) ? rng.pick(peerIdentities) : safeIdentity(rng);

  // Policy: entries at the lookup levels of this packet, and noise.
  const policy: Entry<PolicyKey, PolicyEntry>[] = [];
  const levels = policyLookupKeys(ifindex, peerGuess(), tuple.dport, tuple.protocol, dir);
  for (const key of levels) if (rng.chance(0.3)) addUnique(policy, { key, value: policyEntry(rng) }, samePolicyKey);
  for (let i = rng.int(0, 3); i > 0; i--) {
    const key: PolicyKey = {
      epIfindex: rng.chance(0.7) ? ifindex : rng.pick(env.ifindexes),
      secLabel: rng.chance(0.3) ? 0 : peerGuess(),
      dport: rng.chance(0.4) ? 0 : port(rng),
      protocol: rng.chance(0.3) ? 0 : protocol(rng),
      direction: rng.chance(0.8) ? dir : rng.pick([DIR_INGRESS, DIR_EGRESS, 0, 3]),
    };
    addUnique(policy, { key, value: policyEntry(rng) }, samePolicyKey);
  }

  // Auth: the key the program would ask for, near misses, noise.
  const auth: Entry<AuthKey, TimeSpec>[] = [];
  const localId = ep?.value.secIdentity ?? rng.pick(CLUSTER_IDS);
  const nodeIds = [0, ...nodes.map((n) => n.value.id)];
  for (let i = rng.int(0, 3); i > 0; i--) {
    const key: AuthKey = {
      localSecLabel: rng.chance(0.85) ? localId : safeIdentity(rng),
      remoteSecLabel: peerGuess(),
      remoteNodeId: rng.chance(0.85) ? rng.pick(nodeIds) : rng.int(0, 0xffff),
      authType: rng.weighted<number>([[6, AUTH_TYPE_SPIRE], [1, AUTH_TYPE_ALWAYS_FAIL], [0.5, rng.int(0, 255)]]),
    };
    if (key.localSecLabel === RESERVED_IDENTITY) continue;
    addUnique(auth, { key, value: timeSpec(rng, rng.chance(0.6)) }, sameAuthKey);
  }

  // Conntrack: this tuple or its reverse, in either scope, alive or expired.
  const ct: CtSpecEntry[] = [];
  const other = dir === DIR_EGRESS ? DIR_INGRESS : DIR_EGRESS;
  const ctChoices: [number, () => Ct4Key][] = [
    [3, () => ctKey(tuple, dir, false)],
    [3, () => ctKey(tuple, other, true)],
    [1, () => ctKey(tuple, dir, true)],
    [1, () => ctKey(tuple, other, false)],
    [1, () => ({ ...ctKey(tuple, dir, false), sport: (tuple.sport + 1) & 0xffff })],
    [1, () => ({ saddr: address(rng), daddr: address(rng), sport: port(rng), dport: port(rng), protocol: protocol(rng), scope: rng.pick([DIR_INGRESS, DIR_EGRESS]) })],
  ];
  for (let i = rng.weighted<number>([[3, 0], [4, 1], [2, 2], [1, 3]]); i > 0; i--) {
    const key = rng.weighted(ctChoices)();
    if (inReserved(key.saddr) || inReserved(key.daddr)) continue;
    addUnique(ct, {
      key,
      value: {
        // Now and then less than a second short of a fresh refresh, where
        // ct_refresh without accounting leaves the entry as it is.
        expires: rng.chance(0.15) ? { rel: rng.pick([BigInt(CT_SYN_TIMEOUT_S), BigInt(CT_LIFETIME_TCP_S)]) * SEC_NS - rng.bigint(0n, SEC_NS) } : timeSpec(rng, rng.chance(0.7)),
        created: rng.chance(0.9) ? { rel: -rng.bigint(TIME_MARGIN_NS, HOUR_NS) } : { abs: rng.u64() },
        packets: rng.chance(0.9) ? rng.bigint(1n, 100n) : U64_MAX,
        bytes: rng.chance(0.9) ? rng.bigint(40n, 100000n) : U64_MAX - 10n,
        peerIdentity: peerGuess(),
        remoteNodeId: rng.pick(nodeIds),
        tcpFlags: tuple.protocol === IPPROTO_TCP ? tcpFlags(rng) & 0x3f : rng.chance(0.9) ? 0 : rng.int(0, 255),
        authType: rng.chance(0.7) ? 0 : rng.pick([AUTH_TYPE_SPIRE, rng.int(0, 255)]),
      },
    }, sameCtKey);
  }
  if (ct.length) aims.push(`${ct.length} ct`);

  const policyMode = rng.weighted<bigint>([[5, BigInt(POLICY_MODE_PER_PACKET)], [4, BigInt(POLICY_MODE_CONNECTION)], [0.5, rng.u64()]]);
  const ctAccounting = rng.weighted<bigint>([[5, 0n], [4, 1n], [0.5, rng.u64()]]);
  return {
    program, ifindex, mark, packet: frame, policyMode, ctAccounting,
    endpoints, ipcache: filteredIpcache, nodes, policy, auth, ct,
    aim: aims.join(', '),
  };
}

const ipOf = (key: IpcacheKey) => Array.from(key.ip.subarray(0, 4)).join('.');

// ---- shrinking --------------------------------------------------------------------------

const MAP_LISTS = ['endpoints', 'ipcache', 'nodes', 'policy', 'auth', 'ct'] as const;

/** How big a case is: map entries first, then packet bytes; the shrinker makes it smaller. */
export function caseSize(c: DatapathCase): number {
  return MAP_LISTS.reduce((n, m) => n + c[m].length, 0) * 10_000 + packetSize(c.packet) + (c.mark ? 1 : 0) + (c.policyMode === 0n ? 0 : c.policyMode === 1n ? 1 : 2) +
    (c.ctAccounting === 0n ? 0 : c.ctAccounting === 1n ? 1 : 2);
}

/**
 * Smaller variants of a case, most promising first: without one map entry
 * (each of them), then with a plainer skb/runtime config, then a shorter
 * packet, then packet bytes set to 0. Every variant is runnable.
 */
export function shrinkCandidates(c: DatapathCase): DatapathCase[] {
  const out: DatapathCase[] = [];
  for (const m of MAP_LISTS) {
    const list = c[m] as unknown[];
    for (let i = 0; i < list.length; i++) out.push({ ...c, [m]: list.filter((_, j) => j !== i) });
  }
  if (c.mark) out.push({ ...c, mark: 0 });
  if (c.policyMode > 1n) out.push({ ...c, policyMode: 1n });
  if (c.policyMode) out.push({ ...c, policyMode: 0n });
  if (c.ctAccounting > 1n) out.push({ ...c, ctAccounting: 1n });
  if (c.ctAccounting) out.push({ ...c, ctAccounting: 0n });
  for (const p of packetShrinks(c.packet)) out.push({ ...c, packet: p });
  return out;
}

/** Shorter versions of a frame, then versions with one byte set to 0; all runnable. */
export function packetShrinks(packet: Buffer): Buffer[] {
  const packets: Buffer[] = [];
  for (let len = 14; len < packet.length - 1; len = len < 34 ? len + 20 : Math.ceil((len + packet.length) / 2)) packets.push(packet.subarray(0, len));
  packets.push(packet.subarray(0, packet.length - 1));
  for (let i = 0; i < packet.length; i++) {
    if (packet[i] === 0) continue;
    const p = Buffer.from(packet);
    p[i] = 0;
    packets.push(p);
  }
  return packets.filter(runnable);
}

/** Bytes of a frame that count for its size: its length and its non-zero bytes. */
export const packetSize = (packet: Buffer) => packet.length + packet.reduce((n, b) => n + (b ? 1 : 0), 0);

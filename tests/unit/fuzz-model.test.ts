// The fuzzers' reference models (lab/fuzz/*model.ts) on hand-made inputs:
// each rule of bpf/datapath.c, overlay.c and strict.c that the fuzzers hold
// the C to, stated once here where a reader can check it against the C.
import t from 'tap';
import {
  AUTH_TYPE_EXPLICIT,
  AUTH_TYPE_SPIRE,
  CT_ESTABLISHED,
  CT_NEW,
  DIR_EGRESS,
  DIR_INGRESS,
  DROP_INVALID,
  DROP_INVALID_IDENTITY,
  DROP_INVALID_SIP,
  DROP_NO_CONFIG,
  DROP_NO_NODE_ID,
  DROP_NO_TUNNEL_ENDPOINT,
  DROP_NO_TUNNEL_KEY,
  DROP_POLICY,
  DROP_POLICY_AUTH_REQUIRED,
  DROP_POLICY_DENY,
  DROP_UNENCRYPTED_TRAFFIC,
  DROP_UNKNOWN_L3,
  ENDPOINT_KEY_IPV4,
  ENDPOINT_KEY_IPV6,
  EP_F_EGRESS_ENFORCED,
  EP_F_INGRESS_ENFORCED,
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  IPCACHE_F_HAS_TUNNEL_EP,
  IPCACHE_F_IPV6_TUNNEL_EP,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  OBS_FROM_ENDPOINT,
  OBS_FROM_OVERLAY,
  OBS_TO_OVERLAY,
  POLICY_F_DENY,
  TCP_F_ACK,
  TCP_F_FIN,
  TCP_F_SYN,
  VERDICT_DROPPED,
  VERDICT_FORWARDED,
  VXLAN_PORT,
  type Ct4Key,
  type CtEntry,
  type IpcacheKey,
  type PolicyEntry,
  type PolicyKey,
  type RemoteEndpointInfo,
} from '../../lab/abi/generated.ts';
import { identityToMark } from '../../lab/datapath/mark.ts';
import {
  ETH_P_ARP,
  ETH_P_IPV6,
  TC_ACT_OK,
  TC_ACT_SHOT,
  ipcacheLookup,
  modelDatapath,
  parseIpv4,
  type Clock,
  type DatapathInput,
  type DatapathMaps,
  type Entry,
} from '../../lab/fuzz/model.ts';
import { timeOk } from '../../lab/fuzz/compare.ts';
import { modelFromOverlay, modelToOverlay } from '../../lab/fuzz/overlay-model.ts';
import { buildFrame, runnable } from '../../lab/fuzz/packet.ts';
import { modelStrict } from '../../lab/fuzz/strict-model.ts';

const NOW: Clock = { monoNs: 5_000_000_000_000n, unixNs: 1_700_000_000_000_000_000n };
const UTIME_NOW = NOW.unixNs >> 9n;
const SEC = 1_000_000_000n;

const CLIENT = { ifindex: 3, ip: '10.244.0.2', id: 256 };
const SERVER = { ifindex: 4, ip: '10.244.0.3', id: 258 };
const REMOTE = { ip: '10.244.1.2', id: 257, node: '172.30.0.11', nodeId: 2 };
const FAR = { ip: '10.244.2.2', id: 259, node: '172.30.0.12' };

const ip16 = (ip: string) => Buffer.concat([Buffer.from(ip.split('.').map(Number)), Buffer.alloc(12)]);
const key32 = (ip: string, bits = 32, family = ENDPOINT_KEY_IPV4): IpcacheKey => ({ prefixlen: 32 + bits, clusterId: 0, family, ip: ip16(ip) });
const info = (identity: number, tunnel?: string, flags = tunnel ? IPCACHE_F_HAS_TUNNEL_EP : 0): RemoteEndpointInfo => ({
  secIdentity: identity, tunnelEndpoint: tunnel ? ip16(tunnel) : Buffer.alloc(16), key: 0, flags,
});
const pol = (ep: number, dir: number, secLabel: number, protocol: number, dport: number, value: Partial<PolicyEntry> = {}): Entry<PolicyKey, PolicyEntry> => ({
  key: { epIfindex: ep, secLabel, dport, protocol, direction: dir },
  value: { flags: 0, authType: 0, packets: 0n, bytes: 0n, ...value },
});

function maps(over: Partial<DatapathMaps> = {}): DatapathMaps {
  return {
    endpoints: [
      { key: CLIENT.ifindex, value: { secIdentity: CLIENT.id, ipv4: CLIENT.ip, flags: EP_F_INGRESS_ENFORCED | EP_F_EGRESS_ENFORCED } },
      { key: SERVER.ifindex, value: { secIdentity: SERVER.id, ipv4: SERVER.ip, flags: EP_F_INGRESS_ENFORCED } },
    ],
    ipcache: [
      { key: key32(CLIENT.ip), value: info(CLIENT.id) },
      { key: key32(SERVER.ip), value: info(SERVER.id) },
      { key: key32(REMOTE.ip), value: info(REMOTE.id, REMOTE.node) },
      { key: key32(FAR.ip), value: info(FAR.id, FAR.node) },
    ],
    nodes: [{ key: { family: ENDPOINT_KEY_IPV4, ip: ip16(REMOTE.node) }, value: { id: REMOTE.nodeId, spi: 0 } }],
    policy: [],
    auth: [],
    ct: [],
    policyMode: 0n,
    ctAccounting: 0n,
    ...over,
  };
}

const tcp = (src: string, dst: string, sport: number, dport: number, flags = TCP_F_SYN) => buildFrame({ src, dst, protocol: IPPROTO_TCP, sport, dport, tcpFlags: flags });
const egress = (packet: Buffer, m: DatapathMaps, ifindex = CLIENT.ifindex): DatapathInput => ({ program: 'from-container', packet, ifindex, mark: 0, maps: m, now: NOW });
const ingress = (packet: Buffer, m: DatapathMaps, ifindex = SERVER.ifindex, mark = 0): DatapathInput => ({ program: 'to-container', packet, ifindex, mark, maps: m, now: NOW });

t.test('guards before policy: ARP, unknown endpoint, non-IPv4, malformed, spoofed', async (t) => {
  const arp = Buffer.alloc(42);
  arp.writeUInt16BE(ETH_P_ARP, 12);
  const a = modelDatapath(egress(arp, maps()));
  t.same([a.retval, a.flow, a.metrics.reason], [TC_ACT_OK, null, 0], 'ARP passes unreported, counted as forwarded');

  const lo = modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 1, 2), maps(), 1));
  t.equal(lo.dropReason, DROP_NO_CONFIG);
  t.match(lo.flow, { srcIdentity: 0, saddr: '0.0.0.0', ifindex: 1, obsPoint: OBS_FROM_ENDPOINT, verdict: VERDICT_DROPPED });

  const v6 = Buffer.alloc(54);
  v6.writeUInt16BE(ETH_P_IPV6, 12);
  t.match(modelDatapath(egress(v6, maps())), { dropReason: DROP_UNKNOWN_L3, flow: { srcIdentity: CLIENT.id } });

  const badIhl = tcp(CLIENT.ip, REMOTE.ip, 1, 2);
  badIhl[14] = 0x44;
  t.match(modelDatapath(egress(badIhl, maps())), { dropReason: DROP_INVALID, flow: { saddr: '0.0.0.0', srcIdentity: CLIENT.id } }, 'no packet fields in the event of a bad header');
  t.match(modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 1, 2).subarray(0, 14 + 20 + 13), maps())), { dropReason: DROP_INVALID }, 'TCP header one byte short of the flags');

  const spoofed = modelDatapath(egress(tcp('10.244.0.99', REMOTE.ip, 1, 2), maps()));
  t.match(spoofed, { dropReason: DROP_INVALID_SIP, flow: { srcIdentity: CLIENT.id, dstIdentity: 0, saddr: '10.244.0.99' } });
  t.equal(spoofed.metrics.dir, DIR_EGRESS);
});

t.test('policy: six lookups, most specific first; deny; default deny; not enforced', async (t) => {
  const p = (entries: Entry<PolicyKey, PolicyEntry>[]) => modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 40000, 8080), maps({ policy: entries })));
  t.equal(p([]).dropReason, DROP_POLICY, 'enforced with no entry');
  const order = [
    pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, IPPROTO_TCP, 8080),
    pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, IPPROTO_TCP, 0),
    pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, 0, 0),
    pol(CLIENT.ifindex, DIR_EGRESS, 0, IPPROTO_TCP, 8080),
    pol(CLIENT.ifindex, DIR_EGRESS, 0, IPPROTO_TCP, 0),
    pol(CLIENT.ifindex, DIR_EGRESS, 0, 0, 0),
  ];
  for (let i = 0; i < order.length; i++) {
    const r = p(order.slice(i));
    t.same(r.policyHit, order[i]!.key, `level ${i + 1} wins over the ones after it`);
    t.match(r.policy.find((e) => e.key === r.policyHit || JSON.stringify(e.key) === JSON.stringify(r.policyHit)), { value: { packets: 1n, bytes: BigInt(r.metrics.bytes) } });
  }
  t.equal(p([pol(CLIENT.ifindex, DIR_INGRESS, REMOTE.id, IPPROTO_TCP, 8080)]).dropReason, DROP_POLICY, 'the other direction does not count');
  t.equal(p([pol(SERVER.ifindex, DIR_EGRESS, REMOTE.id, IPPROTO_TCP, 8080)]).dropReason, DROP_POLICY, 'another endpoint\'s entry does not count');
  const deny = p([pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, IPPROTO_TCP, 8080, { flags: POLICY_F_DENY, authType: AUTH_TYPE_SPIRE })]);
  t.match(deny, { dropReason: DROP_POLICY_DENY, signal: null, flow: { authType: 0 } }, 'deny wins, auth never asked');
  t.equal(deny.policy[0]!.value.packets, 1n, 'a deny entry counts its hit');
  const wrap = p([pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, IPPROTO_TCP, 8080, { packets: (1n << 64n) - 1n })]);
  t.equal(wrap.policy[0]!.value.packets, 0n, 'the u64 counter wraps');

  // The server's egress is not enforced: everything passes, no entry counts.
  const open = modelDatapath(egress(tcp(SERVER.ip, REMOTE.ip, 1, 2), maps({ policy: [pol(SERVER.ifindex, DIR_EGRESS, 0, 0, 0)] }), SERVER.ifindex));
  t.match(open, { retval: TC_ACT_OK, policyHit: null, flow: { verdict: VERDICT_FORWARDED, ctStatus: CT_NEW } });
});

t.test('auth: signal on a miss or an expired entry, pass on a live one; node IDs', async (t) => {
  const needs = [pol(CLIENT.ifindex, DIR_EGRESS, REMOTE.id, 0, 0, { authType: AUTH_TYPE_SPIRE | AUTH_TYPE_EXPLICIT })];
  const key = { localSecLabel: CLIENT.id, remoteSecLabel: REMOTE.id, remoteNodeId: REMOTE.nodeId, authType: AUTH_TYPE_SPIRE };
  const run = (auth: DatapathMaps['auth']) => modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 40000, 80), maps({ policy: needs, auth })));
  t.match(run([]), { dropReason: DROP_POLICY_AUTH_REQUIRED, signal: key, flow: { authType: AUTH_TYPE_SPIRE, remoteNodeId: 2 } }, 'the explicit bit is not part of the key');
  t.match(run([{ key, value: UTIME_NOW }]), { dropReason: DROP_POLICY_AUTH_REQUIRED, signal: key }, 'expiring now is expired');
  t.match(run([{ key, value: UTIME_NOW + 1n }]), { retval: TC_ACT_OK, signal: null, ctEffect: { kind: 'created' } });
  t.match(run([{ key: { ...key, remoteNodeId: 0 }, value: UTIME_NOW + 100n }]), { dropReason: DROP_POLICY_AUTH_REQUIRED }, 'another node\'s entry does not count');

  const far = modelDatapath(egress(tcp(CLIENT.ip, FAR.ip, 1, 80), maps({ policy: [pol(CLIENT.ifindex, DIR_EGRESS, FAR.id, 0, 0, { authType: AUTH_TYPE_SPIRE })] })));
  t.match(far, { dropReason: DROP_NO_NODE_ID, signal: null, flow: { dstIdentity: FAR.id, remoteNodeId: 0 } }, 'a tunnel endpoint without a node ID');

  // Ingress between pods of one node: node 0; a source outside the ipcache: no peer, no signal.
  const srv = [pol(SERVER.ifindex, DIR_INGRESS, 0, IPPROTO_TCP, 7070, { authType: AUTH_TYPE_SPIRE })];
  t.match(modelDatapath(ingress(tcp(CLIENT.ip, SERVER.ip, 1, 7070), maps({ policy: srv }))), { signal: { localSecLabel: SERVER.id, remoteSecLabel: CLIENT.id, remoteNodeId: 0 } });
  t.match(modelDatapath(ingress(tcp('10.9.9.9', SERVER.ip, 1, 7070), maps({ policy: srv }))), { dropReason: DROP_POLICY_AUTH_REQUIRED, signal: null, flow: { srcIdentity: IDENTITY_WORLD } });
  t.match(modelDatapath(ingress(tcp('10.9.9.9', SERVER.ip, 1, 7070), maps({ policy: srv }), SERVER.ifindex, identityToMark(CLIENT.id))), { signal: null, flow: { srcIdentity: CLIENT.id } },
    'a mark names the peer but the ipcache still has no entry for it: no signal');
});

t.test('skb->mark carries the source identity to cil_to_container; cil_from_container ignores it', async (t) => {
  const dns = [pol(SERVER.ifindex, DIR_INGRESS, CLIENT.id, IPPROTO_UDP, 53)];
  const udp = buildFrame({ src: REMOTE.ip, dst: SERVER.ip, protocol: IPPROTO_UDP, sport: 5000, dport: 53 });
  t.match(modelDatapath(ingress(udp, maps({ policy: dns }), SERVER.ifindex, identityToMark(CLIENT.id))), { retval: TC_ACT_OK, flow: { srcIdentity: CLIENT.id, remoteNodeId: REMOTE.nodeId } });
  t.match(modelDatapath(ingress(udp, maps({ policy: dns }))), { dropReason: DROP_POLICY, flow: { srcIdentity: REMOTE.id } }, 'no mark: the ipcache');
  t.match(modelDatapath(ingress(udp, maps({ policy: dns }), SERVER.ifindex, 0x01000e00)), { flow: { srcIdentity: REMOTE.id } }, 'a mark without the magic carries nothing');
});

const ctEntry = (over: Partial<CtEntry> = {}): CtEntry => ({
  expires: NOW.monoNs + 100n * SEC, created: NOW.monoNs - SEC, packets: 3n, bytes: 300n, peerIdentity: REMOTE.id, remoteNodeId: 2, tcpFlags: TCP_F_SYN, authType: 0, ...over,
});
const ct = (key: Ct4Key, value = ctEntry()) => [{ key, value }];

t.test('conntrack: replies pass in both modes, established per mode, expired entries are absent', async (t) => {
  const fwd: Ct4Key = { saddr: CLIENT.ip, daddr: REMOTE.ip, sport: 40000, dport: 80, protocol: IPPROTO_TCP, scope: DIR_EGRESS };
  const reply = tcp(REMOTE.ip, CLIENT.ip, 80, 40000, TCP_F_SYN | TCP_F_ACK);
  for (const mode of [0n, 1n]) {
    const r = modelDatapath(ingress(reply, maps({ ct: ct(fwd), policyMode: mode, ctAccounting: 1n }), CLIENT.ifindex));
    t.match(r, { retval: TC_ACT_OK, flow: null, ctEffect: { kind: 'refreshed', key: fwd }, policyHit: null }, `mode ${mode}: the reply passes without policy`);
    t.match(r.ct[0]!.value, { packets: 4n, bytes: 300n + BigInt(reply.length), tcpFlags: TCP_F_SYN | TCP_F_ACK, expires: { nowPlus: 21_600n * SEC } }, 'accounting: counted and refreshed');
    const quiet = modelDatapath(ingress(reply, maps({ ct: ct(fwd), policyMode: mode }), CLIENT.ifindex)).ct[0]!.value;
    t.match(quiet, { packets: 3n, bytes: 300n, tcpFlags: TCP_F_SYN | TCP_F_ACK }, 'no accounting: not counted');
    t.same(quiet.expires, { nowPlus: 21_600n * SEC }, 'new flags: refreshed whatever the deadline');
  }
  // Without accounting and with no new flag, the deadline may stay: the comparison decides by the window.
  const same = tcp(REMOTE.ip, CLIENT.ip, 80, 40000, TCP_F_SYN);
  const kept = modelDatapath(ingress(same, maps({ ct: ct(fwd) }), CLIENT.ifindex)).ct[0]!.value;
  t.same(kept.expires, { nowPlus: 60n * SEC, old: NOW.monoNs + 100n * SEC, within: SEC }, 'same flags: now + 60 s unless that moves it less than 1 s');
  t.equal(kept.packets, 3n);
  const again = tcp(CLIENT.ip, REMOTE.ip, 40000, 80, TCP_F_ACK);
  const perPacket = modelDatapath(egress(again, maps({ ct: ct(fwd) })));
  t.match(perPacket, { dropReason: DROP_POLICY, flow: { ctStatus: CT_ESTABLISHED } }, 'per-packet: established packets meet policy again');
  t.same(perPacket.ct[0]!.value, ctEntry(), 'a dropped packet does not refresh');
  t.match(modelDatapath(egress(again, maps({ ct: ct(fwd), policyMode: 1n }))), { retval: TC_ACT_OK, flow: null }, 'connection mode: established passes');
  t.match(modelDatapath(egress(again, maps({ ct: ct(fwd), policyMode: 2n }))), { dropReason: DROP_POLICY }, 'any other mode value is per-packet');
  t.match(modelDatapath(egress(again, maps({ ct: ct(fwd, ctEntry({ expires: NOW.monoNs })) }))), { flow: { ctStatus: CT_NEW } }, 'expiring now is expired');
  t.match(modelDatapath(egress(again, maps({ ct: ct({ ...fwd, scope: DIR_INGRESS }) }))), { flow: { ctStatus: CT_NEW } }, 'the forward tuple in the other scope is no entry');
  t.match(modelDatapath(ingress(reply, maps({ ct: ct({ ...fwd, scope: DIR_INGRESS }) }), CLIENT.ifindex)), { dropReason: DROP_POLICY, flow: { ctStatus: CT_NEW } },
    'the reverse tuple in its own scope is no reply (CT_REPLY needs the other scope)');
});

t.test('conntrack: what a new connection writes, lifetimes by protocol and flags', async (t) => {
  const all = [pol(CLIENT.ifindex, DIR_EGRESS, 0, 0, 0)];
  const syn = modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 40000, 80), maps({ policy: all })));
  t.match(syn, { ctEffect: { kind: 'created' }, flow: { verdict: VERDICT_FORWARDED, dropReason: 0, ctStatus: CT_NEW, dstIdentity: REMOTE.id } });
  t.match(syn.ct[0], {
    key: { saddr: CLIENT.ip, daddr: REMOTE.ip, sport: 40000, dport: 80, protocol: IPPROTO_TCP, scope: DIR_EGRESS },
    value: { expires: { nowPlus: 60n * SEC }, created: { nowPlus: 0n }, packets: 1n, peerIdentity: REMOTE.id, remoteNodeId: REMOTE.nodeId, tcpFlags: TCP_F_SYN, authType: 0 },
  });
  const life = (packet: Buffer) => (modelDatapath(egress(packet, maps({ policy: all }))).ct[0]!.value.expires as { nowPlus: bigint }).nowPlus;
  t.equal(life(tcp(CLIENT.ip, REMOTE.ip, 1, 80, TCP_F_ACK)), 21_600n * SEC, 'established TCP: 6 h');
  t.equal(life(tcp(CLIENT.ip, REMOTE.ip, 1, 80, TCP_F_FIN | TCP_F_ACK)), 10n * SEC, 'closing: 10 s');
  t.equal(life(buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_UDP, sport: 1, dport: 53 })), 60n * SEC, 'UDP: 60 s');
  const expired = [{ key: syn.ct[0]!.key, value: ctEntry({ expires: 1n, packets: 99n }) }];
  t.match(modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 40000, 80), maps({ policy: all, ct: expired }))).ct, [{ value: { packets: 1n } }], 'an expired entry is written over');
});

t.test('parsing: fragments, ICMP echo, IP options, the ipcache trie', async (t) => {
  const later = buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_TCP, sport: 1, dport: 80, fragOffset: 100 });
  t.match(parseIpv4(later), { tuple: { sport: 0, dport: 0, tcpFlags: 0, protocol: IPPROTO_TCP } }, 'a later fragment has no ports');
  t.match(parseIpv4(later.subarray(0, 34)), { tuple: { protocol: IPPROTO_TCP } }, 'nor needs an L4 header');
  t.match(parseIpv4(buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_ICMP, icmpType: 8, icmpId: 77 })), { tuple: { sport: 77, dport: 0 } });
  t.match(parseIpv4(buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_ICMP, icmpType: 0, icmpId: 77 })), { tuple: { sport: 0, dport: 77 } });
  t.match(parseIpv4(buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_ICMP, icmpType: 3, icmpId: 77 })), { tuple: { sport: 0, dport: 0 } });
  t.match(parseIpv4(buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: IPPROTO_UDP, sport: 7, dport: 9, ihl: 7 })), { tuple: { sport: 7, dport: 9 } }, 'L4 after the options');
  t.match(parseIpv4(tcp(CLIENT.ip, REMOTE.ip, 1, 2).subarray(0, 40)), { drop: DROP_INVALID, partial: { saddr: CLIENT.ip, protocol: IPPROTO_TCP, sport: 0 } });

  const trie = { ipcache: [
    { key: key32('10.0.0.0', 8), value: info(8) },
    { key: key32('10.1.0.0', 16), value: info(16) },
    { key: { ...key32('10.1.2.3'), family: ENDPOINT_KEY_IPV6 }, value: info(99) },
    { key: { ...key32('10.1.2.3'), clusterId: 7 }, value: info(98) },
    { key: { ...key32('10.1.2.3'), prefixlen: 65 }, value: info(97) },
  ] };
  t.equal(ipcacheLookup(trie, '10.1.2.3')?.secIdentity, 16, 'longest prefix of the matching family and cluster');
  t.equal(ipcacheLookup(trie, '10.2.0.1')?.secIdentity, 8);
  t.equal(ipcacheLookup(trie, '11.0.0.1'), undefined);
  t.equal(ipcacheLookup({ ipcache: [{ key: { prefixlen: 16, clusterId: 0, family: 9, ip: Buffer.alloc(16) }, value: info(5) }] }, '1.2.3.4')?.secIdentity, 5,
    'a prefix covering only the cluster bits matches every address');
  const v6flag = { ipcache: [{ key: key32(REMOTE.ip), value: info(REMOTE.id, REMOTE.node, IPCACHE_F_HAS_TUNNEL_EP | IPCACHE_F_IPV6_TUNNEL_EP) }] };
  t.match(modelDatapath(egress(tcp(CLIENT.ip, REMOTE.ip, 1, 2), maps({ ...v6flag, policy: [pol(CLIENT.ifindex, DIR_EGRESS, 0, 0, 0)] }))), { flow: { remoteNodeId: 0 } },
    'an IPv6 tunnel endpoint is no IPv4 node');
});

t.test('what BPF_PROG_RUN runs at all', async (t) => {
  t.notOk(runnable(Buffer.alloc(13)));
  const ip = buildFrame({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 0 });
  t.ok(runnable(ip.subarray(0, 34)));
  t.notOk(runnable(ip.subarray(0, 33)), 'IPv4 needs its 20-byte header');
  const v6 = Buffer.alloc(53);
  v6.writeUInt16BE(ETH_P_IPV6, 12);
  t.notOk(runnable(v6), 'IPv6 needs 40 bytes');
  t.ok(runnable(Buffer.alloc(14)), 'anything else, from 14 bytes on');
});

t.test('overlay: VNI to mark, host refused, VNI 0, no metadata; the tunnel key of cil_to_overlay', async (t) => {
  const pkt = buildFrame({ src: REMOTE.ip, dst: SERVER.ip, protocol: IPPROTO_UDP, sport: 1, dport: 53 });
  const m = { ipcache: maps().ipcache, nodes: maps().nodes };
  const from = (vni: number, tunnel = true) => modelFromOverlay({ packet: pkt, ifindex: 9, tunnel: tunnel ? { vni, sender: REMOTE.node } : null, mark: 0x12340f56, maps: m });
  t.match(from(CLIENT.id), { retval: TC_ACT_OK, mark: identityToMark(CLIENT.id), flow: null, metrics: null });
  t.match(from(0x1000000 | CLIENT.id), { mark: identityToMark(CLIENT.id) }, 'only 24 bits count');
  t.match(from(0), { retval: TC_ACT_OK, mark: 0 }, 'VNI 0 clears the mark');
  for (const id of [IDENTITY_WORLD, IDENTITY_REMOTE_NODE]) t.match(from(id), { retval: TC_ACT_OK, mark: identityToMark(id) }, `reserved ${id} passes, policy judges it`);
  t.match(from(IDENTITY_HOST), {
    retval: TC_ACT_SHOT, mark: 0x12340f56,
    flow: { dropReason: DROP_INVALID_IDENTITY, obsPoint: OBS_FROM_OVERLAY, srcIdentity: IDENTITY_HOST, dstIdentity: SERVER.id, remoteNodeId: REMOTE.nodeId, ifindex: 9 },
    metrics: { reason: DROP_INVALID_IDENTITY, dir: DIR_INGRESS },
  });
  t.match(from(5, false), { flow: { dropReason: DROP_NO_TUNNEL_KEY, srcIdentity: 0, dstIdentity: SERVER.id } });
  const arp = Buffer.alloc(42);
  arp.writeUInt16BE(ETH_P_ARP, 12);
  t.match(modelFromOverlay({ packet: arp, ifindex: 9, tunnel: null, mark: 7, maps: m }), { retval: TC_ACT_OK, mark: 7, flow: null }, 'non-IPv4 passes untouched');

  const ov = maps();
  const to = (src: string, dst: string, ingressIfindex: number) =>
    modelToOverlay({ packet: tcp(src, dst, 1, 80), ifindex: 9, ingressIfindex, maps: { endpoints: ov.endpoints, ipcache: ov.ipcache, nodes: ov.nodes } });
  t.match(to(CLIENT.ip, REMOTE.ip, CLIENT.ifindex), { retval: TC_ACT_OK, key: { vni: CLIENT.id, remote: REMOTE.node, ttl: 64 }, flow: null });
  t.match(to(SERVER.ip, REMOTE.ip, CLIENT.ifindex), { key: { vni: SERVER.id } }, 'not the endpoint\'s address: the ipcache');
  t.match(to('10.9.9.9', REMOTE.ip, 0), { key: { vni: IDENTITY_WORLD } });
  const host = modelToOverlay({ packet: tcp('172.30.0.10', REMOTE.ip, 1, 80), ifindex: 9, ingressIfindex: 0, maps: { ...ov, ipcache: [...ov.ipcache, { key: key32('172.30.0.10'), value: info(IDENTITY_HOST) }] } });
  t.match(host, { key: { vni: IDENTITY_REMOTE_NODE } }, 'the host leaves as remote-node');
  t.match(to(CLIENT.ip, SERVER.ip, CLIENT.ifindex), { retval: TC_ACT_SHOT, key: null, flow: { dropReason: DROP_NO_TUNNEL_ENDPOINT, obsPoint: OBS_TO_OVERLAY, srcIdentity: CLIENT.id, dstIdentity: SERVER.id } });
});

t.test('strict: only unencrypted pod traffic to another node\'s pod drops, also inside VXLAN', async (t) => {
  const m = { ipcache: maps().ipcache, nodes: maps().nodes };
  const cfg = { net: '10.244.0.0', mask: '255.255.0.0' };
  const leave = (packet: Buffer, config = cfg) => modelStrict({ packet, ifindex: 2, config, maps: m });
  t.match(leave(tcp(CLIENT.ip, REMOTE.ip, 1, 80)), {
    retval: TC_ACT_SHOT, flow: { dropReason: DROP_UNENCRYPTED_TRAFFIC, srcIdentity: CLIENT.id, dstIdentity: REMOTE.id, remoteNodeId: REMOTE.nodeId, ifindex: 2, obsPoint: OBS_FROM_ENDPOINT },
    metrics: { reason: DROP_UNENCRYPTED_TRAFFIC, dir: DIR_EGRESS },
  });
  t.match(leave(tcp(CLIENT.ip, REMOTE.ip, 1, 80), { net: '0.0.0.0', mask: '0.0.0.0' }), { retval: TC_ACT_OK, flow: null }, 'strict mode off');
  t.match(leave(tcp(CLIENT.ip, SERVER.ip, 1, 80)), { retval: TC_ACT_OK }, 'a pod of this node');
  t.match(leave(tcp(REMOTE.ip, FAR.ip, 1, 80)), { retval: TC_ACT_OK }, 'not a pod of this node');
  t.match(leave(tcp(CLIENT.ip, '8.8.8.8', 1, 80)), { retval: TC_ACT_OK }, 'outside the CIDR');
  t.match(leave(tcp(CLIENT.ip, REMOTE.ip, 1, 80), { net: '10.244.0.1', mask: '255.255.0.0' }), { retval: TC_ACT_OK }, 'a net with bits outside its mask matches nothing');
  const vxlan = Buffer.alloc(8);
  vxlan[0] = 0x08;
  const inner = tcp(CLIENT.ip, REMOTE.ip, 4444, 80, TCP_F_ACK);
  const outer = buildFrame({ src: '172.30.0.10', dst: REMOTE.node, protocol: IPPROTO_UDP, sport: 50000, dport: VXLAN_PORT, payload: Buffer.concat([vxlan, inner]) });
  t.match(leave(outer), { retval: TC_ACT_SHOT, flow: { saddr: CLIENT.ip, daddr: REMOTE.ip, sport: 4444, dport: 80, tcpFlags: TCP_F_ACK, pktLen: outer.length } }, 'the pod packet inside VXLAN is judged');
  t.match(leave(outer.subarray(0, outer.length - 10)), { retval: TC_ACT_OK }, 'a cut inner header passes');
});

t.test('compare: a refresh without accounting, judged over the window its now fell in', async (t) => {
  const w = { startMonoNs: 1000n * SEC, endMonoNs: 1000n * SEC + SEC / 10n, unixOffsetNs: 0n };
  const rule = (old: bigint) => ({ nowPlus: 60n * SEC, old, within: SEC });
  // old = start + 59.5 s: any now in the window moves it by 0.5-0.6 s, so it must stay.
  const recent = w.startMonoNs + 59n * SEC + SEC / 2n;
  t.ok(timeOk(rule(recent), recent, w), 'kept');
  t.notOk(timeOk(rule(recent), w.startMonoNs + 60n * SEC + SEC / 20n, w), 'rewritten although it would move less than 1 s');
  // old = start + 30 s: it moves by 30 s, so it must be rewritten.
  const stale = w.startMonoNs + 30n * SEC;
  t.notOk(timeOk(rule(stale), stale, w), 'kept although a refresh moves it 30 s');
  t.ok(timeOk(rule(stale), w.startMonoNs + 60n * SEC + SEC / 20n, w), 'rewritten to now + 60 s');
  t.notOk(timeOk(rule(stale), w.endMonoNs + 61n * SEC, w), 'a time past the window is wrong');
  // old later than a refresh would make it (moving it back): rewritten.
  const later = w.startMonoNs + 100n * SEC;
  t.notOk(timeOk(rule(later), later, w));
  t.ok(timeOk(rule(later), w.startMonoNs + 60n * SEC, w));
  // On the edge: kept for a now early in the window, rewritten for a late one; both are allowed.
  const edge = w.startMonoNs + 59n * SEC + SEC / 20n;
  t.ok(timeOk(rule(edge), edge, w), 'kept (now early in the window)');
  t.ok(timeOk(rule(edge), w.endMonoNs + 60n * SEC, w), 'rewritten (now late in the window)');
});

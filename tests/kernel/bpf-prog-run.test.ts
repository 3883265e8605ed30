// The datapath on crafted packets (BPF_PROG_RUN), with real maps, signals
// and flow events. Needs root. Everything lives under a test-only lab name
// ("t-progrun"): one throwaway node namespace holding two veths (their
// ifindexes stand for two pods' lxc devices) and one pin folder, both
// removed in teardown, which also checks that our programs are gone.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { labBpffsDir, nodeNetns } from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import { tcAttachedPrograms, tcAttachMode } from '../../lab/kernel/tc.ts';
import {
  attachEndpoint,
  DatapathLoadError,
  deleteAuthEntry,
  detachEndpoint,
  dumpAuth,
  dumpNodeMap,
  ETH_P_ARP,
  ETH_P_IPV6,
  ethernetFrame,
  identityToMark,
  ipv4Packet,
  loadNodeDatapath,
  mapInfo,
  mapPin,
  progPin,
  readMetrics,
  runProgram,
  setPolicyMode,
  writeRuntimeConfig,
  writeAuthEntry,
  writeNodeState,
  type Ipv4PacketSpec,
  type NodeDatapath,
  type NodeDatapathState,
} from '../../lab/datapath/index.ts';
import * as gen from '../../lab/abi/generated.ts';
import { MAPS } from '../../lab/abi/layouts.ts';
import { expectProgramsGone, observe as observeRecords, RUN_CPU, TC_ACT_OK, TC_ACT_SHOT, type Sentinel, removeThrowawayNode, throwawayNode } from '../helpers/progrun.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root (BPF_PROG_RUN, bpffs, namespaces)';
const LAB = 't-progrun';
const NODE = 'n1';
const NETNS = nodeNetns(LAB, NODE);

// Node n1 hosts client and server; remote runs on n2 (node id 2), far on n3
// whose node IP has no node ID.
const CLIENT = { ip: '10.244.0.2', id: 256, lxc: 'lxc-client' };
const SERVER = { ip: '10.244.0.3', id: 258, lxc: 'lxc-server' };
const REMOTE = { ip: '10.244.1.2', id: 257, node: '172.30.0.11', nodeId: 2 };
const FAR = { ip: '10.244.2.2', id: 259, node: '172.30.0.12' };
const SPIRE_EXPLICIT = gen.AUTH_TYPE_SPIRE | gen.AUTH_TYPE_EXPLICIT;

const state: NodeDatapathState = {
  node: NODE,
  ipcache: [
    { cidr: `${CLIENT.ip}/32`, identity: CLIENT.id },
    { cidr: `${SERVER.ip}/32`, identity: SERVER.id },
    { cidr: `${REMOTE.ip}/32`, identity: REMOTE.id, tunnelEndpoint: REMOTE.node },
    { cidr: `${FAR.ip}/32`, identity: FAR.id, tunnelEndpoint: FAR.node },
  ],
  nodes: [{ ip: REMOTE.node, id: REMOTE.nodeId }],
  endpoints: [
    // The client accepts nothing it did not ask for: replies must come through conntrack.
    { pod: 'client', lxc: CLIENT.lxc, ip: CLIENT.ip, identity: CLIENT.id, ingressEnforced: true, egressEnforced: true },
    { pod: 'server', lxc: SERVER.lxc, ip: SERVER.ip, identity: SERVER.id, ingressEnforced: true, egressEnforced: false },
  ],
  policy: [
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: REMOTE.id, protocol: 6, port: 8080, deny: false, authType: SPIRE_EXPLICIT },
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: REMOTE.id, protocol: 6, port: 9090, deny: false, authType: 0 },
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: REMOTE.id, protocol: 17, port: 0, deny: false, authType: 0 },
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: REMOTE.id, protocol: 6, port: 6666, deny: true, authType: 0 },
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: FAR.id, protocol: 0, port: 0, deny: false, authType: SPIRE_EXPLICIT },
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: SERVER.id, protocol: 0, port: 0, deny: false, authType: 0 },
    // Identity wildcard: TCP 6666 to anyone without a more specific entry.
    { lxc: CLIENT.lxc, direction: 'egress', peerIdentity: 0, protocol: 6, port: 6666, deny: false, authType: 0 },
    { lxc: SERVER.lxc, direction: 'ingress', peerIdentity: CLIENT.id, protocol: 6, port: 7070, deny: false, authType: SPIRE_EXPLICIT },
    { lxc: SERVER.lxc, direction: 'ingress', peerIdentity: CLIENT.id, protocol: 17, port: 53, deny: false, authType: 0 },
  ],
};

let dp: NodeDatapath;
let ifindex: { client: number; server: number };
let progIds: number[] = [];

const fromContainer = () => progPin(LAB, NODE, 'cil_from_container');
const toContainer = () => progPin(LAB, NODE, 'cil_to_container');

/** Unique source ports, so no test meets another's conntrack entries. */
let nextPort = 40000;
const port = () => nextPort++;

/** Runs `prog` on a packet crafted from `spec` at the given lxc ifindex. */
async function send(prog: string, spec: Ipv4PacketSpec | Buffer, at: number, mark = 0): Promise<number> {
  const packet = Buffer.isBuffer(spec) ? spec : ipv4Packet(spec);
  return (await runProgram(prog, packet, { netns: NETNS, ifindex: at, mark, cpu: RUN_CPU })).retval;
}

/**
 * The sentinel: a packet that raises exactly one flow event and one signal
 * no test raises. The client's identity (vouched for in skb->mark) reaches
 * the server's auth-required port 7070 from REMOTE's address, so the auth
 * key names REMOTE's node: {server, client, node 2}, never written to the
 * auth map, unlike the same-node key {server, client, node 0} of the
 * ingress auth test. It drops with 189 and signals every time.
 */
const SENTINEL_KEY = { localSecLabel: SERVER.id, remoteSecLabel: CLIENT.id, remoteNodeId: REMOTE.nodeId, authType: gen.AUTH_TYPE_SPIRE };
const sameKey = (a: gen.SignalMsg['auth'], b: gen.SignalMsg['auth']) =>
  a.localSecLabel === b.localSecLabel && a.remoteSecLabel === b.remoteSecLabel && a.remoteNodeId === b.remoteNodeId && a.authType === b.authType;

function sentinel(): Sentinel {
  const sentinelPort = port();
  return {
    send: async () => {
      const spec = { src: REMOTE.ip, dst: SERVER.ip, protocol: 'tcp' as const, sport: sentinelPort, dport: 7070 };
      const retval = await send(toContainer(), spec, ifindex.server, identityToMark(CLIENT.id));
      if (retval !== TC_ACT_SHOT) throw new Error(`the sentinel packet passed (retval ${retval}): it raises no records to wait for`);
    },
    isFlow: (f) => f.saddr === REMOTE.ip && f.daddr === SERVER.ip && f.sport === sentinelPort && f.dport === 7070,
    isSignal: (s) => s.signalNr === gen.SIGNAL_AUTH_REQUIRED && sameKey(s.auth, SENTINEL_KEY),
  };
}

/** Every flow event and signal `during` raised (see tests/helpers/progrun.ts observe()). */
const observe = <T>(during: () => Promise<T>) => observeRecords(LAB, NODE, sentinel(), during);

const cleanup = () => removeThrowawayNode(LAB, NODE);

t.before(async () => {
  if (skip) return;
  const links = await throwawayNode(LAB, NODE, [[CLIENT.lxc, SERVER.lxc]]);
  ifindex = { client: links.get(CLIENT.lxc)!, server: links.get(SERVER.lxc)! };
  dp = await loadNodeDatapath(LAB, NODE);
  for (const prog of [fromContainer(), toContainer()]) {
    const info = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'pinned', prog])).stdout) as { id: number };
    progIds.push(info.id);
  }
  await writeNodeState(LAB, NODE, state, new Map([[CLIENT.lxc, ifindex.client], [SERVER.lxc, ifindex.server]]));
});

t.teardown(async () => {
  if (skip) return;
  await cleanup();
  await expectProgramsGone(progIds);
  progIds = [];
});

t.test('the loaded maps are the ones of the layout table', { skip }, async (t) => {
  // libbpf sizes perf arrays to the possible CPUs ("0-1" → 2), not the online ones.
  const possible = (await readFile('/sys/devices/system/cpu/possible', 'utf8')).trim();
  const cpus = possible.split(',').reduce((n, range) => {
    const [lo, hi] = range.split('-').map(Number);
    return n + (hi ?? lo!) - lo! + 1;
  }, 0);
  for (const m of MAPS) {
    const info = await mapInfo(mapPin(LAB, NODE, m.name as gen.MapName));
    t.equal(info.type, m.type, `${m.name} type`);
    t.equal(info.bytesKey, gen.MAP_CODECS[m.name as gen.MapName].key.size, `${m.name} key size`);
    t.equal(info.bytesValue, gen.MAP_CODECS[m.name as gen.MapName].value.size, `${m.name} value size`);
    t.equal(info.maxEntries, m.maxEntries || cpus, `${m.name} max entries`);
    t.equal(info.flags, m.flags.includes('BPF_F_NO_PREALLOC') ? 1 : 0, `${m.name} flags`);
  }
  t.equal(dp.progPins, `${labBpffsDir(LAB)}/${NODE}/progs`);
});

t.test('writeNodeState is idempotent and deletes what the state drops', { skip }, async (t) => {
  const lxcs = new Map([[CLIENT.lxc, ifindex.client], [SERVER.lxc, ifindex.server]]);
  t.same(await writeNodeState(LAB, NODE, state, lxcs), { updated: 0, deleted: 0, unchanged: 4 + 1 + 2 + 9 });
  const fewer = { ...state, ipcache: [...state.ipcache, { cidr: '10.99.0.0/16', identity: 2 }] };
  t.same(await writeNodeState(LAB, NODE, fewer, lxcs, { only: ['ipcache'] }), { updated: 1, deleted: 0, unchanged: 4 });
  t.same(await writeNodeState(LAB, NODE, state, lxcs, { only: ['ipcache'] }), { updated: 0, deleted: 1, unchanged: 4 });
  const endpoints = await dumpNodeMap(LAB, NODE, 'cilium_lxc');
  t.same(
    endpoints.map((e) => [e.key.ifindex, e.value.secIdentity, e.value.ipv4, e.value.flags]).sort(),
    [
      [ifindex.client, CLIENT.id, CLIENT.ip, gen.EP_F_INGRESS_ENFORCED | gen.EP_F_EGRESS_ENFORCED],
      [ifindex.server, SERVER.id, SERVER.ip, gen.EP_F_INGRESS_ENFORCED],
    ].sort(),
  );
});

t.test('allowed: a NEW connection passes and reports FORWARDED', { skip }, async (t) => {
  const sport = port();
  let ranFrom = 0;
  let ranUntil = 0;
  const { result, flows } = await observe(async () => {
    ranFrom = Date.now();
    const retval = await send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 9090 }, ifindex.client);
    ranUntil = Date.now();
    return retval;
  });
  t.equal(result, TC_ACT_OK);
  t.equal(flows.length, 1);
  t.match(flows[0], {
    srcIdentity: CLIENT.id,
    dstIdentity: REMOTE.id,
    saddr: CLIENT.ip,
    daddr: REMOTE.ip,
    sport,
    dport: 9090,
    protocol: 6,
    tcpFlags: gen.TCP_F_SYN,
    verdict: gen.VERDICT_FORWARDED,
    dropReason: 0,
    obsPoint: gen.OBS_FROM_ENDPOINT,
    remoteNodeId: REMOTE.nodeId,
    ifindex: ifindex.client,
    ctStatus: gen.CT_NEW,
  });
  // The event's Unix time comes from the loader's clock offset: it falls
  // within the run (bpftool's start to its exit), give or take the 1 ms of
  // Date.now()'s resolution, however long bpftool took to start.
  const eventMs = Number(flows[0]!.timestamp / 1_000_000n);
  t.ok(eventMs >= ranFrom - 1 && eventMs <= ranUntil + 1, `timestamp ${eventMs} within the run [${ranFrom}, ${ranUntil}]`);

  // Same tuple again: established, no new event.
  const again = await observe(() =>
    send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 9090, tcpFlags: gen.TCP_F_ACK }, ifindex.client),
  );
  t.equal(again.result, TC_ACT_OK);
  t.same(again.flows, [], 'no event for an established packet');
});

t.test('denied: no matching entry drops with 133; a deny entry with 181', { skip }, async (t) => {
  const before = (await readMetrics(LAB, NODE)).find((m) => m.reason === 133 && m.dir === gen.DIR_EGRESS)?.packets ?? 0n;
  const { result, flows, signals } = await observe(
    () => send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 22 }, ifindex.client),
  );
  t.equal(result, TC_ACT_SHOT);
  t.match(flows, [{ verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_POLICY, dport: 22, obsPoint: gen.OBS_FROM_ENDPOINT }]);
  t.same(signals, [], 'policy drops do not ask for auth');
  const after = (await readMetrics(LAB, NODE)).find((m) => m.reason === 133 && m.dir === gen.DIR_EGRESS)?.packets ?? 0n;
  t.equal(after - before, 1n, 'counted in cilium_metrics');

  const deny = await observe(
    () => send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 6666 }, ifindex.client),
  );
  t.equal(deny.result, TC_ACT_SHOT);
  t.match(deny.flows, [{ dropReason: gen.DROP_POLICY_DENY }]);
});

t.test('lookup order: the most specific entry wins, identity 0 is the last resort', { skip }, async (t) => {
  const tcp = (dst: string, dport: number) => ({ src: CLIENT.ip, dst, protocol: 'tcp' as const, sport: port(), dport });
  // 8.8.8.8 is in no ipcache entry: reserved:world, matched only by the identity wildcard.
  const world = await observe(() => send(fromContainer(), tcp('8.8.8.8', 6666), ifindex.client));
  t.equal(world.result, TC_ACT_OK, 'world:6666 via (any, TCP, 6666)');
  t.match(world.flows, [{ dstIdentity: gen.IDENTITY_WORLD, verdict: gen.VERDICT_FORWARDED }]);
  t.equal(await send(fromContainer(), tcp('8.8.8.8', 6667), ifindex.client), TC_ACT_SHOT, 'world:6667: nothing matches');
  t.equal(await send(fromContainer(), tcp(REMOTE.ip, 6666), ifindex.client), TC_ACT_SHOT, "remote:6666: the remote's own deny entry comes first");
  t.equal(await send(fromContainer(), tcp(SERVER.ip, 6666), ifindex.client), TC_ACT_OK, "server:6666: the server's L3 entry comes first");
});

t.test('auth required: drop 189 and signal the exact auth key', { skip }, async (t) => {
  const { result, flows, signals } = await observe(
    () => send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 8080 }, ifindex.client),
  );
  t.equal(result, TC_ACT_SHOT);
  t.same(signals, [
    { signalNr: gen.SIGNAL_AUTH_REQUIRED, auth: { localSecLabel: CLIENT.id, remoteSecLabel: REMOTE.id, remoteNodeId: REMOTE.nodeId, authType: gen.AUTH_TYPE_SPIRE } },
  ]);
  t.match(flows, [{ verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_POLICY_AUTH_REQUIRED, authType: gen.AUTH_TYPE_SPIRE, remoteNodeId: REMOTE.nodeId }]);
});

const remoteAuthKey = { localSecLabel: CLIENT.id, remoteSecLabel: REMOTE.id, remoteNodeId: REMOTE.nodeId, authType: gen.AUTH_TYPE_SPIRE };

t.test('auth present: passes; expired: 189 again', { skip }, async (t) => {
  await writeAuthEntry(LAB, NODE, remoteAuthKey, new Date(Date.now() + 60_000));
  t.equal(await send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 8080 }, ifindex.client), TC_ACT_OK);
  const entries = await dumpAuth(LAB, NODE);
  t.equal(entries.length, 1);
  t.same(entries[0]!.key, remoteAuthKey);

  await writeAuthEntry(LAB, NODE, remoteAuthKey, new Date(Date.now() - 1000));
  const { result, signals } = await observe(
    () => send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 8080 }, ifindex.client),
  );
  t.equal(result, TC_ACT_SHOT, 'expired entry');
  t.same(signals.map((s) => s.auth), [remoteAuthKey]);
  t.equal(await deleteAuthEntry(LAB, NODE, remoteAuthKey), true);
  t.equal(await deleteAuthEntry(LAB, NODE, remoteAuthKey), false, 'already gone');
});

t.test('a reply passes through conntrack; an unsolicited packet does not', { skip }, async (t) => {
  const sport = port();
  t.equal(await send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport, dport: 9090 }, ifindex.client), TC_ACT_OK);
  // The client's ingress is enforced with no entries: only replies get in.
  const reply = { src: REMOTE.ip, dst: CLIENT.ip, protocol: 'tcp' as const, sport: 9090, dport: sport, tcpFlags: gen.TCP_F_SYN | gen.TCP_F_ACK };
  const { result, flows } = await observe(() => send(toContainer(), reply, ifindex.client));
  t.equal(result, TC_ACT_OK, 'SYN-ACK reply');
  t.same(flows, [], 'replies raise no event');
  t.equal(await send(toContainer(), { ...reply, dport: port() }, ifindex.client), TC_ACT_SHOT, 'same peer, no connection');

  // UDP and ICMP echo are tracked the same way.
  const udp = port();
  t.equal(await send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'udp', sport: udp, dport: 5353 }, ifindex.client), TC_ACT_OK);
  t.equal(await send(toContainer(), { src: REMOTE.ip, dst: CLIENT.ip, protocol: 'udp', sport: 5353, dport: udp }, ifindex.client), TC_ACT_OK);

  const ct = await dumpNodeMap(LAB, NODE, 'cilium_ct4');
  const entry = ct.find((e) => e.key.sport === sport && e.key.scope === gen.DIR_EGRESS);
  t.ok(entry, 'egress entry made by cil_from_container');
  t.equal(entry?.value.tcpFlags, gen.TCP_F_SYN | gen.TCP_F_ACK, 'flags of both directions');
  t.equal(entry?.value.packets, 1n, 'counted at setup only: CT accounting is off');
  t.equal(entry?.value.peerIdentity, REMOTE.id);

  // With accounting on, every packet counts in its entry.
  await writeRuntimeConfig(LAB, NODE, { ctAccounting: true });
  try {
    t.equal(await send(toContainer(), { ...reply, tcpFlags: gen.TCP_F_ACK }, ifindex.client), TC_ACT_OK);
    const counted = (await dumpNodeMap(LAB, NODE, 'cilium_ct4')).find((e) => e.key.sport === sport && e.key.scope === gen.DIR_EGRESS);
    t.equal(counted?.value.packets, 2n, 'accounting on: the reply counted');
  } finally {
    await writeRuntimeConfig(LAB, NODE, { ctAccounting: false });
  }
});

t.test('established connection after its auth entry is deleted', { skip }, async (t) => {
  const sport = port();
  const syn = { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp' as const, sport, dport: 8080 };
  const ack = { ...syn, tcpFlags: gen.TCP_F_ACK };
  await writeAuthEntry(LAB, NODE, remoteAuthKey, new Date(Date.now() + 60_000));
  t.equal(await send(fromContainer(), syn, ifindex.client), TC_ACT_OK, 'authenticated SYN');
  await deleteAuthEntry(LAB, NODE, remoteAuthKey);

  try {
    // Policy mode "connection": decided at setup, the connection stays allowed.
    await setPolicyMode(LAB, NODE, 'connection');
    t.equal(await send(fromContainer(), ack, ifindex.client), TC_ACT_OK, 'connection mode: established stays allowed');

    // Default, Cilium's behaviour: every forward packet is re-checked.
    await setPolicyMode(LAB, NODE, 'per-packet');
    const { result, flows, signals } = await observe(() => send(fromContainer(), ack, ifindex.client));
    t.equal(result, TC_ACT_SHOT, 'per-packet mode: the next packet needs auth again');
    t.match(flows, [{ dropReason: gen.DROP_POLICY_AUTH_REQUIRED, ctStatus: gen.CT_ESTABLISHED }]);
    t.same(signals.map((s) => s.auth), [remoteAuthKey]);
    // Replies are never re-checked, in either mode.
    t.equal(await send(toContainer(), { src: REMOTE.ip, dst: CLIENT.ip, protocol: 'tcp', sport: 8080, dport: sport, tcpFlags: gen.TCP_F_ACK }, ifindex.client), TC_ACT_OK);
  } finally {
    await setPolicyMode(LAB, NODE, 'per-packet');
  }
});

t.test('a tunnel endpoint without a node ID drops with 197, without a signal', { skip }, async (t) => {
  const { result, flows, signals } = await observe(
    () => send(fromContainer(), { src: CLIENT.ip, dst: FAR.ip, protocol: 'tcp', sport: port(), dport: 80 }, ifindex.client),
  );
  t.equal(result, TC_ACT_SHOT);
  t.match(flows, [{ dropReason: gen.DROP_NO_NODE_ID, dstIdentity: FAR.id }]);
  t.same(signals, []);
});

t.test('ingress auth between pods of one node: remote node id 0', { skip }, async (t) => {
  // client -> server:7070 as it enters the server (cil_to_container on the server's lxc).
  const spec = { src: CLIENT.ip, dst: SERVER.ip, protocol: 'tcp' as const, sport: port(), dport: 7070 };
  const key = { localSecLabel: SERVER.id, remoteSecLabel: CLIENT.id, remoteNodeId: 0, authType: gen.AUTH_TYPE_SPIRE };
  const { result, flows, signals } = await observe(() => send(toContainer(), spec, ifindex.server));
  t.equal(result, TC_ACT_SHOT);
  t.same(signals, [{ signalNr: gen.SIGNAL_AUTH_REQUIRED, auth: key }]);
  t.match(flows, [{ obsPoint: gen.OBS_TO_ENDPOINT, srcIdentity: CLIENT.id, dstIdentity: SERVER.id, remoteNodeId: 0, dropReason: 189 }]);

  await writeAuthEntry(LAB, NODE, key, new Date(Date.now() + 60_000));
  try {
    t.equal(await send(toContainer(), { ...spec, sport: port() }, ifindex.server), TC_ACT_OK);
    t.equal(await send(toContainer(), { ...spec, sport: port(), dport: 7071 }, ifindex.server), TC_ACT_SHOT, 'other port: policy');
  } finally {
    await deleteAuthEntry(LAB, NODE, key);
  }
});

t.test('an identity in skb->mark overrides the ipcache', { skip }, async (t) => {
  const spec = { src: CLIENT.ip, dst: SERVER.ip, protocol: 'udp' as const, sport: port(), dport: 53 };
  t.equal(await send(toContainer(), spec, ifindex.server), TC_ACT_OK, 'ipcache says client: allowed');
  const { result, flows } = await observe(() => send(toContainer(), { ...spec, sport: port() }, ifindex.server, identityToMark(999)));
  t.equal(result, TC_ACT_SHOT, 'mark says 999: denied');
  t.match(flows, [{ srcIdentity: 999, dropReason: gen.DROP_POLICY }]);
});

t.test('guards: spoofed source, IPv6, ARP, unknown endpoint', { skip }, async (t) => {
  const { result, flows } = await observe(
    () => send(fromContainer(), { src: '10.244.0.99', dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 9090 }, ifindex.client),
  );
  t.equal(result, TC_ACT_SHOT);
  t.match(flows, [{ dropReason: gen.DROP_INVALID_SIP, srcIdentity: CLIENT.id }]);

  const ipv6 = await observe(() => send(fromContainer(), ethernetFrame(ETH_P_IPV6, Buffer.alloc(40)), ifindex.client));
  t.equal(ipv6.result, TC_ACT_SHOT);
  t.match(ipv6.flows, [{ dropReason: gen.DROP_UNKNOWN_L3 }]);

  t.equal(await send(fromContainer(), ethernetFrame(ETH_P_ARP, Buffer.alloc(28)), ifindex.client), TC_ACT_OK, 'ARP passes');
  // BPF_PROG_RUN itself refuses IPv4 frames shorter than an IP header, so
  // malformed packets here are complete headers that lie.
  const good = ipv4Packet({ src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: port(), dport: 9090 });
  const badIhl = Buffer.from(good);
  badIhl[14] = 0x44; // IHL 4 < 5
  const bad = await observe(() => send(fromContainer(), badIhl, ifindex.client));
  t.equal(bad.result, TC_ACT_SHOT, 'IHL < 5');
  t.match(bad.flows, [{ dropReason: gen.DROP_INVALID }]);
  const shortTcp = good.subarray(0, 14 + 20 + 8); // TCP header cut after 8 bytes
  t.equal(await send(fromContainer(), shortTcp, ifindex.client), TC_ACT_SHOT, 'truncated TCP header');

  // lo (ifindex 1) is no endpoint.
  const lo = await observe(() => send(fromContainer(), { src: CLIENT.ip, dst: REMOTE.ip, protocol: 'tcp', sport: 1, dport: 2 }, 1));
  t.equal(lo.result, TC_ACT_SHOT);
  t.match(lo.flows, [{ dropReason: gen.DROP_NO_CONFIG }]);
});

t.test('ICMP echo: the reply finds the request by identifier', { skip }, async (t) => {
  t.equal(await send(fromContainer(), { src: CLIENT.ip, dst: SERVER.ip, protocol: 'icmp', icmpType: 8, icmpId: 4242 }, ifindex.client), TC_ACT_OK);
  t.equal(await send(toContainer(), { src: SERVER.ip, dst: CLIENT.ip, protocol: 'icmp', icmpType: 0, icmpId: 4242 }, ifindex.client), TC_ACT_OK);
  t.equal(await send(toContainer(), { src: SERVER.ip, dst: CLIENT.ip, protocol: 'icmp', icmpType: 0, icmpId: 4243 }, ifindex.client), TC_ACT_SHOT);
});

t.test('attach: one program each way (tcx link or clsact filter), idempotent, detachable', { skip }, async (t) => {
  await attachEndpoint(NETNS, CLIENT.lxc, dp.progPins);
  await attachEndpoint(NETNS, CLIENT.lxc, dp.progPins);
  const { mode } = await tcAttachMode();
  const show = async (dir: 'ingress' | 'egress') => (await tcAttachedPrograms(NETNS, CLIENT.lxc, dir)).map((p) => `${p.via} ${p.name}`);
  t.same(await show('ingress'), [`${mode} cil_from_container`], 'attached once');
  t.same(await show('egress'), [`${mode} cil_to_container`]);
  await detachEndpoint(NETNS, CLIENT.lxc);
  t.same(await show('ingress'), []);
  t.same(await show('egress'), []);
  await detachEndpoint(NETNS, CLIENT.lxc); // nothing left: still fine
});

t.test('a verifier refusal carries the verifier\'s message', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mtless-bad-'));
  try {
    // Reads packet data without a bounds check: the verifier must refuse it.
    await writeFile(
      join(dir, 'bad.c'),
      '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n' +
        'SEC("tc") int bad(struct __sk_buff *skb) { return *(int *)(long)skb->data; }\n' +
        'char _license[] SEC("license") = "GPL";\n',
    );
    const multiarch = (await run(['clang', '-print-multiarch'])).stdout.trim();
    await run(['clang', '-g', '-O2', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', join(dir, 'bad.c'), '-o', join(dir, 'bad.o')]);
    const error = await loadNodeDatapath(LAB, 'bad', { objectPath: join(dir, 'bad.o') }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(error, DatapathLoadError);
    const e = error as DatapathLoadError;
    t.match(e.message, /verifier refused bad .*invalid access to packet/);
    t.match(e.verifierLog, /invalid access to packet/);
    const left = await run(['ls', `${labBpffsDir(LAB)}`]);
    t.notMatch(left.stdout, /\bbad\b/, 'no pins left behind');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

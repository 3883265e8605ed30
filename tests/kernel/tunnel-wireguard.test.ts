// Tunnel mode with WireGuard (Cilium's --wireguard-encapsulate) on a real lab
// with agents: VXLAN (VNI = source identity) rides inside the WireGuard
// tunnel. Checked on real packets and maps:
//  - the underlay carries only UDP 51871 between the node IPs, the agents'
//    4250 handshakes and ARP; no VXLAN and no plaintext payload;
//  - on n2's WireGuard device (after decryption) the VXLAN packets carry the
//    source pod's identity in the VNI;
//  - n2 judges the source by that VNI, not by its ipcache (an entry rewritten
//    to another identity is ignored);
//  - mutual auth still runs on top (the first SYN dropped with 189);
//  - strict mode: with the steering rule gone, the VXLAN packet reaching eth0
//    is dropped with 195 (the inner pod packet in the flow event), nothing
//    leaves; without the WireGuard route VXLAN fails closed (unreachable).
import t from 'tap';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolve } from 'node:path';
import { destroyLab } from '../../lab/compose/down.ts';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { readState } from '../../lab/core/state.ts';
import { NODE_UNDERLAY_IFNAME, wgIfname } from '../../lab/core/names.ts';
import { run } from '../../lab/kernel/run.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { startCapture } from '../../lab/capture/capture.ts';
import { UNDERLAY_LINK } from '../../lab/capture/links.ts';
import { countMany, frames, onlyProtocol, payloadContains } from '../../lab/capture/assert.ts';
import { streamFlows, type EventStream } from '../../lab/datapath/events.ts';
import { mapUpdate } from '../../lab/datapath/bpftool.ts';
import { ipcacheKey4, ipcacheValue4, mapPin } from '../../lab/datapath/maps.ts';
import { readIfindexes } from '../../lab/datapath/load.ts';
import { WG_DECODE_AS } from '../../lab/wireguard/capture.ts';
import { WG_SOCKET_DIR, wgShow } from '../../lab/wireguard/wireguard.ts';
import {
  ENCAP_ROUTE_TABLE, ENCAP_RULE_PRIORITY, ENCAPSULATED_VXLAN_MTU, encapRuleSelector, readVxlan, VXLAN_IFNAME,
} from '../../lab/tunnel/index.ts';
import {
  AUTH_PORT, DROP_POLICY_AUTH_REQUIRED, DROP_UNENCRYPTED_TRAFFIC, MAP_CODECS, OBS_TO_ENDPOINT, TCP_F_ACK, TCP_F_SYN,
  VERDICT_DROPPED, VERDICT_FORWARDED, VXLAN_PORT, WG_PORT, type FlowEvent,
} from '../../lab/abi/generated.ts';
import { echoSend, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const TOPOLOGY = resolve(REPO, 'topologies/two-node-tunnel-wireguard.yaml');
const VXLAN_DECODE_AS = `udp.port==${VXLAN_PORT},vxlan`;

type Flow = FlowEvent & { node: string };

async function waitFor<T>(probe: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isSyn = (f: Flow) => (f.tcpFlags & TCP_F_SYN) !== 0 && (f.tcpFlags & TCP_F_ACK) === 0;

t.test('tunnel + WireGuard: VXLAN inside WireGuard, VNI identity after decryption, strict mode', { skip: needsRoot }, async (t) => {
  const lab = 't-tunnel-wg';
  await destroyLab(lab);
  const topology = await loadTopologyFile(TOPOLOGY);
  t.ok(topology.routing === 'tunnel' && topology.encryption.mode === 'wireguard' && topology.encryption.strict, 'the topology asks for tunnel + WireGuard, strict');
  const flows: Flow[] = [];
  const streams: EventStream[] = [];
  const outDir = await mkdtemp(join(tmpdir(), 'tunnel-wg-'));
  try {
    const plan = await upWithDatapath(topology, { name: lab });
    const state = (await readState(lab))!;
    const pod = (name: string) => state.pods.find((p) => p.name === name)!;
    const [n1, n2] = plan.nodes as [typeof plan.nodes[0], typeof plan.nodes[0]];

    // ---- the kernel objects -------------------------------------------------------
    for (const n of plan.nodes) {
      const other = plan.nodes.find((o) => o !== n)!;
      const wg = wgIfname(lab, n.name);
      const vx = await readVxlan(n.netns);
      t.ok(vx?.external && vx.up, `${n.name}: ${VXLAN_IFNAME} in collect-metadata mode, up`);
      const mtu = JSON.parse((await run(['ip', '-j', 'link', 'show', VXLAN_IFNAME], { netns: n.netns })).stdout)[0].mtu;
      t.equal(mtu, ENCAPSULATED_VXLAN_MTU, `${n.name}: VXLAN MTU leaves room inside WireGuard`);
      t.match((await run(['ip', '-o', 'route', 'get', other.pods[0]!.ip], { netns: n.netns })).stdout, `dev ${VXLAN_IFNAME}`, `${n.name}: pod traffic to ${other.name} goes into the VXLAN device`);
      const outer = (await run(['ip', '-o', 'route', 'get', other.underlayIp, 'ipproto', 'udp', 'dport', String(VXLAN_PORT)], { netns: n.netns })).stdout;
      t.match(outer, `dev ${wg} table ${ENCAP_ROUTE_TABLE} src ${n.underlayIp}`, `${n.name}: the VXLAN packets to ${other.name} go into WireGuard`);
      const handshake = (await run(['ip', '-o', 'route', 'get', other.underlayIp, 'ipproto', 'tcp', 'dport', String(AUTH_PORT)], { netns: n.netns })).stdout;
      t.match(handshake, `dev ${NODE_UNDERLAY_IFNAME}`, `${n.name}: the agents' handshake to ${other.name} stays on the underlay`);
      const s = await wgShow(lab, n.name, n.netns);
      t.same(s.peers.map((p) => p.allowedIps), [[`${other.underlayIp}/32`]], `${n.name}: the WireGuard peer's allowed-ips is ${other.name}'s node IP`);
    }

    for (const n of plan.nodes) streams.push(streamFlows(lab, n.name, (f) => flows.push({ ...f, node: n.name })));
    await Promise.all(streams.map((s) => s.ready));
    const wg2 = `n2/${wgIfname(lab, 'n2')}`;
    const capture = await startCapture(state, [UNDERLAY_LINK, wg2, 'n1/eth0'], outDir);
    const server = await startEchoServer(lab, 'server', 'tcp', 8080);
    const n1Ifindexes = await readIfindexes(n1.netns);
    let strictFlow: Flow | undefined;
    try {
      // ---- auth on top of the tunnel ------------------------------------------------
      const first = await echoSend(lab, 'client', 'tcp', pod('server').ip, 8080, 'tunnel-wg-secret', ['--timeout', '20000']);
      t.equal(first.exitCode, 0, 'client (n1) -> server (n2):8080 through VXLAN inside WireGuard');
      const control = await echoSend(lab, 'local', 'tcp', pod('server').ip, 8080, 'tunnel-wg-control', ['--timeout', '20000']);
      t.equal(control.exitCode, 0, 'local (n1) -> server (n2):8080 (no auth)');
      const fromClient = (f: Flow) => f.node === 'n2' && f.obsPoint === OBS_TO_ENDPOINT && f.saddr === pod('client').ip && isSyn(f);
      const drop = await waitFor(() => flows.find((f) => fromClient(f) && f.verdict === VERDICT_DROPPED), 15_000);
      t.equal(drop?.dropReason, DROP_POLICY_AUTH_REQUIRED, 'n2 dropped the first SYN: authentication required (189)');
      const pass = await waitFor(() => flows.find((f) => fromClient(f) && f.verdict === VERDICT_FORWARDED), 15_000);
      t.equal(pass?.srcIdentity, pod('client').identity, 'then forwarded, judged as the client');

      // ---- the VNI decides, not n2's ipcache ----------------------------------------
      const codecs = MAP_CODECS.cilium_ipcache;
      const key = codecs.key.encode(ipcacheKey4(`${pod('client').ip}/32`));
      await mapUpdate(mapPin(lab, 'n2', 'cilium_ipcache'), key, codecs.value.encode(ipcacheValue4(pod('local').identity!, n1.underlayIp)));
      const mark = flows.length;
      const again = await echoSend(lab, 'client', 'tcp', pod('server').ip, 8080, 'tunnel-wg-again', ['--timeout', '20000']);
      await mapUpdate(mapPin(lab, 'n2', 'cilium_ipcache'), key, codecs.value.encode(ipcacheValue4(pod('client').identity!, n1.underlayIp)));
      const judged = await waitFor(() => flows.slice(mark).find((f) => fromClient(f) && f.verdict === VERDICT_FORWARDED), 15_000);
      t.equal(again.exitCode, 0, 'the client still gets through with n2\'s ipcache saying "local"');
      t.equal(judged?.srcIdentity, pod('client').identity, `n2 judged the source by the VNI (${judged?.srcIdentity}), not by its rewritten ipcache (${pod('local').identity})`);

      // ---- strict mode: the steering rule removed ----------------------------------
      await run(['ip', 'rule', 'del', 'priority', String(ENCAP_RULE_PRIORITY)], { netns: n1.netns });
      const leakMark = flows.length;
      const leak = await echoSend(lab, 'client', 'tcp', pod('server').ip, 8080, 'tunnel-wg-leak', ['--timeout', '2500']);
      strictFlow = await waitFor(() => flows.slice(leakMark).find((f) => f.node === 'n1' && f.verdict === VERDICT_DROPPED && f.dropReason === DROP_UNENCRYPTED_TRAFFIC), 15_000);
      await run(['ip', 'rule', 'add', 'priority', String(ENCAP_RULE_PRIORITY), ...encapRuleSelector().split(' '), 'lookup', String(ENCAP_ROUTE_TABLE)], { netns: n1.netns });
      t.not(leak.exitCode, 0, 'without the rule into WireGuard the connection fails');
      t.ok(strictFlow, 'n1 dropped it with 195 (Traffic is unencrypted)');
      t.equal(strictFlow?.ifindex, n1Ifindexes.get(NODE_UNDERLAY_IFNAME), 'at eth0 egress (strict mode)');
      t.same([strictFlow?.saddr, strictFlow?.daddr, strictFlow?.dport], [pod('client').ip, pod('server').ip, 8080], 'the event names the pod packet inside the VXLAN packet');
      const healed = await echoSend(lab, 'client', 'tcp', pod('server').ip, 8080, 'tunnel-wg-healed', ['--timeout', '20000']);
      t.equal(healed.exitCode, 0, 'with the rule back the client gets through again');

      // ---- fail closed: no WireGuard route, no VXLAN ---------------------------------
      const route = `${n2.underlayIp}/32`;
      await run(['ip', 'route', 'del', route, 'table', String(ENCAP_ROUTE_TABLE)], { netns: n1.netns });
      const closed = await run(['ip', 'route', 'get', n2.underlayIp, 'ipproto', 'udp', 'dport', String(VXLAN_PORT)], { netns: n1.netns, okCodes: 'any' });
      await run(['ip', 'route', 'replace', route, 'dev', wgIfname(lab, 'n1'), 'src', n1.underlayIp, 'table', String(ENCAP_ROUTE_TABLE)], { netns: n1.netns });
      // EHOSTUNREACH: the table's `unreachable default`, not the main table's way out of eth0.
      t.match(closed.stderr + closed.stdout, /No route to host|unreachable/i, 'without the WireGuard route VXLAN is unreachable, not sent on eth0');
    } finally {
      await server.stop();
    }
    const result = await capture.stop();
    const file = (link: string) => result.links.find((l) => l.link === link)!.file;

    // ---- the underlay --------------------------------------------------------------
    const nodeIps = plan.nodes.map((n) => n.underlayIp);
    const anyNode = (field: string) => `(${nodeIps.map((ip) => `${field} == ${ip}`).join(' || ')})`;
    const betweenNodes = `${anyNode('ip.src')} && ${anyNode('ip.dst')}`;
    const dissect = { decodeAs: [WG_DECODE_AS, VXLAN_DECODE_AS], tlsPort: AUTH_PORT };
    const only = await onlyProtocol(file(UNDERLAY_LINK), UNDERLAY_LINK,
      `arp || (udp.port == ${WG_PORT} && ${betweenNodes}) || (tcp.port == ${AUTH_PORT} && ${betweenNodes})`, dissect);
    t.ok(only.ok, `underlay: only WireGuard, the agents' ${AUTH_PORT} and ARP (${only.total} frames${only.offending.length ? `; e.g. ${only.offending.map((o) => o.protocols).join('; ')}` : ''})`);
    const c = await countMany(file(UNDERLAY_LINK), { wg: 'wg', auth: `tcp.port == ${AUTH_PORT}`, vxlan: 'vxlan' }, dissect);
    t.ok(c.wg > 0 && c.auth > 0, `underlay: ${c.wg} WireGuard frames, ${c.auth} handshake frames on ${AUTH_PORT}`);
    t.equal(c.vxlan, 0, 'underlay: no VXLAN in the clear (not even the strict-mode leak)');
    for (const secret of ['tunnel-wg-secret', 'tunnel-wg-leak']) {
      t.notOk(await payloadContains(file(UNDERLAY_LINK), secret, dissect), `underlay: "${secret}" is not in plaintext`);
    }
    t.equal(await countMany(file('n1/eth0'), { vxlan: 'vxlan' }, dissect).then((x) => x.vxlan), 0, 'n1/eth0: the dropped VXLAN packet never left (tc egress drop)');

    // ---- after decryption: VXLAN with the identity in the VNI ------------------------
    const inner = await frames(file(wg2), `vxlan && tcp.dstport == 8080`, ['vxlan.vni', 'ip.src'], { decodeAs: [VXLAN_DECODE_AS] });
    const vniOf = (ip: string) => new Set(inner.filter((r) => r['ip.src']!.split(',')[1] === ip).map((r) => Number(r['vxlan.vni'])));
    t.ok(inner.length > 0, `${wg2}: ${inner.length} VXLAN packets to server:8080 after decryption`);
    t.same([...vniOf(pod('client').ip)], [pod('client').identity], `${wg2}: the client's packets carry VNI = its identity`);
    t.same([...vniOf(pod('local').ip)], [pod('local').identity], `${wg2}: local's packets carry VNI = its identity`);
  } finally {
    await Promise.all(streams.map((s) => s.stop().catch(() => undefined)));
    await destroyLab(lab);
    await rm(outDir, { recursive: true, force: true });
  }
  t.same(await labLeftovers(lab), [], 'no namespace, pin folder, state or process left');
  const socks = (await readdir(WG_SOCKET_DIR).catch(() => [] as string[])).filter((f) => ['n1', 'n2'].some((n) => f === `${wgIfname(lab, n)}.sock`));
  t.same(socks, [], `no WireGuard socket of the lab in ${WG_SOCKET_DIR}`);
});

// Claim C4: with node-to-node WireGuard the underlay carries pod traffic only
// as UDP 51871 between the node IPs; same-node traffic never enters the
// tunnel and stays plaintext on the veths; the keys are the nodes' — two
// workloads of n1 talking to n2 share one tunnel (one session, one receiver
// index). Mutual auth runs on top, independent of it: the first SYN is still
// dropped (189) and the agents still handshake on port 4250, over the node
// network outside the tunnel (Cilium encrypts node-to-node traffic only with
// its separate node-encryption option).
import { echoSend, startEchoServer, type EchoServer } from '../apps/pod-apps.ts';
import { AUTH_PORT, DROP_POLICY_AUTH_REQUIRED, IPPROTO_TCP, OBS_TO_ENDPOINT, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED, WG_PORT } from '../abi/generated.ts';
import { wgMessages, WG_DECODE_AS } from '../wireguard/capture.ts';
import { readWgInfo, wgShow, type WgInfo } from '../wireguard/wireguard.ts';
import type { FlowWithNode, Scenario, ScenarioContext } from './framework.ts';


/** Bytes through a node's tunnel, both directions, every peer. */
async function tunnelBytes(ctx: ScenarioContext, node: string): Promise<{ bytes: number; handshakes: number }> {
  const n = ctx.plan.nodes.find((x) => x.name === node)!;
  const s = await wgShow(ctx.lab, node, n.netns);
  return { bytes: s.peers.reduce((a, p) => a + p.rxBytes + p.txBytes, 0), handshakes: s.peers.filter((p) => p.latestHandshake > 0).length };
}

/** One TCP exchange through a policy that requires auth: first SYN dropped, agents handshake, the secret is echoed. */
async function authFlow(ctx: ScenarioContext, srv: EchoServer, o: { client: string; server: string; serverNode: string; port: number; label: string }): Promise<void> {
  const serverIp = ctx.podIp(o.server);
  const clientIp = ctx.podIp(o.client);
  const secret = `wg-secret-${o.label.replace(/\W+/g, '-')}-${Date.now()}`;
  ctx.memo.set(`secret:${o.label}`, secret);
  const r = await echoSend(ctx.lab, o.client, 'tcp', serverIp, o.port, secret, ['--timeout', '20000']);
  const isSyn = (f: FlowWithNode) => f.protocol === IPPROTO_TCP && f.saddr === clientIp && f.daddr === serverIp && f.dport === o.port && (f.tcpFlags & TCP_F_SYN) !== 0;
  // Events travel through bpftool and a pipe: wait for them (with a deadline) rather than read once.
  const drop = await ctx.waitForFlow((f) => isSyn(f) && f.verdict === VERDICT_DROPPED);
  ctx.check(`${o.label}: the first SYN is still dropped with reason 189 at ${o.serverNode}/to-container (auth is independent of encryption)`,
    drop?.dropReason === DROP_POLICY_AUTH_REQUIRED && drop.obsPoint === OBS_TO_ENDPOINT && drop.node === o.serverNode,
    drop ? `reason ${drop.dropReason} on ${drop.node}` : 'no drop seen');
  const key = drop ? `${drop.dstIdentity}:${drop.srcIdentity}:${drop.remoteNodeId}:1` : '?';
  const done = await ctx.waitForLog(o.serverNode, (l) => l.event === 'auth-completed' && l.key === key);
  ctx.check(`${o.label}: the agents completed the mutual-auth handshake`, done !== undefined, done ? `key ${key}, peer ${done.peer}` : `no auth-completed for ${key}`);
  const pass = await ctx.waitForFlow((f) => isSyn(f) && f.verdict === VERDICT_FORWARDED && f.obsPoint === OBS_TO_ENDPOINT && f.node === o.serverNode);
  ctx.check(`${o.label}: the retransmitted SYN passes`, pass !== undefined);
  ctx.check(`${o.label}: the payload arrives and is echoed`, r.exitCode === 0 && r.stdout.includes(secret) && (await srv.sawText(secret)),
    r.exitCode === 0 ? undefined : r.stderr.trim());
}

export const wireguardScenario: Scenario = {
  name: 'wireguard',
  summary: `node-to-node WireGuard under mutual auth: only UDP ${WG_PORT} on the underlay, same-node traffic plaintext, one tunnel per node pair`,
  claims: ['C4', 'C1'],
  topology: 'topologies/two-node-wireguard.yaml',
  captureLinks: ['fabric/underlay', 'n1/lxc-client', 'n1/lxc-local', 'n1/lxc-other', 'n2/lxc-server'],
  async run(ctx) {
    const info = await readWgInfo(ctx.lab);
    ctx.memo.set('wg', info);
    for (const n of info.nodes) ctx.say(`${n.node}: WireGuard device ${n.ifname}, UDP ${n.listenPort}, node public key ${n.publicKey}`);

    // Same node first, while no tunnel has carried anything: any byte through it would be ours.
    ctx.say('Same node: local (n1) -> client (n1):7070, auth required; must not enter WireGuard');
    const before = await tunnelBytes(ctx, 'n1');
    const local = await startEchoServer(ctx.lab, 'client', 'tcp', 7070);
    try {
      await authFlow(ctx, local, { client: 'local', server: 'client', serverNode: 'n1', port: 7070, label: 'same-node' });
    } finally {
      await local.stop();
    }
    const after = await tunnelBytes(ctx, 'n1');
    ctx.check('same-node traffic never touches WireGuard (n1 tunnel byte counters unchanged, no handshake)',
      after.bytes === before.bytes && after.handshakes === 0, `${before.bytes} -> ${after.bytes} bytes, ${after.handshakes} peers with a handshake`);

    ctx.say('Cross node: client (n1) and other (n1) -> server (n2):8080 through n1\'s one tunnel');
    const srv = await startEchoServer(ctx.lab, 'server', 'tcp', 8080);
    try {
      await authFlow(ctx, srv, { client: 'client', server: 'server', serverNode: 'n2', port: 8080, label: 'client->server' });
      await authFlow(ctx, srv, { client: 'other', server: 'server', serverNode: 'n2', port: 8080, label: 'other->server' });
    } finally {
      await srv.stop();
    }

    // Per-node keys: each node has exactly one peer, the other node, keyed by the other node's key.
    for (const n of ctx.plan.nodes) {
      const s = await wgShow(ctx.lab, n.name, n.netns);
      const want = info.nodes.filter((x) => x.node !== n.name);
      const ok = s.peers.length === want.length && want.every((w) => s.peers.some((p) => p.publicKey === w.publicKey && p.allowedIps.join(',') === w.podCidr && p.latestHandshake > 0));
      ctx.check(`${n.name}: one WireGuard peer per other node (node keys, allowed-ips = its pod CIDR), handshaken`, ok,
        s.peers.map((p) => `${p.publicKey.slice(0, 8)}… ${p.allowedIps.join(',')} rx ${p.rxBytes} tx ${p.txBytes}`).join('; '));
    }
  },

  async checkCapture(ctx, files) {
    const { countPackets, onlyProtocol, payloadContains } = await import('../capture/assert.ts');
    const info = ctx.memo.get('wg') as WgInfo;
    // The framework has embedded the WireGuard key log (keylogs.wg) with the TLS one.
    const dissect = { decodeAs: [WG_DECODE_AS], tlsPort: AUTH_PORT };
    const nodeIps = ctx.plan.nodes.map((n) => n.underlayIp);
    const anyNode = (field: string) => `(${nodeIps.map((ip) => `${field} == ${ip}`).join(' || ')})`;
    const tunnel = `(wg && udp.srcport == ${WG_PORT} && udp.dstport == ${WG_PORT} && ${anyNode('ip.src')} && ${anyNode('ip.dst')})`;
    const agents = `(tcp.port == ${AUTH_PORT} && ${anyNode('ip.src')} && ${anyNode('ip.dst')})`;
    const only = await onlyProtocol(files.merged, 'fabric/underlay', `arp || ${tunnel} || ${agents}`, dissect);
    const wgCount = await countPackets(files.merged, tunnel, { ...dissect, iface: 'fabric/underlay' });
    const authCount = await countPackets(files.merged, agents, { ...dissect, iface: 'fabric/underlay' });
    ctx.check(`capture: the underlay carries pod traffic only as WireGuard UDP ${WG_PORT} between node IPs (plus ARP and the agents' ${AUTH_PORT} handshakes) (C4)`,
      only.ok && wgCount > 0, `${only.total} frames: ${wgCount} WireGuard, ${authCount} agent TLS on ${AUTH_PORT}, ${only.offendingCount} other${only.offending.length ? ` e.g. ${only.offending.map((o) => `#${o.frame} ${o.protocols}`).join('; ')}` : ''}`);
    const podTcpOnUnderlay = await countPackets(files.merged, `tcp && !(tcp.port == ${AUTH_PORT})`, { ...dissect, iface: 'fabric/underlay' });
    ctx.check('capture: no pod TCP segment crosses the underlay outside the tunnel', podTcpOnUnderlay === 0, `${podTcpOnUnderlay} frames`);
    ctx.check(`capture: the agents' mutual-auth handshake (${AUTH_PORT}) runs between node IPs outside the tunnel, like Cilium without node encryption`, authCount > 0, `${authCount} frames`);

    for (const [label, veths] of [['client->server', ['n1/lxc-client', 'n2/lxc-server']], ['other->server', ['n1/lxc-other', 'n2/lxc-server']]] as const) {
      const secret = String(ctx.memo.get(`secret:${label}`));
      const under = await payloadContains(files.merged, secret, { iface: 'fabric/underlay' });
      const onVeths = await Promise.all(veths.map((v) => payloadContains(files.merged, secret, { iface: v })));
      ctx.check(`capture: ${label} secret is not in plaintext on the underlay but is on ${veths.join(' and ')} (C4)`, !under && onVeths.every(Boolean),
        `underlay ${under ? 'PLAINTEXT' : 'encrypted'}; veths ${onVeths.map((b) => (b ? 'plaintext' : 'absent')).join(', ')}`);
    }
    const sameSecret = String(ctx.memo.get('secret:same-node'));
    const sameVeths = await Promise.all(['n1/lxc-local', 'n1/lxc-client'].map((v) => payloadContains(files.merged, sameSecret, { iface: v })));
    const sameUnder = await payloadContains(files.merged, sameSecret, { iface: 'fabric/underlay' });
    ctx.check('capture: same-node secret stays in plaintext on the veths and never reaches the underlay (C4)', sameVeths.every(Boolean) && !sameUnder,
      `veths ${sameVeths.map((b) => (b ? 'plaintext' : 'absent')).join(', ')}; underlay ${sameUnder ? 'present' : 'absent'}`);

    // One tunnel per node pair: both workloads' flows ride one session.
    const msgs = await wgMessages(files.merged, { iface: 'fabric/underlay' });
    const n1 = ctx.plan.nodes.find((n) => n.name === 'n1')!.underlayIp;
    const n2 = ctx.plan.nodes.find((n) => n.name === 'n2')!.underlayIp;
    const inits = msgs.filter((m) => m.type === 1);
    const data12 = msgs.filter((m) => m.type === 4 && m.src === n1 && m.dst === n2);
    const receivers = [...new Set(data12.map((m) => m.receiver))];
    const streams = [...new Set(msgs.map((m) => m.stream))];
    ctx.check('capture: flows from two pods of n1 to n2 share one WireGuard session (one initiation, one receiver index n1->n2, one stream) — no per-workload keys (C4)',
      inits.length === 1 && receivers.length === 1 && streams.length === 1 && data12.length > 0,
      `${inits.length} initiation(s), ${data12.length} n1->n2 data messages, receiver index(es) ${receivers.join(', ')}, stream(s) ${streams.join(', ')}`);

    // What the embedded key log (static private keys) decrypts.
    const pub = (node: string) => info.nodes.find((x) => x.node === node)!.publicKey;
    const init = inits[0];
    ctx.check('capture: with the embedded key log Wireshark decrypts the initiation: initiator = n1\'s node key, responder = n2\'s node key',
      init?.initiatorStatic === pub('n1') && init.responderStatic === pub('n2'),
      init ? `static ${init.initiatorStatic ?? '?'}, receiver ${init.responderStatic ?? '?'}` : 'no initiation');
    const decrypted = msgs.filter((m) => m.type === 4 && m.innerIp).length;
    ctx.say(`key log: ${decrypted} of ${msgs.filter((m) => m.type === 4).length} transport messages decrypted (static keys alone cannot: the session keys come from the ephemeral keys, which wireguard-go does not export)`);
  },
};

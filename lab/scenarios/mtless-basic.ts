// Claims C1 and C9's start: the datapath drops the first packet of a flow
// that policy says must be authenticated, signals the agent, the agents do
// an out-of-band TLS handshake between the nodes, write the auth entry, and
// the retransmitted SYN passes about one RTO later. UDP has no retransmit.
import { echoSend, startEchoServer } from '../apps/pod-apps.ts';
import { AUTH_BACKOFF_MS } from '../agent/agent.ts';
import { deleteAuthEntry, dumpAuth } from '../datapath/auth.ts';
import { AUTH_PORT, AUTH_TYPE_SPIRE, DROP_POLICY_AUTH_REQUIRED, IPPROTO_TCP, IPPROTO_UDP, type AuthKey, OBS_TO_ENDPOINT, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED } from '../abi/generated.ts';
import type { FlowWithNode, Scenario, ScenarioContext } from './framework.ts';

const keyText = (local: number, remote: number, node: number) => `${local}:${remote}:${node}:1`;

/** TCP through a policy that requires auth; returns the auth key it made. */
async function tcpCase(ctx: ScenarioContext, opts: { client: string; server: string; serverNode: string; port: number; remoteNodeId: number; label: string }): Promise<AuthKey | undefined> {
  const { client, server, port } = opts;
  const serverIp = ctx.podIp(server);
  const clientIp = ctx.podIp(client);
  const srv = await startEchoServer(ctx.lab, server, 'tcp', port);
  try {
    const secret = `secret-${opts.label.replace(/\W+/g, '-')}-${Date.now()}`;
    ctx.memo.set(`secret:${opts.label}`, secret);
    const r = await echoSend(ctx.lab, client, 'tcp', serverIp, port, secret, ['--timeout', '20000']);
    const isFlow = (f: FlowWithNode) => f.protocol === IPPROTO_TCP && f.saddr === clientIp && f.daddr === serverIp && f.dport === port && (f.tcpFlags & TCP_F_SYN) !== 0;
    // Events travel through bpftool and a pipe: wait for them (with a deadline) rather than read once.
    const drop = await ctx.waitForFlow((f) => isFlow(f) && f.verdict === VERDICT_DROPPED);
    ctx.check(`${opts.label}: the first SYN is dropped with reason 189 at ${opts.serverNode}/to-container`,
      drop?.dropReason === DROP_POLICY_AUTH_REQUIRED && drop.obsPoint === OBS_TO_ENDPOINT && drop.node === opts.serverNode,
      drop ? `reason ${drop.dropReason} on ${drop.node}` : 'no drop seen');
    const local = drop?.dstIdentity ?? -1;
    const remote = drop?.srcIdentity ?? -1;
    ctx.memo.set(`identities:${opts.label}`, [local, remote]);
    const key = keyText(local, remote, opts.remoteNodeId);
    ctx.check(`${opts.label}: the drop's auth key uses remote node id ${opts.remoteNodeId}`, drop?.remoteNodeId === opts.remoteNodeId, `remote node ${drop?.remoteNodeId}`);
    const requested = await ctx.waitForLog(opts.serverNode, (l) => l.event === 'auth-requested' && l.key === key);
    ctx.check(`${opts.label}: the agent on ${opts.serverNode} received the signal for ${key}`, requested !== undefined);
    const done = await ctx.waitForLog(opts.serverNode, (l) => l.event === 'auth-completed' && l.key === key);
    ctx.check(`${opts.label}: the agents completed the handshake`, done !== undefined,
      done ? `peer ${done.peer}, handshake ${done.handshakeMs} ms, signal-to-entry ${done.totalMs} ms` : 'no auth-completed line');
    const entries = await dumpAuth(ctx.lab, opts.serverNode);
    const entry = entries.find((e) => keyText(e.key.localSecLabel, e.key.remoteSecLabel, e.key.remoteNodeId) === key);
    ctx.check(`${opts.label}: the auth entry ${key} is in ${opts.serverNode}'s auth map`, entry !== undefined && entry.expiration.getTime() > Date.now(),
      entry ? `expires ${entry.expiration.toISOString()}` : `entries: ${entries.length}`);
    const sameConnection = (f: FlowWithNode) => isFlow(f) && f.sport === drop?.sport && f.node === opts.serverNode && f.obsPoint === OBS_TO_ENDPOINT;
    const pass = await ctx.waitForFlow((f) => sameConnection(f) && f.verdict === VERDICT_FORWARDED);
    // The kernel retransmits a SYN 1 s after the first, then 2 s, 4 s … later
    // (initial RTO 1 s, doubled each time), and each one that comes before the
    // auth entry is dropped too. So the SYN that passes is the first retransmit
    // after the handshake: 2^n - 1 s after the first of n drops (event
    // timestamps), which is one RTO whenever the handshake beats it.
    const drops = pass ? ctx.flows().filter((f) => sameConnection(f) && f.verdict === VERDICT_DROPPED && f.timestamp < pass.timestamp).length : 0;
    const rtoMs = (2 ** drops - 1) * 1000;
    const gapMs = drop && pass ? Number(pass.timestamp - drop.timestamp) / 1e6 : NaN;
    ctx.check(`${opts.label}: the retransmitted SYN passes at the first retransmit after the handshake (one RTO, 1 s, after the drop)`,
      drops >= 1 && gapMs >= rtoMs - 200 && gapMs <= rtoMs + 600,
      `${gapMs.toFixed(0)} ms after the first drop; ${drops} drop(s) of this SYN, so ${rtoMs} ms expected`);
    ctx.check(`${opts.label}: the payload arrives and is echoed`, r.exitCode === 0 && r.stdout.includes(secret) && (await srv.sawText(secret)),
      r.exitCode === 0 ? undefined : r.stderr.trim());

    // A second connection of the same identity pair is not dropped: counted once the server's
    // node has reported its verdict on the new connection (the client may exit before it arrives).
    const before = ctx.flows().filter((f) => f.verdict === VERDICT_DROPPED).length;
    const mark = ctx.flows().length;
    const again = await echoSend(ctx.lab, client, 'tcp', serverIp, port, `${secret}-again`, ['--timeout', '20000']);
    await ctx.waitForFlow((f) => ctx.flows().indexOf(f) >= mark && isFlow(f) && f.node === opts.serverNode && f.verdict === VERDICT_FORWARDED, 10_000);
    const after = ctx.flows().filter((f) => f.verdict === VERDICT_DROPPED).length;
    ctx.check(`${opts.label}: a second connection of the same identity pair is not dropped`, again.exitCode === 0 && after === before,
      `${after - before} new drops`);
    return drop ? { localSecLabel: local, remoteSecLabel: remote, remoteNodeId: opts.remoteNodeId, authType: AUTH_TYPE_SPIRE } : undefined;
  } finally {
    await srv.stop();
  }
}

/**
 * UDP has no retransmit: the first datagram of an unauthenticated pair is
 * gone. The pair was authenticated by the TCP case, so its entry is deleted
 * first, and the agent's 1 s backoff for that key is allowed to run out. Later
 * datagrams are sent once the agents have written the entry again (awaited
 * in the agent's log, not assumed to take less than some time).
 */
async function udpCase(ctx: ScenarioContext, key: AuthKey) {
  const serverIp = ctx.podIp('server');
  const clientIp = ctx.podIp('client');
  const k = keyText(key.localSecLabel, key.remoteSecLabel, key.remoteNodeId);
  await deleteAuthEntry(ctx.lab, 'n2', key);
  const last = (await ctx.agentLog('n2')).filter((l) => l.event === 'auth-completed' && l.key === k).at(-1);
  const wait = last ? AUTH_BACKOFF_MS - (Date.now() - Date.parse(String(last.time))) : 0;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait + 50)); // the agent's backoff window, not a guess
  const udp = await startEchoServer(ctx.lab, 'server', 'udp', 9090);
  try {
    const first = await echoSend(ctx.lab, 'client', 'udp', serverIp, 9090, 'dgram-first', ['--timeout', '2000']);
    const drop = await ctx.waitForFlow((f) => f.protocol === IPPROTO_UDP && f.saddr === clientIp && f.dport === 9090 && f.verdict === VERDICT_DROPPED);
    ctx.check('UDP: the first datagram is dropped with reason 189', drop?.dropReason === DROP_POLICY_AUTH_REQUIRED, drop ? `reason ${drop.dropReason}` : 'no drop seen');
    const remade = await ctx.waitForLog('n2', (l) => l.event === 'auth-completed' && l.key === k && (!last || Date.parse(String(l.time)) > Date.parse(String(last.time))), 30_000);
    const later = await echoSend(ctx.lab, 'client', 'udp', serverIp, 9090, 'dgram-later', ['--count', '3', '--timeout', '10000']);
    const echoed = later.stdout.split('\n').filter((l) => l.startsWith('ECHO ')).map((l) => l.slice(5));
    ctx.check('UDP: the first datagram never arrives (no retransmit)', first.exitCode !== 0 && !udp.lines.some((l) => l.endsWith(' dgram-first')),
      `echoed: ${first.stdout.trim() || 'none'}`);
    ctx.check('UDP: later datagrams arrive once the pair is authenticated', remade !== undefined && later.exitCode === 0,
      `${remade ? 'entry written again' : 'no new auth-completed'}; echoed: ${echoed.join(', ') || 'none'}`);
  } finally {
    await udp.stop();
  }
}

export const mtlessBasic: Scenario = {
  name: 'mtless-basic',
  summary: 'first packet dropped (189), out-of-band handshake between agents, retransmit passes; UDP loses its first datagram',
  claims: ['C1', 'C2', 'C3'],
  topology: 'topologies/two-node-auth.yaml',
  captureLinks: ['fabric/underlay', 'n1/lxc-client', 'n1/lxc-local', 'n2/lxc-server'],
  async run(ctx) {
    ctx.say('TCP client (n1) -> server (n2):8080, ingress policy requires authentication');
    const key = await tcpCase(ctx, { client: 'client', server: 'server', serverNode: 'n2', port: 8080, remoteNodeId: 1, label: 'cross-node TCP' });

    if (key) {
      ctx.say('UDP client (n1) -> server (n2):9090 after the entry is deleted: the first datagram is lost for good');
      await udpCase(ctx, key);
    }

    ctx.say('Same node: local (n1) -> client (n1):7070, ingress policy of client requires authentication');
    await tcpCase(ctx, { client: 'local', server: 'client', serverNode: 'n1', port: 7070, remoteNodeId: 0, label: 'same-node TCP' });
  },

  /** Claims C1–C3 on the packets themselves (tshark is the ground truth). */
  async checkCapture(ctx, files) {
    const { countPackets, payloadContains, tlsCertificateUriSans, frames } = await import('../capture/assert.ts');
    const serverIp = ctx.podIp('server');
    const commented = await countPackets(files.merged,
      `frame.comment contains "DROPPED: Authentication required (189) at n2/to-container" && ip.dst == ${serverIp} && tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0`);
    ctx.check('capture: the dropped SYN carries its drop comment', commented >= 1, `${commented} commented SYN`);
    const syns = await frames(files.merged, `ip.dst == ${serverIp} && tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0`, ['frame.time_epoch', 'tcp.srcport'], { iface: 'fabric/underlay' });
    const firstPort = syns[0]?.['tcp.srcport'];
    const sameConn = syns.filter((r) => r['tcp.srcport'] === firstPort).map((r) => Number(r['frame.time_epoch']));
    const gap = sameConn.length >= 2 ? sameConn[1]! - sameConn[0]! : NaN;
    ctx.check('capture: the SYN crosses the underlay twice, about 1 s apart (C1)', gap > 0.8 && gap < 1.6, `${gap.toFixed(3)} s`);

    const [local, remote] = (ctx.memo.get('identities:cross-node TCP') as number[] | undefined) ?? [];
    const certs = await tlsCertificateUriSans(files.merged, { iface: 'fabric/underlay' });
    const want = [`spiffe://spiffe.cilium/identity/${local}`, `spiffe://spiffe.cilium/identity/${remote}`];
    ctx.check(`capture: the port-${AUTH_PORT} handshake decrypts with the embedded key log and shows both SPIFFE IDs (C2)`,
      want.every((u) => certs.uris.includes(u)), `URI SANs: ${certs.uris.join(', ') || 'none'}`);
    const nodeIps = ctx.plan.nodes.map((n) => n.underlayIp);
    const anyNode = (field: string) => `(${nodeIps.map((ip) => `${field} == ${ip}`).join(' || ')})`;
    const onUnderlay = await countPackets(files.merged, `tcp.port == ${AUTH_PORT} && ${anyNode('ip.src')} && ${anyNode('ip.dst')}`, { iface: 'fabric/underlay' });
    const onPods = await countPackets(files.merged, `tcp.port == ${AUTH_PORT}`, { iface: 'n2/lxc-server' });
    ctx.check('capture: the handshake runs between the node agents, never on a pod veth (C2)', onUnderlay > 0 && onPods === 0, `${onUnderlay} on the underlay, ${onPods} on n2/lxc-server`);
    const appData = await countPackets(files.merged, `tcp.port == ${AUTH_PORT} && tls.app_data`, { iface: 'fabric/underlay', tlsPort: AUTH_PORT });
    ctx.check('capture: the handshake carries no application data and closes', appData === 0, `${appData} application-data records`);

    const secret = String(ctx.memo.get('secret:cross-node TCP'));
    ctx.check('capture: the application payload crosses the underlay in plaintext (C3)', await payloadContains(files.merged, secret, { iface: 'fabric/underlay' }), secret);
  },
};

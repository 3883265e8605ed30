// Claim C7, the contrast to Cilium's mutual auth: per-connection mTLS, as in
// Istio ambient. Each node runs a proxy (lab/mesh); pod connections to a
// meshed port are redirected to it, and every connection gets its own TLS 1.3
// handshake with the source and destination WORKLOAD identities
// (spiffe://cluster.local/ns/<ns>/sa/<sa>), carried as HBONE (HTTP/2 CONNECT
// to the original destination). The payload crosses the underlay
// only inside that TLS, and the destination authorizes the certificate, not
// the IP — so the identity-confusion steps of C5 no longer admit the intruder.
// Traffic that skips the proxies (a node's own, a pod outside the mesh) is
// dropped by the nodes' no_bypass chains.
import { echoSend, echoSendFromNode, startEchoServer } from '../apps/pod-apps.ts';
import { addPod, deletePod, partitionNode } from '../compose/pods.ts';
import { countMany, countPackets, frames, payloadContains, tlsCertificateUriSans } from '../capture/assert.ts';
import { workloadSpiffeId } from '../mesh/config.ts';
import { HBONE_PORT } from '../abi/generated.ts';
import { MESH_TRUST_DOMAIN } from '../spiffe/id.ts';
import { bypassDrops, enrollPod, listRedirect, proxyLog, startMesh } from '../mesh/mesh.ts';
import type { Scenario } from './framework.ts';
import { untilRefused } from './side-lab.ts';

const CLIENT_ID = workloadSpiffeId('default', 'client');
const SERVER_ID = workloadSpiffeId('default', 'server');
const INTRUDER_ID = workloadSpiffeId('default', 'intruder');
const SECRETS = ['mesh-secret-one', 'mesh-secret-two'];
const FORBIDDEN = 'mesh-forbidden-payload';
const BYPASS = ['mesh-bypass-from-node', 'mesh-bypass-from-pod'];
const UNDERLAY = 'fabric/underlay';
const TRUST_DOMAIN_ID = `spiffe://${MESH_TRUST_DOMAIN}`;

/** Waits (with a deadline) for a proxy log line. */
async function firstLog(lab: string, node: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = (await proxyLog(lab, node)).find(pred);
    if (hit || Date.now() > deadline) return hit;
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const perConnectionMtls: Scenario = {
  name: 'per-connection-mtls',
  summary: 'per-connection mTLS (Istio-ambient-like node proxies): one handshake per connection, workload identities, payload encrypted on the underlay, not fooled by IP reuse',
  claims: ['C7'],
  topology: 'topologies/mesh.yaml',
  captureLinks: [UNDERLAY, 'n2/lxc-server'],
  async run(ctx) {
    const serverIp = ctx.podIp('server');
    const clientIp = ctx.podIp('client');
    ctx.say('the mesh trusts: the CA (one SVID per pod, of the pod\'s service account); the kernel\'s veth (a pod\'s');
    ctx.say('  connection is redirected by the lxc interface it arrives on, so the source proxy picks the SVID by');
    ctx.say('  interface, never by source IP); the destination proxy trusts only the certificate it verified');
    await startMesh(ctx.lab, ctx.plan.topology);
    ctx.say(`redirect on n1 (nft, node namespace only):\n${(await listRedirect(ctx.lab, 'n1')).trimEnd()}`);
    const server = await startEchoServer(ctx.lab, 'server', 'tcp', 8080);
    try {
      ctx.say('1. client (sa client) opens two connections to server:8080 through the node proxies');
      for (const secret of SECRETS) {
        const r = await echoSend(ctx.lab, 'client', 'tcp', serverIp, 8080, secret, ['--timeout', '20000']);
        ctx.check(`connection "${secret}" is echoed end to end`, r.exitCode === 0 && (await server.sawText(secret)), r.stderr.trim() || undefined);
      }
      const allowed = (await proxyLog(ctx.lab, 'n2')).filter((l) => l.msg === 'inbound-allowed');
      ctx.check('n2\'s proxy admitted both connections by the client\'s certificate identity',
        allowed.length === 2 && allowed.every((l) => l.peer === CLIENT_ID), allowed.map((l) => String(l.peer)).join(', '));
      // The server sees the node proxy (n2's underlay address) as its peer, not the client's IP.
      const peers = server.lines.filter((l) => l.startsWith('RECV')).map((l) => l.split(' ')[1]!.split(':')[0]);
      ctx.check('the server\'s peer is n2\'s proxy (the mesh terminates, then re-originates)', peers.length === 2 && peers.every((p) => p === ctx.plan.nodes[1]!.underlayIp), peers.join(', '));

      ctx.say('bypass: traffic to server:8080 that skips the proxies is dropped by the nodes (force all traffic through the proxy)');
      const n2Before = await bypassDrops(ctx.lab, 'n2');
      // Stopped once n2 has dropped the SYN and its retransmit (the client would only time out).
      const fromNode = await untilRefused((signal) => echoSendFromNode(ctx.lab, 'n1', 'tcp', serverIp, 8080, BYPASS[0]!, ['--timeout', '3000'], signal),
        async () => (await bypassDrops(ctx.lab, 'n2')) - n2Before >= 2, 100);
      const n2Dropped = (await bypassDrops(ctx.lab, 'n2')) - n2Before;
      ctx.check('node n1\'s own connection to server:8080 (no proxy) fails and n2\'s no_bypass chain dropped it',
        fromNode.exitCode !== 0 && n2Dropped > 0 && !server.lines.some((l) => l.includes(BYPASS[0]!)), `exit ${fromNode.exitCode}, n2 no_bypass dropped ${n2Dropped} packet(s)`);
      // A pod outside the mesh (no redirect for its veth), labelled so that Cilium's policy would admit it.
      await addPod({ lab: ctx.lab, node: 'n1', pod: 'unmeshed', labels: { app: 'client' }, serviceAccount: 'client' });
      const n1Before = await bypassDrops(ctx.lab, 'n1');
      const fromPod = await untilRefused((signal) => echoSend(ctx.lab, 'unmeshed', 'tcp', serverIp, 8080, BYPASS[1]!, ['--timeout', '3000'], signal),
        async () => (await bypassDrops(ctx.lab, 'n1')) - n1Before >= 2, 100);
      const n1Dropped = (await bypassDrops(ctx.lab, 'n1')) - n1Before;
      ctx.check('a pod outside the mesh (labels the policy admits) cannot reach server:8080: n1\'s no_bypass chain dropped it',
        fromPod.exitCode !== 0 && n1Dropped > 0 && !server.lines.some((l) => l.includes(BYPASS[1]!)), `exit ${fromPod.exitCode}, n1 no_bypass dropped ${n1Dropped} packet(s)`);
      await deletePod(ctx.lab, 'unmeshed');

      ctx.say('2. n2 is cut off the control plane; 3. client deleted; 4. intruder (sa intruder) reuses its IP on n1');
      await partitionNode(ctx.lab, 'n2', true);
      await deletePod(ctx.lab, 'client');
      const intruder = await addPod({ lab: ctx.lab, node: 'n1', pod: 'intruder', labels: { app: 'intruder' }, serviceAccount: 'intruder', ip: clientIp });
      await enrollPod(ctx.lab, 'intruder', { serviceAccount: 'intruder' });
      ctx.check('the intruder reuses the client\'s IP', intruder.ip === clientIp, `ip ${intruder.ip}`);

      ctx.say('5. the intruder connects to server:8080: its proxy can only present the intruder\'s own SVID');
      const attack = await echoSend(ctx.lab, 'intruder', 'tcp', serverIp, 8080, FORBIDDEN, ['--timeout', '4000']);
      const denied = await firstLog(ctx.lab, 'n2', (l) => l.msg === 'inbound-denied');
      ctx.check('the intruder is REFUSED: no echo, nothing reaches the server', attack.exitCode !== 0 && !server.lines.some((l) => l.includes(FORBIDDEN)), attack.stderr.trim() || `exit ${attack.exitCode}`);
      ctx.check('n2\'s proxy denied it by certificate identity (IP reuse and the partition do not matter)',
        denied?.peer === INTRUDER_ID, denied ? `${String(denied.peer)}: ${String(denied.reason)}` : 'no denial logged');
      ctx.memo.set('connections', SECRETS.length + 1);
      ctx.memo.set('serverIp', serverIp);
    } finally {
      await server.stop();
      await partitionNode(ctx.lab, 'n2', false).catch(() => undefined);
    }
  },
  async checkCapture(ctx, files) {
    const file = files.merged;
    const hbone = `tcp.port == ${HBONE_PORT}`;
    const nodeIps = ctx.plan.nodes.map((n) => n.underlayIp);
    const anyNode = (field: string) => `(${nodeIps.map((ip) => `${field} == ${ip}`).join(' || ')})`;
    const betweenNodes = `${anyNode('ip.src')} && ${anyNode('ip.dst')}`;
    // (a) plaintext only inside the pods' veths; the underlay carries TLS on 15008 only.
    ctx.check('capture: the secret is plaintext on n2/lxc-server (proxy → pod)', await payloadContains(file, SECRETS[0]!, { iface: 'n2/lxc-server' }));
    const leaked = await Promise.all([...SECRETS, FORBIDDEN, ...BYPASS].map((s) => payloadContains(file, s, { iface: UNDERLAY })));
    ctx.check('capture: no secret crosses the underlay in plaintext (C7)', leaked.every((x) => !x));
    const serverIp = ctx.memo.get('serverIp') as string;
    const n1 = nodeIps[0]!;
    const nodeSyn = `ip.src == ${n1} && ip.dst == ${serverIp} && tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0`;
    const c = await countMany(file, {
      payload: 'tcp.len > 0',
      // A TLS record longer than one segment is dissected as tls only in the frame that
      // completes it (the others carry tcp.reassembled_in); a retransmitted segment is
      // not dissected again. Both are still TLS on 15008.
      hboneTls: `${hbone} && tcp.len > 0 && (tls || tcp.reassembled_in || tcp.analysis.retransmission) && ${betweenNodes}`,
      other: `tcp.len > 0 && !(${hbone})`,
      direct: `tcp.port == 8080 && !(${nodeSyn})`,
      bypassSyn: nodeSyn,
    }, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check(`capture: every TCP payload on the underlay is TLS on ${HBONE_PORT} between node IPs`,
      c.payload > 0 && c.hboneTls === c.payload && c.other === 0 && c.direct === 0, `${c.hboneTls}/${c.payload} TLS on ${HBONE_PORT}, ${c.other} other, ${c.direct} on 8080 besides n1's bypass SYNs`);
    const reached = await countPackets(file, `ip.src == ${n1} && tcp.port == 8080`, { iface: 'n2/lxc-server' });
    ctx.check(`capture: n1's bypass SYNs to ${serverIp}:8080 cross the underlay unanswered and never reach n2/lxc-server (dropped on n2)`,
      c.bypassSyn > 0 && reached === 0, `${c.bypassSyn} SYN(s) on the underlay (filter: ${nodeSyn}), ${reached} on n2/lxc-server`);
    // HBONE: HTTP/2 CONNECT inside the (decrypted) TLS, one stream per pod connection, :authority = the original destination.
    const connects = await frames(file, 'http2.headers.method == "CONNECT"', ['tcp.stream', 'http2.streamid', 'http2.headers.authority'], { iface: UNDERLAY, tlsPort: HBONE_PORT });
    const authorities = connects.map((f) => f['http2.headers.authority']);
    const expectedConnects = ctx.memo.get('connections') as number;
    ctx.check(`capture: HBONE, one HTTP/2 CONNECT per connection with :authority ${serverIp}:8080 (filter http2.headers.method == "CONNECT", decode-as tcp.port==${HBONE_PORT},tls)`,
      connects.length === expectedConnects && authorities.every((a) => a === `${serverIp}:8080`) && new Set(connects.map((f) => f['tcp.stream'])).size === expectedConnects,
      `${connects.length} CONNECT(s): ${connects.map((f) => `tcp.stream ${f['tcp.stream']} h2 stream ids in its frame ${f['http2.streamid']} :authority ${f['http2.headers.authority']}`).join('; ')}`);
    // (b) one handshake per connection: as many ClientHellos as TCP streams on 15008 as pod connections.
    const hellos = await frames(file, `${hbone} && tls.handshake.type == 1`, ['tcp.stream', 'tls.handshake.extensions_server_name'], { iface: UNDERLAY, tlsPort: HBONE_PORT });
    const streams = new Set(hellos.map((h) => h['tcp.stream']));
    const expected = ctx.memo.get('connections') as number;
    ctx.check('capture: one TLS handshake per connection (3 pod connections → 3 ClientHellos, 3 streams)',
      hellos.length === expected && streams.size === expected, `${hellos.length} ClientHellos in ${streams.size} streams, SNI ${[...new Set(hellos.map((h) => h['tls.handshake.extensions_server_name']))].join(', ')}`);
    const resumed = await countPackets(file, `${hbone} && tls.handshake.extensions.psk.identity.identity`, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check('capture: no session resumption (every handshake carries certificates)', resumed === 0);
    // (d) on the wire, the refusal is inside the intruder's own TLS connection (decrypted with the key log).
    const refusals = await countPackets(file, `${hbone} && http2.headers.status == 403`, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check('capture: n2\'s proxy answered the intruder\'s CONNECT with :status 403 inside TLS (decrypted)', refusals === 1, `${refusals} refusal(s)`);
    // (c) workload identities in the (decrypted) Certificate messages.
    const certs = await tlsCertificateUriSans(file, { port: HBONE_PORT, iface: UNDERLAY });
    // OpenSSL sends the mesh CA (URI SAN spiffe://cluster.local) after the leaf: it is in the bundle it was given.
    const leaves = certs.uris.filter((u) => u !== TRUST_DOMAIN_ID);
    ctx.check('capture: the certificates carry workload SPIFFE IDs (ns/sa): client, server, intruder',
      [CLIENT_ID, SERVER_ID, INTRUDER_ID].every((u) => leaves.includes(u)) && leaves.every((u) => /\/ns\/[^/]+\/sa\/[^/]+$/.test(u)),
      `${certs.certificates.length} Certificate messages: ${leaves.join(', ')} (+ the CA, ${TRUST_DOMAIN_ID})`);
  },
};

// Claim C7, the contrast to Cilium's mutual auth: per-connection mTLS, as in
// Istio ambient. Each node runs a proxy (lab/mesh); pod connections to a
// meshed port are redirected to it, and every connection gets its own TLS 1.3
// handshake with the source and destination WORKLOAD identities
// (spiffe://spiffe.cilium/ns/<ns>/sa/<sa>). The payload crosses the underlay
// only inside that TLS, and the destination authorizes the certificate, not
// the IP — so the identity-confusion steps of C5 no longer admit the intruder.
import { echoSend, startEchoServer } from '../apps/pod-apps.ts';
import { addPod, deletePod, partitionNode } from '../compose/pods.ts';
import { countMany, countPackets, frames, payloadContains, tlsCertificateUriSans } from '../capture/assert.ts';
import { workloadSpiffeId } from '../mesh/config.ts';
import { HBONE_PORT } from '../abi/generated.ts';
import { TRUST_DOMAIN } from '../spiffe/id.ts';
import { enrollPod, listRedirect, proxyLog, startMesh } from '../mesh/mesh.ts';
import type { Scenario } from './framework.ts';

const CLIENT_ID = workloadSpiffeId('default', 'client');
const SERVER_ID = workloadSpiffeId('default', 'server');
const INTRUDER_ID = workloadSpiffeId('default', 'intruder');
const SECRETS = ['mesh-secret-one', 'mesh-secret-two'];
const FORBIDDEN = 'mesh-forbidden-payload';
const UNDERLAY = 'fabric/underlay';
const TRUST_DOMAIN_ID = `spiffe://${TRUST_DOMAIN}`;

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
        ctx.check(`connection "${secret}" is echoed end to end`, r.exitCode === 0 && server.lines.some((l) => l.includes(secret)), r.stderr.trim() || undefined);
      }
      const allowed = (await proxyLog(ctx.lab, 'n2')).filter((l) => l.msg === 'inbound-allowed');
      ctx.check('n2\'s proxy admitted both connections by the client\'s certificate identity',
        allowed.length === 2 && allowed.every((l) => l.peer === CLIENT_ID), allowed.map((l) => String(l.peer)).join(', '));
      // The server sees the node proxy (n2's underlay address) as its peer, not the client's IP.
      const peers = server.lines.filter((l) => l.startsWith('RECV')).map((l) => l.split(' ')[1]!.split(':')[0]);
      ctx.check('the server\'s peer is n2\'s proxy (the mesh terminates, then re-originates)', peers.length === 2 && peers.every((p) => p === ctx.plan.nodes[1]!.underlayIp), peers.join(', '));

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
    const leaked = await Promise.all([...SECRETS, FORBIDDEN].map((s) => payloadContains(file, s, { iface: UNDERLAY })));
    ctx.check('capture: no secret crosses the underlay in plaintext (C7)', leaked.every((x) => !x));
    const c = await countMany(file, {
      payload: 'tcp.len > 0',
      hboneTls: `${hbone} && tcp.len > 0 && tls && ${betweenNodes}`,
      other: `tcp.len > 0 && !(${hbone})`,
      direct: 'tcp.port == 8080',
    }, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check(`capture: every TCP payload on the underlay is TLS on ${HBONE_PORT} between node IPs`,
      c.payload > 0 && c.hboneTls === c.payload && c.other === 0 && c.direct === 0, `${c.hboneTls}/${c.payload} TLS on ${HBONE_PORT}, ${c.other} other, ${c.direct} on 8080`);
    // (b) one handshake per connection: as many ClientHellos as TCP streams on 15008 as pod connections.
    const hellos = await frames(file, `${hbone} && tls.handshake.type == 1`, ['tcp.stream', 'tls.handshake.extensions_server_name'], { iface: UNDERLAY, tlsPort: HBONE_PORT });
    const streams = new Set(hellos.map((h) => h['tcp.stream']));
    const expected = ctx.memo.get('connections') as number;
    ctx.check('capture: one TLS handshake per connection (3 pod connections → 3 ClientHellos, 3 streams)',
      hellos.length === expected && streams.size === expected, `${hellos.length} ClientHellos in ${streams.size} streams, SNI ${[...new Set(hellos.map((h) => h['tls.handshake.extensions_server_name']))].join(', ')}`);
    const resumed = await countPackets(file, `${hbone} && tls.handshake.extensions.psk.identity.identity`, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check('capture: no session resumption (every handshake carries certificates)', resumed === 0);
    // (d) on the wire, the refusal is inside the intruder's own TLS connection (decrypted with the key log).
    const refusals = await countPackets(file, `${hbone} && (http.response.code == 403 || tls.segment.data contains "HTTP/1.1 403")`, { iface: UNDERLAY, tlsPort: HBONE_PORT });
    ctx.check('capture: n2\'s proxy answered the intruder "403 Forbidden" inside TLS (decrypted)', refusals === 1, `${refusals} refusal(s)`);
    // (c) workload identities in the (decrypted) Certificate messages.
    const certs = await tlsCertificateUriSans(file, { port: HBONE_PORT, iface: UNDERLAY });
    // OpenSSL sends the CA (URI SAN spiffe://spiffe.cilium) after the leaf: it is in the bundle it was given.
    const leaves = certs.uris.filter((u) => u !== TRUST_DOMAIN_ID);
    ctx.check('capture: the certificates carry workload SPIFFE IDs (ns/sa): client, server, intruder',
      [CLIENT_ID, SERVER_ID, INTRUDER_ID].every((u) => leaves.includes(u)) && leaves.every((u) => /\/ns\/[^/]+\/sa\/[^/]+$/.test(u)),
      `${certs.certificates.length} Certificate messages: ${leaves.join(', ')} (+ the CA, ${TRUST_DOMAIN_ID})`);
  },
};

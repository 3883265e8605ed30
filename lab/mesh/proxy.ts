// A node proxy (ztunnel-like), one per node, run in the node namespace by
// startDaemon: `proxy.ts CONFIG`. SIGHUP re-reads CONFIG (new pods, new routes).
//
//   pod --(nft DNAT by lxc + destination)--> a local port P (outbound)
//       P → one TLS 1.3 connection per pod connection, client cert = the
//           source pod's SVID, to the destination node's proxy on 15008;
//           first line "CONNECT ip:port" (HBONE is HTTP/2 CONNECT; this is
//           HTTP/1.1 CONNECT, one stream per TLS connection).
//   :15008 (inbound) verifies the chain and the one URI SAN, authorizes the
//       SOURCE WORKLOAD IDENTITY FROM THE CERTIFICATE against the pod's port
//       rule, then connects to the pod from the node's underlay address and
//       pipes.
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer, type SecureContext, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { parseWorkloadSpiffeId, type ProxyConfig } from './config.ts';
import { HBONE_PORT } from '../abi/generated.ts';

const configFile = process.argv[2];
if (!configFile) {
  process.stderr.write('usage: proxy.ts CONFIG\n');
  process.exit(2);
}

const log = (msg: string, fields: Record<string, unknown> = {}) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n');

let config!: ProxyConfig;
let bundle!: string;
/** Per local pod: its TLS context (its SVID). */
let contexts = new Map<string, SecureContext>();
const listeners = new Map<number, Server>();

function uriSans(cert: X509Certificate | undefined): string[] {
  return (cert?.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}

function load(): void {
  config = JSON.parse(readFileSync(configFile!, 'utf8')) as ProxyConfig;
  bundle = readFileSync(config.bundleFile, 'utf8');
  contexts = new Map(config.workloads.map((w) => [w.pod, createSecureContext({
    cert: readFileSync(w.certFile), key: readFileSync(w.keyFile), ca: bundle, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
  })]));
  const wanted = new Set(config.outbound.map((r) => r.localPort));
  for (const [port, server] of listeners) if (!wanted.has(port)) { server.close(); listeners.delete(port); }
}

/** Outbound listeners: the port says which pod (by its veth) connects to which destination. */
async function syncListeners(): Promise<void> {
  await Promise.all(config.outbound.filter((r) => !listeners.has(r.localPort)).map((r) => new Promise<void>((resolve, reject) => {
    const server = createServer((sock) => outbound(sock, r.localPort));
    server.once('error', reject);
    server.listen(r.localPort, config.underlayIp, () => resolve());
    listeners.set(r.localPort, server);
  })));
}

function outbound(client: Socket, localPort: number): void {
  client.on('error', () => undefined);
  const route = config.outbound.find((r) => r.localPort === localPort);
  const ctx = route && contexts.get(route.srcPod);
  if (!route || !ctx) {
    log('outbound-no-route', { localPort, peer: client.remoteAddress });
    client.resetAndDestroy();
    return;
  }
  const src = config.workloads.find((w) => w.pod === route.srcPod)!;
  // One mTLS connection per pod connection: no pooling, no session resumption.
  const tunnel = tlsConnect({
    host: route.dstNodeIp, port: HBONE_PORT, secureContext: ctx,
    servername: sniFor(route.dstSpiffeId),
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
    // The chain is checked against the bundle; the name check is the SPIFFE ID of the destination workload.
    checkServerIdentity: (_host, cert) => {
      const uris = uriSans(cert.raw ? new X509Certificate(cert.raw) : undefined);
      return uris.length === 1 && uris[0] === route.dstSpiffeId ? undefined : new Error(`destination presented ${uris.join(',') || 'no URI SAN'}, expected ${route.dstSpiffeId}`);
    },
  });
  tunnel.on('keylog', (line) => appendFileSync(config.keyLogFile, line));
  client.pause();
  let head = '';
  const onHead = (d: Buffer) => {
    head += d.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    tunnel.off('data', onHead);
    const status = head.slice(0, head.indexOf('\r\n'));
    const rest = Buffer.from(head.slice(end + 4), 'latin1');
    if (!/^HTTP\/1\.1 200/.test(status)) {
      log('outbound-refused', { src: src.spiffeId, dst: `${route.dstIp}:${route.dstPort}`, status });
      client.resetAndDestroy();
      tunnel.destroy();
      return;
    }
    log('outbound-open', { src: src.spiffeId, dst: `${route.dstIp}:${route.dstPort}`, via: route.dstNodeIp });
    if (rest.length) client.write(rest);
    client.pipe(tunnel).pipe(client);
    client.resume();
  };
  tunnel.once('secureConnect', () => {
    tunnel.write(`CONNECT ${route.dstIp}:${route.dstPort} HTTP/1.1\r\nHost: ${route.dstIp}:${route.dstPort}\r\n\r\n`);
    tunnel.on('data', onHead);
  });
  tunnel.on('error', (e) => {
    log('outbound-error', { src: src.spiffeId, dst: `${route.dstIp}:${route.dstPort}`, error: e.message });
    client.resetAndDestroy();
  });
  client.on('close', () => tunnel.end());
}

/** SNI names the destination workload (a hostname cannot hold a URI): `<sa>.<ns>.<td>`. */
function sniFor(spiffeId: string): string {
  const id = parseWorkloadSpiffeId(spiffeId)!;
  return `${id.serviceAccount}.${id.namespace}.${id.trustDomain}`;
}

function inbound(): Server {
  return createTlsServer({
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
    requestCert: true, rejectUnauthorized: true,
    // The destination proxy presents the SVID of the workload the client asked for.
    SNICallback: (name, cb) => {
      const w = config.workloads.find((x) => sniFor(x.spiffeId) === name);
      cb(w ? null : new Error(`no local workload for SNI ${name}`), w ? contexts.get(w.pod) : undefined);
    },
  }, (tls: TLSSocket) => {
    tls.on('error', () => undefined);
    const uris = uriSans(tls.getPeerX509Certificate());
    const peer = uris.length === 1 && parseWorkloadSpiffeId(uris[0]!) ? uris[0]! : undefined;
    let head = '';
    const onHead = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      tls.off('data', onHead);
      tls.pause();
      const m = /^CONNECT (\d+\.\d+\.\d+\.\d+):(\d+) HTTP\/1\.1/.exec(head);
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      const ip = m?.[1];
      const port = Number(m?.[2]);
      const rule = config.inbound.find((r) => r.ip === ip && r.port === port);
      const deny = (status: string, reason: string) => {
        log('inbound-denied', { peer: peer ?? uris, dst: `${ip}:${port}`, reason });
        tls.end(`HTTP/1.1 ${status}\r\n\r\n`);
      };
      if (!peer) return deny('403 Forbidden', `client certificate must carry exactly one spiffe://<td>/ns/<ns>/sa/<sa> URI SAN, has ${uris.length}`);
      if (!rule) return deny('403 Forbidden', 'not a meshed destination of this node');
      // Authorization by the identity the certificate proves, never by the source IP.
      if (!rule.allow.includes(peer)) return deny('403 Forbidden', `principal not allowed (allowed: ${rule.allow.join(', ')})`);
      let connected = false;
      const upstream = netConnect({ host: ip!, port, localAddress: config.underlayIp }, () => {
        connected = true;
        log('inbound-allowed', { peer, dst: `${ip}:${port}` });
        tls.write('HTTP/1.1 200 OK\r\n\r\n');
        if (rest.length) upstream.write(rest);
        tls.pipe(upstream).pipe(tls);
        tls.resume();
      });
      upstream.on('error', (e) => {
        if (!connected) deny('502 Bad Gateway', e.message);
        else tls.destroy();
      });
      tls.on('close', () => upstream.destroy());
    };
    tls.on('data', onHead);
  });
}

load();
await syncListeners();
const server = inbound();
server.on('tlsClientError', (e) => log('inbound-handshake-failed', { error: e.message }));
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen(HBONE_PORT, config.underlayIp, () => resolve());
});
process.on('SIGHUP', () => {
  try {
    load();
    syncListeners().then(() => log('reloaded', { generation: config.generation }), (e: Error) => log('reload-failed', { error: e.message }));
  } catch (e) {
    log('reload-failed', { error: (e as Error).message });
  }
});
process.on('SIGTERM', () => process.exit(0));
log('started', { node: config.node, hbone: `${config.underlayIp}:${HBONE_PORT}`, outbound: config.outbound.length, generation: config.generation });
process.stdout.write('READY\n');

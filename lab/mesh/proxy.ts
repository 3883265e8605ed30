// A node proxy (ztunnel-like), one per node, run in the node namespace by
// startDaemon: `proxy.ts CONFIG`. SIGHUP re-reads CONFIG (new pods, new routes).
//
//   pod --(nft DNAT by lxc + destination)--> a local port P (outbound)
//       P → HBONE: one mutual TLS 1.3 connection (ALPN h2) per pod connection,
//           client cert = the source pod's SVID, to the destination node's
//           proxy on 15008, and on it ONE HTTP/2 CONNECT stream whose
//           :authority is the original destination ip:port. (ztunnel pools
//           such connections per identity pair and multiplexes streams; here
//           each connection has its own, so every connection pays its
//           handshake, which is what C7 measures.)
//   :15008 (inbound) verifies the chain and the one URI SAN, authorizes the
//       SOURCE WORKLOAD IDENTITY FROM THE CERTIFICATE against the rule of
//       :authority, answers :status 200 (or 403), connects to the pod from
//       the node's underlay address and pipes the stream.
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { connect as h2Connect, constants as h2, createSecureServer, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
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
  client.pause();
  const src = config.workloads.find((w) => w.pod === route.srcPod)!;
  const authority = `${route.dstIp}:${route.dstPort}`;
  const fields = { src: src.spiffeId, dst: authority };
  // One mTLS connection per pod connection: no pooling, no session resumption.
  const session = h2Connect(`https://${route.dstNodeIp}:${HBONE_PORT}`, {
    createConnection: () => {
      const tls = tlsConnect({
        host: route.dstNodeIp, port: HBONE_PORT, secureContext: ctx, ALPNProtocols: ['h2'],
        servername: sniFor(route.dstSpiffeId),
        minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
        // The chain is checked against the bundle; the name check is the SPIFFE ID of the destination workload.
        checkServerIdentity: (_host, cert) => {
          const uris = uriSans(cert.raw ? new X509Certificate(cert.raw) : undefined);
          return uris.length === 1 && uris[0] === route.dstSpiffeId ? undefined : new Error(`destination presented ${uris.join(',') || 'no URI SAN'}, expected ${route.dstSpiffeId}`);
        },
      });
      tls.on('keylog', (line) => appendFileSync(config.keyLogFile, line));
      return tls;
    },
  });
  const fail = (e: Error) => {
    log('outbound-error', { ...fields, error: e.message });
    client.resetAndDestroy();
    session.destroy();
  };
  session.on('error', fail);
  // HTTP/2 CONNECT (RFC 9113 §8.5): only :method and :authority, the stream is the tunnel.
  const stream = session.request({ [h2.HTTP2_HEADER_METHOD]: 'CONNECT', [h2.HTTP2_HEADER_AUTHORITY]: authority });
  stream.on('error', fail);
  stream.on('close', () => session.close());
  stream.once('response', (headers) => {
    const status = Number(headers[h2.HTTP2_HEADER_STATUS]);
    if (status !== 200) {
      log('outbound-refused', { ...fields, status });
      client.resetAndDestroy();
      stream.close(h2.NGHTTP2_CANCEL);
      return;
    }
    log('outbound-open', { ...fields, via: route.dstNodeIp, stream: stream.id });
    client.pipe(stream).pipe(client);
    client.resume();
  });
  client.on('close', () => { if (!stream.closed) stream.end(); });
}

/** SNI names the destination workload (a hostname cannot hold a URI): `<sa>.<ns>.<td>`. */
function sniFor(spiffeId: string): string {
  const id = parseWorkloadSpiffeId(spiffeId)!;
  return `${id.serviceAccount}.${id.namespace}.${id.trustDomain}`;
}

/** One HBONE stream: authorize the certificate's identity for :authority, then tunnel to the pod. */
function inboundStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  stream.on('error', () => undefined);
  const tls = stream.session?.socket as TLSSocket | undefined;
  const uris = uriSans(tls?.getPeerX509Certificate());
  const peer = uris.length === 1 && parseWorkloadSpiffeId(uris[0]!) ? uris[0]! : undefined;
  const authority = String(headers[h2.HTTP2_HEADER_AUTHORITY] ?? '');
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(authority);
  const ip = m?.[1];
  const port = Number(m?.[2]);
  const rule = config.inbound.find((r) => r.ip === ip && r.port === port);
  const deny = (status: number, reason: string) => {
    log('inbound-denied', { peer: peer ?? uris, dst: authority, reason, stream: stream.id });
    if (!stream.headersSent) stream.respond({ [h2.HTTP2_HEADER_STATUS]: status }, { endStream: true });
  };
  if (headers[h2.HTTP2_HEADER_METHOD] !== 'CONNECT') return deny(405, `method ${String(headers[h2.HTTP2_HEADER_METHOD])}, HBONE takes CONNECT only`);
  if (!peer) return deny(403, `client certificate must carry exactly one spiffe://<td>/ns/<ns>/sa/<sa> URI SAN, has ${uris.length}`);
  if (!rule) return deny(403, 'not a meshed destination of this node');
  // Authorization by the identity the certificate proves, never by the source IP.
  if (!rule.allow.includes(peer)) return deny(403, `principal not allowed (allowed: ${rule.allow.join(', ')})`);
  let connected = false;
  const upstream = netConnect({ host: ip!, port, localAddress: config.underlayIp }, () => {
    connected = true;
    log('inbound-allowed', { peer, dst: authority, stream: stream.id });
    stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200 });
    stream.pipe(upstream).pipe(stream);
  });
  upstream.on('error', (e) => {
    if (!connected) deny(502, e.message);
    else stream.close(h2.NGHTTP2_CONNECT_ERROR);
  });
  stream.on('close', () => upstream.destroy());
}

function inbound() {
  const server = createSecureServer({
    minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ALPNProtocols: ['h2'], allowHTTP1: false,
    requestCert: true, rejectUnauthorized: true,
    // The destination proxy presents the SVID of the workload the client asked for.
    SNICallback: (name, cb) => {
      const w = config.workloads.find((x) => sniFor(x.spiffeId) === name);
      cb(w ? null : new Error(`no local workload for SNI ${name}`), w ? contexts.get(w.pod) : undefined);
    },
  });
  server.on('stream', inboundStream);
  server.on('sessionError', () => undefined);
  return server;
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

// The control plane's servers:
//  - for agents, HTTPS with mutual TLS on the management network: a watch
//    stream of cluster snapshots (NDJSON) and SVID issuance;
//  - for the `lab` CLI on the host, plain HTTP on a unix socket in the lab's
//    state directory (pods, delays, state).
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Registry } from './registry.ts';
import { CONTROL_PORT } from '../abi/generated.ts';

/** The control plane's own credential (issued as the node credential of "control-plane"). */
export const CONTROL_PLANE_NAME = 'control-plane';
export const CONTROL_PLANE_SPIFFE_ID = `spiffe://spiffe.cilium/node/${CONTROL_PLANE_NAME}`;
/** Agents treat a stream without a line for this long as dead and reconnect. */
export const HEARTBEAT_MS = 1000;

export interface SvidIssuer {
  /** Signs the node's public key for an identity; returns the certificate PEM. */
  issue(identity: number, publicKeyPem: string): Promise<{ certPem: string; notAfter: string }>;
}

export interface ControlServerOptions {
  registry: Registry;
  issuer: SvidIssuer;
  tls: { certPem: string; keyPem: string; caPem: string };
  host: string;
  adminSocket: string;
  /** Node → delay before it sees a change. */
  delays?: Map<string, number>;
  /** Called after the admin API changed the registry, e.g. to persist it. */
  onChange?: () => void;
  log: (event: string, fields?: Record<string, unknown>) => void;
}

interface Watcher {
  node: string;
  res: ServerResponse;
}

/** The node name in a node credential's URI SAN spiffe://spiffe.cilium/node/<name>. */
function nodeOfPeer(req: IncomingMessage): string | undefined {
  const cert = (req.socket as TLSSocket).getPeerCertificate?.();
  const m = /URI:spiffe:\/\/[^/]+\/node\/([a-z0-9-]+)/.exec(cert?.subjectaltname ?? '');
  return m?.[1];
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body ? (JSON.parse(body) as Record<string, unknown>) : {};
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

export function startControlServers(opts: ControlServerOptions) {
  const { registry, log } = opts;
  const delays = opts.delays ?? new Map<string, number>();
  const watchers = new Set<Watcher>();

  const send = (w: Watcher, line: string) => {
    if (!w.res.writableEnded) w.res.write(line + '\n');
  };
  /** Every change reaches every agent, each after its node's delay. */
  const publish = () => {
    const line = JSON.stringify({ type: 'snapshot', snapshot: registry.snapshot() });
    for (const w of watchers) {
      const delay = delays.get(w.node) ?? 0;
      if (delay > 0) setTimeout(() => send(w, line), delay);
      else send(w, line);
    }
  };
  const heartbeat = setInterval(() => {
    for (const w of watchers) send(w, JSON.stringify({ type: 'heartbeat', at: Date.now() }));
  }, HEARTBEAT_MS);

  const agentApi = createHttpsServer(
    { cert: opts.tls.certPem, key: opts.tls.keyPem, ca: opts.tls.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    async (req, res) => {
      const node = nodeOfPeer(req);
      if (!node) return reply(res, 403, { error: 'a node credential is required' });
      try {
        if (req.method === 'GET' && req.url === '/v1/watch') {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          const w = { node, res };
          watchers.add(w);
          log('agent-connected', { node });
          send(w, JSON.stringify({ type: 'snapshot', snapshot: registry.snapshot() }));
          req.on('close', () => {
            watchers.delete(w);
            log('agent-disconnected', { node });
          });
          return;
        }
        if (req.method === 'POST' && req.url === '/v1/wireguard-key') {
          // Cilium: the agent writes its own CiliumNode's wg-pub-key annotation; a node sets only its own key.
          const publicKey = (await readJson(req)).publicKey;
          if (typeof publicKey !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(publicKey)) {
            return reply(res, 400, { error: 'publicKey: expected the base64 of a 32-byte WireGuard public key' });
          }
          const changed = registry.setWireguardKey(node, publicKey);
          log('wireguard-key-published', { node, publicKey, changed });
          if (changed) {
            publish();
            opts.onChange?.();
          }
          return reply(res, 200, { node, publicKey });
        }
        if (req.method === 'POST' && req.url === '/v1/svid') {
          const body = await readJson(req);
          const identity = Number(body.identity);
          if (!registry.identitiesOnNode(node).has(identity)) {
            log('svid-refused', { node, identity });
            return reply(res, 403, { error: `node ${node} runs no pod of identity ${identity}` });
          }
          const svid = await opts.issuer.issue(identity, String(body.publicKeyPem));
          log('svid-issued', { node, identity, notAfter: svid.notAfter });
          return reply(res, 200, svid);
        }
        reply(res, 404, { error: 'not found' });
      } catch (e) {
        reply(res, 500, { error: (e as Error).message });
      }
    },
  );

  const adminApi = createHttpServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      if (req.method === 'GET' && url.pathname === '/v1/state') {
        return reply(res, 200, { snapshot: registry.snapshot(), delays: Object.fromEntries(delays), watchers: [...watchers].map((w) => w.node) });
      }
      if (req.method === 'POST' && url.pathname === '/v1/pods') {
        const b = await readJson(req);
        const ep = registry.addEndpoint(String(b.pod), String(b.node), String(b.ip), b.labels as Record<string, string>);
        log('endpoint-added', { ...ep });
        publish();
        opts.onChange?.();
        return reply(res, 200, ep);
      }
      if (req.method === 'DELETE' && url.pathname.startsWith('/v1/pods/')) {
        const ep = registry.deleteEndpoint(decodeURIComponent(url.pathname.slice('/v1/pods/'.length)));
        log('endpoint-deleted', { ...ep });
        publish();
        opts.onChange?.();
        return reply(res, 200, ep);
      }
      if (req.method === 'POST' && url.pathname === '/v1/delay') {
        const b = await readJson(req);
        delays.set(String(b.node), Number(b.ms));
        log('delay-set', { node: b.node, ms: b.ms });
        return reply(res, 200, { node: b.node, ms: b.ms });
      }
      reply(res, 404, { error: 'not found' });
    } catch (e) {
      reply(res, 400, { error: (e as Error).message });
    }
  });

  return {
    publish,
    async listen(): Promise<void> {
      await new Promise<void>((resolve, reject) => {
        agentApi.once('error', reject);
        agentApi.listen(CONTROL_PORT, opts.host, () => resolve());
      });
      await new Promise<void>((resolve, reject) => {
        adminApi.once('error', reject);
        adminApi.listen(opts.adminSocket, () => resolve());
      });
    },
    close(): void {
      clearInterval(heartbeat);
      for (const w of watchers) w.res.end();
      agentApi.close();
      adminApi.close();
    },
  };
}

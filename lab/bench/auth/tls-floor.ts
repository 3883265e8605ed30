// The auth benchmark's floor: a bare TLS 1.3 mutual handshake between two
// node namespaces, with SVIDs of the lab's CA (ECDSA P-256), by the same
// runtime as the agents and with none of their logic (no signal, no key log,
// no log line, no SPIFFE check, no map write). Run as a process in a node's
// namespace:
//
//   tls-floor serve HOST PORT DIR        listens; prints LISTENING
//   tls-floor dial HOST PORT DIR SNI     one handshake per "go" line on stdin,
//                                        one JSON line of FloorSample each
//
// DIR holds ca.pem, server.pem, server.key.pem, client.pem, client.key.pem.
// The exchange is the agents' own: connect, handshake (OpenSSL verifies both
// chains), the client closes at once and the server closes once it has
// checked the client, which the client waits for. No session is resumed:
// every handshake is a fresh connection with no session offered.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import tls from 'node:tls';

/** One floor handshake as the dialing side timed it (ms from the start of the TCP connect). */
export interface FloorSample {
  /** TCP connected. */
  connectMs: number;
  /** The client's handshake done: the server's chain verified (secureConnect). */
  secureMs: number;
  /** The server's close arrived: it has verified the client too. What the agent waits for. */
  closeMs: number;
  ok: boolean;
  error?: string;
}

export const FLOOR_LISTENING = 'LISTENING';

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

function serve(host: string, port: number, dir: string): void {
  const server = tls.createServer({
    cert: readFileSync(`${dir}/server.pem`), key: readFileSync(`${dir}/server.key.pem`), ca: readFileSync(`${dir}/ca.pem`),
    requestCert: true, rejectUnauthorized: true, ...TLS13,
  });
  server.on('secureConnection', (s) => s.end());
  server.on('tlsClientError', () => undefined);
  server.listen(port, host, () => process.stdout.write(`${FLOOR_LISTENING}\n`));
}

function dial(host: string, port: number, dir: string, servername: string): void {
  const secureContext = tls.createSecureContext({
    cert: readFileSync(`${dir}/client.pem`), key: readFileSync(`${dir}/client.key.pem`), ca: readFileSync(`${dir}/ca.pem`), ...TLS13,
  });
  const once = () =>
    new Promise<FloorSample>((resolve) => {
      const t0 = performance.now();
      const ms = () => performance.now() - t0;
      const sample: FloorSample = { connectMs: NaN, secureMs: NaN, closeMs: NaN, ok: false };
      const sock = net.connect({ host, port }, () => (sample.connectMs = ms()));
      // SVIDs carry no DNS name: only the chain is checked, as the agents do before their SPIFFE check.
      const conn = tls.connect({ socket: sock, secureContext, servername, checkServerIdentity: () => undefined });
      const timer = setTimeout(() => conn.destroy(new Error('timeout')), 5000);
      conn.once('secureConnect', () => {
        sample.secureMs = ms();
        sample.ok = conn.authorized;
        conn.end();
      });
      conn.on('error', (e) => (sample.error ??= e.message));
      conn.once('close', () => {
        clearTimeout(timer);
        sample.closeMs = ms();
        if (sample.error) sample.ok = false;
        resolve(sample);
      });
    });
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', () => {
    queue = queue.then(async () => void process.stdout.write(`${JSON.stringify(await once())}\n`));
  });
  lines.on('close', () => void queue.then(() => process.exit(0)));
}

// Run as a program, not when imported for its types.
if (process.argv[1] && /tls-floor\.[jt]s$/.test(process.argv[1])) {
  const [mode, host, port, dir, sni] = process.argv.slice(2);
  if ((mode !== 'serve' && mode !== 'dial') || !host || !port || !dir || (mode === 'dial' && !sni)) {
    process.stderr.write('usage: tls-floor serve HOST PORT DIR | dial HOST PORT DIR SNI\n');
    process.exit(2);
  }
  if (mode === 'serve') serve(host, Number(port), dir);
  else dial(host, Number(port), dir, sni!);
}

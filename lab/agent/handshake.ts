// Cilium's mutual-auth handshake (pkg/auth/mutual_authhandler.go) over node:tls.
//
// Client (the node that saw SIGNAL_AUTH_REQUIRED): TCP dial to
// remoteNodeIP:4250 with a 5 s timeout, TLS 1.3 only, SNI "<remoteID>.spiffe.cilium",
// the local identity's SVID as client certificate; the server certificate is
// checked by hand: chain to the trust bundle, then exactly one URI SAN equal
// to spiffe://spiffe.cilium/identity/<remoteID>. No application data; the
// auth entry expires at the earlier NotAfter of the two certificates.
//
// Server: requires and verifies the client certificate, picks its own
// certificate by SNI, closes each connection once the handshake is done.
//
// Where node:tls differs from Go's crypto/tls (and what we do about it):
// - node's client always completes the handshake and verifies afterwards, so
//   a rejected server certificate ends in a close, not in a bad_certificate
//   alert before the client's Finished.
// - TLS 1.3 clients finish before the server has checked their certificate.
//   Go's client (and so Cilium) never learns of a rejection; here the client
//   waits for the server's close: close_notify = accepted, RST = rejected
//   (node's server cannot send an alert after the handshake).
// - A missing or unverifiable client certificate is also answered with an RST
//   after the handshake (Go: certificate_required / bad_certificate alerts).
// - An unknown SNI gets a certificate-less context, so OpenSSL aborts with a
//   handshake_failure alert (Go sends internal_error).
// - OpenSSL appends the CA certificate from the trust bundle to each side's
//   Certificate message (SPIRE's chain for a root-issued SVID is the leaf alone).
import { fchmodSync, openSync, writeSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { pemToDer, readCertDer } from '../spiffe/der.ts';
import { isIdentity, parseSniIdentity, parseSpiffeIdentity, sniOf, spiffeIdOf, TRUST_DOMAIN } from '../spiffe/id.ts';
import { AUTH_PORT } from '../abi/generated.ts';

/** Cilium's mesh-auth-mutual-connect-timeout. */
export const DIAL_TIMEOUT_MS = 5000;

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

// ---------------------------------------------------------------- key log

/**
 * Appends NSS key log lines (node:tls `keylog` events) to a file created with
 * mode 0600, through one descriptor per file kept open for the process.
 * OpenSSL hands over each line in the middle of the handshake: the lines are
 * queued and written after it, in one write per turn of the event loop, so
 * the handshake does not wait for the file.
 */
interface KeyLogFile {
  fd: number;
  queued: Buffer[];
}
const keyLogFiles = new Map<string, KeyLogFile>();
function keyLogger(path: string | undefined): ((line: Buffer) => void) | undefined {
  if (!path) return undefined;
  let f = keyLogFiles.get(path);
  if (!f) {
    const fd = openSync(path, 'a', 0o600);
    fchmodSync(fd, 0o600); // private before any secret lands in it, even if it existed
    f = { fd, queued: [] };
    keyLogFiles.set(path, f);
  }
  const file = f;
  return (line) => {
    if (file.queued.push(line) > 1) return;
    // Whole lines in one O_APPEND write: concurrent handshakes never interleave.
    setImmediate(() => void writeSync(file.fd, Buffer.concat(file.queued.splice(0))));
  };
}

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

// ---------------------------------------------------------------- client

export type AuthFailure =
  | 'connection-refused' // nothing listens on the peer's port (peer agent down)
  | 'connection-failed' // other dial errors: unreachable, reset during connect …
  | 'timeout' // dial or handshake took longer than allowed
  | 'handshake-aborted' // the peer sent an alert or closed during the handshake (e.g. unknown SNI)
  | 'rejected-by-peer' // the handshake finished, then the peer reset instead of closing: it refused our certificate
  | 'untrusted-ca' // peer certificate does not chain to the trust bundle
  | 'expired' // peer certificate is past NotAfter
  | 'not-yet-valid' // peer certificate is before NotBefore
  | 'invalid-certificate' // other chain verification errors (purpose, signature …)
  | 'no-uri-san' // peer certificate has no URI SAN
  | 'multiple-uri-sans' // peer certificate has more than one URI SAN (SPIFFE forbids it)
  | 'wrong-spiffe-id' // the one URI SAN is not spiffe://<td>/identity/<remoteIdentity>
  | 'bad-local-certificate'; // our own SVID or key is unusable

/** The one error of authenticate(): a machine-readable reason plus where and how long. */
export class AuthError extends Error {
  constructor(
    readonly reason: AuthFailure,
    detail: string,
    readonly peer: { remoteNodeIp: string; port: number; localIdentity: number; remoteIdentity: number },
    readonly durationMs: number,
    options?: { cause?: unknown },
  ) {
    super(`auth ${peer.localIdentity} -> ${peer.remoteIdentity} at ${peer.remoteNodeIp}:${peer.port} failed (${reason}): ${detail}`, options);
    this.name = 'AuthError';
  }
}

export interface AuthenticateOptions {
  remoteNodeIp: string;
  port?: number;
  localIdentity: number;
  remoteIdentity: number;
  /** The SVID of localIdentity and its private key. */
  localCert: CertAndKey;
  /** PEM of every CA to trust (one or more certificates). */
  trustBundlePem: string;
  /** TCP dial timeout (Cilium: 5 s). The TLS handshake gets the same budget again (Cilium leaves it unbounded). */
  timeoutMs?: number;
  keyLogFile?: string;
  trustDomain?: string;
}

export interface AuthResult {
  /** The earlier NotAfter of the two certificates: when the auth-map entry expires. */
  expiration: Date;
  localNotAfter: Date;
  peerNotAfter: Date;
  peerSpiffeId: string;
  durationMs: number;
}

/** OpenSSL verify codes (node's authorizationError) to reasons. */
function chainFailure(code: string): AuthFailure {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not-yet-valid';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return 'untrusted-ca';
    default:
      return 'invalid-certificate';
  }
}

/** Cilium's ValidateIdentity: exactly one URI SAN, equal to the expected SPIFFE id. */
export function checkPeerSpiffeId(uris: string[], expected: string): { reason: AuthFailure; detail: string } | undefined {
  if (uris.length === 0) return { reason: 'no-uri-san', detail: `peer certificate has no URI SAN, expected ${expected}` };
  if (uris.length > 1) return { reason: 'multiple-uri-sans', detail: `peer certificate has ${uris.length} URI SANs (${uris.join(', ')}); an SVID must have exactly one` };
  if (uris[0] !== expected) return { reason: 'wrong-spiffe-id', detail: `peer presented ${uris[0]}, expected ${expected}` };
  return undefined;
}

// Building a context parses the key, the certificate and the bundle (~1 ms),
// and reading our NotAfter walks the DER: both once per SVID, not per handshake.
interface ClientContext {
  ctx: tls.SecureContext;
  localNotAfter: Date;
}
const clientContexts = new Map<string, ClientContext>();

/** Builds the client context of an SVID now (when it arrives), not in its first handshake. */
export function prepareClientContext(cert: CertAndKey, trustBundlePem: string): void {
  clientContext(cert, trustBundlePem);
}

function clientContext(cert: CertAndKey, trustBundlePem: string): ClientContext {
  const key = `${cert.certPem}\0${cert.keyPem}\0${trustBundlePem}`;
  let c = clientContexts.get(key);
  if (!c) {
    c = { localNotAfter: readCertDer(pemToDer(cert.certPem)).notAfter, ctx: tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem, ca: trustBundlePem, ...TLS13 }) };
    if (clientContexts.size >= 256) clientContexts.delete(clientContexts.keys().next().value!); // rotated SVIDs age out
    clientContexts.set(key, c);
  }
  return c;
}

/** Dials with a deadline; resolves with the connected socket. */
function dial(host: string, port: number, timeoutMs: number, fail: (r: AuthFailure, d: string, cause?: unknown) => AuthError): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(fail('timeout', `TCP connect did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      sock.on('error', () => undefined); // from here on, errors surface on the TLS socket
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e.code === 'ECONNREFUSED' ? fail('connection-refused', `nothing listens on ${host}:${port} (is the peer's agent running?)`, e) : fail('connection-failed', `${e.code ?? ''} ${e.message}`.trim(), e));
    });
  });
}

/**
 * One mutual-auth handshake towards remoteNodeIp, as the local identity,
 * expecting the remote identity. Resolves with the entry's expiration, or
 * throws an AuthError carrying exactly one reason.
 */
export async function authenticate(opts: AuthenticateOptions): Promise<AuthResult> {
  const started = performance.now();
  const port = opts.port ?? AUTH_PORT;
  const timeoutMs = opts.timeoutMs ?? DIAL_TIMEOUT_MS;
  const td = opts.trustDomain ?? TRUST_DOMAIN;
  const peer = { remoteNodeIp: opts.remoteNodeIp, port, localIdentity: opts.localIdentity, remoteIdentity: opts.remoteIdentity };
  const fail = (reason: AuthFailure, detail: string, cause?: unknown) => new AuthError(reason, detail, peer, performance.now() - started, { cause });
  if (!isIdentity(opts.localIdentity) || !isIdentity(opts.remoteIdentity)) throw new RangeError(`identities must be integers in 1..2^32-1: ${opts.localIdentity} -> ${opts.remoteIdentity}`);
  const expected = spiffeIdOf(opts.remoteIdentity, td);

  let localNotAfter: Date;
  let context: tls.SecureContext;
  try {
    ({ localNotAfter, ctx: context } = clientContext(opts.localCert, opts.trustBundlePem));
  } catch (e) {
    throw fail('bad-local-certificate', (e as Error).message, e);
  }
  const keylog = keyLogger(opts.keyLogFile);

  const sock = await dial(opts.remoteNodeIp, port, timeoutMs, fail);

  return new Promise<AuthResult>((resolve, reject) => {
    let settled = false;
    let verified: Omit<AuthResult, 'durationMs'> | undefined;
    const done = (err: AuthError | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        conn.destroy();
        reject(err);
      } else resolve({ ...verified!, durationMs: performance.now() - started });
    };
    // InsecureSkipVerify in Go's words: OpenSSL checks the chain, we check the rest in 'secureConnect'.
    // node hands checkServerIdentity the peer certificate it has just read out of OpenSSL
    // (once the chain verified): keep its DER rather than have a second copy made.
    let peerDer: Buffer | undefined;
    const checkServerIdentity = (_host: string, cert: tls.PeerCertificate) => {
      peerDer = cert.raw;
      return undefined;
    };
    const conn = tls.connect({ socket: sock, secureContext: context, servername: sniOf(opts.remoteIdentity, td), rejectUnauthorized: false, checkServerIdentity });
    if (keylog) conn.on('keylog', keylog);
    const timer = setTimeout(
      () => done(fail('timeout', verified ? `the peer did not close within ${timeoutMs} ms after the handshake` : `TLS handshake did not complete within ${timeoutMs} ms`)),
      timeoutMs,
    );

    conn.once('secureConnect', () => {
      if (!conn.authorized) {
        const code = String(conn.authorizationError);
        return done(fail(chainFailure(code), `peer certificate does not verify against the trust bundle: ${code}`));
      }
      const der = peerDer ?? conn.getPeerX509Certificate()?.raw;
      if (!der) return done(fail('invalid-certificate', 'peer presented no certificate'));
      const { uris, notAfter: peerNotAfter } = readCertDer(der);
      const bad = checkPeerSpiffeId(uris, expected);
      if (bad) return done(fail(bad.reason, bad.detail));
      verified = {
        expiration: peerNotAfter < localNotAfter ? peerNotAfter : localNotAfter,
        localNotAfter,
        peerNotAfter,
        peerSpiffeId: uris[0]!,
      };
      // No application data: close at once, then learn the server's verdict on our certificate from how it closes.
      conn.end();
    });
    conn.on('error', (e: NodeJS.ErrnoException) => {
      if (verified) done(fail('rejected-by-peer', `the peer reset the connection after the handshake: it refused our certificate (${e.code ?? e.message})`, e));
      else if (/ALERT/.test(e.code ?? '')) done(fail('handshake-aborted', `the peer aborted the handshake with ${alertText(e)}${alertHint(e, sniOf(opts.remoteIdentity, td))}`, e));
      else done(fail('handshake-aborted', `the peer closed during the handshake: ${e.code ?? e.message}`, e));
    });
    conn.once('close', () => {
      if (verified) done(undefined);
      else done(fail('handshake-aborted', 'the peer closed the connection during the handshake'));
    });
  });
}

function alertText(e: NodeJS.ErrnoException): string {
  const name = /_ALERT_([A-Z_]+)$/.exec(e.code ?? '')?.[1]?.toLowerCase() ?? e.code;
  const n = /SSL alert number (\d+)/.exec(e.message);
  return `alert ${name}${n ? ` (${n[1]})` : ''}`;
}

function alertHint(e: NodeJS.ErrnoException, sni: string): string {
  // node's server answers an unknown SNI with handshake_failure, Go's (Cilium's) with internal_error.
  if (e.code?.endsWith('HANDSHAKE_FAILURE') || e.code?.endsWith('INTERNAL_ERROR')) return `: does the peer hold an SVID for SNI ${sni}?`;
  if (e.code?.endsWith('PROTOCOL_VERSION')) return ': TLS 1.3 only';
  if (e.code?.endsWith('CERTIFICATE_REQUIRED')) return ': the peer requires a client certificate';
  return '';
}

// ---------------------------------------------------------------- server

export type ServerFailure =
  | 'unknown-sni' // no SNI, a malformed one, or an identity this node holds no SVID for
  | 'certificate-unavailable' // getCertificate threw or returned an unusable SVID
  | 'no-client-certificate'
  | 'client-certificate-untrusted'
  | 'client-certificate-expired'
  | 'client-certificate-invalid'
  | 'handshake-timeout'
  | 'handshake-failed' // anything else during the handshake (protocol version, reset …)
  | 'connection-error'; // after the handshake

export interface ServerHandshakeEvent {
  sni: string;
  localIdentity: number;
  /** The client's URI SANs; Cilium's server checks only the chain, so this is for the log. */
  peerUris: string[];
  /** The client's SPIFFE id when it carries exactly one URI SAN. */
  peerSpiffeId?: string;
  peerIdentity?: number;
  remoteAddress: string;
  remotePort: number;
  durationMs: number;
}

export interface ServerErrorEvent {
  reason: ServerFailure;
  message: string;
  sni?: string;
  remoteAddress?: string;
  remotePort?: number;
}

export interface AuthServerOptions {
  host: string;
  /** Default 4250; 0 picks a free port (see address). */
  port?: number;
  /** The SVID this node holds for an identity, or undefined. Called per handshake; a new certPem (rotation) is picked up. */
  getCertificate(identity: number): CertAndKey | undefined;
  trustBundlePem: string;
  keyLogFile?: string;
  /** Default 10 s; Go's server in Cilium has none. */
  handshakeTimeoutMs?: number;
  trustDomain?: string;
  onHandshake?(e: ServerHandshakeEvent): void;
  onError?(e: ServerErrorEvent): void;
}

export interface AuthServer {
  address: net.AddressInfo;
  /** Builds the context of an identity's SVID now (when it arrives), not in its first handshake. */
  prepare(identity: number): void;
  close(): Promise<void>;
}

const CERT_UNAVAILABLE = 'ERR_AUTH_CERTIFICATE_UNAVAILABLE';

function clientCertFailure(code: string): ServerFailure {
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'client-certificate-expired';
  return chainFailure(code) === 'untrusted-ca' ? 'client-certificate-untrusted' : 'client-certificate-invalid';
}

/** Listens for mutual-auth handshakes; resolves once listening. */
export async function startAuthServer(opts: AuthServerOptions): Promise<AuthServer> {
  const td = opts.trustDomain ?? TRUST_DOMAIN;
  const keylog = keyLogger(opts.keyLogFile);
  const report = <E>(cb: ((e: E) => void) | undefined, e: E) => {
    try {
      cb?.(e);
    } catch (err) {
      process.emitWarning(`auth server callback threw: ${(err as Error).message}`);
    }
  };

  // One context per identity, rebuilt when the SVID changes.
  const contexts = new Map<number, { cert: CertAndKey; ctx: tls.SecureContext }>();
  const contextFor = (identity: number): tls.SecureContext | undefined => {
    const cert = opts.getCertificate(identity);
    if (!cert) return undefined;
    const cached = contexts.get(identity);
    if (cached && cached.cert.certPem === cert.certPem && cached.cert.keyPem === cert.keyPem) return cached.ctx;
    const ctx = tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem, ca: opts.trustBundlePem, ...TLS13 });
    contexts.set(identity, { cert, ctx });
    return ctx;
  };

  // The default context has no certificate: a handshake that lands on it (no or unknown SNI) fails with an alert.
  const server = tls.createServer({
    ca: opts.trustBundlePem,
    ...TLS13,
    requestCert: true,
    rejectUnauthorized: false, // we judge the client certificate ourselves, to reset (and say why) instead of a silent close
    handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    SNICallback: (servername, cb) => {
      const id = parseSniIdentity(servername, td);
      if (id === undefined) return cb(null, undefined);
      let ctx: tls.SecureContext | undefined;
      try {
        ctx = contextFor(id);
      } catch (e) {
        return cb(Object.assign(new Error(`the SVID for identity ${id} is unusable: ${(e as Error).message}`), { code: CERT_UNAVAILABLE }), undefined);
      }
      cb(null, ctx);
    },
  });

  // tls.Server hides the TCP socket; keep it to reset the connection of a refused client.
  const raw = new Map<string, { sock: net.Socket; started: number }>();
  const connKey = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}|${s.remotePort}`;
  server.prependListener('connection', (sock: net.Socket) => {
    const key = connKey(sock);
    raw.set(key, { sock, started: performance.now() });
    sock.on('error', () => undefined); // surfaced on the TLS socket
    sock.once('close', () => raw.delete(key));
  });

  if (keylog) server.on('keylog', (line) => keylog(line));

  server.on('tlsClientError', (err: NodeJS.ErrnoException, s: tls.TLSSocket) => {
    const sni = s.servername || undefined;
    let reason: ServerFailure = 'handshake-failed';
    let message = `${err.code ?? ''} ${err.message}`.trim();
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') reason = 'handshake-timeout';
    else if (err.code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM') {
      reason = 'unknown-sni';
      message = sni ? `no SVID here for SNI "${sni}"` : 'the client sent no SNI';
    } else if (err.code === 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN' || err.code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE') message = `the client rejected our certificate: ${message}`;
    else if (err.code === CERT_UNAVAILABLE) reason = 'certificate-unavailable';
    report(opts.onError, { reason, message, sni, remoteAddress: s.remoteAddress, remotePort: s.remotePort });
    s.destroy();
  });

  server.on('secureConnection', (s: tls.TLSSocket) => {
    const key = connKey(s);
    const conn = raw.get(key);
    const where = { sni: s.servername || undefined, remoteAddress: s.remoteAddress, remotePort: s.remotePort };
    s.on('error', (e: NodeJS.ErrnoException) => report(opts.onError, { reason: 'connection-error', message: `${e.code ?? ''} ${e.message}`.trim(), ...where }));
    let refusal: ServerErrorEvent | undefined;
    if (!s.authorized) {
      // Only a refusal needs the certificate itself (none, or which failure): reading it costs ~0.4 ms.
      const code = String(s.authorizationError);
      refusal = s.getPeerX509Certificate()
        ? { reason: clientCertFailure(code), message: `client certificate refused: ${code}`, ...where }
        : { reason: 'no-client-certificate', message: 'the client presented no certificate', ...where };
      report(opts.onError, refusal);
      // RST, not close_notify: the client's only way to learn it was refused.
      if (conn && !conn.sock.destroyed) conn.sock.resetAndDestroy();
      else s.destroy();
      return;
    }
    // The chain verified (Cilium's server checks no more): close at once; the client waits for it, the log does not.
    s.end();
    // The close_notify leaves when this turn of the loop ends: read the certificate for the log after that.
    const durationMs = conn ? performance.now() - conn.started : 0;
    setImmediate(() => logAccepted(s, durationMs));
  });

  const logAccepted = (s: tls.TLSSocket, durationMs: number) => {
    const where = { sni: s.servername || undefined, remoteAddress: s.remoteAddress, remotePort: s.remotePort };
    let peerUris: string[] = [];
    try {
      peerUris = readCertDer(s.getPeerX509Certificate()!.raw).uris;
    } catch (e) {
      report(opts.onError, { reason: 'client-certificate-invalid', message: `client certificate accepted (its chain verifies) but unreadable for the log: ${(e as Error).message}`, ...where });
    }
    const peerSpiffeId = peerUris.length === 1 ? peerUris[0] : undefined;
    const peerIdentity = peerSpiffeId ? parseSpiffeIdentity(peerSpiffeId, td) : undefined;
    report(opts.onHandshake, {
      sni: s.servername as string,
      localIdentity: parseSniIdentity(s.servername as string, td)!,
      peerUris,
      ...(peerSpiffeId ? { peerSpiffeId } : {}),
      ...(peerIdentity !== undefined ? { peerIdentity } : {}),
      remoteAddress: s.remoteAddress ?? '',
      remotePort: s.remotePort ?? 0,
      durationMs,
    });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? AUTH_PORT, opts.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', (e: NodeJS.ErrnoException) => report(opts.onError, { reason: 'connection-error', message: `listener: ${e.code ?? ''} ${e.message}`.trim() }));

  return {
    address: server.address() as net.AddressInfo,
    prepare: (identity) => void contextFor(identity),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const { sock } of raw.values()) sock.destroy();
      }),
  };
}

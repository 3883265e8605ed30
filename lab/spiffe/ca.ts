// The SPIRE stand-in: one self-signed ECDSA P-256 CA per lab that issues
// X.509-SVIDs (one per security identity) and node credentials.
// Private keys of SVIDs never reach the CA: a node makes its key pair with
// generateSvidKey() and sends only the public key (or a CSR) to be signed.
import 'reflect-metadata'; // @peculiar/x509's ASN.1 schemas need it loaded first
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { pemToDer, readCertDer, type DerCertFacts } from './der.ts';
import { nodeSpiffeIdOf, spiffeIdOf, TRUST_DOMAIN, trustDomainId } from './id.ts';
import { generateSvidKey, pem, type SvidKeyPair } from './keys.ts';

export { certNotAfter, generateSvidKey, type SvidKeyPair } from './keys.ts';

export { MAX_IDENTITY, nodeSpiffeIdOf, parseSniIdentity, parseSpiffeIdentity, sniOf, spiffeIdOf, TRUST_DOMAIN } from './id.ts';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** SPIRE's defaults: CA 24 h, X.509-SVID 1 h, NotBefore backdated 10 s against clock skew. */
export const DEFAULT_CA_TTL_MS = 24 * 3600_000;
export const DEFAULT_SVID_TTL_MS = 3600_000;
const BACKDATE_MS = 10_000;

export interface Ca {
  trustDomain: string;
  /** The CA certificate: this is the trust bundle every agent gets. */
  certPem: string;
  /** PKCS#8. Only the control plane holds it (see saveCa). */
  keyPem: string;
  notAfter: Date;
  readonly cert: x509.X509Certificate;
  readonly signingKey: CryptoKey;
}

/** A subject public key: a CryptoKey, an SPKI PEM (`PUBLIC KEY`), or a PKCS#10 CSR PEM (`CERTIFICATE REQUEST`). */
export type PublicKeyInput = CryptoKey | string;

/**
 * FAULT INJECTION, FOR TESTS ONLY: certificates a real CA must never issue,
 * to prove that peers reject them.
 */
export interface SvidFaultForTests {
  /** NotBefore 2 h ago, NotAfter 1 h ago. */
  expired?: boolean;
  /** Written as the URI SANs instead of the identity's SPIFFE id: `[]` for none, a wrong id, or two ids. */
  uriSans?: string[];
}

export interface IssueOptions {
  publicKey: PublicKeyInput;
  /** Default 1 h. NotAfter is capped at the CA's NotAfter, as SPIRE does. */
  ttlMs?: number;
  /** Start of validity; default now (written 10 s earlier). NotAfter = start + ttlMs. */
  notBefore?: Date;
  faultForTests?: SvidFaultForTests;
}

export interface IssuedCert {
  certPem: string;
  /** The URI SANs written (exactly one unless a test fault says otherwise). */
  uris: string[];
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
}

export interface Svid extends IssuedCert {
  identity: number;
  spiffeId: string;
}

function pemBlocks(text: string, tag: string): string[] {
  const re = new RegExp(`-----BEGIN ${tag}-----[\\s\\S]+?-----END ${tag}-----`, 'g');
  return [...text.matchAll(re)].map((m) => m[0] + '\n');
}

function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01; // positive and without a leading zero byte
  return Buffer.from(b).toString('hex');
}

export async function createCa(opts: { trustDomain?: string; ttlMs?: number } = {}): Promise<Ca> {
  const trustDomain = opts.trustDomain ?? TRUST_DOMAIN;
  const ttlMs = opts.ttlMs ?? DEFAULT_CA_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`CA ttlMs must be positive, got ${ttlMs}`);
  const keys = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `C=US, O=SPIFFE, CN=${trustDomain} CA`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + ttlMs),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain) }]),
    ],
  });
  const keyPem = pem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { trustDomain, certPem: cert.toString('pem') + '\n', keyPem, notAfter: cert.notAfter, cert, signingKey: keys.privateKey };
}

/** The CA as one PEM text: certificate, then PKCS#8 key. Secret: store it with saveCa (mode 0600). */
export function caToPem(ca: Ca): string {
  return ca.certPem + ca.keyPem;
}

/** Reads what caToPem wrote; checks that the key belongs to the certificate and that it is a CA. */
export async function caFromPem(text: string): Promise<Ca> {
  const [certPem, ...moreCerts] = pemBlocks(text, 'CERTIFICATE');
  const [keyPem, ...moreKeys] = pemBlocks(text, 'PRIVATE KEY');
  if (!certPem || moreCerts.length) throw new Error(`CA PEM must hold exactly one CERTIFICATE, found ${moreCerts.length + (certPem ? 1 : 0)}`);
  if (!keyPem || moreKeys.length) throw new Error(`CA PEM must hold exactly one PKCS#8 PRIVATE KEY, found ${moreKeys.length + (keyPem ? 1 : 0)}`);
  const nodeCert = new NodeX509(certPem);
  if (!nodeCert.ca) throw new Error('CA PEM: the certificate is not a CA (basicConstraints cA is false)');
  const derivedPub = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  if (!derivedPub.equals(nodeCert.publicKey.export({ type: 'spki', format: 'der' }))) throw new Error('CA PEM: the private key does not match the certificate');
  const cert = new x509.X509Certificate(certPem);
  const td = (cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [])
    .filter((n) => n.type === 'url' && n.value.startsWith('spiffe://')).map((n) => n.value.slice('spiffe://'.length));
  if (td.length !== 1) throw new Error('CA PEM: the certificate carries no single spiffe://<trust domain> URI SAN');
  const signingKey = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), EC_P256, false, ['sign']);
  return { trustDomain: td[0]!, certPem, keyPem, notAfter: cert.notAfter, cert, signingKey };
}

/** Writes the CA (key included) atomically with mode 0600. */
export async function saveCa(ca: Ca, path: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(caToPem(ca));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, 0o600); // the umask can only narrow it; be explicit anyway
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Reads a CA file written by saveCa; refuses one that group or others can read or write. */
export async function loadCa(path: string): Promise<Ca> {
  const st = await stat(path);
  if (st.mode & 0o077) throw new Error(`CA file ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: it holds the CA key, expected 0600`);
  return caFromPem(await readFile(path, 'utf8'));
}

/** A node-local SVID key pair (ECDSA P-256, SPIRE's default key type). */
/** A PKCS#10 request signed by the node's key: proof that the node holds the private key. */
export async function createCsr(key: SvidKeyPair, uri?: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'O=SPIRE',
    keys: { privateKey: key.privateKey, publicKey: key.publicKey },
    signingAlgorithm: ECDSA_SHA256,
    extensions: uri ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }])] : [],
  });
  return csr.toString('pem') + '\n';
}

/** Only ECDSA P-256 keys are signed; a CSR must carry a valid self-signature. Its requested names are ignored. */
async function subjectKey(input: PublicKeyInput): Promise<x509.PublicKey> {
  let key: x509.PublicKey;
  if (typeof input !== 'string') key = await x509.PublicKey.create(input);
  else if (input.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    const csr = new x509.Pkcs10CertificateRequest(input);
    if (!(await csr.verify())) throw new Error('CSR signature does not verify: the requester does not hold the private key');
    key = csr.publicKey;
  } else if (input.includes('-----BEGIN PUBLIC KEY-----')) key = new x509.PublicKey(input);
  else throw new Error('public key must be a CryptoKey, an SPKI PEM ("PUBLIC KEY") or a CSR PEM ("CERTIFICATE REQUEST")');
  const details = createPublicKey({ key: Buffer.from(key.rawData), format: 'der', type: 'spki' }).asymmetricKeyDetails;
  if (details?.namedCurve !== 'prime256v1') throw new Error(`only ECDSA P-256 keys are accepted, got ${details?.namedCurve ?? 'a non-EC key'}`);
  return key;
}

async function issueLeaf(ca: Ca, uris: string[], opts: Omit<IssueOptions, 'faultForTests'> & { expired?: boolean; subject: string }): Promise<IssuedCert> {
  const ttlMs = opts.ttlMs ?? DEFAULT_SVID_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
  const now = Date.now();
  let notBefore: Date;
  let notAfter: Date;
  if (opts.expired) {
    notBefore = new Date(now - 2 * 3600_000);
    notAfter = new Date(now - 3600_000);
  } else {
    const start = opts.notBefore?.getTime() ?? now;
    notBefore = new Date(opts.notBefore ? start : start - BACKDATE_MS);
    notAfter = new Date(Math.min(start + ttlMs, ca.notAfter.getTime()));
  }
  const publicKey = await subjectKey(opts.publicKey);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  if (uris.length) extensions.push(new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value }))));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: opts.subject,
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions,
  });
  return { certPem: cert.toString('pem') + '\n', uris, notBefore: cert.notBefore, notAfter: cert.notAfter, serialNumber: cert.serialNumber };
}

/** The X.509-SVID of a security identity: exactly one URI SAN, `spiffe://<td>/identity/<id>`. */
export async function issueSvid(ca: Ca, identity: number, opts: IssueOptions): Promise<Svid> {
  const spiffeId = spiffeIdOf(identity, ca.trustDomain);
  const fault = opts.faultForTests;
  const uris = fault?.uriSans ?? [spiffeId];
  const leaf = await issueLeaf(ca, uris, { ...opts, expired: fault?.expired, subject: 'C=US, O=SPIRE' });
  return { ...leaf, identity, spiffeId };
}

/**
 * A workload SVID in Istio's form, `spiffe://<td>/ns/<ns>/sa/<sa>`: what the
 * per-connection mTLS contrast (lab/mesh) gives each pod.
 */
export async function issueWorkloadSvid(ca: Ca, ns: string, sa: string, opts: Omit<IssueOptions, 'faultForTests'>): Promise<IssuedCert & { spiffeId: string }> {
  const spiffeId = `spiffe://${ca.trustDomain}/ns/${ns}/sa/${sa}`;
  return { ...(await issueLeaf(ca, [spiffeId], { ...opts, subject: 'C=US, O=SPIRE' })), spiffeId };
}

export interface NodeCredential extends IssuedCert {
  spiffeId: string;
  /** Only when the CA generated the key (no publicKey given): hand it to the node once, over a trusted channel. */
  keyPem?: string;
}

/**
 * A certificate for a node agent to authenticate to the control plane:
 * URI SAN `spiffe://<td>/node/<name>`. Pass the node's public key; without
 * one, a key pair is generated here and returned (bootstrap at `mtless up`).
 */
export async function issueNodeCredential(ca: Ca, nodeName: string, opts: { publicKey?: PublicKeyInput; ttlMs?: number } = {}): Promise<NodeCredential> {
  const spiffeId = nodeSpiffeIdOf(nodeName, ca.trustDomain);
  const generated = opts.publicKey === undefined ? await generateSvidKey() : undefined;
  const leaf = await issueLeaf(ca, [spiffeId], {
    publicKey: opts.publicKey ?? generated!.publicKey,
    ttlMs: opts.ttlMs ?? DEFAULT_CA_TTL_MS,
    subject: `C=US, O=SPIRE, CN=${nodeName}`,
  });
  return { ...leaf, spiffeId, ...(generated ? { keyPem: generated.keyPem } : {}) };
}

/** NotAfter of the first certificate in a PEM text. */
export type CertSummary = DerCertFacts;

/** Validity and URI SANs of a certificate (PEM text or DER), read straight from the DER. */
export function readCert(cert: string | Uint8Array): CertSummary {
  return readCertDer(typeof cert === 'string' ? pemToDer(cert) : cert);
}

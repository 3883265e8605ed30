// What a node needs of its SVIDs without the CA's certificate library: its
// key pair and a certificate's expiry. The agent imports only this module, so
// it starts without loading @peculiar/x509 (most of its start-up time).
import { webcrypto } from 'node:crypto';
import { pemToDer, readCertDer } from './der.ts';

const crypto = webcrypto as unknown as Crypto;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface SvidKeyPair {
  /** PKCS#8 PEM: stays on the node that generated it. */
  keyPem: string;
  /** SPKI PEM: what the node sends to the CA. */
  publicKeyPem: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/** PEM text of DER bytes, 64 base64 characters a line (RFC 7468). */
export function pem(tag: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `-----BEGIN ${tag}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${tag}-----\n`;
}

/** A fresh ECDSA P-256 key pair, made on the node that will use it. */
export async function generateSvidKey(): Promise<SvidKeyPair> {
  const { privateKey, publicKey } = (await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const [pkcs8, spki] = await Promise.all([crypto.subtle.exportKey('pkcs8', privateKey), crypto.subtle.exportKey('spki', publicKey)]);
  return { keyPem: pem('PRIVATE KEY', pkcs8), publicKeyPem: pem('PUBLIC KEY', spki), privateKey, publicKey };
}

export function certNotAfter(certPem: string): Date {
  return readCertDer(pemToDer(certPem)).notAfter;
}

// WireGuard keys: X25519, 32 raw bytes, base64 as `wg` and Wireshark want
// them. node:crypto makes them; its JWK export is the raw key (base64url).
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface WgKeyPair {
  /** base64 of the 32-byte private key (secret: written only to 0600 files). */
  privateKey: string;
  publicKey: string;
}

const b64 = (b64url: string) => Buffer.from(b64url, 'base64url').toString('base64');

function rawOf(key: KeyObject, part: 'd' | 'x'): string {
  const jwk = key.export({ format: 'jwk' });
  const v = jwk[part];
  if (typeof v !== 'string') throw new Error(`X25519 key has no "${part}"`);
  return b64(v);
}

export function generateWgKeyPair(): WgKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: rawOf(privateKey, 'd'), publicKey: rawOf(publicKey, 'x') };
}

/** The public key of a base64 private key (what `wg pubkey` prints). */
export function wgPublicKey(privateKeyB64: string): string {
  const d = Buffer.from(privateKeyB64, 'base64');
  if (d.length !== 32) throw new Error(`a WireGuard private key is 32 bytes, got ${d.length}`);
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: d.toString('base64url'), x: '' }, format: 'jwk' });
  return rawOf(createPublicKey(key), 'x');
}

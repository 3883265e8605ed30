// A node's own WireGuard key, as Cilium's agent keeps it: made on the node,
// the private key in the node's state (0600) and nowhere else, only the
// public key published (Cilium: the CiliumNode annotation
// network.cilium.io/wg-pub-key). The lab's Wireshark key log gets a copy of
// each private key, like the TLS key log, so captures decrypt.
import { createHash } from 'node:crypto';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';

import { wgKeyFile, wgKeyLogFile } from '../core/names.ts';
import { generateWgKeyPair, wgPublicKey, type WgKeyPair } from './keys.ts';

/** What `mtless wireguard rotate` sends the node's agent: make a new key pair and publish it. */
export const WG_ROTATE_SIGNAL = 'SIGUSR2';

/** A short, printable name of a public key: the first 16 hex digits of SHA-256 over its 32 bytes. */
export function wgFingerprint(publicKey: string): string {
  return createHash('sha256').update(Buffer.from(publicKey, 'base64')).digest('hex').slice(0, 16);
}

/** True for the base64 of 32 bytes (what `wg` takes as a key). */
export function isWgKey(text: unknown): text is string {
  return typeof text === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(text) && Buffer.from(text, 'base64').length === 32;
}

/** The node's key pair: the one in its state when there is one (an agent restart keeps it), else a new one. */
export async function ensureNodeKey(lab: string, node: string): Promise<WgKeyPair & { created: boolean }> {
  const file = wgKeyFile(lab, node);
  const text = await readFile(file, 'utf8').then((t) => t.trim(), () => undefined);
  if (text !== undefined) {
    if (!isWgKey(text)) throw new Error(`${file}: not a WireGuard private key (base64 of 32 bytes)`);
    return { privateKey: text, publicKey: wgPublicKey(text), created: false };
  }
  return { ...(await writeNewNodeKey(lab, node)), created: true };
}

/** A new key pair replaces the node's key file (written whole, then renamed: never half a key). */
export async function writeNewNodeKey(lab: string, node: string): Promise<WgKeyPair> {
  const pair = generateWgKeyPair();
  const file = wgKeyFile(lab, node);
  await writeFile(`${file}.new`, pair.privateKey + '\n', { mode: 0o600 });
  await rename(`${file}.new`, file);
  // One line per key ever used, so a capture from before a rotation still decrypts.
  await appendFile(wgKeyLogFile(lab), `LOCAL_STATIC_PRIVATE_KEY = ${pair.privateKey}\n`, { mode: 0o600 });
  return pair;
}

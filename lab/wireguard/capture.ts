// WireGuard in captures: the key log embedded as a pcapng Decryption Secrets
// Block, and the questions the C4 checks ask of the underlay.
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { readCapture, writeCapture, SECRETS_WIREGUARD } from '../capture/pcapng.ts';
import { frames, type QueryOptions } from '../capture/assert.ts';
import { WG_PORT } from '../abi/generated.ts';

/** Wireshark does not know 51871 (its default is 51820). */
export const WG_DECODE_AS = `udp.port==${WG_PORT},wg`;

/**
 * Adds the WireGuard key log to a capture unless it already holds it.
 * editcap 4.0 cannot rewrite a file that holds TLS secrets already, so the
 * block is written here (lab/capture/pcapng.ts).
 */
export async function embedWgKeyLog(file: string, keyLog: string): Promise<boolean> {
  const data = await readFile(keyLog);
  const capture = readCapture(await readFile(file));
  if (capture.secrets.some((s) => s.type === SECRETS_WIREGUARD && s.data.equals(data))) return false;
  capture.secrets.push({ type: SECRETS_WIREGUARD, data });
  const tmp = `${file}.wg.tmp`;
  try {
    await writeFile(tmp, writeCapture(capture));
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
  return true;
}

export interface WgMessage {
  frame: number;
  src: string;
  dst: string;
  /** 1 initiation, 2 response, 3 cookie reply, 4 transport data. */
  type: number;
  sender?: string;
  receiver?: string;
  /** Wireshark's WireGuard session index. */
  stream?: string;
  /** Decrypted from the initiation with the responder's static private key (key log). */
  initiatorStatic?: string;
  responderStatic?: string;
  handshakeOk?: boolean;
  /** Transport data Wireshark could decrypt (inner IP packet dissected). */
  innerIp?: string;
}

/** Every WireGuard message on a link, with what the embedded key log reveals. */
export async function wgMessages(file: string, opts: QueryOptions = {}): Promise<WgMessage[]> {
  const rows = await frames(file, 'wg', ['frame.number', 'ip.src', 'ip.dst', 'wg.type', 'wg.sender', 'wg.receiver', 'wg.stream', 'wg.static', 'wg.receiver_pubkey', 'wg.handshake_ok'], {
    ...opts, decodeAs: [...(opts.decodeAs ?? []), WG_DECODE_AS],
  });
  return rows.map((r) => {
    const ips = (r['ip.src'] ?? '').split(',');
    const dsts = (r['ip.dst'] ?? '').split(',');
    return {
      frame: Number(r['frame.number']),
      src: ips[0]!, dst: dsts[0]!,
      type: Number(r['wg.type']),
      sender: r['wg.sender'] || undefined,
      receiver: r['wg.receiver'] || undefined,
      stream: r['wg.stream'] || undefined,
      initiatorStatic: r['wg.static'] || undefined,
      responderStatic: r['wg.receiver_pubkey'] || undefined,
      handshakeOk: r['wg.handshake_ok'] ? r['wg.handshake_ok'] === '1' || r['wg.handshake_ok'] === 'True' : undefined,
      // A decrypted transport packet carries a second IP header.
      innerIp: ips.length > 1 ? `${ips[1]} -> ${dsts[1]}` : undefined,
    };
  });
}

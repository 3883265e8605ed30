// The secrets a capture of the lab needs to decrypt, as pcapng Decryption
// Secrets Blocks: the lab's TLS key log (agents' 4250 handshakes, mesh
// proxies' 15008 tunnels) and its WireGuard static keys. Embedded in every
// file the lab writes, so it decrypts anywhere with no setup. The section
// comment says what is embedded and which WireGuard key is which node: the
// key log holds bare private keys.
import { readFile } from 'node:fs/promises';
import { keyLogFile, wgInfoFile, wgKeyFile, wgKeyLogFile } from '../core/names.ts';
import type { LabState } from '../core/state.ts';
import { addSecrets, SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD, type DecryptionSecrets, type PacketCapture } from './pcapng.ts';

export interface KeyLogs {
  /** NSS key log (SSLKEYLOGFILE format) of the TLS handshakes. */
  tls?: string;
  /** WireGuard key log (Wireshark's wg key log format). */
  wg?: string;
}

export interface CaptureSecrets {
  secrets: DecryptionSecrets[];
  /** Lines for the section comment: what is embedded, and which WireGuard key is which node. */
  comments: string[];
}

export const noSecrets = (): CaptureSecrets => ({ secrets: [], comments: [] });

const readIfThere = (file: string) => readFile(file).catch((e: NodeJS.ErrnoException) => {
  if (e.code === 'ENOENT') return undefined;
  throw e;
});

/** TLS 1.3 logs several secrets per handshake, TLS 1.2 one CLIENT_RANDOM line: count handshakes either way. */
export function countTlsHandshakes(keyLog: string): number {
  const randoms = new Set<string>();
  for (const line of keyLog.split('\n')) {
    const m = /^(CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET)\s+([0-9a-fA-F]+)\s/.exec(line);
    if (m) randoms.add(m[2]!.toLowerCase());
  }
  return randoms.size;
}

/** The private keys of a WireGuard key log, in order. */
export function wgKeyLogKeys(keyLog: string): string[] {
  return keyLog.split('\n').flatMap((l) => {
    const m = /^\s*LOCAL_STATIC_PRIVATE_KEY\s*=\s*(\S+)\s*$/.exec(l);
    return m ? [m[1]!] : [];
  });
}

export interface WgNodeKey {
  node: string;
  privateKey: string;
  publicKey?: string;
  ifname?: string;
  endpoint?: string;
}

/** "key 1 = node n1 (public key …, device wg…, 172.30.0.10:51871)": never the private key itself. */
export function describeWgKeys(keyLog: string, nodes: WgNodeKey[]): string[] {
  return wgKeyLogKeys(keyLog).map((key, i) => {
    const n = nodes.find((x) => x.privateKey === key);
    if (!n) return `key ${i + 1} = no node of this lab`;
    const about = [n.publicKey && `public key ${n.publicKey}`, n.ifname && `device ${n.ifname}`, n.endpoint].filter(Boolean);
    return `key ${i + 1} = node ${n.node}${about.length > 0 ? ` (${about.join(', ')})` : ''}`;
  });
}

/** Each node's WireGuard private key (its key file) and what wireguard.json says about it. */
async function wgNodeKeys(state: LabState): Promise<WgNodeKey[]> {
  const info = await readIfThere(wgInfoFile(state.lab)).then((b) => (b ? (JSON.parse(b.toString()) as { nodes?: { node: string; ifname?: string; publicKey?: string; underlayIp?: string; listenPort?: number }[] }) : undefined));
  const nodes = await Promise.all(state.nodes.map(async (n): Promise<WgNodeKey[]> => {
    const key = (await readIfThere(wgKeyFile(state.lab, n.name)))?.toString().trim();
    if (!key) return [];
    const i = info?.nodes?.find((x) => x.node === n.name);
    const node: WgNodeKey = { node: n.name, privateKey: key };
    if (i?.publicKey) node.publicKey = i.publicKey;
    if (i?.ifname) node.ifname = i.ifname;
    if (i?.underlayIp && i.listenPort) node.endpoint = `${i.underlayIp}:${i.listenPort}`;
    return [node];
  }));
  return nodes.flat();
}

/**
 * The running lab's own secrets: its TLS key log as it is now (every
 * handshake so far) and its nodes' WireGuard keys. Missing or empty key
 * logs (no agents yet, no WireGuard) are simply not there.
 */
export async function labSecrets(state: LabState): Promise<CaptureSecrets> {
  const out = noSecrets();
  const tlsFile = keyLogFile(state.lab);
  const tls = await readIfThere(tlsFile);
  if (tls && tls.length > 0) {
    out.secrets.push({ type: SECRETS_TLS_KEYLOG, data: tls });
    out.comments.push(`TLS secrets embedded: the lab's key log ${tlsFile} (${countTlsHandshakes(tls.toString())} handshakes so far)`);
  }
  const wgFile = wgKeyLogFile(state.lab);
  const wg = await readIfThere(wgFile);
  if (wg && wg.length > 0) {
    out.secrets.push({ type: SECRETS_WIREGUARD, data: wg });
    out.comments.push(`WireGuard keys embedded (static private keys, ${wgFile}): ${describeWgKeys(wg.toString(), await wgNodeKeys(state)).join('; ')}`);
  }
  return out;
}

/** Key log files given by hand (`--keylog`): each must exist and hold something. */
export async function keyLogFileSecrets(keylogs: KeyLogs): Promise<CaptureSecrets> {
  const out = noSecrets();
  for (const [kind, type] of [['tls', SECRETS_TLS_KEYLOG], ['wg', SECRETS_WIREGUARD]] as const) {
    const file = keylogs[kind];
    if (!file) continue;
    const data = await readIfThere(file);
    if (!data) throw new Error(`${kind} key log ${file} does not exist`);
    if (data.length === 0) throw new Error(`${kind} key log ${file} is empty`);
    out.secrets.push({ type, data });
    out.comments.push(`${kind === 'tls' ? 'TLS' : 'WireGuard'} key log embedded: ${file}`);
  }
  return out;
}

/** Both together (a comment line once). */
export function joinSecrets(...parts: CaptureSecrets[]): CaptureSecrets {
  return { secrets: parts.flatMap((p) => p.secrets), comments: [...new Set(parts.flatMap((p) => p.comments))] };
}

/** Puts secrets and their comment lines into a capture (each once; a grown key log replaces its older copy). */
export function embedInCapture(capture: PacketCapture, s: CaptureSecrets): void {
  addSecrets(capture, s.secrets);
  for (const c of s.comments) if (!capture.comments.includes(c)) capture.comments.push(c);
}

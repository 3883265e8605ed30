// The display filters that show a capture's evidence, from the frames it
// holds: its drops, the handshakes' certificates, a SYN and its retransmit,
// a payload readable on the wire, WireGuard. Pure.
import { AUTH_PORT, HBONE_PORT, WG_PORT } from '../abi/generated.ts';
import { dfString } from '../capture/tshark.ts';
import { UNDERLAY_LINK } from '../capture/links.ts';
import type { FrameRow } from './flow-ladder.ts';
import { clip } from './svg.ts';

export interface EvidenceFilter {
  filter: string;
  shows: string;
}

const uniq = <T>(xs: T[]) => [...new Set(xs)];

export function evidenceFilters(frames: FrameRow[]): EvidenceFilter[] {
  const out: EvidenceFilter[] = [];
  const drops = frames.filter((f) => f.comment.includes('DROPPED'));
  if (drops.length > 0) {
    const reasons = uniq(drops.map((f) => f.comment.replace(/^.*?DROPPED: /, '').split(';')[0]!.trim()));
    out.push({ filter: 'frame.comment contains "DROPPED"', shows: `${drops.length} dropped packet(s), each commented with its reason and place: ${clip(reasons.join('; '), 160)}` });
  }
  for (const [port, who] of [[AUTH_PORT, "the agents' mutual-auth handshake"], [HBONE_PORT, "the mesh proxies' per-connection handshakes"]] as const) {
    const certs = frames.filter((f) => (f.sport === port || f.dport === port) && f.tlsHandshakeTypes.includes(11));
    if (certs.length === 0) continue;
    const ids = uniq(certs.flatMap((f) => f.uris).filter((u) => /^spiffe:\/\/[^/]+\/.+/.test(u)));
    out.push({ filter: `tcp.port == ${port} && tls.handshake.type == 11`, shows: `${certs.length} Certificate message(s) of ${who}, decrypted with the embedded key log: ${clip(ids.join(', '), 200) || 'no SPIFFE ID'}` });
  }
  // The first SYN seen more than once on one link: the dropped first SYN and its retransmit.
  const syns = frames.filter((f) => f.proto === 'tcp' && f.syn && !f.ack && f.dport !== AUTH_PORT && f.dport !== HBONE_PORT);
  const again = syns.find((f, i) => syns.slice(0, i).some((g) => g.link === f.link && g.src === f.src && g.sport === f.sport && g.dport === f.dport));
  if (again) {
    const first = syns.find((g) => g.link === again.link && g.src === again.src && g.sport === again.sport)!;
    out.push({ filter: `tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.srcport == ${again.sport}`, shows: `a SYN and its retransmit ${((again.tMs - first.tMs) / 1000).toFixed(3)} s later (on ${again.link})` });
  }
  // A readable payload, on the underlay when it crossed one readable.
  const readable = frames.filter((f) => f.readable !== undefined && f.len > 0 && f.readable.trim().length >= 4 && f.sport !== WG_PORT);
  const plain = readable.find((f) => f.link === UNDERLAY_LINK) ?? readable[0];
  if (plain) {
    const needle = plain.readable!.trim().slice(0, 32);
    out.push({ filter: `${plain.proto}.payload contains ${dfString(needle)}`, shows: `a payload readable on the wire (on ${plain.link})` });
  }
  const wg = frames.filter((f) => f.proto === 'udp' && (f.sport === WG_PORT || f.dport === WG_PORT));
  if (wg.length > 0) out.push({ filter: 'wg', shows: `${wg.length} WireGuard datagram(s) on UDP ${WG_PORT}, decrypted with the embedded keys` });
  return out;
}

/** A filter from a matrix cell's evidence text, "FILE [LINK]: FILTER → N frame(s)". */
export function filterOfEvidence(evidence: string): EvidenceFilter | undefined {
  const m = /\[([^\]]+)\]: (.+?) → (\d+) frame/.exec(evidence);
  return m ? { filter: m[2]!, shows: `${m[3]} frame(s) on ${m[1]}` } : undefined;
}

// After a capture: one merged pcapng with the links' names, the key logs
// embedded (so Wireshark decrypts with no setup), and comments on packets
// (drops). Our own writer adds secrets (editcap 4.0 cannot rewrite a file
// that holds some); editcap adds comments to files without secrets. Both
// keep our interface names and section comment.
import { isIP } from 'node:net';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../kernel/run.ts';
import { mergeCaptures, readCapture, writeCapture } from './pcapng.ts';
import { LAB_DECODE_AS_RULES } from './profile.ts';
import { embedInCapture, keyLogFileSecrets, type CaptureSecrets, type KeyLogs } from './secrets.ts';
import { dfString, tsharkFields } from './tshark.ts';

export type { KeyLogs };

export interface LinkFile {
  link: string;
  file: string;
  description?: string;
}

export interface MergeResult {
  file: string;
  packets: number;
  interfaces: string[];
}

/**
 * Merges per-link files into one pcapng: one interface per link, named for
 * it (`fabric/underlay`, `n1/lxc-client`), packets in timestamp order, and
 * `comments` as the section's capture comments.
 */
export async function mergeLinkCaptures(links: LinkFile[], out: string, opts: { comments?: string[] } = {}): Promise<MergeResult> {
  const inputs = await Promise.all(links.map(async (l) => ({ capture: readCapture(await readFile(l.file)), name: l.link, description: l.description })));
  const merged = mergeCaptures(inputs, {
    comments: opts.comments ?? [],
    application: 'mtless-lab (tcpdump --immediate-mode)',
  });
  await replaceFile(out, (tmp) => writeFile(tmp, writeCapture(merged)));
  return { file: out, packets: merged.packets.length, interfaces: merged.interfaces.map((i) => i.name ?? '') };
}

/** Writes through a temporary file in the same directory, then renames: a reader never sees half a file. */
export async function replaceFile(file: string, write: (tmp: string) => Promise<unknown>): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp.pcapng`);
  try {
    await write(tmp);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Embeds key logs as pcapng Decryption Secrets Blocks: the file decrypts
 * anywhere, no setup. Each once: a file that holds a key log already keeps
 * one copy (the longer, if it grew).
 */
export async function embedSecrets(file: string, keylogs: KeyLogs | CaptureSecrets): Promise<void> {
  const secrets = 'secrets' in keylogs ? keylogs : await keyLogFileSecrets(keylogs);
  if (secrets.secrets.length === 0) return;
  const capture = readCapture(await readFile(file));
  embedInCapture(capture, secrets);
  await replaceFile(file, (tmp) => writeFile(tmp, writeCapture(capture)));
}

export interface PacketNote {
  /** 1-based frame number, as Wireshark shows it. */
  frame: number;
  comment: string;
}

/**
 * Adds packet comments with `editcap -a N:comment`. editcap keeps one `-a`
 * per frame per run (the last wins), so a frame with k comments takes k runs;
 * comments already in the file stay.
 *
 * editcap 4.0 refuses to rewrite a file that already holds decryption
 * secrets ("can't be written as a pcapng file"), so comment before
 * embedSecrets(); on such a file we add the comments ourselves.
 */
export async function annotatePackets(file: string, notes: PacketNote[]): Promise<void> {
  if (notes.length === 0) return;
  const capture = readCapture(await readFile(file));
  const packets = capture.packets.length;
  const bad = notes.filter((n) => !Number.isInteger(n.frame) || n.frame < 1 || n.frame > packets);
  if (bad.length > 0) throw new Error(`${file} has frames 1..${packets}; cannot comment frame ${bad.map((n) => n.frame).join(', ')}`);
  if (capture.secrets.length > 0) {
    for (const n of notes) capture.packets[n.frame - 1]!.comments.push(n.comment);
    await replaceFile(file, (tmp) => writeFile(tmp, writeCapture(capture)));
    return;
  }
  const byFrame = new Map<number, string[]>();
  for (const n of notes) byFrame.set(n.frame, [...(byFrame.get(n.frame) ?? []), n.comment]);
  const passes = Math.max(...[...byFrame.values()].map((c) => c.length));
  for (let pass = 0; pass < passes; pass++) {
    const args = [...byFrame].flatMap(([frame, comments]) => (comments[pass] === undefined ? [] : ['-a', `${frame}:${comments[pass]}`]));
    await replaceFile(file, (tmp) => run(['editcap', ...args, file, tmp]));
  }
}

// ---- drop events → frames --------------------------------------------------------------

export interface DropEvent {
  time: Date;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  proto: 'tcp' | 'udp' | 'icmp' | number;
  comment: string;
  /** The link where the drop happened (e.g. `n1/lxc-client`): recommended, a packet is seen on several links. */
  iface?: string;
  /**
   * Links in order of preference (where the packet was seen last first): the
   * frame goes on the first of them where the packet shows (it may not show
   * on one: inside WireGuard), closest in time there. Instead of `iface`.
   */
  ifaces?: string[];
}

export interface DropMatch {
  event: DropEvent;
  /** The frame of the dropped packet, if one matched within the window. */
  frame?: number;
  iface?: string;
  /** Frame time minus event time. */
  deltaMs?: number;
}

const PROTO_NUMBERS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

function eventFilter(e: DropEvent): string {
  const v = isIP(e.src);
  if (!v || isIP(e.dst) !== v) throw new Error(`drop event: "${e.src}" -> "${e.dst}" are not two addresses of one family`);
  const ip = v === 4 ? 'ip' : 'ipv6';
  const parts = [`${ip}.src == ${e.src}`, `${ip}.dst == ${e.dst}`];
  const proto = typeof e.proto === 'number' ? e.proto : PROTO_NUMBERS[e.proto];
  if (proto === undefined) throw new Error(`drop event: unknown protocol "${e.proto}"`);
  if (proto === 6 || proto === 17) {
    const l4 = proto === 6 ? 'tcp' : 'udp';
    parts.push(l4);
    if (e.sport !== undefined) parts.push(`${l4}.srcport == ${Number(e.sport)}`);
    if (e.dport !== undefined) parts.push(`${l4}.dstport == ${Number(e.dport)}`);
  } else parts.push(v === 4 ? `ip.proto == ${proto}` : `ipv6.nxt == ${proto}`);
  const links = e.ifaces ?? (e.iface === undefined ? [] : [e.iface]);
  if (links.length > 0) parts.push(`(${links.map((l) => `frame.interface_name == ${dfString(l)}`).join(' || ')})`);
  return `(${parts.join(' && ')})`;
}

/** "1763799485.123456789" → nanoseconds. */
function epochNs(text: string): bigint {
  const [sec, frac = ''] = text.split('.');
  return BigInt(sec!) * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
}

/**
 * Finds the frame of each drop event: same 5-tuple (and link, if given),
 * within ±windowMs of the event, on its most preferred link, closest in
 * time; a frame serves one event at most (two dropped retransmissions → two
 * frames). One tshark pass.
 */
export async function matchDropEvents(file: string, events: DropEvent[], opts: { windowMs?: number } = {}): Promise<DropMatch[]> {
  if (events.length === 0) return [];
  const windowNs = BigInt(Math.round((opts.windowMs ?? 500) * 1e6));
  const filters = events.map(eventFilter);
  // The lab's ports decoded: a packet inside VXLAN on 8472 matches by its inner header.
  const rows = await tsharkFields(file, filters.join(' || '), ['frame.number', 'frame.time_epoch', 'frame.interface_name', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'ip.proto', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport'],
    { decodeAs: [...LAB_DECODE_AS_RULES] });
  const frames = rows.map((r) => ({
    frame: Number(r['frame.number']![0]),
    ns: epochNs(r['frame.time_epoch']![0]!),
    iface: r['frame.interface_name']![0],
    src: [...r['ip.src']!, ...r['ipv6.src']!],
    dst: [...r['ip.dst']!, ...r['ipv6.dst']!],
    sport: [...r['tcp.srcport']!, ...r['udp.srcport']!].map(Number),
    dport: [...r['tcp.dstport']!, ...r['udp.dstport']!].map(Number),
  }));

  // Every (event, frame) pair that fits, best first; then assign greedily.
  const pairs: { e: number; f: number; rank: number; delta: bigint }[] = [];
  events.forEach((e, ei) => {
    const at = BigInt(e.time.getTime()) * 1_000_000n;
    const links = e.ifaces ?? (e.iface === undefined ? undefined : [e.iface]);
    frames.forEach((fr, fi) => {
      // Stacked headers (tunnels) give several addresses: any layer may match.
      const addrOk = fr.src.some((s, i) => s === e.src && fr.dst[i] === e.dst);
      const portsOk = (e.sport === undefined || fr.sport.includes(e.sport)) && (e.dport === undefined || fr.dport.includes(e.dport));
      const rank = links === undefined ? 0 : links.indexOf(fr.iface ?? '');
      const delta = fr.ns - at;
      if (addrOk && portsOk && rank >= 0 && delta <= windowNs && delta >= -windowNs) pairs.push({ e: ei, f: fi, rank, delta });
    });
  });
  const abs = (d: bigint) => (d < 0n ? -d : d);
  // The preferred link first, then the closest in time; on a tie the later frame (nearer the drop point on its path).
  pairs.sort((a, b) => a.rank - b.rank || (abs(a.delta) === abs(b.delta) ? b.f - a.f : abs(a.delta) < abs(b.delta) ? -1 : 1));
  const matches: DropMatch[] = events.map((event) => ({ event }));
  const used = new Set<number>();
  for (const p of pairs) {
    if (matches[p.e]!.frame !== undefined || used.has(p.f)) continue;
    used.add(p.f);
    const fr = frames[p.f]!;
    matches[p.e] = { event: events[p.e]!, frame: fr.frame, iface: fr.iface, deltaMs: Number(p.delta) / 1e6 };
  }
  return matches;
}

/** The comment a dropped packet gets: display filter `frame.comment contains "DROPPED"` finds them all. */
export const dropComment = (e: DropEvent) => (e.comment.startsWith('DROPPED') ? e.comment : `DROPPED: ${e.comment}`);

/** Matches drop events to frames and comments those frames; returns every match (unmatched events have no frame). */
export async function annotateDrops(file: string, events: DropEvent[], opts: { windowMs?: number } = {}): Promise<DropMatch[]> {
  const matches = await matchDropEvents(file, events, opts);
  await annotatePackets(file, matches.filter((m) => m.frame !== undefined).map((m) => ({ frame: m.frame!, comment: dropComment(m.event) })));
  return matches;
}

// A merged capture's TCP and UDP frames as rows for the ladders: one tshark
// pass per link (a link alone, so TLS on it dissects; see capture/assert.ts),
// the lab's decode-as rules (4250 and 15008 as TLS, 8472 as VXLAN), the
// embedded key log decrypting the handshakes.
import { frames, interfaceNames } from '../capture/assert.ts';
import { LAB_DECODE_AS_RULES } from '../capture/profile.ts';
import type { FrameRow } from './flow-ladder.ts';

const FIELDS = ['frame.number', 'frame.time_epoch', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport',
  'tcp.flags.syn', 'tcp.flags.ack', 'tcp.flags.fin', 'tcp.flags.reset', 'tcp.len', 'udp.length', 'tls.handshake.type', 'tls.record.content_type',
  'x509ce.uniformResourceIdentifier', 'frame.comment', 'tcp.payload', 'udp.payload'];

const list = (v: string | undefined) => (v ? v.split(',').filter((x) => x !== '') : []);
/** The innermost layer: tshark lists stacked layers (VXLAN's outer and inner IP) outermost first. */
const last = (v: string | undefined) => list(v).at(-1) ?? '';
const flag = (v: string | undefined) => last(v) === '1' || last(v) === 'True';

/** "sec.nanoseconds" → ms, exact to the microsecond. */
export function epochMs(t: string): number {
  const [s, f = ''] = t.split('.');
  return Number(s) * 1000 + Number(`${(f + '000000').slice(0, 6)}`) / 1000;
}

/** The payload as text when it is all printable ASCII (and newlines), else undefined. */
export function readablePayload(hex: string): string | undefined {
  const clean = hex.replace(/[^0-9a-f]/gi, '');
  if (clean.length === 0) return undefined;
  const bytes = Buffer.from(clean, 'hex');
  return bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) ? bytes.toString('latin1') : undefined;
}

export function frameRow(link: string, r: Record<string, string>): FrameRow | undefined {
  const tcp = r['tcp.srcport'] !== '';
  const udp = !tcp && r['udp.srcport'] !== '';
  if (!tcp && !udp) return undefined;
  const payload = last(tcp ? r['tcp.payload'] : r['udp.payload']);
  const len = tcp ? Number(last(r['tcp.len']) || 0) : Math.max(0, Number(last(r['udp.length']) || 8) - 8);
  return {
    frame: Number(r['frame.number']),
    tMs: epochMs(r['frame.time_epoch']!),
    link,
    src: last(r['ip.src']),
    dst: last(r['ip.dst']),
    proto: tcp ? 'tcp' : 'udp',
    sport: Number(last(tcp ? r['tcp.srcport'] : r['udp.srcport'])),
    dport: Number(last(tcp ? r['tcp.dstport'] : r['udp.dstport'])),
    syn: flag(r['tcp.flags.syn']),
    ack: flag(r['tcp.flags.ack']),
    fin: flag(r['tcp.flags.fin']),
    rst: flag(r['tcp.flags.reset']),
    len,
    tlsHandshakeTypes: list(r['tls.handshake.type']).map(Number),
    tlsContentTypes: list(r['tls.record.content_type']).map(Number),
    uris: list(r['x509ce.uniformResourceIdentifier']),
    comment: r['frame.comment'] ?? '',
    readable: payload ? readablePayload(payload) : undefined,
  };
}

/** Every TCP/UDP frame of every link of `file`, in time order. */
export async function readFrames(file: string): Promise<FrameRow[]> {
  const links = [...new Set(await interfaceNames(file))].filter((l) => l !== '');
  const perLink = await Promise.all(links.map(async (link) => {
    const rows = await frames(file, 'tcp || udp', FIELDS, { iface: link, decodeAs: [...LAB_DECODE_AS_RULES] });
    return rows.map((r) => frameRow(link, r)).filter((f): f is FrameRow => f !== undefined);
  }));
  return perLink.flat().sort((a, b) => a.tMs - b.tMs);
}

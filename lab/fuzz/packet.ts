// Frames for the fuzzers, built field by field so that every header field
// can be wrong on purpose (IHL, version, fragment bits, VLAN tags, cut
// headers), and the rules BPF_PROG_RUN itself sets on what it accepts. Pure.
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../abi/generated.ts';
import { ETH_HLEN, ETH_P_IP, ETH_P_IPV6 } from './model.ts';

/** Largest frame the fuzzers make (BPF_PROG_RUN takes up to about a page). */
export const MAX_FRAME = 1514;

export interface FrameSpec {
  /** The EtherType after any VLAN tags. Default IPv4. */
  etherType?: number;
  /** 802.1Q/802.1ad tags before it: [TPID, TCI] pairs, outermost first. */
  vlan?: [number, number][];
  src: string;
  dst: string;
  protocol: number;
  /** IPv4 version nibble (default 4) and header length in words (default 5; >5 adds option bytes). */
  version?: number;
  ihl?: number;
  /** 13-bit fragment offset (8-byte units) and the MF bit. */
  fragOffset?: number;
  moreFragments?: boolean;
  ttl?: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (all 8 bits). */
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  payload?: Buffer;
  /** Bytes of the IP options area (ihl > 5); zeros by default. */
  options?: Buffer;
}

const ipBytes = (ip: string) => Buffer.from(ip.split('.').map(Number));

function ipChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The L4 header of a protocol (TCP 20, UDP 8, ICMP 8 bytes; other protocols none). */
export function l4Header(spec: FrameSpec): Buffer {
  if (spec.protocol === IPPROTO_TCP) {
    const l4 = Buffer.alloc(20);
    l4.writeUInt16BE(spec.sport ?? 0, 0);
    l4.writeUInt16BE(spec.dport ?? 0, 2);
    l4.writeUInt32BE(1, 4);
    l4[12] = 5 << 4;
    l4[13] = spec.tcpFlags ?? 0x02;
    l4.writeUInt16BE(64240, 14);
    return l4;
  }
  if (spec.protocol === IPPROTO_UDP) {
    const l4 = Buffer.alloc(8);
    l4.writeUInt16BE(spec.sport ?? 0, 0);
    l4.writeUInt16BE(spec.dport ?? 0, 2);
    l4.writeUInt16BE(8 + (spec.payload?.length ?? 0), 4);
    return l4;
  }
  if (spec.protocol === IPPROTO_ICMP) {
    const l4 = Buffer.alloc(8);
    l4[0] = spec.icmpType ?? 8;
    l4[1] = spec.icmpCode ?? 0;
    l4.writeUInt16BE(spec.icmpId ?? 0, 4);
    l4.writeUInt16BE(1, 6);
    return l4;
  }
  return Buffer.alloc(0);
}

/** Ethernet (+ VLAN tags) + IPv4 (valid header checksum) + L4 + payload. */
export function buildFrame(spec: FrameSpec): Buffer {
  const eth = Buffer.alloc(12);
  Buffer.from([0x0a, 0, 0, 0, 0, 2]).copy(eth, 0);
  Buffer.from([0x0a, 0, 0, 0, 0, 1]).copy(eth, 6);
  const tags = (spec.vlan ?? []).map(([tpid, tci]) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(tpid, 0);
    t.writeUInt16BE(tci, 2);
    return t;
  });
  const type = Buffer.alloc(2);
  type.writeUInt16BE(spec.etherType ?? ETH_P_IP, 0);
  const ihl = spec.ihl ?? 5;
  const ip = Buffer.alloc(Math.max(20, ihl * 4));
  if (ihl > 5) (spec.options ?? Buffer.alloc(0)).copy(ip, 20, 0, ihl * 4 - 20);
  const l4 = l4Header(spec);
  const payload = spec.payload ?? Buffer.alloc(0);
  ip[0] = ((spec.version ?? 4) << 4) | (ihl & 0xf);
  ip.writeUInt16BE((ip.length + l4.length + payload.length) & 0xffff, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(((spec.moreFragments ? 0x2000 : 0) | ((spec.fragOffset ?? 0) & 0x1fff)) || 0x4000, 6);
  ip[8] = spec.ttl ?? 64;
  ip[9] = spec.protocol;
  ipBytes(spec.src).copy(ip, 12);
  ipBytes(spec.dst).copy(ip, 16);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  return Buffer.concat([eth, ...tags, type, ip, l4, payload]);
}

/**
 * Whether BPF_PROG_RUN runs a tc program on this frame at all (measured on
 * kernel 6.18): at least an Ethernet header; an IPv4 EtherType needs a full
 * 20-byte IPv4 header after it, an IPv6 one a 40-byte header; at most about
 * a page. Anything else is refused with EINVAL before the program runs, so
 * such frames test nothing of ours (a truncated IPv4 *header* cannot reach
 * the datapath this way; a truncated L4 header can).
 */
export function runnable(frame: Buffer): boolean {
  if (frame.length < ETH_HLEN || frame.length > MAX_FRAME) return false;
  const type = frame.readUInt16BE(12);
  if (type === ETH_P_IP) return frame.length >= ETH_HLEN + 20;
  if (type === ETH_P_IPV6) return frame.length >= ETH_HLEN + 40;
  return true;
}

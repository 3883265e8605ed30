// The structs and codes of bpf/lib/sockmap.h, in TypeScript. Written by
// hand (the datapath's table in lab/datapath/layouts.ts does not cover this
// object); tests/kernel/sockmap-load.test.ts compares every size and offset
// with the BTF of bpf/build/sockmap.o, so a drift fails there.

/** Programs of bpf/sockmap.c, by function name (also their pin names). */
export const SOCKMAP_PROGRAMS = {
  sockOps: 'cil_sock_ops',
  skMsg: 'cil_sk_msg',
} as const;
export type SockmapProgram = (typeof SOCKMAP_PROGRAMS)[keyof typeof SOCKMAP_PROGRAMS];

/** Maps of bpf/sockmap.c (also their pin names). */
export const SOCKMAP_MAPS = {
  sockhash: 'cilium_sock_ops',
  pods: 'sockmap_pods',
  metrics: 'sockmap_metrics',
} as const;
export type SockmapMap = (typeof SOCKMAP_MAPS)[keyof typeof SOCKMAP_MAPS];

/** sockmap_metrics slots (enum in sockmap.h). */
export const SOCKMAP_MSG_REDIRECTED = 0;
export const SOCKMAP_MSG_PASSED = 1;
export const SOCKMAP_SOCK_ADDED = 2;
export const SOCKMAP_SOCK_SKIPPED = 3;
export const SOCKMAP_SOCK_ADD_FAILED = 4;
export const SOCKMAP_SOCK_NETNS_MISMATCH = 5;
export const SOCKMAP_METRICS_MAX = 6;

export const SOCK_KEY_FAMILY_IPV4 = 1;

/** struct sock_key: {u64 netns_cookie; be32 sip4, dip4; be16 sport, dport; u8 family; u8 pad[3]}. */
export interface SockKey {
  netnsCookie: bigint;
  sip: string;
  dip: string;
  sport: number;
  dport: number;
  family: number;
}

/** Byte offsets, for the drift test against BTF. */
export const SOCK_KEY_LAYOUT = { size: 24, netns_cookie: 0, sip4: 8, dip4: 12, sport: 16, dport: 18, family: 20 } as const;
export const SOCKMAP_POD_LAYOUT = { size: 8, netns_cookie: 0 } as const;
export const SOCKMAP_METRIC_LAYOUT = { size: 16, count: 0, bytes: 8 } as const;

function ipToBytes(ip: string): number[] {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`not an IPv4 address: "${ip}"`);
  return parts;
}

function bytesToIp(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

export function encodeSockKey(k: SockKey): Buffer {
  const b = Buffer.alloc(SOCK_KEY_LAYOUT.size);
  b.writeBigUInt64LE(k.netnsCookie, SOCK_KEY_LAYOUT.netns_cookie);
  Buffer.from(ipToBytes(k.sip)).copy(b, SOCK_KEY_LAYOUT.sip4);
  Buffer.from(ipToBytes(k.dip)).copy(b, SOCK_KEY_LAYOUT.dip4);
  b.writeUInt16BE(k.sport, SOCK_KEY_LAYOUT.sport); // network byte order
  b.writeUInt16BE(k.dport, SOCK_KEY_LAYOUT.dport);
  b.writeUInt8(k.family, SOCK_KEY_LAYOUT.family);
  return b;
}

export function decodeSockKey(b: Buffer): SockKey {
  if (b.length < SOCK_KEY_LAYOUT.size) throw new RangeError(`sock_key: need ${SOCK_KEY_LAYOUT.size} bytes, have ${b.length}`);
  return {
    netnsCookie: b.readBigUInt64LE(SOCK_KEY_LAYOUT.netns_cookie),
    sip: bytesToIp(b, SOCK_KEY_LAYOUT.sip4),
    dip: bytesToIp(b, SOCK_KEY_LAYOUT.dip4),
    sport: b.readUInt16BE(SOCK_KEY_LAYOUT.sport),
    dport: b.readUInt16BE(SOCK_KEY_LAYOUT.dport),
    family: b.readUInt8(SOCK_KEY_LAYOUT.family),
  };
}

/** sockmap_pods key: the pod's IPv4 address as a be32 (its bytes in order). */
export function encodePodKey(ip: string): Buffer {
  return Buffer.from(ipToBytes(ip));
}

export function decodePodKey(b: Buffer): string {
  return bytesToIp(b, 0);
}

/** struct sockmap_pod: the namespace cookie learned from the pod's first socket (0 = not yet). */
export function encodePodValue(netnsCookie: bigint): Buffer {
  const b = Buffer.alloc(SOCKMAP_POD_LAYOUT.size);
  b.writeBigUInt64LE(netnsCookie, SOCKMAP_POD_LAYOUT.netns_cookie);
  return b;
}

export function decodePodValue(b: Buffer): bigint {
  return b.readBigUInt64LE(SOCKMAP_POD_LAYOUT.netns_cookie);
}

export interface SockmapMetric {
  count: bigint;
  bytes: bigint;
}

export function decodeMetric(b: Buffer): SockmapMetric {
  return { count: b.readBigUInt64LE(SOCKMAP_METRIC_LAYOUT.count), bytes: b.readBigUInt64LE(SOCKMAP_METRIC_LAYOUT.bytes) };
}

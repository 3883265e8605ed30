// Running a loaded program on a crafted packet (BPF_PROG_RUN through
// `bpftool prog run`), without any traffic: how the kernel tests exercise
// the datapath, and a way to ask "what would this node do with this packet?".
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../kernel/run.ts';
import { ipv4Bytes } from './maps.ts';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;

export interface Ipv4PacketSpec {
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** TCP_F_* bits; default SYN. */
  tcpFlags?: number;
  /** ICMP type (8 echo request, 0 echo reply) and identifier. */
  icmpType?: number;
  icmpId?: number;
  payload?: Buffer;
}

const SRC_MAC = Buffer.from([0x0a, 0, 0, 0, 0, 1]);
const DST_MAC = Buffer.from([0x0a, 0, 0, 0, 0, 2]);

/** An Ethernet frame around `payload`. */
export function ethernetFrame(etherType: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(14);
  DST_MAC.copy(header, 0);
  SRC_MAC.copy(header, 6);
  header.writeUInt16BE(etherType, 12);
  return Buffer.concat([header, payload]);
}

/** Ethernet + IPv4 (valid header checksum) + TCP/UDP/ICMP. L4 checksums are left 0: the datapath does not check them. */
export function ipv4Packet(spec: Ipv4PacketSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  let l4: Buffer;
  let proto: number;
  if (spec.protocol === 'tcp') {
    proto = 6;
    l4 = Buffer.alloc(20);
    l4.writeUInt16BE(spec.sport ?? 0, 0);
    l4.writeUInt16BE(spec.dport ?? 0, 2);
    l4.writeUInt32BE(1, 4); // sequence number
    l4.writeUInt8(5 << 4, 12); // data offset: 5 words
    l4.writeUInt8(spec.tcpFlags ?? 0x02, 13);
    l4.writeUInt16BE(64240, 14); // window
  } else if (spec.protocol === 'udp') {
    proto = 17;
    l4 = Buffer.alloc(8);
    l4.writeUInt16BE(spec.sport ?? 0, 0);
    l4.writeUInt16BE(spec.dport ?? 0, 2);
    l4.writeUInt16BE(8 + payload.length, 4);
  } else {
    proto = 1;
    l4 = Buffer.alloc(8);
    l4.writeUInt8(spec.icmpType ?? 8, 0);
    l4.writeUInt16BE(spec.icmpId ?? 0, 4);
    l4.writeUInt16BE(1, 6); // sequence
  }
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0); // version 4, IHL 5
  ip.writeUInt16BE(20 + l4.length + payload.length, 2);
  ip.writeUInt16BE(0x4000, 6); // don't fragment
  ip.writeUInt8(64, 8); // TTL
  ip.writeUInt8(proto, 9);
  ipv4Bytes(spec.src).copy(ip, 12);
  ipv4Bytes(spec.dst).copy(ip, 16);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  return ethernetFrame(ETH_P_IP, Buffer.concat([ip, l4, payload]));
}

function ipChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * A `struct __sk_buff` for ctx_in and ctx_out (192 bytes on 6.x). The kernel
 * accepts only a few fields in ctx_in (mark, priority, ingress_ifindex,
 * ifindex, cb, tstamp, …) and requires the rest to be 0; ctx_out reports
 * them as the program left them.
 */
export const SKB_CTX_SIZE = 192;
const SKB_MARK_OFFSET = 8;
const SKB_PRIORITY_OFFSET = 32;
const SKB_INGRESS_IFINDEX_OFFSET = 36;
const SKB_IFINDEX_OFFSET = 40;

export interface SkbFields {
  ifindex?: number;
  /** skb->skb_iif: the device the packet came in on (a forwarded pod packet: its lxc). */
  ingressIfindex?: number;
  mark?: number;
  priority?: number;
}

export function skbContext(opts: SkbFields): Buffer {
  const ctx = Buffer.alloc(SKB_CTX_SIZE);
  ctx.writeUInt32LE(opts.mark ?? 0, SKB_MARK_OFFSET);
  ctx.writeUInt32LE(opts.priority ?? 0, SKB_PRIORITY_OFFSET);
  ctx.writeUInt32LE(opts.ingressIfindex ?? 0, SKB_INGRESS_IFINDEX_OFFSET);
  ctx.writeUInt32LE(opts.ifindex ?? 0, SKB_IFINDEX_OFFSET);
  return ctx;
}

export interface ProgRunOptions {
  /**
   * Namespace to run in. skb->ifindex must name a device of the namespace
   * bpftool runs in (the kernel looks it up; lo = 1 always exists).
   */
  netns?: string;
  ifindex?: number;
  /** skb->skb_iif (ctx->ingress_ifindex), which the kernel does not look up. */
  ingressIfindex?: number;
  /** skb->mark (e.g. an identity from a tunnel program). */
  mark?: number;
  /** skb->priority: a free u32 a test harness program may read. */
  priority?: number;
  /**
   * Pin the run to this CPU (`taskset -c`). BPF_PROG_RUN runs the program on
   * the calling CPU, and perf-array records go to that CPU's buffer, which a
   * reader sees in order: runs pinned to one CPU report in the order they ran.
   * Default: whichever CPU the scheduler picks.
   */
  cpu?: number;
}

export interface ProgRunResult {
  /** The program's return value: 0 TC_ACT_OK, 2 TC_ACT_SHOT … */
  retval: number;
  /** Kernel-measured run time, ns. */
  durationNs: number;
  /** skb->mark as the program left it (ctx_out). */
  mark: number;
  /** skb->priority as the program left it (ctx_out). */
  priority: number;
}

/** Runs a pinned tc program once on `packet` (BPF_PROG_RUN). */
export async function runProgram(progPin: string, packet: Buffer, opts: ProgRunOptions = {}): Promise<ProgRunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mtless-progrun-'));
  try {
    const dataIn = join(dir, 'packet');
    const ctxIn = join(dir, 'ctx');
    const ctxOut = join(dir, 'ctx-out');
    await writeFile(dataIn, packet);
    await writeFile(ctxIn, skbContext(opts));
    if (opts.cpu !== undefined && !(Number.isInteger(opts.cpu) && opts.cpu >= 0)) throw new Error(`cpu must be a CPU number, got ${opts.cpu}`);
    const pin = opts.cpu === undefined ? [] : ['taskset', '-c', String(opts.cpu)];
    const r = await run([...pin, 'bpftool', '-j', 'prog', 'run', 'pinned', progPin, 'data_in', dataIn,
      'ctx_in', ctxIn, 'ctx_out', ctxOut, 'ctx_size_out', String(SKB_CTX_SIZE), 'repeat', '1'], {
      netns: opts.netns,
    });
    const out = JSON.parse(r.stdout) as { retval: number; duration: number };
    const ctx = await readFile(ctxOut);
    if (ctx.length < SKB_IFINDEX_OFFSET) throw new Error(`bpftool wrote ${ctx.length} bytes of ctx_out, expected ${SKB_CTX_SIZE}`);
    return {
      retval: out.retval,
      durationNs: out.duration,
      mark: ctx.readUInt32LE(SKB_MARK_OFFSET),
      priority: ctx.readUInt32LE(SKB_PRIORITY_OFFSET),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

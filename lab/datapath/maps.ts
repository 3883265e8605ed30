// Typed access to one node's maps: where they are pinned, how their keys are
// built from addresses, and decoded dumps.
import { nodeMapPins, nodeProgPins } from '../core/names.ts';
import { decodeEntries, dumpMap, dumpPerCpuMap, type MapEntry, type MapIo } from './bpftool.ts';
import {
  ENDPOINT_KEY_IPV4,
  IPCACHE_F_HAS_TUNNEL_EP,
  IPCACHE_F_IPV6_TUNNEL_EP,
  IPCACHE_PREFIX_BITS_BEFORE_IP,
  MAP_CODECS,
  METRICS_KEY_CODEC,
  METRICS_VALUE_CODEC,
  type Codec,
  type IpcacheKey,
  type MapKey,
  type MapName,
  type MapValue,
  type NodeKey,
  type RemoteEndpointInfo,
} from '../abi/generated.ts';
import { PROGRAMS } from '../abi/layouts.ts';

/** Pin of one of a node's maps: <nodeMapPins>/<map name>. */
export const mapPin = (lab: string, node: string, map: MapName) => `${nodeMapPins(lab, node)}/${map}`;

export type ProgramName = (typeof PROGRAMS)[keyof typeof PROGRAMS];

/** Pin of one of a node's two programs: <nodeProgPins>/<program name>. */
export const progPin = (lab: string, node: string, prog: ProgramName) => `${nodeProgPins(lab, node)}/${prog}`;

/** Maps that `bpftool map dump` can list with one value per key. */
export type DumpableMap = Exclude<MapName, 'cilium_metrics' | 'cilium_signals' | 'cilium_events'>;

/** Every entry of one of a node's maps, decoded. */
export async function dumpNodeMap<M extends DumpableMap>(lab: string, node: string, map: M, io?: Pick<MapIo, 'dump'>): Promise<MapEntry<MapKey<M>, MapValue<M>>[]> {
  // The codec pair is looked up by name, so TS cannot narrow it; MAP_CODECS's types guarantee it.
  const codecs = MAP_CODECS[map] as { key: Codec<MapKey<M>>; value: Codec<MapValue<M>> };
  if (!io) return dumpMap(mapPin(lab, node, map), codecs.key, codecs.value);
  return decodeEntries(await io.dump(mapPin(lab, node, map)), codecs.key, codecs.value);
}

export interface MetricsRow {
  /** 0 = forwarded, else a drop reason (DROP_REASON_TEXT). */
  reason: number;
  /** DIR_INGRESS / DIR_EGRESS. */
  dir: number;
  packets: bigint;
  bytes: bigint;
}

/** cilium_metrics, summed over CPUs. */
export async function readMetrics(lab: string, node: string): Promise<MetricsRow[]> {
  const rows = await dumpPerCpuMap(mapPin(lab, node, 'cilium_metrics'), METRICS_KEY_CODEC, METRICS_VALUE_CODEC);
  return rows.map(({ key, values }) => ({
    reason: key.reason,
    dir: key.dir,
    packets: values.reduce((sum, v) => sum + v.packets, 0n),
    bytes: values.reduce((sum, v) => sum + v.bytes, 0n),
  }));
}

// ---- addresses in keys -----------------------------------------------------------

/** IPv4 dotted quad → 4 bytes in network order. */
export function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: "${ip}"`);
  }
  return Buffer.from(parts);
}

/** 16-byte address field with an IPv4 address in bytes 0..3 (Cilium's layout). */
const ip16 = (ip: string) => Buffer.concat([ipv4Bytes(ip), Buffer.alloc(12)]);

/** ipcache key of "10.0.0.1" (a /32) or "10.0.0.0/24"; host bits are cleared. */
export function ipcacheKey4(cidr: string): IpcacheKey {
  const [ip, len] = cidr.split('/');
  const prefix = len === undefined ? 32 : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`bad prefix length in "${cidr}"`);
  const bytes = ipv4Bytes(ip!);
  for (let bit = prefix; bit < 32; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return {
    prefixlen: IPCACHE_PREFIX_BITS_BEFORE_IP + prefix,
    clusterId: 0,
    family: ENDPOINT_KEY_IPV4,
    ip: Buffer.concat([bytes, Buffer.alloc(12)]),
  };
}

/** "10.0.0.0/24" of an ipcache key. */
export function ipcacheCidr(key: IpcacheKey): string {
  return `${Array.from(key.ip.subarray(0, 4)).join('.')}/${key.prefixlen - IPCACHE_PREFIX_BITS_BEFORE_IP}`;
}

/** ipcache value: identity, and the node IP for an address on another node. */
export function ipcacheValue4(identity: number, tunnelEndpoint?: string, extraFlags = 0): RemoteEndpointInfo {
  return {
    secIdentity: identity,
    tunnelEndpoint: tunnelEndpoint ? ip16(tunnelEndpoint) : Buffer.alloc(16),
    key: 0,
    flags: (tunnelEndpoint ? IPCACHE_F_HAS_TUNNEL_EP : 0) | extraFlags,
  };
}

/** The IPv4 tunnel endpoint of an ipcache value, if any. */
export function tunnelEndpointOf(info: RemoteEndpointInfo): string | undefined {
  if (!(info.flags & IPCACHE_F_HAS_TUNNEL_EP) || info.flags & IPCACHE_F_IPV6_TUNNEL_EP) return undefined;
  return Array.from(info.tunnelEndpoint.subarray(0, 4)).join('.');
}

export function nodeKey4(ip: string): NodeKey {
  return { family: ENDPOINT_KEY_IPV4, ip: ip16(ip) };
}

export function nodeKeyIp(key: NodeKey): string {
  return Array.from(key.ip.subarray(0, 4)).join('.');
}

// The events `mtless observe` prints, in the shape of Hubble's
// GetFlowsResponse as `hubble observe -o json` writes it (protojson with the
// proto field names, enums as names, zero values left out, fields in
// flow.proto's order), so scripts written for `hubble observe -o json | jq`
// read them unchanged:
//   {"flow":{"time","uuid","verdict","drop_reason","IP","l4","source",
//    "destination","Type","node_name","event_type","traffic_direction",
//    "drop_reason_desc","is_reply","Summary",…},"node_name","time"}
// Besides flows: lost perf records ("lost_events", as Hubble), and the
// agents' auth events ("auth", the lab's own: Hubble has no such event).
// Pure: cilium_events records and agent log lines in, objects out.
import {
  AUTH_TYPE_EXPLICIT,
  CT_REPLY,
  DROP_CT_CREATE_FAILED,
  DROP_NO_NODE_ID,
  DROP_POLICY,
  DROP_POLICY_AUTH_REQUIRED,
  DROP_POLICY_DENY,
  DROP_REASON_DESC,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  OBS_FROM_ENDPOINT,
  OBS_TO_ENDPOINT,
  TCP_F_ACK,
  TCP_F_FIN,
  TCP_F_PSH,
  TCP_F_RST,
  TCP_F_SYN,
  TCP_F_URG,
  VERDICT_DROPPED,
  VERDICT_FORWARDED,
  type FlowEvent,
} from '../abi/generated.ts';
import { POLICY_MATCH_NONE, type Directory } from './directory.ts';

// ---- Hubble's types (api/v1/flow/flow.proto), the fields the lab fills ----------

export interface HubbleEndpoint {
  identity?: number;
  namespace?: string;
  labels?: string[];
  pod_name?: string;
}

export interface HubbleTcpFlags {
  FIN?: true;
  SYN?: true;
  RST?: true;
  PSH?: true;
  ACK?: true;
  URG?: true;
}

export interface HubbleLayer4 {
  TCP?: { source_port?: number; destination_port?: number; flags: HubbleTcpFlags };
  UDP?: { source_port?: number; destination_port?: number };
  ICMPv4?: { type?: number; code?: number };
}

export type HubbleVerdict = 'VERDICT_UNKNOWN' | 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT' | 'REDIRECTED' | 'TRACED' | 'TRANSLATED';
export type TrafficDirection = 'TRAFFIC_DIRECTION_UNKNOWN' | 'INGRESS' | 'EGRESS';

export interface HubbleFlow {
  time: string;
  uuid?: string;
  verdict: HubbleVerdict;
  /** Deprecated in flow.proto for drop_reason_desc, still filled by Hubble. */
  drop_reason?: number;
  /** Only on policy verdicts (flow.proto). */
  auth_type?: 'SPIRE' | 'TEST_ALWAYS_FAIL';
  IP: { source: string; destination: string; ipVersion: 'IPv4' };
  l4?: HubbleLayer4;
  source: HubbleEndpoint;
  destination: HubbleEndpoint;
  Type: 'L3_L4';
  node_name: string;
  event_type: { type: number; sub_type?: number };
  traffic_direction?: TrafficDirection;
  policy_match_type?: number;
  trace_observation_point?: string;
  drop_reason_desc?: string | number;
  /** Absent when unknown (the compact line's `<>`). */
  is_reply?: boolean;
  Summary: string;
}

export type AuthEventType = 'AUTH_REQUESTED' | 'AUTH_COMPLETED' | 'AUTH_FAILED';

/** An agent's auth event: source is the node's own identity (it dials the handshake), destination the peer's. */
export interface AuthEvent {
  time: string;
  type: AuthEventType;
  auth_type?: string;
  source: HubbleEndpoint;
  destination: HubbleEndpoint;
  node_name: string;
  /** The peer's node (0 = this node), its name and IP. */
  remote_node_id?: number;
  remote_node_name?: string;
  remote_node_ip?: string;
  /** Why the agent asked (signal, rotation, peer rotation). */
  why?: string;
  /** Completed: the peer's SPIFFE ID, the handshake's and the whole request's time, the entry's expiration. */
  peer_spiffe_id?: string;
  handshake_ms?: number;
  total_ms?: number;
  expiration?: string;
  /** Failed: the reason code and its detail. */
  reason?: string;
  detail?: string;
  Summary: string;
}

export interface LostEvents {
  source: 'PERF_EVENT_RING_BUFFER';
  /** uint64: protojson writes it as a string. */
  num_events_lost: string;
  cpu?: number;
}

/** One line of `observe -o json`: exactly one of flow, auth, lost_events. */
export interface ObservedEvent {
  flow?: HubbleFlow;
  auth?: AuthEvent;
  lost_events?: LostEvents;
  node_name: string;
  time: string;
}

// ---- Cilium's numbers (pkg/monitor/api) --------------------------------------------

export const MESSAGE_TYPE_DROP = 1;
export const MESSAGE_TYPE_TRACE = 4;
export const MESSAGE_TYPE_POLICY_VERDICT = 5;

// ---- time -----------------------------------------------------------------------

/**
 * A protobuf Timestamp as protojson writes it: RFC 3339 in UTC with 0, 3, 6
 * or 9 fractional digits.
 */
export function protoTime(unixNs: bigint): string {
  const seconds = unixNs / 1_000_000_000n;
  const nanos = Number(unixNs % 1_000_000_000n);
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  const digits = String(nanos).padStart(9, '0');
  const frac = nanos % 1_000_000 === 0 ? digits.slice(0, 3) : nanos % 1000 === 0 ? digits.slice(0, 6) : digits;
  return `${base}.${frac}Z`;
}

/** Unix ns of an RFC 3339 time (any number of fractional digits), or undefined. */
export function parseProtoTime(text: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}

// ---- flows --------------------------------------------------------------------------

/** Hubble's TCP flag order in a summary (threefour getTCPFlags). */
const TCP_FLAGS: [number, keyof HubbleTcpFlags][] = [
  [TCP_F_SYN, 'SYN'], [TCP_F_ACK, 'ACK'], [TCP_F_RST, 'RST'], [TCP_F_FIN, 'FIN'], [TCP_F_PSH, 'PSH'], [TCP_F_URG, 'URG'],
];

/**
 * Drops the datapath decides after its conntrack lookup: for these it knows
 * whether the packet was a reply (Hubble's parser leaves is_reply unset for
 * every drop; the lab's records carry the CT result).
 */
const DROPS_AFTER_CT = new Set([DROP_POLICY, DROP_POLICY_DENY, DROP_POLICY_AUTH_REQUIRED, DROP_NO_NODE_ID, DROP_CT_CREATE_FAILED]);

const AUTH_TYPE_NAMES: Record<number, 'SPIRE' | 'TEST_ALWAYS_FAIL'> = { 1: 'SPIRE', 2: 'TEST_ALWAYS_FAIL' };

function endpoint(ip: string, identity: number, dir: Directory): HubbleEndpoint {
  const pod = dir.pod(ip);
  const labels = dir.labels(identity);
  return {
    ...(identity ? { identity } : {}),
    ...(pod ? { namespace: pod.namespace } : {}),
    ...(labels.length > 0 ? { labels } : {}),
    ...(pod ? { pod_name: pod.pod } : {}),
  };
}

function layer4(ev: FlowEvent): { l4?: HubbleLayer4; summary: string } {
  const ports = { ...(ev.sport ? { source_port: ev.sport } : {}), ...(ev.dport ? { destination_port: ev.dport } : {}) };
  switch (ev.protocol) {
    case IPPROTO_TCP: {
      const set = TCP_FLAGS.filter(([bit]) => ev.tcpFlags & bit);
      // flow.proto orders TCPFlags FIN, SYN, RST, PSH, ACK, URG.
      const flags: HubbleTcpFlags = {};
      for (const name of ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'] as const) if (set.some(([, n]) => n === name)) flags[name] = true;
      return { l4: { TCP: { ...ports, flags } }, summary: `TCP Flags: ${set.map(([, n]) => n).join(', ')}` };
    }
    case IPPROTO_UDP:
      return { l4: { UDP: ports }, summary: 'UDP' };
    case IPPROTO_ICMP:
      // The datapath keeps the echo identifier in sport (request) or dport (reply), not the type.
      if (ev.sport) return { l4: { ICMPv4: { type: 8 } }, summary: 'ICMPv4 EchoRequest' };
      if (ev.dport) return { l4: { ICMPv4: {} }, summary: 'ICMPv4 EchoReply' };
      return { l4: { ICMPv4: {} }, summary: 'ICMPv4' };
    default:
      return { summary: 'IPv4' };
  }
}

/** A cilium_events record of `node` as Hubble's flow (drops; policy verdicts for new connections). */
export function flowEvent(ev: FlowEvent, node: string, dir: Directory, uuid?: string): ObservedEvent {
  const time = protoTime(ev.timestamp);
  const dropped = ev.verdict === VERDICT_DROPPED;
  const direction: TrafficDirection | undefined =
    ev.obsPoint === OBS_TO_ENDPOINT ? 'INGRESS' : ev.obsPoint === OBS_FROM_ENDPOINT ? 'EGRESS' : undefined;
  const { l4, summary } = layer4(ev);
  const isReply = dropped ? (DROPS_AFTER_CT.has(ev.dropReason) ? ev.ctStatus === CT_REPLY : undefined) : false;
  let matchType = POLICY_MATCH_NONE;
  if (!dropped && direction) {
    const local = dir.pod(direction === 'INGRESS' ? ev.daddr : ev.saddr)?.pod;
    const peer = direction === 'INGRESS' ? ev.srcIdentity : ev.dstIdentity;
    matchType = dir.matchType(local, direction === 'INGRESS' ? 'ingress' : 'egress', peer, ev.protocol, ev.dport);
  }
  const authType = AUTH_TYPE_NAMES[ev.authType & ~AUTH_TYPE_EXPLICIT];
  const flow: HubbleFlow = {
    time,
    ...(uuid ? { uuid } : {}),
    verdict: dropped ? 'DROPPED' : ev.verdict === VERDICT_FORWARDED ? 'FORWARDED' : 'VERDICT_UNKNOWN',
    ...(dropped ? { drop_reason: ev.dropReason } : {}),
    ...(!dropped && authType ? { auth_type: authType } : {}),
    IP: { source: ev.saddr, destination: ev.daddr, ipVersion: 'IPv4' },
    ...(l4 ? { l4 } : {}),
    source: endpoint(ev.saddr, ev.srcIdentity, dir),
    destination: endpoint(ev.daddr, ev.dstIdentity, dir),
    Type: 'L3_L4',
    node_name: node,
    event_type: dropped ? { type: MESSAGE_TYPE_DROP, sub_type: ev.dropReason } : { type: MESSAGE_TYPE_POLICY_VERDICT },
    ...(direction ? { traffic_direction: direction } : {}),
    ...(matchType ? { policy_match_type: matchType } : {}),
    ...(dropped ? { drop_reason_desc: DROP_REASON_DESC[ev.dropReason] ?? ev.dropReason } : {}),
    ...(isReply !== undefined ? { is_reply: isReply } : {}),
    Summary: summary,
  };
  return { flow, node_name: node, time };
}

/** A perf "lost" notice of `node`, as Hubble's lost_events. */
export function lostEvent(count: number, cpu: number, node: string, unixNs: bigint): ObservedEvent {
  return {
    lost_events: { source: 'PERF_EVENT_RING_BUFFER', num_events_lost: String(count), ...(cpu >= 0 ? { cpu } : {}) },
    node_name: node,
    time: protoTime(unixNs),
  };
}

// ---- auth events ----------------------------------------------------------------------

const AUTH_LOG_EVENTS: Record<string, AuthEventType> = {
  'auth-requested': 'AUTH_REQUESTED',
  'auth-completed': 'AUTH_COMPLETED',
  'auth-failed': 'AUTH_FAILED',
};

const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** An auth key's side: the pod when the identity has exactly one on that node. */
function authEndpoint(identity: number, node: string | undefined, dir: Directory): HubbleEndpoint {
  const pods = node === undefined ? [] : dir.podsOf(identity, node);
  const namespaces = [...new Set(pods.map((p) => p.namespace))];
  const labels = dir.labels(identity);
  return {
    ...(identity ? { identity } : {}),
    ...(namespaces.length === 1 ? { namespace: namespaces[0] } : {}),
    ...(labels.length > 0 ? { labels } : {}),
    ...(pods.length === 1 ? { pod_name: pods[0]!.pod } : {}),
  };
}

/**
 * One JSON line of a node agent's log (lab/agent: auth-requested,
 * auth-completed with the peer's SPIFFE ID and handshake time, auth-failed
 * with its reason) as an auth event; undefined for every other line.
 */
export function authEvent(line: Record<string, unknown>, node: string, dir: Directory): ObservedEvent | undefined {
  const type = AUTH_LOG_EVENTS[String(line.event)];
  const at = str(line.time);
  const key = str(line.key)?.split(':').map(Number);
  if (!type || !at || !key || key.length !== 4 || key.some((n) => !Number.isInteger(n))) return undefined;
  const ms = Date.parse(at);
  if (Number.isNaN(ms)) return undefined;
  const [local, remote, remoteNodeId, authType] = key as [number, number, number, number];
  const remoteNode = remoteNodeId === 0 ? node : dir.nodeName(remoteNodeId);
  const time = protoTime(BigInt(ms) * 1_000_000n);
  const handshake = num(line.handshakeMs);
  const summary =
    type === 'AUTH_COMPLETED' ? [str(line.peer) && `peer ${str(line.peer)}`, handshake !== undefined && `handshake ${handshake} ms`].filter(Boolean).join(', ')
    : type === 'AUTH_FAILED' ? [str(line.reason), str(line.detail)].filter(Boolean).join(': ')
    : (str(line.why) ?? '');
  const auth: AuthEvent = {
    time,
    type,
    ...(AUTH_TYPE_NAMES[authType] ? { auth_type: AUTH_TYPE_NAMES[authType] } : {}),
    source: authEndpoint(local, node, dir),
    destination: authEndpoint(remote, remoteNode, dir),
    node_name: node,
    ...(remoteNodeId ? { remote_node_id: remoteNodeId } : {}),
    ...(remoteNode ? { remote_node_name: remoteNode } : {}),
    ...(str(line.remoteNodeIp) ? { remote_node_ip: str(line.remoteNodeIp) } : {}),
    ...(str(line.why) ? { why: str(line.why) } : {}),
    ...(str(line.peer) ? { peer_spiffe_id: str(line.peer) } : {}),
    ...(handshake !== undefined ? { handshake_ms: handshake } : {}),
    ...(num(line.totalMs) !== undefined ? { total_ms: num(line.totalMs) } : {}),
    ...(str(line.expiration) ? { expiration: str(line.expiration) } : {}),
    ...(str(line.reason) ? { reason: str(line.reason) } : {}),
    ...(str(line.detail) ? { detail: str(line.detail) } : {}),
    Summary: summary,
  };
  return { auth, node_name: node, time };
}

/** Unix ns of an event (for merging nodes by time). */
export function eventTimeNs(ev: ObservedEvent): bigint {
  return parseProtoTime(ev.time) ?? 0n;
}

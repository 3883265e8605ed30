// `mtless observe`'s filters, with the semantics of `hubble observe`:
// - the flags build flow filters as hubble/cmd/observe/flows_filter.go does:
//   a "left" and a "right" filter; --from-X / --to-X go into both, an
//   either-way flag (--pod, --ip, --identity, --port) puts its source half
//   into the left one and its destination half into the right one; an event
//   is shown when it matches either filter;
// - one filter matches (pkg/hubble/filters) when every field it sets
//   matches, and a field matches when any of its values does;
// - a pod is "[namespace/]name-prefix" (namespace "default" when left out,
//   "namespace/" alone for the whole namespace).
// The relay applies them, so --last N counts only matching events. Auth
// events match on their ends (source: the node's own identity, destination:
// the peer's), node and type; a filter on what they lack (IP, port,
// protocol, verdict …) leaves them out. Lost-record notices pass every
// filter of type and node only. Pure.
import { parseCIDR, cidrContains } from '../topology/ipv4.ts';
import { RESERVED_IDENTITY_TEXT } from '../abi/generated.ts';
import { MESSAGE_TYPE_DROP, MESSAGE_TYPE_POLICY_VERDICT, MESSAGE_TYPE_TRACE, type AuthEventType, type HubbleEndpoint, type ObservedEvent } from './hubble.ts';

/** The lab's event type of auth events, beside Cilium's message types. */
export const AUTH_EVENT_TYPE = 'auth';

export interface EventTypeFilter {
  /** A Cilium message type (1 drop, 4 trace, 5 policy-verdict) or "auth". */
  type: number | typeof AUTH_EVENT_TYPE;
  /** Trace: the observation point; auth: AUTH_REQUESTED / AUTH_COMPLETED / AUTH_FAILED. */
  sub_type?: number | AuthEventType;
}

/** flow.proto's FlowFilter, the fields the lab supports. */
export interface FlowFilter {
  source_ip?: string[];
  destination_ip?: string[];
  source_pod?: string[];
  destination_pod?: string[];
  source_identity?: number[];
  destination_identity?: number[];
  source_port?: string[];
  destination_port?: string[];
  protocol?: string[];
  verdict?: string[];
  event_type?: EventTypeFilter[];
  node_name?: string[];
  drop_reason_desc?: string[];
  traffic_direction?: string[];
}

/** The filter flags of `mtless observe`, each repeatable. */
export interface FilterFlags {
  ip?: string[];
  'from-ip'?: string[];
  'to-ip'?: string[];
  pod?: string[];
  'from-pod'?: string[];
  'to-pod'?: string[];
  identity?: string[];
  'from-identity'?: string[];
  'to-identity'?: string[];
  port?: string[];
  'from-port'?: string[];
  'to-port'?: string[];
  protocol?: string[];
  verdict?: string[];
  type?: string[];
  node?: string[];
  'drop-reason-desc'?: string[];
  'traffic-direction'?: string[];
}

export class FilterError extends Error {
  override name = 'FilterError';
}

/** Flags that cannot be combined (flows_filter.go's conflict groups, for the flags the lab has). */
const CONFLICTS: (keyof FilterFlags)[][] = [
  ['from-ip', 'ip', 'from-pod', 'pod'],
  ['to-ip', 'ip', 'to-pod', 'pod'],
  ['port', 'to-port'],
  ['port', 'from-port'],
  ['identity', 'to-identity'],
  ['identity', 'from-identity'],
];

const VERDICTS = new Set(['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'ERROR', 'AUDIT', 'REDIRECTED', 'TRACED', 'TRANSLATED']);
const PROTOCOLS = new Set(['tcp', 'udp', 'icmp', 'icmpv4', 'icmpv6', 'sctp', 'http', 'dns', 'kafka']);
const TRACE_POINTS: Record<string, number> = {
  'to-endpoint': 0, 'to-proxy': 1, 'to-host': 2, 'to-stack': 3, 'to-overlay': 4, 'from-endpoint': 5,
  'from-proxy': 6, 'from-host': 7, 'from-stack': 8, 'from-overlay': 9, 'from-network': 10, 'to-network': 11,
};
const AUTH_SUBTYPES: Record<string, AuthEventType> = { requested: 'AUTH_REQUESTED', completed: 'AUTH_COMPLETED', failed: 'AUTH_FAILED' };
const RESERVED_BY_NAME = new Map(Object.entries(RESERVED_IDENTITY_TEXT).flatMap(([id, text]) => [[text, Number(id)], [text.replace(/^reserved:/, ''), Number(id)]]));

function identityValue(text: string): number {
  if (/^\d+$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  const reserved = RESERVED_BY_NAME.get(text);
  if (reserved === undefined) throw new FilterError(`invalid identity "${text}": a number or a reserved name (${[...RESERVED_BY_NAME.keys()].filter((k) => !k.includes(':')).join(', ')})`);
  return reserved;
}

function portValue(text: string): string {
  if (!/^\d+$/.test(text) || Number(text) > 65535) throw new FilterError(`invalid port "${text}": 0-65535`);
  return String(Number(text));
}

function ipValue(text: string): string {
  if (!parseCIDR(text.includes('/') ? text : `${text}/32`)) throw new FilterError(`invalid IP "${text}": an IPv4 address or CIDR`);
  return text;
}

function podValue(text: string): string {
  if (text === '' || text === '/' || text.split('/').length > 2) throw new FilterError(`invalid pod "${text}": [namespace/]name`);
  return text;
}

export function eventTypeValue(text: string): EventTypeFilter {
  const [name, sub] = text.split(':', 2) as [string, string | undefined];
  switch (name) {
    case 'drop':
      if (sub !== undefined) throw new FilterError(`--type drop has no subtypes (use --drop-reason-desc)`);
      return { type: MESSAGE_TYPE_DROP };
    case 'policy-verdict':
      if (sub !== undefined) throw new FilterError(`--type policy-verdict has no subtypes`);
      return { type: MESSAGE_TYPE_POLICY_VERDICT };
    case 'trace':
      if (sub === undefined) return { type: MESSAGE_TYPE_TRACE };
      if (!(sub in TRACE_POINTS)) throw new FilterError(`invalid trace point "${sub}": ${Object.keys(TRACE_POINTS).join(', ')}`);
      return { type: MESSAGE_TYPE_TRACE, sub_type: TRACE_POINTS[sub]! };
    case AUTH_EVENT_TYPE:
      if (sub === undefined) return { type: AUTH_EVENT_TYPE };
      if (!(sub in AUTH_SUBTYPES)) throw new FilterError(`invalid auth event "${sub}": ${Object.keys(AUTH_SUBTYPES).join(', ')}`);
      return { type: AUTH_EVENT_TYPE, sub_type: AUTH_SUBTYPES[sub]! };
    default:
      throw new FilterError(`invalid --type "${text}": drop, trace[:POINT], policy-verdict, auth[:requested|completed|failed]`);
  }
}

type Update = (f: FlowFilter) => void;

const push = <K extends keyof FlowFilter>(f: FlowFilter, key: K, value: NonNullable<FlowFilter[K]>[number]) => {
  (f[key] as unknown[]) = [...((f[key] as unknown[] | undefined) ?? []), value];
};

/** The flags as hubble observe's whitelist: one filter, or two (left OR right). Throws FilterError. */
export function buildFilters(flags: FilterFlags): FlowFilter[] {
  const used = (Object.keys(flags) as (keyof FilterFlags)[]).filter((k) => (flags[k]?.length ?? 0) > 0);
  for (const group of CONFLICTS) {
    const both = group.filter((k) => used.includes(k));
    if (both.length > 1) throw new FilterError(`filters --${both[0]} and --${both[1]} cannot be combined`);
  }
  let left: FlowFilter | undefined;
  let right: FlowFilter | undefined;
  const applyLeft = (u: Update) => u((left ??= {}));
  const applyRight = (u: Update) => u((right ??= {}));
  const apply = (u: Update) => {
    applyLeft(u);
    applyRight(u);
  };
  const each = (key: keyof FilterFlags, fn: (value: string) => void) => {
    for (const v of flags[key] ?? []) fn(v);
  };

  each('ip', (v) => {
    applyLeft((f) => push(f, 'source_ip', ipValue(v)));
    applyRight((f) => push(f, 'destination_ip', ipValue(v)));
  });
  each('from-ip', (v) => apply((f) => push(f, 'source_ip', ipValue(v))));
  each('to-ip', (v) => apply((f) => push(f, 'destination_ip', ipValue(v))));
  each('pod', (v) => {
    applyLeft((f) => push(f, 'source_pod', podValue(v)));
    applyRight((f) => push(f, 'destination_pod', podValue(v)));
  });
  each('from-pod', (v) => apply((f) => push(f, 'source_pod', podValue(v))));
  each('to-pod', (v) => apply((f) => push(f, 'destination_pod', podValue(v))));
  each('identity', (v) => {
    applyLeft((f) => push(f, 'source_identity', identityValue(v)));
    applyRight((f) => push(f, 'destination_identity', identityValue(v)));
  });
  each('from-identity', (v) => apply((f) => push(f, 'source_identity', identityValue(v))));
  each('to-identity', (v) => apply((f) => push(f, 'destination_identity', identityValue(v))));
  each('port', (v) => {
    applyLeft((f) => push(f, 'source_port', portValue(v)));
    applyRight((f) => push(f, 'destination_port', portValue(v)));
  });
  each('from-port', (v) => apply((f) => push(f, 'source_port', portValue(v))));
  each('to-port', (v) => apply((f) => push(f, 'destination_port', portValue(v))));
  each('protocol', (v) => {
    const p = v.toLowerCase();
    if (!PROTOCOLS.has(p)) throw new FilterError(`invalid protocol "${v}": ${[...PROTOCOLS].join(', ')}`);
    apply((f) => push(f, 'protocol', p));
  });
  each('verdict', (v) => {
    const verdict = v.toUpperCase();
    if (!VERDICTS.has(verdict)) throw new FilterError(`invalid --verdict value: ${v} (${[...VERDICTS].join(', ')})`);
    apply((f) => push(f, 'verdict', verdict));
  });
  each('type', (v) => apply((f) => push(f, 'event_type', eventTypeValue(v))));
  each('node', (v) => {
    if (v === '') throw new FilterError('empty --node');
    apply((f) => push(f, 'node_name', v));
  });
  each('drop-reason-desc', (v) => {
    if (!/^[A-Z0-9_]+$/.test(v)) throw new FilterError(`invalid --drop-reason-desc "${v}": a DropReason name of flow.proto, e.g. AUTH_REQUIRED`);
    apply((f) => push(f, 'drop_reason_desc', v));
  });
  each('traffic-direction', (v) => {
    const d = v.toUpperCase();
    if (d !== 'INGRESS' && d !== 'EGRESS') throw new FilterError(`invalid --traffic-direction "${v}": ingress or egress`);
    apply((f) => push(f, 'traffic_direction', d));
  });

  if (!left && !right) return [];
  const l = left ?? {};
  const r = right ?? {};
  return JSON.stringify(l) === JSON.stringify(r) ? [l] : [l, r];
}

// ---- matching -------------------------------------------------------------------------------

/** "[namespace/]prefix" -> namespace ("default" when left out) and pod-name prefix (k8s.ParseNamespaceName). */
export function parsePodFilter(text: string): { ns: string; prefix: string } {
  const at = text.indexOf('/');
  return at < 0 ? { ns: 'default', prefix: text } : { ns: text.slice(0, at), prefix: text.slice(at + 1) };
}

function podMatches(values: string[], ep: HubbleEndpoint | undefined): boolean {
  const ns = ep?.namespace ?? '';
  const pod = ep?.pod_name ?? '';
  if (ns === '' && pod === '') return false;
  return values.some((v) => {
    const f = parsePodFilter(v);
    return (f.prefix === '' || pod.startsWith(f.prefix)) && f.ns === ns;
  });
}

function ipMatches(values: string[], ip: string | undefined): boolean {
  if (!ip) return false;
  return values.some((v) => (v.includes('/') ? cidrContains(parseCIDR(v)!, ip) : v === ip));
}

/** Node patterns: "*" matches any run of characters (filters/nodename.go). */
function nodeMatches(values: string[], node: string): boolean {
  return values.some((v) => new RegExp(`^${v.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(node));
}

function eventTypeMatches(values: EventTypeFilter[], ev: ObservedEvent): boolean {
  if (ev.lost_events) return true; // Hubble always lets lost events through a type filter
  return values.some((t) => {
    if (ev.auth) return t.type === AUTH_EVENT_TYPE && (t.sub_type === undefined || t.sub_type === ev.auth.type);
    const et = ev.flow?.event_type;
    if (!et || t.type !== et.type) return false;
    return t.sub_type === undefined || t.sub_type === (et.sub_type ?? 0);
  });
}

function protocolOf(ev: ObservedEvent): string | undefined {
  const l4 = ev.flow?.l4;
  if (l4?.TCP) return 'tcp';
  if (l4?.UDP) return 'udp';
  if (l4?.ICMPv4) return 'icmpv4';
  return undefined;
}

const portOf = (ev: ObservedEvent, side: 'source_port' | 'destination_port'): number | undefined => {
  const l4 = ev.flow?.l4?.TCP ?? ev.flow?.l4?.UDP;
  return l4 ? (l4[side] ?? 0) : undefined;
};

/** Does one flow filter match? Every field it sets must. */
export function matchesFilter(ev: ObservedEvent, f: FlowFilter): boolean {
  const flow = ev.flow;
  const ends = flow ?? ev.auth;
  const checks: [unknown[] | undefined, () => boolean][] = [
    [f.source_ip, () => ipMatches(f.source_ip!, flow?.IP.source)],
    [f.destination_ip, () => ipMatches(f.destination_ip!, flow?.IP.destination)],
    [f.source_pod, () => podMatches(f.source_pod!, ends?.source)],
    [f.destination_pod, () => podMatches(f.destination_pod!, ends?.destination)],
    [f.source_identity, () => ends !== undefined && f.source_identity!.includes(ends.source.identity ?? 0)],
    [f.destination_identity, () => ends !== undefined && f.destination_identity!.includes(ends.destination.identity ?? 0)],
    [f.source_port, () => f.source_port!.includes(String(portOf(ev, 'source_port')))],
    [f.destination_port, () => f.destination_port!.includes(String(portOf(ev, 'destination_port')))],
    [f.protocol, () => {
      const p = protocolOf(ev);
      return p !== undefined && f.protocol!.some((v) => v === p || (v === 'icmp' && p.startsWith('icmp')));
    }],
    [f.verdict, () => flow !== undefined && f.verdict!.includes(flow.verdict)],
    [f.event_type, () => eventTypeMatches(f.event_type!, ev)],
    [f.node_name, () => nodeMatches(f.node_name!, ev.node_name)],
    [f.drop_reason_desc, () => flow !== undefined && f.drop_reason_desc!.includes(String(flow.drop_reason_desc))],
    [f.traffic_direction, () => flow !== undefined && f.traffic_direction!.includes(flow.traffic_direction ?? 'TRAFFIC_DIRECTION_UNKNOWN')],
  ];
  if (ev.lost_events) {
    const others = (Object.keys(f) as (keyof FlowFilter)[]).filter((k) => f[k] !== undefined && k !== 'event_type' && k !== 'node_name');
    return others.length === 0 && (!f.node_name || nodeMatches(f.node_name, ev.node_name));
  }
  return checks.every(([set, ok]) => !set || ok());
}

/** The whitelist: no filters match everything; otherwise any one of them must match. */
export function matchesAny(ev: ObservedEvent, filters: FlowFilter[]): boolean {
  return filters.length === 0 || filters.some((f) => matchesFilter(ev, f));
}

// ---- time windows ------------------------------------------------------------------------------

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("5m", "1h30m", "250ms") in ms, or undefined. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return ms;
}

/**
 * --since / --until: a duration back from now ("5m") or a time (RFC 3339,
 * "2006-01-02T15:04:05", "2006-01-02"; without a zone, UTC). Unix ms.
 */
export function parseTimeFlag(text: string, now: number, flag: string): number {
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  const zoned = /([zZ]|[+-]\d\d:\d\d)$/.test(text) || /^\d{4}-\d\d-\d\d$/.test(text) ? text : `${text}Z`;
  const t = Date.parse(zoned);
  if (Number.isNaN(t)) throw new FilterError(`invalid --${flag} "${text}": a duration (5m, 1h30m) or a time (2024-01-02T15:04:05Z)`);
  return t;
}

export interface Window {
  /** Unix ms, inclusive. */
  since?: number;
  until?: number;
  /** The last N / first N matching events of the window. */
  last?: number;
  first?: number;
}

/** What a request takes from the buffered history (time-ordered). */
export function selectHistory<T>(events: T[], timeMs: (e: T) => number, w: Window): T[] {
  let picked = events.filter((e) => (w.since === undefined || timeMs(e) >= w.since) && (w.until === undefined || timeMs(e) <= w.until));
  if (w.first !== undefined) picked = picked.slice(0, w.first);
  if (w.last !== undefined) picked = w.last === 0 ? [] : picked.slice(-w.last);
  return picked;
}

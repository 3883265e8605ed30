// Hubble's printer (hubble/pkg/printer/printer.go) for the lab's events:
//   compact  TIME[ [node]]: SRC (ID:n) ARROW DST (ID:n) TYPE VERDICT (SUMMARY)
//   dict     one "KEY: value" block per event, "------------" between them
//   json     the event object, one per line (Hubble's jsonpb output)
// TIME is Go's time.StampMilli in UTC (protobuf timestamps are UTC), e.g.
// "Dec  2 01:11:44.834": the day is padded with a space. Endpoints are
// namespace/pod:port, or the IP; the arrow is "->", "<-" with the ends
// swapped for a reply, "<>" when the reply flag is unknown. Auth events,
// which Hubble does not have, print in the same shape with TYPE "auth".
// Pure: events in, text out.
import { DROP_REASON_TEXT, OBS_POINT_TEXT } from '../abi/generated.ts';
import { reservedIdentityName } from './directory.ts';
import { MESSAGE_TYPE_DROP, MESSAGE_TYPE_POLICY_VERDICT, MESSAGE_TYPE_TRACE, parseProtoTime, type AuthEvent, type HubbleEndpoint, type HubbleFlow, type ObservedEvent } from './hubble.ts';

export type OutputFormat = 'compact' | 'dict' | 'json';
export const OUTPUT_FORMATS: Record<string, OutputFormat> = { compact: 'compact', dict: 'dict', json: 'json', jsonpb: 'json' };

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Go's time.StampMilli ("Jan _2 15:04:05.000") of an RFC 3339 time, in UTC; "N/A" when invalid, as Hubble. */
export function stampMilli(time: string): string {
  const ns = parseProtoTime(time);
  if (ns === undefined) return 'N/A';
  const d = new Date(Number(ns / 1_000_000n));
  const two = (n: number) => String(n).padStart(2, '0');
  const ms = String(Number((ns / 1_000_000n) % 1000n)).padStart(3, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${ms}`;
}

/** "(ID:256)", or "(world)" for a reserved identity (printer.go fmtIdentity). */
export function fmtIdentity(id: number | undefined): string {
  const reserved = reservedIdentityName(id ?? 0);
  return reserved ? `(${reserved})` : `(ID:${id})`;
}

/** Go's net.JoinHostPort. */
const joinHostPort = (host: string, port: string) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** printer.go Hostname: namespace/pod (path.Join: no slash without a namespace), else the IP; the port unless "" or "0". */
export function hostname(ip: string, port: string, ns: string | undefined, pod: string | undefined): string {
  const host = pod ? [ns, pod].filter(Boolean).join('/') : ip;
  return port !== '' && port !== '0' ? joinHostPort(host, port) : host;
}

function ports(f: HubbleFlow): [string, string] {
  const l4 = f.l4?.TCP ?? f.l4?.UDP;
  if (!l4) return ['', ''];
  return [String(l4.source_port ?? 0), String(l4.destination_port ?? 0)];
}

export function hostNames(f: HubbleFlow): [string, string] {
  const [sp, dp] = ports(f);
  return [
    hostname(f.IP.source, sp, f.source.namespace, f.source.pod_name),
    hostname(f.IP.destination, dp, f.destination.namespace, f.destination.pod_name),
  ];
}

const POLICY_MATCH_NAMES: Record<number, string> = { 0: 'none', 1: 'L3-Only', 2: 'L3-L4', 3: 'L4-Only', 4: 'all' };

/** printer.go GetFlowType. */
export function flowType(f: HubbleFlow): string {
  const sub = f.event_type.sub_type ?? 0;
  switch (f.event_type.type) {
    case MESSAGE_TYPE_TRACE:
      return OBS_POINT_TEXT[sub] ?? String(sub);
    case MESSAGE_TYPE_DROP:
      return DROP_REASON_TEXT[sub] ?? String(sub);
    case MESSAGE_TYPE_POLICY_VERDICT:
      return `policy-verdict:${POLICY_MATCH_NAMES[f.policy_match_type ?? 0] ?? 'unknown'} ${f.traffic_direction ?? 'TRAFFIC_DIRECTION_UNKNOWN'}`;
    default:
      return 'UNKNOWN';
  }
}

/** printer.go getVerdict: a policy verdict says ALLOWED / DENIED / AUDITED. */
export function verdictText(f: HubbleFlow): string {
  const pv = f.event_type.type === MESSAGE_TYPE_POLICY_VERDICT;
  switch (f.verdict) {
    case 'FORWARDED':
    case 'REDIRECTED':
      return pv ? 'ALLOWED' : f.verdict;
    case 'DROPPED':
    case 'ERROR':
      return pv ? 'DENIED' : f.verdict;
    case 'AUDIT':
      return pv ? 'AUDITED' : f.verdict;
    default:
      return f.verdict;
  }
}

/** printer.go getSummary: the summary, then the auth type unless disabled. */
export function summaryText(f: HubbleFlow): string {
  return f.auth_type && (f.auth_type as string) !== 'DISABLED' ? `${f.Summary}; ${f.auth_type}` : f.Summary;
}

// ---- auth events -------------------------------------------------------------------------

const AUTH_VERDICTS: Record<AuthEvent['type'], string> = { AUTH_REQUESTED: 'REQUESTED', AUTH_COMPLETED: 'COMPLETED', AUTH_FAILED: 'FAILED' };

/** An auth key's side: its pod when it names one, else the node that side is on. */
function authHost(e: HubbleEndpoint, node: string | undefined): string {
  if (e.pod_name) return [e.namespace, e.pod_name].filter(Boolean).join('/');
  return node ?? '-';
}

function authParts(a: AuthEvent) {
  return {
    src: authHost(a.source, a.node_name),
    dst: authHost(a.destination, a.remote_node_name),
    verdict: AUTH_VERDICTS[a.type] ?? a.type,
    summary: [a.auth_type, a.Summary].filter(Boolean).join('; '),
  };
}

// ---- the printer ---------------------------------------------------------------------------

export interface PrinterOptions {
  format: OutputFormat;
  /** --print-node-name: " [node]" after the time. */
  nodeName?: boolean;
}

const DICT_SEPARATOR = '------------';

/** Formats events one at a time (dict output separates them, so it keeps a count, as Hubble's). */
export class Printer {
  private line = 0;

  constructor(private readonly opts: PrinterOptions) {}

  /** The text of one event, newline included; "" for what the format leaves out. */
  format(ev: ObservedEvent): string {
    const text = this.render(ev);
    if (text) this.line++;
    return text;
  }

  private render(ev: ObservedEvent): string {
    if (this.opts.format === 'json') return `${JSON.stringify(ev)}\n`;
    const node = this.opts.nodeName ? ` [${ev.node_name}]` : '';
    if (ev.flow) return this.opts.format === 'compact' ? compactFlow(ev.flow, node) : this.dict(ev.flow.time, ev.node_name, hostNames(ev.flow), flowType(ev.flow), verdictText(ev.flow), summaryText(ev.flow));
    if (ev.auth) {
      const p = authParts(ev.auth);
      if (this.opts.format === 'dict') return this.dict(ev.auth.time, ev.node_name, [p.src, p.dst], 'auth', p.verdict, p.summary);
      return `${stampMilli(ev.auth.time)}${node}: ${p.src} ${fmtIdentity(ev.auth.source.identity)} -> ${p.dst} ${fmtIdentity(ev.auth.destination.identity)} auth ${p.verdict} (${p.summary})\n`;
    }
    if (ev.lost_events) {
      const l = ev.lost_events;
      if (this.opts.format === 'compact') return `EVENTS LOST: ${l.source} CPU(${l.cpu ?? 0}) ${l.num_events_lost}\n`;
      const sep = this.line !== 0 ? `${DICT_SEPARATOR}\n` : '';
      return `${sep}  TIMESTAMP: \n${this.opts.nodeName ? '       NODE: \n' : ''}     SOURCE: ${l.source}\n       TYPE: EVENTS LOST\n    VERDICT: \n    SUMMARY: CPU(${l.cpu ?? 0}) - ${l.num_events_lost}\n`;
    }
    return '';
  }

  private dict(time: string, nodeName: string, [src, dst]: [string, string], type: string, verdict: string, summary: string): string {
    return [
      ...(this.line !== 0 ? [DICT_SEPARATOR] : []),
      `  TIMESTAMP: ${stampMilli(time)}`,
      ...(this.opts.nodeName ? [`       NODE: ${nodeName}`] : []),
      `     SOURCE: ${src}`,
      `DESTINATION: ${dst}`,
      `       TYPE: ${type}`,
      `    VERDICT: ${verdict}`,
      `    SUMMARY: ${summary}`,
    ].join('\n') + '\n';
  }
}

/** printer.go's compact flow line. */
export function compactFlow(f: HubbleFlow, node = ''): string {
  let [src, dst] = hostNames(f);
  let [srcId, dstId] = [fmtIdentity(f.source.identity), fmtIdentity(f.destination.identity)];
  let arrow = '->';
  if (f.is_reply === undefined) arrow = '<>';
  else if (f.is_reply) {
    [src, dst] = [dst, src];
    [srcId, dstId] = [dstId, srcId];
    arrow = '<-';
  }
  return `${stampMilli(f.time)}${node}: ${src} ${srcId} ${arrow} ${dst} ${dstId} ${flowType(f)} ${verdictText(f)} (${summaryText(f)})\n`;
}

// Flow events as Hubble's compact output prints them:
//   07:41:01.123 n1/client:43210 (ID:256) -> n2/server:8080 (ID:257) to-endpoint DROPPED (TCP Flags: SYN) Authentication required
import {
  DROP_REASON_TEXT,
  OBS_POINT_TEXT,
  RESERVED_IDENTITY_TEXT,
  TCP_F_ACK,
  TCP_F_FIN,
  TCP_F_PSH,
  TCP_F_RST,
  TCP_F_SYN,
  TCP_F_URG,
  VERDICT_DROPPED,
  VERDICT_TEXT,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type FlowEvent,
} from '../abi/generated.ts';

export interface FormatOptions {
  /** Name of an address, e.g. "n1/client"; the address itself when undefined. */
  resolve?: (ip: string) => string | undefined;
  /** Print the time in UTC rather than local time. */
  utc?: boolean;
}

/** Hubble's order. */
const TCP_FLAG_NAMES: [number, string][] = [
  [TCP_F_SYN, 'SYN'],
  [TCP_F_ACK, 'ACK'],
  [TCP_F_RST, 'RST'],
  [TCP_F_FIN, 'FIN'],
  [TCP_F_PSH, 'PSH'],
  [TCP_F_URG, 'URG'],
];

export function tcpFlagNames(flags: number): string[] {
  return TCP_FLAG_NAMES.filter(([bit]) => flags & bit).map(([, name]) => name);
}

/** "07:41:01.123" of a Unix-epoch ns timestamp. */
export function formatTime(unixNs: bigint, utc = false): string {
  const ms = Number(unixNs / 1_000_000n);
  const d = new Date(ms);
  const parts = utc
    ? [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getHours(), d.getMinutes(), d.getSeconds()];
  return `${parts.map((n) => String(n).padStart(2, '0')).join(':')}.${String(ms % 1000).padStart(3, '0')}`;
}

/** "(ID:256)" for cluster identities, "(world)" for reserved ones, as Hubble. */
export function identityLabel(id: number): string {
  const reserved = RESERVED_IDENTITY_TEXT[id];
  return reserved ? `(${reserved.replace(/^reserved:/, '')})` : `(ID:${id})`;
}

function protocolSummary(ev: FlowEvent): string {
  switch (ev.protocol) {
    case IPPROTO_TCP: {
      const flags = tcpFlagNames(ev.tcpFlags);
      return flags.length ? `TCP Flags: ${flags.join(', ')}` : 'TCP';
    }
    case IPPROTO_UDP:
      return 'UDP';
    case IPPROTO_ICMP:
      return 'ICMPv4';
    default:
      return `IP protocol ${ev.protocol}`;
  }
}

/** One line per flow event. */
export function formatFlow(ev: FlowEvent, opts: FormatOptions = {}): string {
  const hasPorts = ev.protocol === IPPROTO_TCP || ev.protocol === IPPROTO_UDP;
  const end = (ip: string, port: number, id: number) =>
    `${opts.resolve?.(ip) ?? ip}${hasPorts ? `:${port}` : ''} ${identityLabel(id)}`;
  const verdict = VERDICT_TEXT[ev.verdict] ?? `verdict ${ev.verdict}`;
  const point = OBS_POINT_TEXT[ev.obsPoint] ?? `point ${ev.obsPoint}`;
  const reason = ev.verdict === VERDICT_DROPPED ? ` ${DROP_REASON_TEXT[ev.dropReason] ?? `drop reason ${ev.dropReason}`}` : '';
  return (
    `${formatTime(ev.timestamp, opts.utc)} ${end(ev.saddr, ev.sport, ev.srcIdentity)} -> ` +
    `${end(ev.daddr, ev.dport, ev.dstIdentity)} ${point} ${verdict} (${protocolSummary(ev)})${reason}`
  );
}

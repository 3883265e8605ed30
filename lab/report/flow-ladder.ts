// From a run's evidence to ladder diagrams, one per pod-to-pod flow: the
// frames of its connections (capture), the datapath's drops and the
// identities it judged by (flow events), the agents' signals, handshakes and
// auth-map writes (their log and the TLS frames between the nodes), and the
// mesh proxies' verdicts. Pure: frames come in as rows (lab/report/frames.ts
// reads them with tshark).
import type { RecordedFlow, RecordedPod, RunRecord } from '../scenarios/record.ts';
import { AUTH_PORT, DROP_REASON_TEXT, HBONE_PORT, OBS_POINT_TEXT, TCP_F_SYN, VERDICT_DROPPED, WG_PORT } from '../abi/generated.ts';
import type { Ladder, Lane, LadderStep } from './ladder.ts';
import { clip, formatMs } from './svg.ts';

/** One captured frame, as the report needs it (the innermost IP/TCP/UDP layer). */
export interface FrameRow {
  frame: number;
  /** Unix-epoch ms. */
  tMs: number;
  link: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  /** Payload bytes (TCP or UDP). */
  len: number;
  tlsHandshakeTypes: number[];
  tlsContentTypes: number[];
  /** URI SANs of decrypted Certificate messages. */
  uris: string[];
  comment: string;
  /** The payload as text when every byte is printable ASCII (readable on the wire). */
  readable?: string;
}

export const TLS_HANDSHAKE_NAMES: Record<number, string> = {
  1: 'ClientHello', 2: 'ServerHello', 4: 'NewSessionTicket', 8: 'EncryptedExtensions', 11: 'Certificate', 13: 'CertificateRequest', 15: 'CertificateVerify', 20: 'Finished',
};
const TLS_ALERT = 21;
const TLS_APP_DATA = 23;
/** Log events worth a row, by the daemon that writes them (the rest is start-up and housekeeping). */
const NOTE_EVENTS = new Set(['endpoint-added', 'endpoint-deleted', 'control-plane-lost', 'control-plane-connected', 'auth-failed',
  'outbound-open', 'outbound-refused', 'inbound-allowed', 'inbound-denied']);
/** Steps drawn per ladder at most; the rest is counted in the title. */
export const MAX_STEPS = 70;

export interface FlowGroup {
  key: string;
  protocol: number;
  saddr: string;
  daddr: string;
  dport: number;
  events: RecordedFlow[];
}

const ns = (f: RecordedFlow) => Number(BigInt(f.timestamp) / 1000n) / 1000;
const logMs = (l: Record<string, unknown>) => (typeof l.at === 'number' ? l.at : Date.parse(String(l.time)));

/** Flow events between two pods, grouped by (protocol, source IP, destination IP, port), first seen first. */
export function flowGroups(record: Pick<RunRecord, 'flows' | 'pods'>): FlowGroup[] {
  const podIps = new Set(record.pods.map((p) => p.ip));
  const groups = new Map<string, FlowGroup>();
  for (const f of record.flows) {
    if (!podIps.has(f.saddr) || !podIps.has(f.daddr)) continue;
    const key = `${f.protocol === 6 ? 'TCP' : f.protocol === 17 ? 'UDP' : `proto ${f.protocol}`} ${f.saddr} → ${f.daddr}:${f.dport}`;
    const g = groups.get(key) ?? { key, protocol: f.protocol, saddr: f.saddr, daddr: f.daddr, dport: f.dport, events: [] };
    g.events.push(f);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => ns(a.events[0]!) - ns(b.events[0]!));
}

const spiffeIds = (uris: string[]) => uris.filter((u) => /^spiffe:\/\/[^/]+\/.+/.test(u));

export interface LadderInput {
  record: Pick<RunRecord, 'nodes' | 'pods' | 'flows' | 'logs'>;
  frames: FrameRow[];
  underlayLink: string;
}

/** The ladder of one flow group. */
export function flowLadder(input: LadderInput, group: FlowGroup, id: string): Ladder {
  const { record, frames } = input;
  const srcPods = record.pods.filter((p) => p.ip === group.saddr);
  const dstPod = record.pods.find((p) => p.ip === group.daddr && p.runtime !== 'deleted') ?? record.pods.find((p) => p.ip === group.daddr)!;
  const srcNode = record.nodes.find((n) => n.name === srcPods[0]?.node);
  const dstNode = record.nodes.find((n) => n.name === dstPod.node)!;
  const sameNode = srcNode?.name === dstNode.name;
  const podName = (id?: number) => record.pods.find((p) => p.identity === id)?.name;
  const proto = group.protocol === 6 ? 'tcp' : 'udp';

  const lanes: Lane[] = [
    { id: 'src-pod', label: `pod ${srcPods.map((p) => p.name).join(' / ')}`, sub: `${group.saddr} · ID ${srcPods.map((p) => p.identity ?? '?').join(' / ')}` },
    ...(sameNode ? [] : [{ id: 'src-node', label: `node ${srcNode?.name ?? '?'} · agent`, sub: srcNode?.underlayIp }]),
    ...(sameNode ? [] : [{ id: 'underlay', label: 'underlay', sub: input.underlayLink }]),
    { id: 'dst-node', label: `node ${dstNode.name} datapath`, sub: `${dstPod.lxc} · ${dstNode.underlayIp}` },
    { id: 'dst-agent', label: `node ${dstNode.name} agent`, sub: `TCP ${AUTH_PORT}` },
    { id: 'dst-pod', label: `pod ${dstPod.name}`, sub: `${group.daddr} · ID ${dstPod.identity ?? '?'}` },
  ];
  const srcNodeLane = sameNode ? 'dst-node' : 'src-node';
  const laneOfNodeIp = (ip: string) => (ip === dstNode.underlayIp ? 'dst-agent' : ip === srcNode?.underlayIp ? srcNodeLane : undefined);

  // The connections of the group: their source ports, and the window they span.
  const sports = new Set(group.events.map((e) => e.sport));
  const isConn = (f: FrameRow) => f.proto === proto && ((f.src === group.saddr && f.dst === group.daddr && f.dport === group.dport && sports.has(f.sport))
    || (f.src === group.daddr && f.dst === group.saddr && f.sport === group.dport && sports.has(f.dport)));
  // One copy of each packet: the underlay across nodes; else the destination pod's veth, else the source's.
  // With WireGuard the underlay shows no pod packet: then the pods' veths do.
  const podLinks = [`${dstNode.name}/${dstPod.lxc}`, ...srcPods.map((p) => `${p.node}/${p.lxc}`)];
  const preferred = sameNode ? podLinks : [input.underlayLink, ...podLinks];
  const connFrames = (() => {
    for (const link of preferred) {
      const fs = frames.filter((f) => f.link === link && isConn(f));
      if (fs.length > 0) return fs;
    }
    return [];
  })();
  const times = [...group.events.map(ns), ...connFrames.map((f) => f.tMs)];
  const start = Math.min(...times) - 5;
  const end = Math.max(...times) + 20;
  const inWindow = (t: number) => t >= start && t <= end;
  const steps: LadderStep[] = [];

  // The datapath's view of each SYN/datagram at the destination node: its verdict and judged identity.
  const atDst = group.events.filter((e) => e.node === dstNode.name);
  const judged = (f: FrameRow) => {
    const cands = atDst.filter((e) => e.sport === f.sport);
    return cands.sort((a, b) => Math.abs(ns(a) - f.tMs) - Math.abs(ns(b) - f.tMs))[0];
  };
  // Who really sent from the source IP at a time: the control plane's endpoint log, since the IP may be reused.
  const ipEvents = (record.logs['control-plane-cp'] ?? []).filter((l) => (l.event === 'endpoint-added' || l.event === 'endpoint-deleted') && l.ip === group.saddr)
    .map((l) => ({ t: logMs(l), pod: l.event === 'endpoint-added' ? String(l.pod) : undefined })).sort((a, b) => a.t - b.t);
  const senderAt = (t: number) => {
    let pod = srcPods.find((p) => p.runtime !== 'added')?.name ?? srcPods[0]?.name;
    for (const e of ipEvents) if (e.t <= t) pod = e.pod;
    return record.pods.find((p) => p.name === pod);
  };
  const seenSyn = new Set<number>();
  const dataSeen = new Map<string, number>();
  const matchedDrops = new Set<RecordedFlow>();
  for (const f of connFrames) {
    const forward = f.src === group.saddr;
    const ev = forward ? judged(f) : undefined;
    const sender = forward && srcPods.length > 1 ? senderAt(f.tMs) : undefined;
    const confused = sender?.identity !== undefined && ev !== undefined && sender.identity !== ev.srcIdentity;
    const who = ev ? `${sender ? ` · from ${sender.name} (ID ${sender.identity ?? '?'})` : ''} · judged as ID ${ev.srcIdentity}${podName(ev.srcIdentity) ? ` (${podName(ev.srcIdentity)})` : ''}${confused ? ' · IDENTITY CONFUSED' : ''}` : '';
    const dropped = f.comment.includes('DROPPED');
    const detail = `frame ${f.frame} on ${f.link}${f.comment ? `; ${f.comment}` : ''}${ev ? `; flow event at ${ev.node}/${OBS_POINT_TEXT[ev.obsPoint] ?? ev.obsPoint}: ${ev.verdict === VERDICT_DROPPED ? `DROPPED ${ev.dropReason}` : 'FORWARDED'}, ID ${ev.srcIdentity} → ${ev.dstIdentity}` : ''}`;
    const what = proto === 'tcp' ? (f.syn && !f.ack ? 'SYN' : f.syn ? 'SYN-ACK' : f.rst ? 'RST' : f.len > 0 ? 'data' : '') : 'datagram';
    if (!what) continue;
    if (dropped) {
      const dropEv = ev && ev.verdict === VERDICT_DROPPED ? ev : undefined;
      if (dropEv) matchedDrops.add(dropEv);
      const reason = dropEv ? `${dropEv.dropReason} ${DROP_REASON_TEXT[dropEv.dropReason] ?? ''}` : f.comment.replace(/^.*DROPPED: /, '');
      steps.push({ tMs: f.tMs, from: 'src-pod', to: 'dst-node', kind: 'drop', label: `${what} :${f.sport} → :${f.dport} DROPPED (${reason.trim()}) at ${dstNode.name}${dropEv ? `/${OBS_POINT_TEXT[dropEv.obsPoint]}` : ''}${who}`, detail });
      if (what === 'SYN') seenSyn.add(f.sport);
      continue;
    }
    if (what === 'SYN') {
      const again = seenSyn.has(f.sport) || group.events.some((e) => e.sport === f.sport && e.verdict === VERDICT_DROPPED && ns(e) < f.tMs - 1);
      seenSyn.add(f.sport);
      steps.push({ tMs: f.tMs, from: 'src-pod', to: 'dst-pod', kind: 'packet', label: `SYN :${f.sport} → :${f.dport}${again ? ' (retransmitted) passes' : ' passes'}${who}`, detail });
      continue;
    }
    if (what === 'data' || what === 'datagram') {
      // The first payload each way per connection (the rest repeats it).
      const k = `${f.sport}>${f.dport}`;
      const n = (dataSeen.get(k) ?? 0) + 1;
      dataSeen.set(k, n);
      if (n > 1) continue;
    }
    const from = forward ? 'src-pod' : 'dst-pod';
    const to = forward ? 'dst-pod' : 'src-pod';
    const plain = f.readable !== undefined && (what === 'data' || what === 'datagram');
    const where = f.link === input.underlayLink ? 'on the underlay' : `on ${f.link}`;
    steps.push({
      tMs: f.tMs, from, to, kind: plain ? 'plaintext' : 'packet',
      label: plain ? `${what} ${f.len} B in plaintext ${where}: "${clip(f.readable!.trim(), 48)}"${who}` : `${what} :${f.sport} → :${f.dport}${what === 'datagram' ? ` ${f.len} B` : ''}${who}`,
      detail,
    });
  }
  // Packets the source node passed where no captured link shows them (e.g. into a mesh proxy).
  for (const e of group.events) {
    if (e.node !== srcNode?.name || e.verdict === VERDICT_DROPPED || sameNode || connFrames.some((f) => f.sport === e.sport)) continue;
    steps.push({ tMs: ns(e), from: 'src-pod', to: 'src-node', kind: 'packet',
      label: `${e.protocol === 6 && (e.tcpFlags & TCP_F_SYN) !== 0 ? 'SYN ' : ''}:${e.sport} → :${e.dport} leaves the pod (${OBS_POINT_TEXT[e.obsPoint]}, FORWARDED, ID ${e.srcIdentity} → ${e.dstIdentity})`,
      detail: 'flow event at the source node; the packet is not on a captured link' });
  }
  // Drops the capture did not show (e.g. a link not captured): from the flow events.
  for (const e of group.events) {
    if (e.verdict !== VERDICT_DROPPED || matchedDrops.has(e) || connFrames.some((f) => f.comment.includes('DROPPED') && f.sport === e.sport && Math.abs(f.tMs - ns(e)) < 50)) continue;
    const lane = e.node === dstNode.name ? 'dst-node' : srcNodeLane;
    const what = e.protocol === 6 ? ((e.tcpFlags & TCP_F_SYN) !== 0 ? 'SYN ' : 'segment ') : 'datagram ';
    const name = podName(e.srcIdentity);
    steps.push({ tMs: ns(e), from: 'src-pod', to: lane, kind: 'drop',
      label: `${what}:${e.sport} → :${e.dport} DROPPED (${e.dropReason} ${DROP_REASON_TEXT[e.dropReason] ?? ''}) at ${e.node}/${OBS_POINT_TEXT[e.obsPoint]} · judged as ID ${e.srcIdentity}${name ? ` (${name})` : ''}`,
      detail: 'flow event; the packet died before the captured links' });
  }

  // The handshakes between the nodes in the window: TLS records on the auth and HBONE ports.
  const tlsPorts = new Set([AUTH_PORT, HBONE_PORT]);
  const tlsFrames = frames.filter((f) => f.link === input.underlayLink && f.proto === 'tcp' && (tlsPorts.has(f.dport) || tlsPorts.has(f.sport))
    && laneOfNodeIp(f.src) && laneOfNodeIp(f.dst) && inWindow(f.tMs));
  const appSeen = new Set<string>();
  const finSeen = new Set<string>();
  for (const f of tlsFrames) {
    const port = tlsPorts.has(f.dport) ? f.dport : f.sport;
    const conn = `${Math.min(f.sport, f.dport)}-${Math.max(f.sport, f.dport)}`;
    const from = laneOfNodeIp(f.src)!;
    const to = laneOfNodeIp(f.dst)!;
    const detail = `frame ${f.frame} on ${f.link}, ${f.src}:${f.sport} → ${f.dst}:${f.dport}`;
    let label: string | undefined;
    if (f.syn && !f.ack) label = `TCP SYN to ${port} (${port === AUTH_PORT ? 'mutual-auth handshake' : 'HBONE'})`;
    else if (f.tlsHandshakeTypes.length > 0) {
      const names = [...new Set(f.tlsHandshakeTypes.map((t) => TLS_HANDSHAKE_NAMES[t] ?? `type ${t}`))];
      const ids = spiffeIds(f.uris);
      label = `TLS ${ids.length > 0 ? `Certificate ${ids.join(', ')} · ` : ''}${names.join(', ')}`;
    } else if (f.tlsContentTypes.includes(TLS_ALERT)) label = 'TLS alert (close_notify): no application data';
    else if (f.tlsContentTypes.includes(TLS_APP_DATA) && !appSeen.has(`${conn}${from}`)) {
      appSeen.add(`${conn}${from}`);
      label = `TLS application data ${f.len} B: the payload, encrypted`;
    } else if (f.fin && !finSeen.has(conn)) {
      finSeen.add(conn);
      label = `FIN: connection to ${port} closed`;
    }
    if (label) steps.push({ tMs: f.tMs, from, to, kind: 'tls', label, detail });
  }

  // WireGuard between the nodes in the window: the first datagrams each way (the pod packets inside are encrypted).
  const wgSeen = new Map<string, number>();
  for (const f of frames.filter((f) => f.link === input.underlayLink && f.proto === 'udp' && (f.dport === WG_PORT || f.sport === WG_PORT) && laneOfNodeIp(f.src) && laneOfNodeIp(f.dst) && inWindow(f.tMs))) {
    const k = `${f.src}>${f.dst}`;
    const n = (wgSeen.get(k) ?? 0) + 1;
    wgSeen.set(k, n);
    if (n > 2) continue;
    const from = laneOfNodeIp(f.src) === 'dst-agent' ? 'dst-node' : laneOfNodeIp(f.src)!;
    const to = laneOfNodeIp(f.dst) === 'dst-agent' ? 'dst-node' : laneOfNodeIp(f.dst)!;
    steps.push({ tMs: f.tMs, from, to, kind: 'packet', label: `WireGuard datagram ${f.len} B on UDP ${WG_PORT}: the pod packet inside, encrypted`, detail: `frame ${f.frame} on ${f.link}, ${f.src}:${f.sport} → ${f.dst}:${f.dport}` });
  }

  // Re-originated connections into the destination pod (a mesh proxy): from the node's own address.
  const nodeIps = new Set(record.nodes.map((n) => n.underlayIp));
  const reorig = new Set<number>();
  for (const f of frames.filter((f) => f.link === `${dstNode.name}/${dstPod.lxc}` && nodeIps.has(f.src) && f.dst === group.daddr && f.dport === group.dport && inWindow(f.tMs))) {
    if (!(f.syn && !f.ack) && !(f.len > 0 && !reorig.has(f.sport))) continue;
    if (f.len > 0) reorig.add(f.sport);
    steps.push({ tMs: f.tMs, from: 'dst-agent', to: 'dst-pod', kind: f.readable && f.len > 0 ? 'plaintext' : 'packet',
      label: f.len > 0 ? `proxy → pod: data ${f.len} B, in plaintext only inside ${dstNode.name}${f.readable ? `: "${clip(f.readable.trim(), 40)}"` : ''}` : `proxy → pod: SYN from ${f.src}:${f.sport} (re-originated)`,
      detail: `frame ${f.frame} on ${f.link}` });
  }

  // The agents and proxies: signal, auth-map write, and the notes.
  const dstIds = new Set(group.events.map((e) => e.dstIdentity));
  const srcIds = new Set(group.events.map((e) => e.srcIdentity));
  const keyOfGroup = (k: unknown) => {
    const [l, r] = String(k).split(':').map(Number);
    return dstIds.has(l!) && srcIds.has(r!);
  };
  for (const [daemon, lines] of Object.entries(record.logs)) {
    const node = daemon.replace(/^.*-/, '');
    const role = daemon.slice(0, daemon.length - node.length - 1);
    for (const l of lines) {
      const t = logMs(l);
      if (!inWindow(t)) continue;
      const ev = String(l.event ?? l.msg ?? '');
      if (role === 'agent' && node === dstNode.name && ev === 'auth-requested' && keyOfGroup(l.key)) {
        steps.push({ tMs: t, from: 'dst-node', to: 'dst-agent', kind: 'signal', label: `signal: authentication required, key ${String(l.key)} (local:remote:node:type)`, detail: `agent-${node} log: ${JSON.stringify(l)}` });
      } else if (role === 'agent' && node === dstNode.name && ev === 'auth-completed' && keyOfGroup(l.key)) {
        const handshake = tlsFrames.length === 0 ? `, handshake with ${String(l.peer)} (not on a captured link)` : '';
        steps.push({ tMs: t, from: 'dst-agent', to: 'dst-node', kind: 'write', label: `auth map write ${String(l.key)} until ${String(l.expiration).replace(/\.\d+Z$/, 'Z')}${handshake} · signal → entry ${formatMs(Number(l.totalMs))}`, detail: `agent-${node} log: ${JSON.stringify(l)}` });
      } else if (NOTE_EVENTS.has(ev) && noteConcerns(l, group, srcPods, dstPod)) {
        const lane = role === 'control-plane' ? srcNodeLane : node === dstNode.name ? (role === 'agent' ? 'dst-node' : 'dst-agent') : srcNodeLane;
        steps.push({ tMs: t, from: lane, to: lane, kind: 'note', label: noteText(daemon, ev, l), detail: `${daemon} log: ${JSON.stringify(l)}` });
      }
    }
  }

  const ports = [...new Set(tlsFrames.map((f) => (tlsPorts.has(f.dport) ? f.dport : f.sport)))].sort();
  if (ports.includes(HBONE_PORT)) {
    const lane = lanes.find((l) => l.id === 'dst-agent')!;
    lane.label = `node ${dstNode.name} agent · proxy`;
    lane.sub = `TCP ${ports.join(', ')}`;
  }
  const ordered = steps.sort((a, b) => a.tMs - b.tMs);
  const cut = ordered.length - MAX_STEPS;
  const span = ordered.length > 0 ? ordered.at(-1)!.tMs - ordered[0]!.tMs : 0;
  return {
    id,
    title: `${group.key} (${srcPods.map((p) => p.name).join('/')} → ${dstPod.name}), ${formatMs(span)}${cut > 0 ? `; ${cut} later steps not drawn` : ''}`,
    lanes,
    steps: ordered.slice(0, MAX_STEPS),
  };
}

/** Whether a log line speaks of this flow's pods or its destination's node (the rest is other flows' business). */
function noteConcerns(l: Record<string, unknown>, g: FlowGroup, srcPods: RecordedPod[], dst: RecordedPod): boolean {
  const text = JSON.stringify(l);
  if (l.event === 'control-plane-lost' || l.event === 'control-plane-connected') return l.node === dst.node;
  if (typeof l.dst === 'string' && l.dst.startsWith(`${g.daddr}:`)) return true;
  if (l.event === 'endpoint-added' || l.event === 'endpoint-deleted') return srcPods.some((p) => p.name === l.pod) || l.ip === g.saddr;
  return srcPods.some((p) => text.includes(`"${p.name}"`)) || text.includes(`"${g.saddr}"`);
}

function noteText(daemon: string, ev: string, l: Record<string, unknown>): string {
  const who = (k: string) => (l[k] === undefined ? '' : ` ${String(l[k])}`);
  switch (ev) {
    case 'endpoint-deleted': return `control plane: pod${who('pod')} deleted${who('ip')}`;
    case 'endpoint-added': return `control plane: pod${who('pod')} added${who('ip')}, identity${who('identity')}`;
    case 'control-plane-lost': return `${daemon}: cut off from the control plane (ipcache now stale)`;
    case 'control-plane-connected': return `${daemon}: reconnected to the control plane (resync)`;
    case 'outbound-open': return `${daemon}: redirected, HBONE stream as${who('src')}`;
    case 'outbound-refused': return `${daemon}: refused for${who('src')} (${String(l.status ?? '')})`;
    case 'inbound-allowed': return `${daemon}: allowed by certificate${who('peer')}`;
    case 'inbound-denied': return `${daemon}: denied${who('peer')}: ${String(l.reason ?? '')}`;
    default: return `${daemon}: ${ev}${who('reason')}`;
  }
}

/** Every flow's ladder of a run, in the order first seen. */
export function runLadders(input: LadderInput, prefix: string): Ladder[] {
  return flowGroups(input.record).map((g, i) => flowLadder(input, g, `${prefix}-${i + 1}`));
}

// Drops of the datapath as packet comments: a flow event (verdict DROPPED)
// becomes a DropEvent that merge.ts matches to the dropped packet's frame.
//
// Where the comment goes: tcpdump on a veth sees a packet *before* tc
// ingress but *after* tc egress. A packet dropped leaving its pod
// (cil_from_container, strict mode at eth0, the overlay's egress) is seen
// on the sender's veth. One dropped on its way into a pod (cil_to_container)
// never shows on that pod's veth: it is commented where it was seen last,
// the underlay (or a node's eth0) for a packet from another node, the
// sender's veth on the same node. The comment goes on the first of these
// links that was captured and shows the packet (inside WireGuard it does not).
import { existsSync } from 'node:fs';
import { DROP_REASON_TEXT, OBS_FROM_ENDPOINT, OBS_FROM_OVERLAY, OBS_POINT_TEXT, OBS_TO_ENDPOINT, VERDICT_DROPPED, type FlowEvent } from '../abi/generated.ts';
import { NODE_UNDERLAY_IFNAME, wgIfname } from '../core/names.ts';
import type { LabState } from '../core/state.ts';
import { streamFlows, type EventStream } from '../datapath/events.ts';
import { mapPin } from '../datapath/maps.ts';
import { UNDERLAY_LINK } from './links.ts';
import type { DropEvent } from './merge.ts';

const PROTO_NAMES: Record<number, 'tcp' | 'udp' | 'icmp'> = { 6: 'tcp', 17: 'udp', 1: 'icmp' };

/** Links that saw the dropped packet last, best first (see the top of this file). */
export function dropLinks(flow: FlowEvent, node: string, state: LabState): string[] {
  const pod = (ip: string) => state.pods.find((p) => p.ip === ip);
  const veth = (p: { node: string; name: string }) => `${p.node}/lxc-${p.name}`;
  const src = pod(flow.saddr);
  // Tunnel and WireGuard: the underlay and eth0 may show it only encrypted; the WireGuard device shows it decrypted.
  const fromElsewhere = [UNDERLAY_LINK, `${node}/${NODE_UNDERLAY_IFNAME}`, `${node}/${wgIfname(state.lab, node)}`];
  if (flow.obsPoint === OBS_FROM_OVERLAY) return fromElsewhere;
  if (flow.obsPoint !== OBS_TO_ENDPOINT) return src ? [veth(src)] : fromElsewhere;
  if (src && src.node === node) return [veth(src)];
  return [...fromElsewhere, ...(src ? [`${src.node}/${NODE_UNDERLAY_IFNAME}`, veth(src)] : [])];
}

/**
 * A dropped flow as a DropEvent, dated by the kernel's own timestamp, to be
 * matched on the links of dropLinks() in order. With `captured` (the links
 * of the capture), only those; none of them captured: any link may match.
 */
export function dropEventOfFlow(flow: FlowEvent, node: string, state: LabState, captured?: readonly string[]): DropEvent {
  const pod = (ip: string) => state.pods.find((p) => p.ip === ip);
  const toContainer = flow.obsPoint === OBS_TO_ENDPOINT;
  const at = toContainer ? pod(flow.daddr) : pod(flow.saddr);
  const links = dropLinks(flow, node, state).filter((l) => !captured || captured.includes(l));
  // The programs' own names for the pod's two directions, Hubble's for the others.
  const where = toContainer ? 'to-container' : flow.obsPoint === OBS_FROM_ENDPOINT ? 'from-container' : (OBS_POINT_TEXT[flow.obsPoint] ?? `obs-point ${flow.obsPoint}`);
  const event: DropEvent = {
    time: new Date(Number(flow.timestamp / 1_000_000n)),
    src: flow.saddr, dst: flow.daddr, sport: flow.sport, dport: flow.dport,
    proto: PROTO_NAMES[flow.protocol] ?? flow.protocol,
    comment: `${DROP_REASON_TEXT[flow.dropReason] ?? 'drop'} (${flow.dropReason}) at ${node}/${where}${at ? ` of ${at.name}` : ''}`,
  };
  if (links.length > 0) event.ifaces = links;
  return event;
}

export const isDrop = (flow: FlowEvent) => flow.verdict === VERDICT_DROPPED;

export interface DropWatch {
  /** Drop events seen so far, each tied to a captured link. */
  drops(): DropEvent[];
  /** Nodes whose events could not be read (another reader holds them), and why. */
  unread: { node: string; reason: string }[];
  stop(): Promise<void>;
}

/**
 * Reads the flow events of every node while a capture runs, for its drop
 * comments: through the lab's flow relay (streamFlows subscribes to it when
 * the lab has one, so observers and scenarios read alongside), else from the
 * perf array itself. Resolves once every reader is attached, or has failed:
 * such a node (its perf array read by another process, in a lab without a
 * relay) is listed in `unread` and the capture goes on without its drops.
 * The one place a hand-run capture reads flows.
 */
export async function watchDrops(state: LabState, captured: readonly string[]): Promise<DropWatch> {
  const drops: DropEvent[] = [];
  const unread: DropWatch['unread'] = [];
  const streams: EventStream[] = [];
  await Promise.all(state.nodes.map(async (n) => {
    if (!existsSync(mapPin(state.lab, n.name, 'cilium_events'))) {
      unread.push({ node: n.name, reason: 'no datapath on this node (no cilium_events map): nothing is dropped' });
      return;
    }
    let stream: EventStream;
    try {
      stream = streamFlows(state.lab, n.name, (f) => {
        if (isDrop(f)) drops.push(dropEventOfFlow(f, n.name, state, captured));
      });
    } catch (e) {
      unread.push({ node: n.name, reason: (e as Error).message });
      return;
    }
    try {
      await stream.ready;
      streams.push(stream);
    } catch (e) {
      unread.push({ node: n.name, reason: (e as Error).message });
      await stream.stop().catch(() => undefined);
    }
  }));
  let stopping: Promise<void> | undefined;
  return {
    drops: () => [...drops],
    unread,
    // Once: a second stop would remove a reader claim that someone else may hold by then.
    stop: () => (stopping ??= Promise.all(streams.map((s) => s.stop().catch(() => undefined))).then(() => undefined)),
  };
}

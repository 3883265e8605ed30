// The capturable links of a lab, from its state alone (pure: no kernel).
//
// A link is what a user wants to see ("the underlay", "client's veth"); a tap
// is one capture point. A veth is one tap. A bridge is not: frames forwarded
// between its ports never pass the bridge device itself (measured: a capture
// on `underlay` sees only flooded frames once the FDB has learned). So a
// bridge link is captured on each port *inbound* (frames entering from a
// node) plus the bridge device *outbound* (frames the namespace itself
// sends, e.g. the control plane on `mgmt`): every frame exactly once.
import * as names from '../core/names.ts';
import type { LabState } from '../core/state.ts';

export type Direction = 'in' | 'out' | 'inout';

export interface Tap {
  netns: string;
  device: string;
  direction: Direction;
}

export interface CaptureLink {
  /** Stable name, also the interface name in capture files: `fabric/underlay`, `n1/lxc-client`. */
  name: string;
  /** Node the link belongs to, or 'fabric' / 'cp': the `node` part of the capture processes' tag. */
  owner: string;
  description: string;
  taps: Tap[];
}

export class UnknownLinkError extends Error {
  override name = 'UnknownLinkError';
  constructor(readonly lab: string, readonly link: string, readonly valid: string[]) {
    super(`lab "${lab}" has no link "${link}" (valid: ${valid.join(', ')}; or any device as fabric/DEV, cp/DEV, NODE/DEV, POD/DEV)`);
  }
}

export const FABRIC = 'fabric';
export const CONTROL_PLANE = 'cp';
export const UNDERLAY_LINK = `${FABRIC}/${names.FABRIC_BRIDGE}`;
export const MGMT_LINK = names.MGMT_BRIDGE;

/** Every well-known link of a lab: the two bridges, each node's devices, each pod's veth. */
export function listLinks(state: LabState): CaptureLink[] {
  const fabricNs = names.fabricNetns(state.lab);
  const cpNs = names.controlNetns(state.lab);
  const bridge = (bridgeName: string, netns: string, port: (node: string) => string): Tap[] => [
    ...state.nodes.map((n): Tap => ({ netns, device: port(n.name), direction: 'in' })),
    { netns, device: bridgeName, direction: 'out' },
  ];
  const links: CaptureLink[] = [
    {
      name: UNDERLAY_LINK,
      owner: FABRIC,
      description: `underlay bridge "${names.FABRIC_BRIDGE}" in ${fabricNs}: every frame between nodes, once, as it enters the bridge`,
      taps: bridge(names.FABRIC_BRIDGE, fabricNs, names.fabricPortIfname),
    },
    {
      name: MGMT_LINK,
      owner: CONTROL_PLANE,
      description: `control-plane bridge "${names.MGMT_BRIDGE}" in ${cpNs}: agents and control plane, each frame once`,
      taps: bridge(names.MGMT_BRIDGE, cpNs, names.mgmtPortIfname),
    },
  ];
  for (const n of state.nodes) {
    links.push(
      device(n.name, n.netns, names.NODE_UNDERLAY_IFNAME, `node ${n.name} underlay device (${n.underlayIp}) in ${n.netns}`),
      device(n.name, n.netns, names.NODE_MGMT_IFNAME, `node ${n.name} management device (${n.mgmtIp}) in ${n.netns}`),
    );
    for (const p of state.pods.filter((p) => p.node === n.name)) {
      links.push({
        ...device(n.name, n.netns, p.lxc, `pod ${p.name} (${p.ip}) veth, node side, in ${n.netns}: where the tc programs run`),
        // Long pod names get lxc<hash> devices; the link keeps the readable name.
        name: `${n.name}/lxc-${p.name}`,
      });
    }
  }
  return links;
}

function device(owner: string, netns: string, dev: string, description: string): CaptureLink {
  return { name: `${owner}/${dev}`, owner, description, taps: [{ netns, device: dev, direction: 'inout' }] };
}

/**
 * A link by name: a well-known one, or any device as `fabric/DEV`, `cp/DEV`,
 * `NODE/DEV` or `POD/DEV` (the pod's own namespace; looked up in that order,
 * so a node shadows a pod of the same name).
 */
export function resolveLink(state: LabState, name: string): CaptureLink {
  const known = listLinks(state);
  const hit = known.find((l) => l.name === name);
  if (hit) return hit;
  const m = /^([a-z0-9-]+)\/([^/\s]{1,15})$/.exec(name);
  if (m) {
    const [, where, dev] = m as unknown as [string, string, string];
    const node = state.nodes.find((n) => n.name === where);
    const pod = state.pods.find((p) => p.name === where);
    const adhoc = (owner: string, netns: string, what: string) =>
      ({ name, owner, description: `${dev} in ${what} (${netns})`, taps: [{ netns, device: dev, direction: 'inout' as const }] });
    if (where === FABRIC) return adhoc(FABRIC, names.fabricNetns(state.lab), 'the fabric namespace');
    if (where === CONTROL_PLANE) return adhoc(CONTROL_PLANE, names.controlNetns(state.lab), 'the control-plane namespace');
    if (node) return adhoc(node.name, node.netns, `node ${node.name}`);
    if (pod) return adhoc(pod.node, pod.netns, `pod ${pod.name}`);
  }
  throw new UnknownLinkError(state.lab, name, known.map((l) => l.name));
}

/** Resolves names (or passes links through); duplicates are an error, not a double capture. */
export function resolveLinks(state: LabState, wanted: (string | CaptureLink)[]): CaptureLink[] {
  const links = wanted.map((w) => (typeof w === 'string' ? resolveLink(state, w) : w));
  const seen = new Set<string>();
  for (const l of links) {
    if (seen.has(l.name)) throw new Error(`link "${l.name}" is listed twice`);
    seen.add(l.name);
  }
  return links;
}

/**
 * File name of a link's capture: `fabric.underlay.pcapng`, `n1.lxc-client.pcapng`.
 * "." never occurs in node or pod names, so these never collide.
 */
export function linkFileName(link: string): string {
  return `${link.replace('/', '.')}.pcapng`;
}

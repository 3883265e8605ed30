// Tunnel mode (`routing: tunnel`), like Cilium's `--tunnel-protocol=vxlan`:
// per node one VXLAN device in collect-metadata ("external") mode on UDP
// 8472, the other nodes' pod CIDRs routed onto it, and bpf/overlay.c on it:
//
//   cilium_vxlan  tc egress:  cil_to_overlay   tunnel key: remote = the
//                                               destination's node (ipcache
//                                               tunnel_endpoint), VNI = the
//                                               source pod's identity
//                 tc ingress: cil_from_overlay VNI -> skb->mark, which
//                                               cil_to_container prefers to
//                                               its (possibly stale) ipcache
//
// Pins, one load per node next to the datapath, sharing its maps:
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/overlay/progs/cil_to_overlay, cil_from_overlay
//   (maps: the node's own …/<node>/maps/cilium_ipcache and cilium_lxc, reused)
//
// Next hop: the route to a peer's pod CIDR goes `via <peer underlay IP> dev
// cilium_vxlan onlink`, and a static neighbour gives that gateway the peer's
// VXLAN MAC, so the inner frame arrives addressed to the receiving device
// (no ARP over the tunnel, nothing for the tc program to rewrite).
//
// With `encryption: {mode: wireguard}` too, the VXLAN packets themselves go
// into WireGuard (Cilium's --wireguard-encapsulate): encapsulate.ts.
//
// Teardown needs nothing of its own: the device dies with the node
// namespace, the pins with the lab's bpffs folder (`mtless down`).
import { rm } from 'node:fs/promises';
import { macAddress, nodeBpffsDir, overlayDir, overlayProgPins } from '../core/names.ts';
import type { LabPlan, NodePlan } from '../core/plan.ts';
import { tcAttach } from '../kernel/tc.ts';

import { BPF_DIR, loadNodeObject } from '../datapath/load.ts';
import { MAP_CODECS, OVERLAY_PROGRAMS, VXLAN_PORT, type OverlayProgram } from '../abi/generated.ts';
import { ipBatch, run } from '../kernel/run.ts';
import { type ExtraStep } from '../core/steps.ts';
import { encapsulated, ENCAPSULATED_VXLAN_MTU } from './encapsulate.ts';

/** Cilium's device name; 12 characters, within IFNAMSIZ. */
export const VXLAN_IFNAME = 'cilium_vxlan';
export const OVERLAY_OBJECT = `${BPF_DIR}/build/overlay.o`;
/** Every datapath map: overlay.o includes bpf/lib/maps.h, so it reuses them all. */
export const OVERLAY_SHARED_MAPS = Object.keys(MAP_CODECS) as (keyof typeof MAP_CODECS)[];

export const overlayProgPin = (lab: string, node: string, prog: OverlayProgram) => `${overlayProgPins(lab, node)}/${prog}`;
/** Deterministic, so each node can name its peers' MACs in static neighbour entries. */
export const vxlanMac = (lab: string, node: string) => macAddress(lab, node, 'vxlan');

/** The tunnel step of `up`: run after the datapath step (it reuses the datapath's pinned maps). */
export const TUNNEL_STEP: ExtraStep = {
  name: 'tunnel',
  run: async (plan) => void (await installTunnel(plan)),
};

/** `ip -batch` lines of a node's VXLAN device (pure). */
export function vxlanDeviceLines(plan: LabPlan, n: NodePlan): string[] {
  // Inside WireGuard (encapsulate.ts) the outer packet must fit wireguard-go's device.
  const mtu = encapsulated(plan.topology) ? ` mtu ${ENCAPSULATED_VXLAN_MTU}` : '';
  return [
    `link add ${VXLAN_IFNAME} address ${vxlanMac(plan.lab, n.name)}${mtu} type vxlan external dstport ${VXLAN_PORT}`,
    `link set ${VXLAN_IFNAME} addrgenmode none`,
    `link set ${VXLAN_IFNAME} up`,
  ];
}

/**
 * `ip -batch` lines that send the other nodes' pod CIDRs into the tunnel
 * (pure).
 */
export function tunnelRouteLines(plan: LabPlan, n: NodePlan): string[] {
  return plan.nodes
    .filter((other) => other !== n)
    .flatMap((other) => [
      `neigh replace ${other.underlayIp} lladdr ${vxlanMac(plan.lab, other.name)} dev ${VXLAN_IFNAME} nud permanent`,
      `route replace ${other.podCidr} via ${other.underlayIp} dev ${VXLAN_IFNAME} onlink`,
    ]);
}

/** Device, programs, then routes, on every node: no pod packet meets an unprogrammed device. */
export async function installTunnel(plan: LabPlan, opts: { objectPath?: string } = {}): Promise<void> {
  const results = await Promise.allSettled(
    plan.nodes.map(async (n) => {
      await ipBatch(vxlanDeviceLines(plan, n), n.netns);
      await loadOverlay(plan.lab, n.name, opts);
      await attachOverlay(plan.lab, n.name, n.netns);
      await ipBatch(tunnelRouteLines(plan, n), n.netns);
    }),
  );
  // Every branch settled before rethrowing: rollback must not race a sibling.
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Loads bpf/build/overlay.o for one node, reusing that node's pinned
 * cilium_ipcache and cilium_lxc (so the datapath must be loaded first).
 */
export async function loadOverlay(lab: string, node: string, opts: { objectPath?: string } = {}): Promise<string> {
  return loadNodeObject({
    lab, node, feature: 'tunnel mode', object: opts.objectPath ?? OVERLAY_OBJECT,
    dir: overlayDir(lab, node), progPins: overlayProgPins(lab, node), sharedMaps: OVERLAY_SHARED_MAPS,
  });
}

/** cil_to_overlay at tc egress, cil_from_overlay at tc ingress of the node's VXLAN device. */
export async function attachOverlay(lab: string, node: string, netns: string): Promise<void> {
  await tcAttach(netns, [
    { dev: VXLAN_IFNAME, direction: 'egress', pin: overlayProgPin(lab, node, OVERLAY_PROGRAMS.toOverlay) },
    { dev: VXLAN_IFNAME, direction: 'ingress', pin: overlayProgPin(lab, node, OVERLAY_PROGRAMS.fromOverlay) },
  ]);
}

/** Only the pins; the device and its filters go with the node namespace. */
export async function unloadOverlay(lab: string, node: string): Promise<void> {
  await rm(overlayDir(lab, node), { recursive: true, force: true });
}

export interface VxlanInfo {
  ifname: string;
  external: boolean;
  dstport: number;
  mac: string;
  up: boolean;
}

/** The node's VXLAN device as the kernel reports it, or undefined when absent. */
export async function readVxlan(netns: string): Promise<VxlanInfo | undefined> {
  const r = await run(['ip', '-d', '-j', 'link', 'show', VXLAN_IFNAME], { netns, okCodes: [1] });
  if (r.exitCode !== 0) return undefined;
  const [link] = JSON.parse(r.stdout) as {
    ifname: string; address: string; flags: string[];
    linkinfo?: { info_kind?: string; info_data?: { external?: boolean; collect_metadata?: boolean; port?: number } };
  }[];
  if (!link || link.linkinfo?.info_kind !== 'vxlan') return undefined;
  const data = link.linkinfo.info_data ?? {};
  return {
    ifname: link.ifname,
    external: Boolean(data.external ?? data.collect_metadata),
    dstport: data.port ?? 0,
    mac: link.address,
    up: link.flags.includes('UP'),
  };
}

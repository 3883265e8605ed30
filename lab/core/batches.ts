// The `ip -batch` lines that build a lab, computed from its plan (pure). `up`
// runs them; the bring-up benchmark's floor runs the very same lines from a
// shell script, so the two always build identical objects.
import { POD_GATEWAY_IP, type LabPlan, type NodePlan, type PodPlan } from './plan.ts';
import * as names from './names.ts';

export function allNetns(plan: LabPlan): string[] {
  return [plan.fabricNetns, plan.controlNetns, ...plan.nodes.flatMap((n) => [n.netns, ...n.pods.map((p) => p.netns)])];
}

/** A bridge and one veth per node, whose node end is created directly in the node's namespace. */
function bridgeWithPorts(bridge: string, address: string | undefined, ports: { port: string; peer: string; netns: string }[]): string[] {
  return [
    'link set lo up',
    `link add ${bridge} type bridge`,
    `link set ${bridge} addrgenmode none`,
    ...(address ? [`addr add ${address} dev ${bridge}`] : []),
    `link set ${bridge} up`,
    ...ports.flatMap((p) => [
      `link add ${p.port} type veth peer name ${p.peer} netns ${p.netns}`,
      `link set ${p.port} addrgenmode none`,
      `link set ${p.port} master ${bridge} up`,
    ]),
  ];
}

/** The underlay: one bridge in the fabric namespace. */
export function fabricLines(plan: LabPlan): string[] {
  return bridgeWithPorts(names.FABRIC_BRIDGE, undefined,
    plan.nodes.map((n) => ({ port: n.fabricPort, peer: names.NODE_UNDERLAY_IFNAME, netns: n.netns })));
}

/** The management network: a bridge in the control-plane namespace, which holds its address. */
export function managementLines(plan: LabPlan): string[] {
  return bridgeWithPorts(names.MGMT_BRIDGE, `${plan.controlIp}/${plan.mgmtPrefix}`,
    plan.nodes.map((n) => ({ port: n.mgmtPort, peer: names.NODE_MGMT_IFNAME, netns: n.netns })));
}

/**
 * A node: underlay and management addresses, native routes to the other
 * nodes' pod ranges, and one veth per pod (node side lxc-…), whose peer is
 * created directly inside the pod's namespace — never in the host's.
 */
export function nodeLines(plan: LabPlan, n: NodePlan): string[] {
  const lines = [
    'link set lo up',
    `link set ${names.NODE_UNDERLAY_IFNAME} addrgenmode none`,
    `addr add ${n.underlayIp}/${plan.underlayPrefix} dev ${names.NODE_UNDERLAY_IFNAME}`,
    `link set ${names.NODE_UNDERLAY_IFNAME} up`,
    `link set ${names.NODE_MGMT_IFNAME} addrgenmode none`,
    `addr add ${n.mgmtIp}/${plan.mgmtPrefix} dev ${names.NODE_MGMT_IFNAME}`,
    `link set ${names.NODE_MGMT_IFNAME} up`,
  ];
  if (plan.topology.routing === 'native') {
    for (const other of plan.nodes) {
      if (other !== n) lines.push(`route add ${other.podCidr} via ${other.underlayIp} dev ${names.NODE_UNDERLAY_IFNAME}`);
    }
  }
  for (const p of n.pods) lines.push(...lxcLines(p));
  return lines;
}

/** The node side of one pod: its veth, its /32 route, and a static neighbour (no ARP in the captures). */
export function lxcLines(p: Pick<PodPlan, 'lxc' | 'lxcMac' | 'podMac' | 'netns' | 'ip'>): string[] {
  return [
    `link add ${p.lxc} address ${p.lxcMac} type veth peer name ${names.POD_IFNAME} address ${p.podMac} netns ${p.netns}`,
    `link set ${p.lxc} addrgenmode none`,
    `link set ${p.lxc} up`,
    `route add ${p.ip}/32 dev ${p.lxc}`,
    `neigh replace ${p.ip} lladdr ${p.podMac} dev ${p.lxc} nud permanent`,
  ];
}

/** A pod: its /32 and a route to the cluster's pod range through the node's static gateway. */
export function podLines(podRange: string, p: Pick<PodPlan, 'ip' | 'lxcMac'>): string[] {
  return [
    'link set lo up',
    `link set ${names.POD_IFNAME} addrgenmode none`,
    `addr add ${p.ip}/32 dev ${names.POD_IFNAME}`,
    `link set ${names.POD_IFNAME} up`,
    `neigh replace ${POD_GATEWAY_IP} lladdr ${p.lxcMac} dev ${names.POD_IFNAME} nud permanent`,
    `route add ${podRange} via ${POD_GATEWAY_IP} dev ${names.POD_IFNAME} onlink`,
  ];
}

/** Each node's forwarding, as a line of bpf/build/netns-setup (`ip` has no sysctl). */
export const FORWARDING_SYSCTL_LINE = 'sysctl net/ipv4/ip_forward 1';

/**
 * bpf/build/netns-setup's input for one namespace: `ns NAME`, then the same
 * `ip -batch` lines (the helper reads the subset these functions write).
 */
export const inNetnsLines = (netns: string, lines: readonly string[]): string[] => [`ns ${netns}`, ...lines];

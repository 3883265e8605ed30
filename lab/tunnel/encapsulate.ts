// Tunnel mode with WireGuard (`routing: tunnel` + `encryption: {mode:
// wireguard}`), like Cilium's --wireguard-encapsulate (the default since
// 1.15): the pod packet is first put into VXLAN by cilium_vxlan (VNI = source
// identity, bpf/overlay.c), then the VXLAN packet itself goes into the
// WireGuard device, so the underlay carries only UDP 51871 between node IPs
// and the receiving node reads the identity from the VNI after decryption:
//
//   pod --lxc--> cilium_vxlan (cil_to_overlay: VNI, remote = peer node IP)
//     outer UDP 8472 to the peer's node IP
//       ip rule "ipproto udp dport 8472" -> table ENCAP: peer/32 dev wg<hash>
//         wireguard-go (allowed-ips: the peer's node IP /32) --UDP 51871--> eth0
//   peer: wg<hash> (decrypted outer VXLAN) -> local UDP 8472 -> cilium_vxlan
//     (cil_from_overlay: VNI -> identity mark) -> cil_to_container
//
// Cilium redirects the encapsulated packet to cilium_wg0 from bpf_host; here
// a policy-routing rule does it, selected by the VXLAN port, so only the
// tunnel's packets are steered: the agents' TCP 4250 handshakes and
// wireguard-go's own UDP 51871 to the same node IPs stay on the main table
// (eth0), as in Cilium. The ENCAP table ends in `unreachable default`: with
// the WireGuard route gone, VXLAN fails closed instead of leaking onto eth0.
//
// The VXLAN device's MTU leaves room for both headers inside wireguard-go's
// 1420-byte device, so an outer packet is never fragmented before encryption.
import type { Topology } from '../topology/model.ts';
import type { LabPlan, NodePlan } from '../core/plan.ts';
import { VXLAN_PORT, IPPROTO_UDP } from '../abi/generated.ts';

/** The routing table that sends VXLAN into WireGuard (any free id; the node namespace is the lab's own). */
export const ENCAP_ROUTE_TABLE = 100;
/** Before the main table's rule (32766). */
export const ENCAP_RULE_PRIORITY = 100;
/** wireguard-go's default device MTU. */
export const WG_DEVICE_MTU = 1420;
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;
export const ENCAPSULATED_VXLAN_MTU = WG_DEVICE_MTU - VXLAN_OVERHEAD;

/** VXLAN inside WireGuard: tunnel routing with WireGuard encryption. */
export function encapsulated(topology: Pick<Topology, 'routing' | 'encryption'>): boolean {
  return topology.routing === 'tunnel' && topology.encryption.mode === 'wireguard';
}

/** The policy rule that selects the tunnel's outer packets (iproute2 syntax after `rule add`). */
export const encapRuleSelector = () => `ipproto ${IPPROTO_UDP} dport ${VXLAN_PORT}`;

/**
 * `ip -batch` lines that steer the node's outer VXLAN packets into its
 * WireGuard device (pure). `wgIf` is the node's WireGuard device.
 */
export function encapsulationLines(plan: LabPlan, n: NodePlan, wgIf: string): string[] {
  return [
    `rule add priority ${ENCAP_RULE_PRIORITY} ${encapRuleSelector()} lookup ${ENCAP_ROUTE_TABLE}`,
    `route replace unreachable default table ${ENCAP_ROUTE_TABLE}`,
    ...plan.nodes
      .filter((other) => other !== n)
      .map((other) => `route replace ${other.underlayIp}/32 dev ${wgIf} src ${n.underlayIp} table ${ENCAP_ROUTE_TABLE}`),
  ];
}

/** WireGuard's allowed-ips for a peer: its pod CIDR in native routing, its node IP (the outer VXLAN source) when encapsulated. */
export function wgAllowedIps(topology: Pick<Topology, 'routing' | 'encryption'>, peer: NodePlan): string {
  return encapsulated(topology) ? `${peer.underlayIp}/32` : peer.podCidr;
}

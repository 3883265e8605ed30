// The address and name plan of a lab: everything `up` will create, computed
// from the topology alone (pure, unit-tested, no kernel access).
import { NODE_HOST_OFFSET, type Pod, type Topology } from '../topology/model.ts';
import { formatCIDR, hostAddress, mustParseCIDR, networkOf } from '../topology/ipv4.ts';
import * as names from './names.ts';

/** Pods reach their node through this link-local gateway (a static neighbour entry). */
export const POD_GATEWAY_IP = '169.254.1.1';

export interface PodPlan {
  name: string;
  node: string;
  netns: string;
  ip: string;
  /** Node-side veth in the node namespace (lxc-…). */
  lxc: string;
  lxcMac: string;
  podMac: string;
  spec: Pod;
}

export interface NodePlan {
  name: string;
  /** 1-based; Cilium's remote node id (0 means "this node"). */
  id: number;
  netns: string;
  underlayIp: string;
  mgmtIp: string;
  /** This node's /24 of the cluster pod range. */
  podCidr: string;
  fabricPort: string;
  mgmtPort: string;
  pods: PodPlan[];
}

export interface LabPlan {
  lab: string;
  topology: Topology;
  fabricNetns: string;
  controlNetns: string;
  /** Control plane's address on the management bridge. */
  controlIp: string;
  underlayPrefix: number;
  mgmtPrefix: number;
  nodes: NodePlan[];
}

export function planLab(topology: Topology, lab = topology.name): LabPlan {
  const podRange = networkOf(mustParseCIDR(topology.addressing.podCIDR));
  const underlay = mustParseCIDR(topology.addressing.underlayCIDR);
  const mgmt = mustParseCIDR(topology.addressing.managementCIDR);

  const nodes = topology.nodes.map((node, i): NodePlan => {
    const podCidr = { base: podRange.base + i * 256, prefix: 24 };
    const fixed = new Set(node.pods.map((p) => p.ip).filter(Boolean));
    let next = 2; // .1 is reserved for the node's own use
    const pods = node.pods.map((pod): PodPlan => {
      let ip = pod.ip;
      if (!ip) {
        while (fixed.has(hostAddress(podCidr, next))) next++;
        ip = hostAddress(podCidr, next++);
      }
      return {
        name: pod.name,
        node: node.name,
        netns: names.podNetns(lab, pod.name),
        ip,
        lxc: names.lxcIfname(pod.name),
        lxcMac: names.macAddress(lab, pod.name, 'lxc'),
        podMac: names.macAddress(lab, pod.name, 'pod'),
        spec: pod,
      };
    });
    return {
      name: node.name,
      id: i + 1,
      netns: names.nodeNetns(lab, node.name),
      underlayIp: hostAddress(underlay, NODE_HOST_OFFSET + i),
      mgmtIp: hostAddress(mgmt, NODE_HOST_OFFSET + i),
      podCidr: formatCIDR(podCidr),
      fabricPort: names.fabricPortIfname(node.name),
      mgmtPort: names.mgmtPortIfname(node.name),
      pods,
    };
  });

  return {
    lab,
    topology,
    fabricNetns: names.fabricNetns(lab),
    controlNetns: names.controlNetns(lab),
    controlIp: hostAddress(mgmt, 1),
    underlayPrefix: underlay.prefix,
    mgmtPrefix: mgmt.prefix,
    nodes,
  };
}

export function findPod(plan: LabPlan, pod: string): PodPlan | undefined {
  for (const n of plan.nodes) for (const p of n.pods) if (p.name === pod) return p;
  return undefined;
}

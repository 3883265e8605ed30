// Turns the control plane's snapshot into the shapes the datapath compiler
// takes (a plan and an identity allocation), so the agent and `mtless up`
// compile node state with one function.
import type { ClusterSnapshot } from '../control/registry.ts';
import type { LabPlan, NodePlan } from '../core/plan.ts';
import { lxcIfname, podNetns, nodeNetns } from '../core/names.ts';
import { labelKey, type IdentityAllocation } from '../policy/identity.ts';
import { DEFAULT_ADDRESSING, NAMESPACE_LABEL, SERVICE_ACCOUNT_LABEL, type Topology } from '../topology/model.ts';

export function planFromSnapshot(lab: string, snap: ClusterSnapshot): { plan: LabPlan; identities: IdentityAllocation } {
  const nodes: NodePlan[] = snap.nodes.map((n) => ({
    name: n.name,
    id: n.id,
    netns: nodeNetns(lab, n.name),
    underlayIp: n.underlayIp,
    mgmtIp: n.mgmtIp,
    podCidr: n.podCidr,
    fabricPort: '',
    mgmtPort: '',
    pods: snap.endpoints
      .filter((e) => e.node === n.name)
      .map((e) => {
        const { [NAMESPACE_LABEL]: namespace = 'default', [SERVICE_ACCOUNT_LABEL]: serviceAccount = 'default', ...labels } = e.labels;
        return {
          name: e.pod, node: n.name, netns: podNetns(lab, e.pod), ip: e.ip, lxc: lxcIfname(e.pod), lxcMac: '', podMac: '',
          spec: { name: e.pod, namespace, serviceAccount, labels, ip: e.ip },
        };
      }),
  }));
  const topology: Topology = {
    name: lab, routing: 'native', encryption: { mode: 'none', strict: false }, sockmap: false, addressing: DEFAULT_ADDRESSING,
    nodes: nodes.map((n) => ({ name: n.name, pods: n.pods.map((p) => p.spec) })),
    policies: snap.policies,
  };
  const identities: IdentityAllocation = {
    identities: snap.identities.map((i) => ({ id: i.id, labels: i.labels, key: labelKey(i.labels) })),
    byPod: new Map(snap.endpoints.map((e) => [e.pod, e.identity])),
    byKey: new Map(snap.identities.map((i) => [labelKey(i.labels), i.id])),
  };
  const plan: LabPlan = {
    lab, topology, fabricNetns: '', controlNetns: '', controlIp: '', underlayPrefix: 24, mgmtPrefix: 24, nodes,
  };
  return { plan, identities };
}

// What the relay knows about the cluster to name the ends of a flow, as
// Hubble's endpoint, identity and policy getters do: pod IP -> pod, namespace
// and node; identity -> labels; node id -> node; and which kind of policy
// entry allowed a connection (Hubble's policy_match_type). Built from the
// control plane's snapshot (or, for a lab without agents, from its state and
// topology). Pure.
import type { ClusterSnapshot } from '../control/registry.ts';
import { compilePolicies, type EndpointPolicy } from '../policy/compile.ts';
import { planFromSnapshot } from '../agent/cluster.ts';
import { allocateIdentities } from '../policy/identity.ts';
import { NAMESPACE_LABEL, podLabels, type Topology } from '../topology/model.ts';
import type { LabState } from '../core/state.ts';
import { RESERVED_IDENTITY_TEXT } from '../abi/generated.ts';

export interface PodInfo {
  pod: string;
  namespace: string;
  node: string;
  ip: string;
  identity: number;
}

/** Cilium's names of the reserved identities (pkg/identity reservedIdentityNames), 0 included. */
export function reservedIdentityName(id: number): string | undefined {
  if (id === 0) return 'unknown';
  return RESERVED_IDENTITY_TEXT[id]?.replace(/^reserved:/, '');
}

/** Cilium's policy match types (pkg/monitor/api PolicyMatch*). */
export const POLICY_MATCH_NONE = 0;
export const POLICY_MATCH_L3_ONLY = 1;
export const POLICY_MATCH_L3_L4 = 2;
export const POLICY_MATCH_L4_ONLY = 3;
export const POLICY_MATCH_ALL = 4;

export class Directory {
  private readonly byIp = new Map<string, PodInfo>();
  private readonly labelsById = new Map<number, string[]>();
  private readonly nodeNames = new Map<number, string>();
  private readonly policyByPod: Map<string, EndpointPolicy>;

  constructor(snapshot: ClusterSnapshot, lab: string) {
    for (const e of snapshot.endpoints) {
      this.byIp.set(e.ip, { pod: e.pod, namespace: e.labels[NAMESPACE_LABEL] ?? 'default', node: e.node, ip: e.ip, identity: e.identity });
    }
    // Hubble lists an identity's labels with their source, sorted: "k8s:app=client".
    for (const i of snapshot.identities) {
      this.labelsById.set(i.id, Object.entries(i.labels).map(([k, v]) => `k8s:${k}=${v}`).sort());
    }
    for (const n of snapshot.nodes) this.nodeNames.set(n.id, n.name);
    const { plan, identities } = planFromSnapshot(lab, snapshot);
    this.policyByPod = compilePolicies(plan.topology, identities);
  }

  pod(ip: string): PodInfo | undefined {
    return this.byIp.get(ip);
  }

  /** An identity's labels as Hubble shows them ("reserved:world" for reserved ones). */
  labels(identity: number): string[] {
    const reserved = RESERVED_IDENTITY_TEXT[identity];
    if (reserved) return [reserved];
    return this.labelsById.get(identity) ?? [];
  }

  /** Pods of an identity on one node (an auth key names identities, not pods). */
  podsOf(identity: number, node: string): PodInfo[] {
    return [...this.byIp.values()].filter((p) => p.identity === identity && p.node === node);
  }

  nodeName(id: number): string | undefined {
    return this.nodeNames.get(id);
  }

  /**
   * Which entry of the local pod's policy allowed a new connection, looked up
   * in the datapath's order (L3+L4, L4-only, L3-only, allow-all); none when the
   * direction is not enforced.
   */
  matchType(localPod: string | undefined, direction: 'ingress' | 'egress', peerIdentity: number, protocol: number, port: number): number {
    const policy = localPod === undefined ? undefined : this.policyByPod.get(localPod);
    if (!policy) return POLICY_MATCH_NONE;
    if (!(direction === 'ingress' ? policy.ingressEnforced : policy.egressEnforced)) return POLICY_MATCH_NONE;
    const has = (peer: number, proto: number, p: number) =>
      policy.entries.some((e) => e.direction === direction && e.peerIdentity === peer && e.protocol === proto && e.port === p);
    if (has(peerIdentity, protocol, port)) return POLICY_MATCH_L3_L4;
    if (has(0, protocol, port)) return POLICY_MATCH_L4_ONLY;
    if (has(peerIdentity, 0, 0)) return POLICY_MATCH_L3_ONLY;
    if (has(0, 0, 0)) return POLICY_MATCH_ALL;
    return POLICY_MATCH_NONE;
  }
}

/**
 * The snapshot the control plane would publish, for a lab brought up without
 * agents: pods from its state, namespaces and policies from its topology,
 * identities allocated as `up` allocated them.
 */
export function snapshotFromTopology(topology: Topology | undefined, state: LabState): ClusterSnapshot {
  if (!topology) return snapshotFromState(state);
  const identities = allocateIdentities(topology);
  const specs = new Map(topology.nodes.flatMap((n) => n.pods.map((p) => [p.name, p] as const)));
  return {
    version: 0,
    nodes: state.nodes.map((n) => ({ name: n.name, id: n.id, underlayIp: n.underlayIp, mgmtIp: n.mgmtIp, podCidr: n.podCidr })),
    endpoints: state.pods.map((p) => {
      const spec = specs.get(p.name);
      return {
        pod: p.name, node: p.node, ip: p.ip, identity: p.identity ?? identities.byPod.get(p.name) ?? 0,
        labels: podLabels({ labels: p.labels, namespace: spec?.namespace ?? 'default', serviceAccount: spec?.serviceAccount ?? 'default' }),
      };
    }),
    identities: identities.identities.map((i) => ({ id: i.id, labels: i.labels })),
    policies: topology.policies,
  };
}

/** Without a readable topology: the state's pods and identities, namespace "default", no policies. */
function snapshotFromState(state: LabState): ClusterSnapshot {
  const endpoints = state.pods.map((p) => ({
    pod: p.name, node: p.node, ip: p.ip, identity: p.identity ?? 0,
    labels: podLabels({ labels: p.labels, namespace: 'default', serviceAccount: 'default' }),
  }));
  const identities = new Map(endpoints.filter((e) => e.identity).map((e) => [e.identity, e.labels]));
  return {
    version: 0,
    nodes: state.nodes.map((n) => ({ name: n.name, id: n.id, underlayIp: n.underlayIp, mgmtIp: n.mgmtIp, podCidr: n.podCidr })),
    endpoints,
    identities: [...identities].map(([id, labels]) => ({ id, labels })),
    policies: [],
  };
}

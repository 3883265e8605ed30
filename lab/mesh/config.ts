// The per-connection mTLS mesh (claim C7, the Istio-ambient contrast): what
// the mesh controller (lab/mesh/mesh.ts) writes for each node proxy
// (lab/mesh/proxy.ts), and the pure derivation of "who may reach what" from a
// topology's policies. No kernel, no processes here.
import type { Topology } from '../topology/model.ts';
import { MESH_TRUST_DOMAIN } from '../spiffe/id.ts';
import { stateDir } from '../core/names.ts';
import { MESH_PROXY } from '../core/daemons.ts';

/** nftables table of the redirect, created in each node namespace only (it goes with the namespace). */
export const MESH_TABLE = 'mtless_mesh';
export const PROXY_ROLE = MESH_PROXY.role;


/**
 * Istio's workload identity: `spiffe://cluster.local/ns/<namespace>/sa/<service account>`.
 * Namespace and service account are the pod's (topology fields, both "default" when absent, as in Kubernetes).
 */
export function workloadSpiffeId(namespace: string, serviceAccount: string, trustDomain = MESH_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

const WORKLOAD_ID_RE = /^spiffe:\/\/([^/]+)\/ns\/([a-z0-9-]+)\/sa\/([a-z0-9.-]+)$/;
export function parseWorkloadSpiffeId(uri: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const m = WORKLOAD_ID_RE.exec(uri);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined;
}

/** A pod on this proxy's node: its SVID and the veth its traffic arrives on. */
export interface MeshWorkload {
  pod: string;
  ip: string;
  /** Node side of the pod's veth: the redirect matches it, so the source is known by interface, not by IP. */
  lxc: string;
  spiffeId: string;
  certFile: string;
  keyFile: string;
}

/** One entry of the outbound port map: (source pod's veth, destination) → a local listener. */
export interface OutboundRoute {
  localPort: number;
  srcPod: string;
  srcLxc: string;
  dstPod: string;
  dstIp: string;
  dstPort: number;
  /** The destination node's proxy (its underlay address, port 15008). */
  dstNodeIp: string;
  /** The identity the destination proxy must present for this pod. */
  dstSpiffeId: string;
}

/** A meshed port of a local pod and the identities allowed to reach it (Istio AuthorizationPolicy principals). */
export interface InboundRule {
  pod: string;
  ip: string;
  port: number;
  allow: string[];
}

export interface ProxyConfig {
  lab: string;
  node: string;
  underlayIp: string;
  bundleFile: string;
  keyLogFile: string;
  generation: number;
  workloads: MeshWorkload[];
  outbound: OutboundRoute[];
  inbound: InboundRule[];
}

export interface MeshPod {
  name: string;
  node: string;
  ip: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
}

/** A meshed destination: a pod's TCP port that some ingress rule names, with the principals it admits. */
export interface MeshDestination {
  pod: string;
  port: number;
  allow: string[];
}

const selects = (sel: { matchLabels?: Record<string, string> }, labels: Record<string, string>) =>
  Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

/**
 * The topology's ingress rules read as Istio AuthorizationPolicies: for each
 * TCP port of a rule, the destination pods its endpointSelector selects admit
 * the SPIFFE IDs (ns/sa) of the pods its fromEndpoints select, as they are at
 * start. Rules without ports are not meshed (no port to redirect).
 */
export function meshDestinations(topology: Topology, pods: MeshPod[]): MeshDestination[] {
  const byKey = new Map<string, MeshDestination>();
  for (const policy of topology.policies) {
    for (const dst of pods.filter((p) => selects(policy.endpointSelector, p.labels))) {
      for (const rule of policy.ingress ?? []) {
        const principals = pods.filter((p) => rule.fromEndpoints.some((s) => selects(s, p.labels))).map((p) => workloadSpiffeId(p.namespace, p.serviceAccount));
        for (const pp of rule.toPorts.flatMap((r) => r.ports)) {
          if (pp.protocol === 'UDP') continue;
          const port = Number(pp.port);
          const key = `${dst.name}:${port}`;
          const d = byKey.get(key) ?? { pod: dst.name, port, allow: [] };
          d.allow = [...new Set([...d.allow, ...principals])].sort();
          byKey.set(key, d);
        }
      }
    }
  }
  return [...byKey.values()];
}

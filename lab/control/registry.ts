// The control plane's view of the cluster: nodes, endpoints (pod IP →
// identity, node) and identities allocated from labels. Pure data; the
// server publishes a snapshot of it to every node agent after each change.
import type { Labels, Policy } from '../topology/model.ts';

/** Cilium allocates cluster identities from 256 up; 1–255 are reserved. */
export const FIRST_CLUSTER_IDENTITY = 256;

export interface NodeInfo {
  name: string;
  /** 1-based; the datapath's remote node id (0 = "this node"). */
  id: number;
  underlayIp: string;
  mgmtIp: string;
  podCidr: string;
  /** Published by the node's agent (Cilium: the CiliumNode annotation network.cilium.io/wg-pub-key). */
  wireguardPublicKey?: string;
}

export interface Endpoint {
  pod: string;
  node: string;
  ip: string;
  /** The pod's labels including the implicit namespace/service-account ones. */
  labels: Labels;
  identity: number;
}

export interface IdentityInfo {
  id: number;
  labels: Labels;
}

export interface ClusterSnapshot {
  /** Increases with every change. */
  version: number;
  nodes: NodeInfo[];
  endpoints: Endpoint[];
  identities: IdentityInfo[];
  policies: Policy[];
}

/** Labels in one canonical string: the identity of a label set. */
export function canonicalLabels(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(';');
}

export class Registry {
  /**
   * Starts at the wall clock (ms) so that a restarted control plane still
   * publishes higher versions than the agents have seen.
   */
  private version = Date.now();
  private readonly identities = new Map<string, IdentityInfo>();
  private readonly endpoints = new Map<string, Endpoint>();
  private nextIdentity = FIRST_CLUSTER_IDENTITY;

  constructor(
    private readonly nodes: NodeInfo[],
    private readonly policies: Policy[],
    /** Initial identities (deterministic, from the topology), keyed by canonical labels. */
    initial: IdentityInfo[] = [],
  ) {
    for (const i of initial) {
      this.identities.set(canonicalLabels(i.labels), i);
      this.nextIdentity = Math.max(this.nextIdentity, i.id + 1);
    }
  }

  /** An existing label set keeps its id; a new one gets the next free id. */
  identityFor(labels: Labels): IdentityInfo {
    const key = canonicalLabels(labels);
    let info = this.identities.get(key);
    if (!info) {
      info = { id: this.nextIdentity++, labels: { ...labels } };
      this.identities.set(key, info);
    }
    return info;
  }

  addEndpoint(pod: string, node: string, ip: string, labels: Labels): Endpoint {
    if (this.endpoints.has(pod)) throw new Error(`pod "${pod}" already exists`);
    if (!this.nodes.some((n) => n.name === node)) throw new Error(`no node "${node}" (valid: ${this.nodes.map((n) => n.name).join(', ')})`);
    const taken = [...this.endpoints.values()].find((e) => e.ip === ip);
    if (taken) throw new Error(`IP ${ip} is in use by pod "${taken.pod}"`);
    const ep: Endpoint = { pod, node, ip, labels: { ...labels }, identity: this.identityFor(labels).id };
    this.endpoints.set(pod, ep);
    this.version++;
    return ep;
  }

  /**
   * Removes a pod. An identity no pod uses any more is deleted — which is how
   * the lab revokes it: agents garbage-collect its auth entries and SVIDs.
   */
  deleteEndpoint(pod: string): Endpoint {
    const ep = this.endpoints.get(pod);
    if (!ep) throw new Error(`no pod "${pod}"`);
    this.endpoints.delete(pod);
    if (![...this.endpoints.values()].some((e) => e.identity === ep.identity)) {
      this.identities.delete(canonicalLabels(ep.labels));
    }
    this.version++;
    return ep;
  }

  /** A node's published WireGuard public key; false when it is the one already held. */
  setWireguardKey(node: string, publicKey: string): boolean {
    const n = this.nodes.find((x) => x.name === node);
    if (!n) throw new Error(`no node "${node}"`);
    if (n.wireguardPublicKey === publicKey) return false;
    n.wireguardPublicKey = publicKey;
    this.version++;
    return true;
  }

  /** Identities that some pod on `node` has: the ones that node may hold SVIDs for. */
  identitiesOnNode(node: string): Set<number> {
    return new Set([...this.endpoints.values()].filter((e) => e.node === node).map((e) => e.identity));
  }

  snapshot(): ClusterSnapshot {
    return structuredClone({
      version: this.version,
      nodes: this.nodes,
      endpoints: [...this.endpoints.values()].sort((a, b) => a.pod.localeCompare(b.pod)),
      identities: [...this.identities.values()].sort((a, b) => a.id - b.id),
      policies: this.policies,
    });
  }
}

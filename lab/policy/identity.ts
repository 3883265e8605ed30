// Security identities, as Cilium allocates them: one numeric identity per
// distinct label set, shared by every pod that carries exactly those labels
// (including the implicit namespace and service-account labels). Pure and
// deterministic: the same topology always gets the same numbers.
import { podLabels, type Labels, type Topology } from '../topology/model.ts';
import {
  IDENTITY_HOST,
  IDENTITY_MIN_CLUSTER,
  IDENTITY_REMOTE_NODE,
  IDENTITY_WORLD,
  RESERVED_IDENTITY_TEXT,
} from '../abi/generated.ts';

export { IDENTITY_HOST, IDENTITY_MIN_CLUSTER, IDENTITY_REMOTE_NODE, IDENTITY_WORLD };

export interface Identity {
  id: number;
  /** The full label set, implicit labels included. */
  labels: Labels;
  /** Canonical form: sorted `k8s:key=value` joined by ";" (Cilium prefixes labels with their source). */
  key: string;
}

export interface IdentityAllocation {
  /** Cluster identities, by ascending id. */
  identities: Identity[];
  /** Pod name → identity. */
  byPod: ReadonlyMap<string, number>;
  /** Canonical label key → identity. */
  byKey: ReadonlyMap<string, number>;
}

/** Canonical, order-independent text of a label set. */
export function labelKey(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `k8s:${k}=${v}`)
    .sort(compareCodeUnits)
    .join(';');
}

/** Plain code-unit order: the same on every machine and locale. */
function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Gives each distinct label set an id from IDENTITY_MIN_CLUSTER (256) up, in
 * the sorted order of the canonical label keys; ids below 256 stay reserved
 * (host 1, world 2, unmanaged 3, health 4, init 5, remote-node 6).
 */
export function allocateIdentities(topology: Topology): IdentityAllocation {
  const labelsByKey = new Map<string, Labels>();
  const keyByPod = new Map<string, string>();
  for (const node of topology.nodes) {
    for (const pod of node.pods) {
      const labels = podLabels(pod);
      const key = labelKey(labels);
      labelsByKey.set(key, labels);
      keyByPod.set(pod.name, key);
    }
  }
  const keys = [...labelsByKey.keys()].sort(compareCodeUnits);
  const identities = keys.map((key, i): Identity => ({ id: IDENTITY_MIN_CLUSTER + i, labels: labelsByKey.get(key)!, key }));
  const byKey = new Map(identities.map((identity) => [identity.key, identity.id]));
  const byPod = new Map([...keyByPod].map(([pod, key]) => [pod, byKey.get(key)!]));
  return { identities, byPod, byKey };
}

/** "reserved:world", or the label key of a cluster identity, or the bare number. */
export function identityName(id: number, allocation?: IdentityAllocation): string {
  const reserved = RESERVED_IDENTITY_TEXT[id];
  if (reserved) return reserved;
  return allocation?.identities.find((identity) => identity.id === id)?.key ?? String(id);
}

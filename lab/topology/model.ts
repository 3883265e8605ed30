// The validated, defaults-filled shape of a topology file. Pure data: nothing
// under lab/topology/ runs a process or touches the kernel.

/** Lab names: short DNS-like labels, so every name derived from them (lab/core/names.ts) stays within limits. */
export const LAB_NAME_RE = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$/;
/** Node and pod names: DNS labels (Kubernetes object names). */
export const OBJECT_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Names the command line gives its own parts where a node or pod name may
 * stand (`mtless restart LAB cp`, `mtless logs LAB cp`, capture links
 * `cp/DEV` and `fabric/DEV`): no node or pod may take them. A Map, so that
 * no name is looked up on Object.prototype.
 */
export const RESERVED_NAMES: ReadonlyMap<string, string> = new Map([
  ['cp', 'the control plane'],
  ['fabric', 'the underlay fabric'],
]);

export type Labels = Record<string, string>;

/** One matchExpressions requirement (Kubernetes LabelSelectorRequirement). */
export interface SelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  /** Non-empty for In and NotIn, absent for Exists and DoesNotExist. */
  values?: string[];
}

export interface Selector {
  matchLabels: Labels;
  /** ANDed with matchLabels, as in Kubernetes. */
  matchExpressions?: SelectorRequirement[];
}

/** Cilium's entities the lab's identities can express (world, cluster, host, remote-node, all). */
export type Entity = 'world' | 'cluster' | 'host' | 'remote-node' | 'all';

export type Protocol = 'TCP' | 'UDP' | 'ANY';

export interface PortProtocol {
  /** 1..65535; 0 means "any port". */
  port: number;
  /** Last port of a range starting at `port` (Cilium's endPort); the compiler expands it. */
  endPort?: number;
  protocol: Protocol;
}

export interface PortRule {
  ports: PortProtocol[];
}

export interface Authentication {
  /** Cilium's enum; test-always-fail selects the auth type whose handler always fails. */
  mode: 'required' | 'disabled' | 'test-always-fail';
}

export interface IngressRule {
  fromEndpoints: Selector[];
  fromEntities?: Entity[];
  /** Only 0.0.0.0/0 (reserved:world): the lab's ipcache holds no CIDR identities. */
  fromCIDR?: string[];
  toPorts: PortRule[];
  authentication?: Authentication;
}

export interface EgressRule {
  toEndpoints: Selector[];
  toEntities?: Entity[];
  /** Only 0.0.0.0/0 (reserved:world): the lab's ipcache holds no CIDR identities. */
  toCIDR?: string[];
  toPorts: PortRule[];
  authentication?: Authentication;
}

/** Deny rules (ingressDeny/egressDeny): drop 181, and a deny wins over every allow. */
export type IngressDenyRule = Omit<IngressRule, 'authentication'>;
export type EgressDenyRule = Omit<EgressRule, 'authentication'>;

/** CiliumNetworkPolicy's spec, with the policy's name beside it. */
export interface Policy {
  name: string;
  endpointSelector: Selector;
  ingress?: IngressRule[];
  egress?: EgressRule[];
  ingressDeny?: IngressDenyRule[];
  egressDeny?: EgressDenyRule[];
}

export interface Pod {
  name: string;
  /** Kubernetes namespace; default "default". */
  namespace: string;
  /** Default "default". */
  serviceAccount: string;
  labels: Labels;
  /** Fixed pod IP; default: the next free address of the node's pod range. */
  ip?: string;
}

export interface Node {
  name: string;
  pods: Pod[];
}

export interface Addressing {
  /** Cluster pod range, split into one /24 per node. Default 10.244.0.0/16. */
  podCIDR: string;
  /** Node underlay network on the fabric bridge. Default 172.30.0.0/24. */
  underlayCIDR: string;
  /** Control-plane management network. Default 172.31.0.0/24. */
  managementCIDR: string;
}

export interface Encryption {
  mode: 'none' | 'wireguard' | 'ipsec';
  /** Strict mode: drop unencrypted pod traffic to remote nodes (reason 195). */
  strict: boolean;
}

export interface Topology {
  name: string;
  routing: 'native' | 'tunnel';
  encryption: Encryption;
  sockmap: boolean;
  addressing: Addressing;
  nodes: Node[];
  policies: Policy[];
}

/** One problem found in a topology file, with where it is. */
export interface TopologyIssue {
  /** e.g. `nodes[1].pods[0].name` ("" for the file as a whole). */
  path: string;
  message: string;
}

export const DEFAULT_ADDRESSING: Addressing = {
  podCIDR: '10.244.0.0/16',
  underlayCIDR: '172.30.0.0/24',
  managementCIDR: '172.31.0.0/24',
};

/** Label keys the lab sets on every pod itself, as Kubernetes and Cilium do. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';

/**
 * Node i gets host address NODE_HOST_OFFSET + i on the underlay and management
 * networks (as lab/core/plan.ts assigns them); the hosts below are kept for the
 * control plane (.1) and other lab services.
 */
export const NODE_HOST_OFFSET = 10;

/** A pod's labels including the implicit namespace and service-account labels. */
export function podLabels(pod: Pick<Pod, 'labels' | 'namespace' | 'serviceAccount'>): Labels {
  // Spread defines own properties (an own "__proto__" key stays a key); `=` would not.
  return { ...pod.labels, [NAMESPACE_LABEL]: pod.namespace, [SERVICE_ACCOUNT_LABEL]: pod.serviceAccount };
}

/**
 * True when every matchLabels pair is among `labels` and every
 * matchExpressions requirement holds (so an empty selector matches everything).
 */
export function selectorMatches(selector: Selector, labels: Labels): boolean {
  const has = (key: string) => Object.hasOwn(labels, key);
  return (
    Object.entries(selector.matchLabels).every(([key, value]) => has(key) && labels[key] === value) &&
    (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
      if (operator === 'Exists') return has(key);
      if (operator === 'DoesNotExist') return !has(key);
      const inValues = has(key) && values.includes(labels[key]!);
      return operator === 'In' ? inValues : !inValues; // NotIn also matches a pod without the key, as in Kubernetes
    })
  );
}

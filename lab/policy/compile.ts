// CiliumNetworkPolicy-shaped policies → per-endpoint policy-map entries.
// Pure (no kernel access); lab/datapath/state.ts turns the result into
// cilium_policy keys once the endpoints' ifindexes are known.
//
// Semantics (Cilium's, restricted to what the topology model can say):
// - A pod selected by any policy with at least one ingress (egress) rule is
//   default-deny in that direction; only the entries below are allowed.
//   Without such a rule the direction is not enforced at all.
// - Allow rules' union is allowed; ingressDeny/egressDeny entries drop (181)
//   and win over every allow, however specific: an allow a deny covers
//   becomes a deny, and where they only overlap the overlap gets its own,
//   more specific deny entry (the datapath's first, most specific hit wins).
//   Deny rules enforce their direction too, as in Cilium.
// - Peers: fromEndpoints/toEndpoints, fromEntities/toEntities (world 2,
//   host 1, remote-node 6, cluster = every cluster identity and the reserved
//   ones inside the cluster, all = any peer) and fromCIDR/toCIDR 0.0.0.0/0
//   (world). A rule with toPorts and no peer field selects every peer, as
//   Cilium's; one with neither selects nothing. endPort ranges expand to one
//   entry per port.
// - fromEndpoints/toEndpoints select cluster identities by labels; `{}`
//   selects every pod. The model's policies have no namespace, so selectors
//   are cluster-wide unless they name io.kubernetes.pod.namespace.
// - toPorts omitted: every port and protocol (an L3-only entry). A port with
//   protocol ANY means TCP and UDP on that port; port 0 means any port.
// - `authentication: {mode: required}` → auth type 1 (spire),
//   `test-always-fail` → auth type 2 (Cilium's test type, whose handler
//   always fails), `disabled` → 0; each marked explicit. Narrower entries
//   without an explicit auth type inherit the strongest (numerically
//   highest, as in Cilium) explicit auth type of the broader entries that
//   cover them (as Cilium derives auth types), so a port rule cannot bypass an L3 rule's
//   requirement when the datapath's first, most specific lookup hits it.
// - Traffic from the local host is allowed into enforced pods, as Cilium's
//   default `allow-localhost: always` does (kubelet probes).
import { podLabels, selectorMatches, type Authentication, type Entity, type PortProtocol, type PortRule, type Selector, type Topology } from '../topology/model.ts';
import {
  AUTH_TYPE_ALWAYS_FAIL, AUTH_TYPE_DISABLED, AUTH_TYPE_EXPLICIT, AUTH_TYPE_SPIRE,
  IDENTITY_HEALTH, IDENTITY_HOST, IDENTITY_INIT, IDENTITY_REMOTE_NODE, IDENTITY_UNMANAGED, IDENTITY_WORLD, IPPROTO_TCP, IPPROTO_UDP,
} from '../abi/generated.ts';
import type { IdentityAllocation } from './identity.ts';

export type Direction = 'ingress' | 'egress';

/** One allow entry of one endpoint; 0 in peer, port or protocol is a wildcard. */
export interface PolicyEntry {
  direction: Direction;
  /** Peer identity, 0 = any. */
  peerIdentity: number;
  /** IPPROTO_*, 0 = any. */
  protocol: number;
  /** Destination port, 0 = any. */
  port: number;
  /** From ingressDeny/egressDeny: the datapath drops with 181. */
  deny: boolean;
  /** AUTH_TYPE_* (without the explicit bit). */
  authType: number;
  /** Set by a rule's own `authentication`, rather than derived from a broader entry. */
  explicitAuth: boolean;
  /** Policies that produced the entry ("allow-localhost" for the implicit host entry). */
  sources: string[];
}

export interface EndpointPolicy {
  pod: string;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** Sorted by direction, peer, protocol, port. */
  entries: PolicyEntry[];
}

/** The auth type a rule's `authentication.mode` asks for (Cilium's AuthType of the CRD's mode). */
export const AUTH_TYPE_OF_MODE: Record<Authentication['mode'], number> = {
  disabled: AUTH_TYPE_DISABLED,
  required: AUTH_TYPE_SPIRE,
  'test-always-fail': AUTH_TYPE_ALWAYS_FAIL,
};

/** The policy_entry.auth_type byte: the type, with bit 7 when explicit. */
export const authTypeByte = (e: Pick<PolicyEntry, 'authType' | 'explicitAuth'>) => e.authType | (e.explicitAuth ? AUTH_TYPE_EXPLICIT : 0);

/** Every pod's policy, by pod name. */
export function compilePolicies(topology: Topology, identities: IdentityAllocation): Map<string, EndpointPolicy> {
  const result = new Map<string, EndpointPolicy>();
  for (const node of topology.nodes) {
    for (const pod of node.pods) {
      const labels = podLabels(pod);
      const selecting = topology.policies.filter((p) => selectorMatches(p.endpointSelector, labels));
      const rules = selecting.flatMap((p) => [
        ...(p.ingress ?? []).map((r) => ({ policy: p.name, direction: 'ingress' as const, deny: false, peers: peersOf(r.fromEndpoints, r.fromEntities, r.fromCIDR, r.toPorts, identities), ...r })),
        ...(p.egress ?? []).map((r) => ({ policy: p.name, direction: 'egress' as const, deny: false, peers: peersOf(r.toEndpoints, r.toEntities, r.toCIDR, r.toPorts, identities), ...r })),
        ...(p.ingressDeny ?? []).map((r) => ({ policy: p.name, direction: 'ingress' as const, deny: true, peers: peersOf(r.fromEndpoints, r.fromEntities, r.fromCIDR, r.toPorts, identities), toPorts: r.toPorts, authentication: undefined })),
        ...(p.egressDeny ?? []).map((r) => ({ policy: p.name, direction: 'egress' as const, deny: true, peers: peersOf(r.toEndpoints, r.toEntities, r.toCIDR, r.toPorts, identities), toPorts: r.toPorts, authentication: undefined })),
      ]);

      const raw: PolicyEntry[] = [];
      for (const rule of rules) {
        const auth = rule.authentication;
        const authType = auth ? AUTH_TYPE_OF_MODE[auth.mode] : AUTH_TYPE_DISABLED;
        for (const peerIdentity of rule.peers) {
          for (const { protocol, port } of portKeys(rule.toPorts.flatMap((r) => r.ports))) {
            raw.push({ direction: rule.direction, peerIdentity, protocol, port, deny: rule.deny, authType, explicitAuth: auth !== undefined, sources: [rule.policy] });
          }
        }
      }
      const ingressEnforced = rules.some((r) => r.direction === 'ingress');
      const egressEnforced = rules.some((r) => r.direction === 'egress');
      if (ingressEnforced) {
        raw.push({ direction: 'ingress', peerIdentity: IDENTITY_HOST, protocol: 0, port: 0, deny: false, authType: AUTH_TYPE_DISABLED, explicitAuth: false, sources: ['allow-localhost'] });
      }
      result.set(pod.name, {
        pod: pod.name,
        identity: identities.byPod.get(pod.name) ?? 0,
        ingressEnforced,
        egressEnforced,
        entries: deriveAuth(denyWins(mergeEntries(raw))).sort(compareEntries),
      });
    }
  }
  return result;
}

/** Cluster identities any selector matches, ascending. */
function selectIdentities(selectors: Selector[], identities: IdentityAllocation): number[] {
  return identities.identities.filter((identity) => selectors.some((s) => selectorMatches(s, identity.labels))).map((i) => i.id);
}

/** Reserved identities of Cilium's entities; cluster adds every cluster identity. */
const ENTITY_IDENTITIES: Record<Entity, number[]> = {
  world: [IDENTITY_WORLD],
  host: [IDENTITY_HOST],
  'remote-node': [IDENTITY_REMOTE_NODE],
  cluster: [IDENTITY_HOST, IDENTITY_UNMANAGED, IDENTITY_HEALTH, IDENTITY_INIT, IDENTITY_REMOTE_NODE],
  all: [0],
};

/** A rule's peer identities, ascending and once each; 0 = any peer. */
function peersOf(selectors: Selector[], entities: Entity[] | undefined, cidrs: string[] | undefined, toPorts: PortRule[], identities: IdentityAllocation): number[] {
  const ids = new Set(selectIdentities(selectors, identities));
  for (const entity of entities ?? []) {
    for (const id of ENTITY_IDENTITIES[entity]) ids.add(id);
    if (entity === 'cluster') for (const identity of identities.identities) ids.add(identity.id);
  }
  if ((cidrs ?? []).length > 0) ids.add(IDENTITY_WORLD); // validate admits only 0.0.0.0/0
  // Cilium: an L4-only rule (no peer field) applies to every peer.
  if (selectors.length === 0 && !entities?.length && !cidrs?.length && toPorts.length > 0) ids.add(0);
  return ids.has(0) ? [0] : [...ids].sort((a, b) => a - b);
}

/** toPorts → (protocol, port) keys; none means every port and protocol. */
function portKeys(ports: PortProtocol[]): { protocol: number; port: number }[] {
  if (ports.length === 0) return [{ protocol: 0, port: 0 }];
  const single = ports.flatMap(({ port, endPort, protocol }) => {
    const last = endPort !== undefined && port !== 0 ? endPort : port;
    return Array.from({ length: Math.max(1, last - port + 1) }, (_, i) => ({ port: port + i, protocol }));
  });
  return single.flatMap(({ port, protocol }) => {
    if (protocol === 'TCP') return [{ protocol: IPPROTO_TCP, port }];
    if (protocol === 'UDP') return [{ protocol: IPPROTO_UDP, port }];
    // ANY: every protocol when no port is given (L3-only), else TCP and UDP on that port.
    return port === 0 ? [{ protocol: 0, port: 0 }] : [{ protocol: IPPROTO_TCP, port }, { protocol: IPPROTO_UDP, port }];
  });
}

const entryKey = (e: PolicyEntry) => `${e.direction}/${e.peerIdentity}/${e.protocol}/${e.port}`;

/** Rules that produce the same key merge: a deny beats an allow; an explicit auth type beats a missing one; the strongest wins. */
function mergeEntries(entries: PolicyEntry[]): PolicyEntry[] {
  const byKey = new Map<string, PolicyEntry>();
  for (const e of entries) {
    const seen = byKey.get(entryKey(e));
    if (!seen) {
      byKey.set(entryKey(e), { ...e, sources: [...e.sources] });
      continue;
    }
    if (e.deny && !seen.deny) Object.assign(seen, { deny: true, authType: AUTH_TYPE_DISABLED, explicitAuth: false });
    if (seen.deny) {
      for (const s of e.sources) if (!seen.sources.includes(s)) seen.sources.push(s);
      continue;
    }
    if (e.explicitAuth && (!seen.explicitAuth || e.authType > seen.authType)) {
      seen.authType = e.authType;
      seen.explicitAuth = true;
    }
    for (const s of e.sources) if (!seen.sources.includes(s)) seen.sources.push(s);
  }
  return [...byKey.values()];
}

/** The packets both entries match, as an entry key, or undefined when they share none. */
function intersection(a: PolicyEntry, b: PolicyEntry): Pick<PolicyEntry, 'peerIdentity' | 'protocol' | 'port'> | undefined {
  const meet = (x: number, y: number) => (x === 0 ? y : y === 0 || x === y ? x : undefined);
  const peerIdentity = meet(a.peerIdentity, b.peerIdentity);
  const protocol = meet(a.protocol, b.protocol);
  const port = meet(a.port, b.port);
  if (a.direction !== b.direction || peerIdentity === undefined || protocol === undefined || port === undefined) return undefined;
  // Keys with a port but no protocol do not exist (portKeys gives a port its protocols).
  if (protocol === 0 && port !== 0) return undefined;
  return { peerIdentity, protocol, port };
}

/**
 * Deny wins: the overlap of each allow with each deny becomes a deny entry
 * (the allow itself when the deny covers it), always at least as specific
 * as the allow, so the datapath's first hit is the deny.
 */
function denyWins(entries: PolicyEntry[]): PolicyEntry[] {
  const denies = entries.filter((e) => e.deny);
  if (denies.length === 0) return entries;
  const added: PolicyEntry[] = [];
  for (const allow of entries.filter((e) => !e.deny)) {
    for (const deny of denies) {
      const overlap = intersection(allow, deny);
      if (overlap) added.push({ ...deny, ...overlap, sources: [...deny.sources] });
    }
  }
  return mergeEntries([...entries, ...added]);
}

/** True when `broad` matches every packet `narrow` matches. */
function covers(broad: PolicyEntry, narrow: PolicyEntry): boolean {
  return (
    broad !== narrow &&
    broad.direction === narrow.direction &&
    (broad.peerIdentity === 0 || broad.peerIdentity === narrow.peerIdentity) &&
    (broad.protocol === 0 || broad.protocol === narrow.protocol) &&
    (broad.port === 0 || broad.port === narrow.port)
  );
}

/** Entries without an explicit auth type take the strongest explicit one that covers them. */
function deriveAuth(entries: PolicyEntry[]): PolicyEntry[] {
  return entries.map((e) => {
    if (e.explicitAuth || e.deny) return e;
    const inherited = entries.filter((b) => b.explicitAuth && !b.deny && covers(b, e)).reduce((max, b) => Math.max(max, b.authType), e.authType);
    return { ...e, authType: inherited };
  });
}

function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return a.direction.localeCompare(b.direction) || a.peerIdentity - b.peerIdentity || a.protocol - b.protocol || a.port - b.port;
}

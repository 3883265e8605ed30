// CiliumNetworkPolicy-shaped policies → per-endpoint policy-map entries.
// Pure (no kernel access); lab/datapath/state.ts turns the result into
// cilium_policy keys once the endpoints' ifindexes are known.
//
// Semantics (Cilium's, restricted to what the topology model can say):
// - A pod selected by any policy with at least one ingress (egress) rule is
//   default-deny in that direction; only the entries below are allowed.
//   Without such a rule the direction is not enforced at all.
// - Rules only allow (the model has no deny rules); their union is allowed.
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
import type { Authentication, PortProtocol, Selector, Topology } from '../topology/model.ts';
import { podLabels, selectorMatches } from '../topology/validate.ts';
import { AUTH_TYPE_ALWAYS_FAIL, AUTH_TYPE_DISABLED, AUTH_TYPE_EXPLICIT, AUTH_TYPE_SPIRE, IDENTITY_HOST, IPPROTO_TCP, IPPROTO_UDP } from '../abi/generated.ts';
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
  /** The model has only allow rules; kept so the datapath's deny bit has a source. */
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
      const ingressRules = selecting.flatMap((p) => (p.ingress ?? []).map((rule) => ({ policy: p.name, peers: rule.fromEndpoints, ...rule })));
      const egressRules = selecting.flatMap((p) => (p.egress ?? []).map((rule) => ({ policy: p.name, peers: rule.toEndpoints, ...rule })));

      const raw: PolicyEntry[] = [];
      for (const [direction, rules] of [['ingress', ingressRules], ['egress', egressRules]] as const) {
        for (const rule of rules) {
          const auth = rule.authentication;
          const authType = auth ? AUTH_TYPE_OF_MODE[auth.mode] : AUTH_TYPE_DISABLED;
          for (const peerIdentity of selectIdentities(rule.peers, identities)) {
            for (const { protocol, port } of portKeys(rule.toPorts.flatMap((r) => r.ports))) {
              raw.push({ direction, peerIdentity, protocol, port, deny: false, authType, explicitAuth: auth !== undefined, sources: [rule.policy] });
            }
          }
        }
      }
      const ingressEnforced = ingressRules.length > 0;
      if (ingressEnforced) {
        raw.push({ direction: 'ingress', peerIdentity: IDENTITY_HOST, protocol: 0, port: 0, deny: false, authType: AUTH_TYPE_DISABLED, explicitAuth: false, sources: ['allow-localhost'] });
      }
      result.set(pod.name, {
        pod: pod.name,
        identity: identities.byPod.get(pod.name) ?? 0,
        ingressEnforced,
        egressEnforced: egressRules.length > 0,
        entries: deriveAuth(mergeEntries(raw)).sort(compareEntries),
      });
    }
  }
  return result;
}

/** Cluster identities any selector matches, ascending. */
function selectIdentities(selectors: Selector[], identities: IdentityAllocation): number[] {
  return identities.identities.filter((identity) => selectors.some((s) => selectorMatches(s, identity.labels))).map((i) => i.id);
}

/** toPorts → (protocol, port) keys; none means every port and protocol. */
function portKeys(ports: PortProtocol[]): { protocol: number; port: number }[] {
  if (ports.length === 0) return [{ protocol: 0, port: 0 }];
  return ports.flatMap(({ port, protocol }) => {
    if (protocol === 'TCP') return [{ protocol: IPPROTO_TCP, port }];
    if (protocol === 'UDP') return [{ protocol: IPPROTO_UDP, port }];
    // ANY: every protocol when no port is given (L3-only), else TCP and UDP on that port.
    return port === 0 ? [{ protocol: 0, port: 0 }] : [{ protocol: IPPROTO_TCP, port }, { protocol: IPPROTO_UDP, port }];
  });
}

const entryKey = (e: PolicyEntry) => `${e.direction}/${e.peerIdentity}/${e.protocol}/${e.port}`;

/** Rules that produce the same key merge: an explicit auth type beats a missing one; the strongest wins. */
function mergeEntries(entries: PolicyEntry[]): PolicyEntry[] {
  const byKey = new Map<string, PolicyEntry>();
  for (const e of entries) {
    const seen = byKey.get(entryKey(e));
    if (!seen) {
      byKey.set(entryKey(e), { ...e, sources: [...e.sources] });
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
    if (e.explicitAuth) return e;
    const inherited = entries.filter((b) => b.explicitAuth && covers(b, e)).reduce((max, b) => Math.max(max, b.authType), e.authType);
    return { ...e, authType: inherited };
  });
}

function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return a.direction.localeCompare(b.direction) || a.peerIdentity - b.peerIdentity || a.protocol - b.protocol || a.port - b.port;
}

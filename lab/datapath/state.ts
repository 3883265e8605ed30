// What one node's maps should hold (compileNodeState: pure, from the plan),
// and how it gets there (writeNodeState: dump, diff, one bpftool batch).
import type { LabPlan } from '../core/plan.ts';
import { compilePolicies, authTypeByte, type Direction } from '../policy/compile.ts';
import type { IdentityAllocation } from '../policy/identity.ts';
import { BPFTOOL_IO, type MapIo, type MapOp } from './bpftool.ts';
import {
  DIR_EGRESS,
  DIR_INGRESS,
  EP_F_EGRESS_ENFORCED,
  EP_F_INGRESS_ENFORCED,
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  POLICY_F_DENY,
  encodeEndpointInfo,
  encodeEndpointKey,
  encodeIpcacheKey,
  encodeNodeKey,
  encodeNodeValue,
  encodePolicyEntry,
  encodePolicyKey,
  encodeRemoteEndpointInfo,
} from '../abi/generated.ts';
import { ipcacheKey4, ipcacheValue4, mapPin, nodeKey4 } from './maps.ts';

export interface IpcacheEntry {
  /** "10.244.1.2/32". */
  cidr: string;
  identity: number;
  /** Node IP hosting the address; absent for this node's own pods. */
  tunnelEndpoint?: string;
}

export interface NodeIdEntry {
  ip: string;
  /** Cilium's remote node id (plan order, 1-based). */
  id: number;
}

export interface EndpointEntry {
  pod: string;
  /** Node-side veth, whose ifindex keys cilium_lxc. */
  lxc: string;
  ip: string;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
}

export interface PolicyMapEntry {
  lxc: string;
  direction: Direction;
  peerIdentity: number;
  protocol: number;
  port: number;
  deny: boolean;
  /** policy_entry.auth_type byte: AUTH_TYPE_* | AUTH_TYPE_EXPLICIT. */
  authType: number;
}

/** Everything a node's datapath maps hold, before ifindexes are known. */
export interface NodeDatapathState {
  node: string;
  ipcache: IpcacheEntry[];
  nodes: NodeIdEntry[];
  endpoints: EndpointEntry[];
  policy: PolicyMapEntry[];
}

/**
 * One node's view of the lab: every pod's IP → identity (with the hosting
 * node's IP for pods elsewhere), node IPs (this node's as reserved:host, the
 * others' as reserved:remote-node), the other nodes' IDs, and the endpoint and
 * policy entries of the pods on this node. Pure.
 */
export function compileNodeState(plan: LabPlan, nodeName: string, identities: IdentityAllocation): NodeDatapathState {
  const self = plan.nodes.find((n) => n.name === nodeName);
  if (!self) throw new Error(`node "${nodeName}" is not in lab "${plan.lab}"`);
  const policies = compilePolicies(plan.topology, identities);
  const identityOf = (pod: string) => {
    const id = identities.byPod.get(pod);
    if (id === undefined) throw new Error(`pod "${pod}" has no identity: allocate identities from the same topology`);
    return id;
  };

  const ipcache: IpcacheEntry[] = [];
  for (const node of plan.nodes) {
    const remote = node.name !== self.name;
    ipcache.push({
      cidr: `${node.underlayIp}/32`,
      identity: remote ? IDENTITY_REMOTE_NODE : IDENTITY_HOST,
      ...(remote ? { tunnelEndpoint: node.underlayIp } : {}),
    });
    for (const pod of node.pods) {
      ipcache.push({ cidr: `${pod.ip}/32`, identity: identityOf(pod.name), ...(remote ? { tunnelEndpoint: node.underlayIp } : {}) });
    }
  }

  const endpoints: EndpointEntry[] = [];
  const policy: PolicyMapEntry[] = [];
  for (const pod of self.pods) {
    const compiled = policies.get(pod.name);
    endpoints.push({
      pod: pod.name,
      lxc: pod.lxc,
      ip: pod.ip,
      identity: identityOf(pod.name),
      ingressEnforced: compiled?.ingressEnforced ?? false,
      egressEnforced: compiled?.egressEnforced ?? false,
    });
    for (const e of compiled?.entries ?? []) {
      policy.push({ lxc: pod.lxc, direction: e.direction, peerIdentity: e.peerIdentity, protocol: e.protocol, port: e.port, deny: e.deny, authType: authTypeByte(e) });
    }
  }

  return {
    node: self.name,
    ipcache,
    nodes: plan.nodes.filter((n) => n.name !== self.name).map((n) => ({ ip: n.underlayIp, id: n.id })),
    endpoints,
    policy,
  };
}

/** The maps writeNodeState manages; pass `only` to sync some of them. */
export type StateMap = 'ipcache' | 'nodes' | 'endpoints' | 'policy';

export interface WriteStats {
  updated: number;
  deleted: number;
  unchanged: number;
}

/**
 * Makes the node's maps hold exactly `state`: entries that differ are
 * written, entries the state no longer has are deleted, in one batch.
 * Idempotent. Policy hit counters survive (only verdict and auth compare).
 */
export async function writeNodeState(
  lab: string,
  node: string,
  state: NodeDatapathState,
  ifindexByLxc: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
  opts: { only?: StateMap[]; io?: MapIo } = {},
): Promise<WriteStats> {
  const io = opts.io ?? BPFTOOL_IO;
  const ifindex = (lxc: string) => {
    const n = ifindexByLxc instanceof Map ? ifindexByLxc.get(lxc) : (ifindexByLxc as Record<string, number>)[lxc];
    if (n === undefined) throw new Error(`no ifindex for ${lxc} on node ${node}`);
    return n;
  };
  const wanted: Record<StateMap, { pin: string; entries: { key: Buffer; value: Buffer }[]; compareBytes?: number }> = {
    ipcache: {
      pin: mapPin(lab, node, 'cilium_ipcache'),
      entries: state.ipcache.map((e) => ({
        key: encodeIpcacheKey(ipcacheKey4(e.cidr)),
        value: encodeRemoteEndpointInfo(ipcacheValue4(e.identity, e.tunnelEndpoint)),
      })),
    },
    nodes: {
      pin: mapPin(lab, node, 'cilium_node_map'),
      entries: state.nodes.map((e) => ({ key: encodeNodeKey(nodeKey4(e.ip)), value: encodeNodeValue({ id: e.id, spi: 0 }) })),
    },
    endpoints: {
      pin: mapPin(lab, node, 'cilium_lxc'),
      entries: state.endpoints.map((e) => ({
        key: encodeEndpointKey({ ifindex: ifindex(e.lxc) }),
        value: encodeEndpointInfo({
          secIdentity: e.identity,
          ipv4: e.ip,
          flags: (e.ingressEnforced ? EP_F_INGRESS_ENFORCED : 0) | (e.egressEnforced ? EP_F_EGRESS_ENFORCED : 0),
        }),
      })),
    },
    policy: {
      pin: mapPin(lab, node, 'cilium_policy'),
      // flags and auth_type; the rest are counters.
      compareBytes: 2,
      entries: state.policy.map((e) => ({
        key: encodePolicyKey({
          epIfindex: ifindex(e.lxc),
          secLabel: e.peerIdentity,
          dport: e.port,
          protocol: e.protocol,
          direction: e.direction === 'ingress' ? DIR_INGRESS : DIR_EGRESS,
        }),
        value: encodePolicyEntry({ flags: e.deny ? POLICY_F_DENY : 0, authType: e.authType, packets: 0n, bytes: 0n }),
      })),
    },
  };

  const stats: WriteStats = { updated: 0, deleted: 0, unchanged: 0 };
  const ops: MapOp[] = [];
  for (const name of opts.only ?? (Object.keys(wanted) as StateMap[])) {
    const { pin, entries, compareBytes } = wanted[name];
    const current = new Map((await io.dump(pin)).map((e) => [e.key.toString('hex'), e.value]));
    const same = (a: Buffer, b: Buffer) => (compareBytes ? a.subarray(0, compareBytes).equals(b.subarray(0, compareBytes)) : a.equals(b));
    const keep = new Set<string>();
    for (const e of entries) {
      const hex = e.key.toString('hex');
      keep.add(hex);
      const now = current.get(hex);
      if (now && same(now, e.value)) stats.unchanged++;
      else {
        ops.push({ op: 'update', pin, key: e.key, value: e.value });
        stats.updated++;
      }
    }
    for (const hex of current.keys()) {
      if (keep.has(hex)) continue;
      ops.push({ op: 'delete', pin, key: Buffer.from(hex, 'hex') });
      stats.deleted++;
    }
  }
  await io.applyAll(ops);
  return stats;
}

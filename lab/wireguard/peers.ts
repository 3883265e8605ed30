// A node's WireGuard peers from the cluster's node list, as Cilium's agent
// builds them from the other CiliumNodes: one peer per node that has
// published a key (endpoint its node IP, allowed-ips its pod CIDR, or its
// node IP when VXLAN rides inside), any other peer removed. Used by the
// agent on every control-plane snapshot.
import { wgIfname, wgKeyFile } from '../core/names.ts';
import { run } from '../kernel/run.ts';
import { WG_PORT } from '../abi/generated.ts';
import { wgShow, type WgStatus } from './wireguard.ts';

export interface WgPeerNode {
  name: string;
  underlayIp: string;
  podCidr: string;
  /** Absent until that node's agent has published it. */
  wireguardPublicKey?: string;
}

export interface WgPeerSpec {
  node: string;
  publicKey: string;
  endpoint: string;
  allowedIps: string;
}

/** The peers `node` should have: every other node with a published key. */
export function desiredPeers(node: string, nodes: WgPeerNode[], encapsulate: boolean): WgPeerSpec[] {
  return nodes.filter((n) => n.name !== node && n.wireguardPublicKey).map((n) => ({
    node: n.name,
    publicKey: n.wireguardPublicKey!,
    endpoint: `${n.underlayIp}:${WG_PORT}`,
    allowedIps: encapsulate ? `${n.underlayIp}/32` : n.podCidr,
  }));
}

/** `wg set` arguments that turn the device's peers into `want` (removals first: a new key may take an old key's allowed-ips; `allowed-ips` replaces a peer's list). */
export function peerChanges(have: WgStatus, want: WgPeerSpec[]): { args: string[]; added: string[]; removed: string[] } {
  const removed = have.peers.filter((p) => !want.some((w) => w.publicKey === p.publicKey)).map((p) => p.publicKey);
  const added = want.filter((w) => {
    const p = have.peers.find((x) => x.publicKey === w.publicKey);
    return !p || p.endpoint !== w.endpoint || p.allowedIps.join(',') !== w.allowedIps;
  });
  const args = [
    ...removed.flatMap((k) => ['peer', k, 'remove']),
    ...added.flatMap((w) => ['peer', w.publicKey, 'endpoint', w.endpoint, 'allowed-ips', w.allowedIps]),
  ];
  return { args, added: added.map((w) => w.publicKey), removed };
}

/** The node's own key file and port on its device (the agent's first step; again after a rotation). */
export async function setDeviceKey(lab: string, node: string, netns: string): Promise<void> {
  await run(['wg', 'set', wgIfname(lab, node), 'listen-port', String(WG_PORT), 'private-key', wgKeyFile(lab, node)], { netns });
}

export async function syncPeers(lab: string, node: string, netns: string, want: WgPeerSpec[]): Promise<{ added: string[]; removed: string[] }> {
  const change = peerChanges(await wgShow(lab, node, netns), want);
  if (change.args.length > 0) await run(['wg', 'set', wgIfname(lab, node), ...change.args], { netns });
  return { added: change.added, removed: change.removed };
}

/**
 * Waits until each node in `nodes` has, as its peers, exactly the given keys
 * of the others (polling `wg show`); throws naming every node still behind.
 */
export async function waitForPeerKeys(lab: string, nodes: { name: string; netns: string }[], keys: Map<string, string>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const behind: string[] = [];
    for (const n of nodes) {
      const want = [...keys].filter(([name]) => name !== n.name).map(([, k]) => k).sort();
      const have = (await wgShow(lab, n.name, n.netns)).peers.map((p) => p.publicKey).sort();
      if (want.join() !== have.join()) behind.push(`${n.name} has ${have.length} peer(s), wants ${want.length}`);
    }
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`WireGuard peers not configured from the control plane after ${timeoutMs} ms: ${behind.join('; ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

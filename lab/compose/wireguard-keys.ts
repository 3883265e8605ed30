// WireGuard keys through the control plane, seen from the whole lab: `up`
// waits until every agent has published its node's key and every node has
// the others as peers; `mtless wireguard rotate` makes one node's agent
// rotate and waits until the peers that can hear of it have followed.
import type { LabPlan } from '../core/plan.ts';
import { readState, type LabState } from '../core/state.ts';
import { AGENT } from '../core/daemons.ts';
import { isAlive } from '../core/processes.ts';
import type { ExtraStep } from '../core/steps.ts';
import { controlState } from '../control/client.ts';
import { readWgInfo, waitForPeerKeys, wgFingerprint, wgShow, writeWgInfo, WG_ROLE, WG_ROTATE_SIGNAL } from '../wireguard/index.ts';
import { isPartitioned } from './pods.ts';

const poll = () => new Promise((r) => setTimeout(r, 50));

/** Node → published public key, as the control plane holds them now. */
async function publishedKeys(lab: string): Promise<Map<string, string | undefined>> {
  const { snapshot } = await controlState(lab);
  return new Map(snapshot.nodes.map((n) => [n.name, n.wireguardPublicKey]));
}

/** The `up` step after the agents: every key published, every peer configured, then wireguard.json. */
export const WIREGUARD_PEERS_STEP: ExtraStep = {
  name: 'wireguard-peers',
  run: async (plan, state) => void (await waitForPublishedPeers(plan, state, 20_000)),
};

async function waitForPublishedPeers(plan: LabPlan, state: LabState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let keys = await publishedKeys(plan.lab);
  while ([...keys.values()].some((k) => !k)) {
    if (Date.now() > deadline) {
      const missing = [...keys].filter(([, k]) => !k).map(([n]) => n);
      throw new Error(`no WireGuard key published by ${missing.join(', ')} after ${timeoutMs} ms; see \`mtless logs ${plan.lab} ${missing[0]}\``);
    }
    await poll();
    keys = await publishedKeys(plan.lab);
  }
  const published = new Map([...keys].map(([n, k]) => [n, k!]));
  await waitForPeerKeys(plan.lab, plan.nodes, published, Math.max(1000, deadline - Date.now()));
  await writeWgInfo(plan.lab, plan.nodes, state, published);
}

export interface PeerFollow {
  node: string;
  /** From the signal to the peer's device holding the new key (absent: did not follow). */
  ms?: number;
  /** Why it was not waited for, or why it did not follow in time. */
  note?: string;
}

export interface RotationResult {
  node: string;
  oldKey: string;
  newKey: string;
  oldFingerprint: string;
  newFingerprint: string;
  /** From the signal to the control plane holding the new key. */
  publishedMs: number;
  peers: PeerFollow[];
}

/**
 * Signals NODE's agent to make a new key pair; waits (with deadlines) for
 * the control plane to hold the new public key, then for every peer whose
 * management link is up to have replaced the old key by the new one. A
 * partitioned peer is reported, not waited for: it cannot hear of the key.
 */
export async function rotateWireguardKey(lab: string, node: string, opts: { timeoutMs?: number } = {}): Promise<RotationResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const state = await readState(lab);
  if (!state || state.phase !== 'up') throw new Error(`lab "${lab}" is not up (see \`mtless status\`)`);
  if (!state.nodes.some((n) => n.name === node)) throw new Error(`lab "${lab}" has no node "${node}" (valid: ${state.nodes.map((n) => n.name).join(', ')})`);
  if (!state.processes.some((p) => p.role === WG_ROLE)) throw new Error(`lab "${lab}" runs no WireGuard (its topology's encryption.mode is not "wireguard")`);
  const agent = state.processes.find((p) => p.role === AGENT.role && p.node === node);
  if (!agent) throw new Error(`lab "${lab}" runs no agents (up --no-agents): its WireGuard keys were set by \`up\` and cannot be rotated`);
  if (!isAlive(agent.pid)) throw new Error(`the agent of ${node} (pid ${agent.pid}) is not running: see \`mtless logs ${lab} ${node}\`, then \`mtless restart ${lab} ${node}\``);

  const oldKey = (await publishedKeys(lab)).get(node);
  if (!oldKey) throw new Error(`${node} has published no WireGuard key yet`);
  const started = Date.now();
  const deadline = started + timeoutMs;
  process.kill(agent.pid, WG_ROTATE_SIGNAL);

  let newKey: string | undefined;
  for (;;) {
    const k = (await publishedKeys(lab)).get(node);
    if (k && k !== oldKey) { newKey = k; break; }
    if (Date.now() > deadline) {
      const cut = (await isPartitioned(lab, node)) ? ` (${node} is partitioned: \`mtless heal ${lab} ${node}\`)` : '';
      throw new Error(`${node} did not publish a new WireGuard key within ${timeoutMs} ms${cut}; see \`mtless logs ${lab} ${node}\``);
    }
    await poll();
  }
  const publishedMs = Date.now() - started;

  const peers: PeerFollow[] = [];
  const waiting = [];
  for (const n of state.nodes.filter((x) => x.name !== node)) {
    if (await isPartitioned(lab, n.name)) peers.push({ node: n.name, note: 'partitioned from the control plane: keeps the old key until healed' });
    else waiting.push(n);
  }
  await Promise.all(waiting.map(async (n) => {
    for (;;) {
      const keys = (await wgShow(lab, n.name, n.netns)).peers.map((p) => p.publicKey);
      if (keys.includes(newKey!) && !keys.includes(oldKey)) return void peers.push({ node: n.name, ms: Date.now() - started });
      if (Date.now() > deadline) return void peers.push({ node: n.name, note: `still has the old key after ${timeoutMs} ms` });
      await poll();
    }
  }));
  peers.sort((a, b) => a.node.localeCompare(b.node));

  // wireguard.json follows the published keys (no secrets in it).
  const info = await readWgInfo(lab).catch(() => undefined);
  if (info) {
    await writeWgInfo(lab, state.nodes, state, new Map(info.nodes.map((x) => [x.node, x.node === node ? newKey! : x.publicKey])));
  }
  return { node, oldKey, newKey, oldFingerprint: wgFingerprint(oldKey), newFingerprint: wgFingerprint(newKey), publishedMs, peers };
}

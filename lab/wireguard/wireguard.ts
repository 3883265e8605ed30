// Node-to-node WireGuard, like Cilium's `--enable-wireguard`: one device per
// node (Cilium: cilium_wg0), UDP 51871, one peer per other node whose
// allowed-ips is that node's pod CIDR, and the routes to the other nodes' pod
// CIDRs moved from the underlay onto the device. Keys belong to nodes, not to
// workloads: every pod of a node shares the node's tunnel. In tunnel mode the
// device carries the VXLAN packets instead (allowed-ips: the node's IP), like
// Cilium's --wireguard-encapsulate (lab/tunnel/encapsulate.ts).
//
// No kernel WireGuard here: wireguard-go runs in the node namespace, in the
// foreground (-f) so its PID is ours, tagged so `mtless down` stops it.
//
// Keys: in a lab with agents each agent makes its node's key pair, publishes
// the public key through the control plane and configures its peers from
// the node list (node-key.ts, peers.ts), as Cilium's agents do; `up` only
// starts the devices (WIREGUARD_DEVICES_STEP). Without agents (`up
// --no-agents`) there is no control plane, and WIREGUARD_STEP makes every
// key pair and peer itself.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';

import { processTag, stateDir, wgIfname, wgInfoFile, wgKeyFile, wgKeyLogFile } from '../core/names.ts';
import type { LabPlan, NodePlan } from '../core/plan.ts';
import { isAlive, TAG_ENV } from '../core/processes.ts';
import { writeState, type LabState, type ProcessState } from '../core/state.ts';

import { run, startDetached } from '../kernel/run.ts';
import { generateWgKeyPair, type WgKeyPair } from './keys.ts';
import { agentDir } from '../core/names.ts';
import { daemonLogFile } from '../core/names.ts';
import { type ExtraStep } from '../core/steps.ts';
import { WG_PORT } from '../abi/generated.ts';
import { encapsulated, encapsulationLines, wgAllowedIps } from '../tunnel/encapsulate.ts';

export const WG_ROLE = 'wireguard';
/** wireguard-go's UAPI sockets: host-wide, shared by every namespace. */
export const WG_SOCKET_DIR = '/var/run/wireguard';

export const wgSocket = (ifname: string) => `${WG_SOCKET_DIR}/${ifname}.sock`;
/** Wireshark's WireGuard key log (Preferences › Protocols › WireGuard › Key log filename; `wg.keylog_file`). */
/** Public facts of the lab's tunnels (no secrets), for scenarios and tests. */

export interface WgNodeInfo {
  node: string;
  ifname: string;
  publicKey: string;
  underlayIp: string;
  podCidr: string;
  listenPort: number;
  pid: number;
}

export interface WgInfo {
  nodes: WgNodeInfo[];
  keyLog: string;
}

export async function readWgInfo(lab: string): Promise<WgInfo> {
  return JSON.parse(await readFile(wgInfoFile(lab), 'utf8')) as WgInfo;
}

/** The `up` step without agents: devices, key pairs and peers, all set by `up`. */
export const WIREGUARD_STEP: ExtraStep = {
  name: 'wireguard',
  run: async (plan, state) => void (await installWireguard(plan, state)),
};

/** The `up` step with agents: devices and routes only; each agent sets its key and peers. */
export const WIREGUARD_DEVICES_STEP: ExtraStep = {
  name: 'wireguard',
  run: async (plan, state) => void (await startDevices(plan, state)),
};

/** wireguard-go on every node, then the port, the device up and the routes; keys and peers only when `keys` is given. */
async function startDevices(plan: LabPlan, state: LabState, keys?: Map<string, WgKeyPair>): Promise<ProcessState[]> {
  // Devices first, on every node, then peers: a peer's handshake may start as soon as it is configured.
  const procs: ProcessState[] = [];
  for (const n of plan.nodes) {
    await mkdir(agentDir(plan.lab, n.name), { recursive: true, mode: 0o700 });
    if (keys) await writeFile(wgKeyFile(plan.lab, n.name), keys.get(n.name)!.privateKey + '\n', { mode: 0o600 });
    procs.push(await startWireguardGo(plan.lab, n));
  }
  // Recorded before they are waited for, so a failed `up` still stops them.
  state.processes.push(...procs);
  await writeState(state);
  await Promise.all(plan.nodes.map((n, i) => waitReady(wgIfname(plan.lab, n.name), n.netns, procs[i]!, 10_000)));
  await Promise.all(plan.nodes.map((n) => configureNode(plan, n, keys)));
  return procs;
}

export async function installWireguard(plan: LabPlan, state: LabState): Promise<WgInfo> {
  const keys = new Map<string, WgKeyPair>(plan.nodes.map((n) => [n.name, generateWgKeyPair()]));
  await startDevices(plan, state, keys);
  await writeKeyLog(plan.lab, plan.nodes.map((n) => keys.get(n.name)!));
  return writeWgInfo(plan.lab, plan.nodes, state, new Map([...keys].map(([n, k]) => [n, k.publicKey])));
}

/** wireguard.json: each node's device, public key, address and wireguard-go pid (no secrets). */
export async function writeWgInfo(lab: string, nodes: { name: string; underlayIp: string; podCidr: string }[], state: LabState, publicKeys: Map<string, string>): Promise<WgInfo> {
  const pid = (node: string) => state.processes.find((p) => p.role === WG_ROLE && p.node === node)?.pid ?? 0;
  const info: WgInfo = {
    keyLog: wgKeyLogFile(lab),
    nodes: nodes.map((n) => ({
      node: n.name, ifname: wgIfname(lab, n.name), publicKey: publicKeys.get(n.name) ?? '',
      underlayIp: n.underlayIp, podCidr: n.podCidr, listenPort: WG_PORT, pid: pid(n.name),
    })),
  };
  await writeFile(wgInfoFile(lab), JSON.stringify(info, null, 2) + '\n');
  return info;
}

/** `wireguard-go -f IF` in the node namespace, detached (it outlives `mtless up`), tagged. */
async function startWireguardGo(lab: string, n: NodePlan): Promise<ProcessState> {
  const ifname = wgIfname(lab, n.name);
  const logFile = daemonLogFile(lab, n.name, WG_ROLE);
  const tag = processTag(lab, n.name, WG_ROLE);
  const { pid } = await startDetached(['wireguard-go', '-f', ifname], {
    netns: n.netns,
    logFile,
    // verbose: handshakes appear in the log ("Sending handshake initiation").
    env: { LOG_LEVEL: 'verbose', [TAG_ENV]: tag },
  });
  return { pid, tag, node: n.name, role: WG_ROLE, logFile };
}

/** Ready when its UAPI socket exists and the TUN device is in the namespace. */
async function waitReady(ifname: string, netns: string, proc: ProcessState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sock = await stat(wgSocket(ifname)).then((s) => s.isSocket(), () => false);
    if (sock && (await run(['ip', 'link', 'show', 'dev', ifname], { netns, okCodes: [1] })).exitCode === 0) return;
    if (!isAlive(proc.pid)) {
      const text = await readFile(proc.logFile!, 'utf8').catch(() => '');
      throw new Error(`wireguard-go on ${proc.node} exited before it was ready; its log (${proc.logFile}) ends with:\n${text.split('\n').slice(-8).join('\n')}`);
    }
    if (Date.now() > deadline) throw new Error(`wireguard-go on ${proc.node} not ready after ${timeoutMs} ms (no ${wgSocket(ifname)}); see ${proc.logFile}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Port (and, without agents, key and one peer per other node); then the device up and the other
 * nodes' pod CIDRs routed into it. In tunnel mode the pod CIDRs stay on
 * cilium_vxlan and the VXLAN packets are steered in instead (lab/tunnel/encapsulate.ts).
 */
async function configureNode(plan: LabPlan, n: NodePlan, keys?: Map<string, WgKeyPair>): Promise<void> {
  const ifname = wgIfname(plan.lab, n.name);
  const others = plan.nodes.filter((o) => o !== n);
  const keyArgs = keys ? ['private-key', wgKeyFile(plan.lab, n.name)] : [];
  const peers = !keys ? [] : others.flatMap((o) => [
    'peer', keys.get(o.name)!.publicKey, 'endpoint', `${o.underlayIp}:${WG_PORT}`, 'allowed-ips', wgAllowedIps(plan.topology, o),
  ]);
  await run(['wg', 'set', ifname, 'listen-port', String(WG_PORT), ...keyArgs, ...peers], { netns: n.netns });
  if (encapsulated(plan.topology)) {
    // The decrypted VXLAN comes in on the address-less WireGuard device from a
    // node IP the main table routes via eth0, which any reverse-path check
    // refuses (measured: kfree_skb reason IP_RPFILTER with loose mode). The
    // check is max(all, device), and new namespaces copy the host's; Cilium
    // turns it off as well.
    for (const dev of ['all', ifname]) await run(['sysctl', '-qw', `net.ipv4.conf.${dev}.rp_filter=0`], { netns: n.netns });
  }
  await run(['ip', '-batch', '-'], {
    netns: n.netns,
    input: [
      `link set ${ifname} up`,
      ...(encapsulated(plan.topology)
        ? encapsulationLines(plan, n, ifname)
        // Replaces the native route `<podCidr> via <underlayIp> dev eth0` (batches.ts nodeLines).
        : others.map((o) => `route replace ${o.podCidr} dev ${ifname}`)),
    ].join('\n') + '\n',
  });
}

/**
 * Wireshark's WireGuard key log. Static private keys are all that
 * wireguard-go can give: they decrypt the handshake initiation (the
 * initiator's static key and timestamp) and identify both peers, but not
 * the transport data, whose keys come from the ephemeral keys (see README).
 */
async function writeKeyLog(lab: string, pairs: WgKeyPair[]): Promise<void> {
  const lines = pairs.map((k) => `LOCAL_STATIC_PRIVATE_KEY = ${k.privateKey}`);
  await writeFile(wgKeyLogFile(lab), lines.join('\n') + '\n', { mode: 0o600 });
}

export interface WgPeerStatus {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface WgStatus {
  ifname: string;
  publicKey: string;
  listenPort: number;
  peers: WgPeerStatus[];
}

/** `wg show IF dump`: the interface line, then one line per peer (tab-separated). */
export async function wgShow(lab: string, node: string, netns: string): Promise<WgStatus> {
  const ifname = wgIfname(lab, node);
  const r = await run(['wg', 'show', ifname, 'dump'], { netns });
  const [iface, ...peerLines] = r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
  if (!iface) throw new Error(`wg show ${ifname} dump printed nothing`);
  return {
    ifname,
    publicKey: iface[1]!,
    listenPort: Number(iface[2]),
    peers: peerLines.map((p) => ({
      publicKey: p[0]!,
      endpoint: p[2] === '(none)' ? undefined : p[2],
      allowedIps: p[3] === '(none)' ? [] : p[3]!.split(','),
      latestHandshake: Number(p[4]),
      rxBytes: Number(p[5]),
      txBytes: Number(p[6]),
    })),
  };
}

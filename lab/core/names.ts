// Every name the lab gives to a kernel object, file or process comes from
// here, derived from (lab, node, role). `down` relies on this to find what a
// lab owns without its topology file.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The tool's own name: prefix of state, pins and cgroups. */
export const TOOL = 'mtless-lab';
/** Linux limits interface names to 15 characters (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

export const STATE_ROOT = `/run/${TOOL}`;
export const BPFFS_ROOT = '/sys/fs/bpf';
/**
 * Where cgroup v2 is mounted: /sys/fs/cgroup/unified on a hybrid host (like
 * this one), /sys/fs/cgroup on a pure v2 host (a fresh Debian 12).
 */
export function cgroupRoot(): string {
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return '/sys/fs/cgroup/unified';
  }
  // mountinfo: "... mountpoint ... - fstype source options"
  const v2 = mounts.split('\n').filter((l) => / - cgroup2 /.test(l)).map((l) => l.split(' ')[4]!);
  return v2.find((m) => m === '/sys/fs/cgroup/unified') ?? v2.find((m) => m === '/sys/fs/cgroup') ?? v2[0] ?? '/sys/fs/cgroup/unified';
}

export function shortHash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

// ---- lab names of runs ------------------------------------------------------
/** `--name PREFIX` of `scenario run`, `demo` and `bench`: short, so the names it starts stay distinct. */
export const RUN_PREFIX_RE = /^[a-z][a-z0-9-]{0,8}[a-z0-9]$|^[a-z]$/;
/** A run's lab: `<prefix>-<base>` under --name, within the 24 characters of a lab name. */
export const prefixedLabName = (prefix: string | undefined, base: string) => (prefix ? `${prefix}-${base}` : base).slice(0, 24).replace(/-+$/, '');
/** A scenario's own lab: sc-<scenario>, or <prefix>-<scenario> under --name. */
export const scenarioLabName = (scenario: string, prefix?: string) => prefixedLabName(undefined, prefix ? `${prefix}-${scenario}` : `sc-${scenario}`);

// ---- network namespaces ---------------------------------------------------
// "_" never occurs in lab, node or pod names, so the prefix of one lab can
// never be the prefix of another lab's names ("a" vs "a-b").
export const NETNS_PREFIX = 'mtl_';
export const labNetnsPrefix = (lab: string) => `${NETNS_PREFIX}${lab}_`;
export const fabricNetns = (lab: string) => `${labNetnsPrefix(lab)}fabric`;
export const controlNetns = (lab: string) => `${labNetnsPrefix(lab)}cp`;
export const nodeNetns = (lab: string, node: string) => `${labNetnsPrefix(lab)}n_${node}`;
export const podNetns = (lab: string, pod: string) => `${labNetnsPrefix(lab)}p_${pod}`;
export const netnsPath = (netns: string) => `/run/netns/${netns}`;

/** Parses a namespace name back into its lab, or undefined if not the lab tool's. */
export function labOfNetns(netns: string): string | undefined {
  const m = /^mtl_([a-z0-9-]+)_/.exec(netns);
  return m?.[1];
}

/** Parses a node namespace name (nodeNetns) back into its lab and node, or undefined. */
export function nodeOfNetns(netns: string): { lab: string; node: string } | undefined {
  const m = /^mtl_([a-z0-9-]+)_n_(.+)$/.exec(netns);
  return m ? { lab: m[1]!, node: m[2]! } : undefined;
}

// ---- interfaces -------------------------------------------------------------
/** `<prefix><name>` if it fits in 15 characters, else `<prefix>` + a hash (like Cilium's lxc<hash>). */
export function ifname(prefix: string, name: string): string {
  const plain = prefix + name;
  if (plain.length <= IFNAME_MAX) return plain;
  const bare = prefix.replace(/-$/, '');
  return bare + shortHash(prefix, name).slice(0, IFNAME_MAX - bare.length);
}
/** Node side of a pod's veth, in the node namespace. */
export const lxcIfname = (pod: string) => ifname('lxc-', pod);
/** Pod side of its veth, in the pod namespace. */
export const POD_IFNAME = 'eth0';
/** Node's underlay device (node namespace) and its peer port on the fabric bridge. */
export const NODE_UNDERLAY_IFNAME = 'eth0';
export const fabricPortIfname = (node: string) => ifname('u-', node);
export const FABRIC_BRIDGE = 'underlay';
/** Node's management device and its peer port on the control-plane bridge. */
export const NODE_MGMT_IFNAME = 'mgmt0';
export const mgmtPortIfname = (node: string) => ifname('m-', node);
export const MGMT_BRIDGE = 'mgmt';
/**
 * WireGuard device. wireguard-go keeps its control socket in the host-wide
 * /var/run/wireguard/<ifname>.sock, so this name must be unique on the host.
 */
export const wgIfname = (lab: string, node: string) => 'wg' + shortHash(lab, node).slice(0, 10);

/** Deterministic locally administered unicast MAC for (lab, node, role). */
export function macAddress(...parts: string[]): string {
  const h = shortHash('mac', ...parts);
  const bytes = [0x0a, ...[0, 1, 2, 3, 4].map((i) => parseInt(h.slice(i * 2, i * 2 + 2), 16))];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// ---- files, pins, cgroups, processes ----------------------------------------
export const stateDir = (lab: string) => `${STATE_ROOT}/${lab}`;
export const stateFile = (lab: string) => `${stateDir(lab)}/state.json`;
/** Serialises read-modify-write of the state file between processes. */
export const stateLockFile = (lab: string) => `${stateDir(lab)}/lock`;
/** Output of a lab process (agent, control plane, proxy …), appended across restarts. */
export const daemonLogFile = (lab: string, node: string, role: string) => `${stateDir(lab)}/${role}-${node}.log`;
/** Where a capped daemon log keeps its previous contents (one copy; see lab/core/log.ts). */
export const rotatedLogFile = (logFile: string) => `${logFile}.1`;
/** NSS key log of every TLS handshake the lab's processes make, for captures. */
export const keyLogFile = (lab: string) => `${stateDir(lab)}/tls-keylog.txt`;
/** Claim of the one reader of a node's perf array (a pid file). */
export const perfReaderClaimFile = (lab: string, node: string, map: string) => `${stateDir(lab)}/reader-${node}-${map}.pid`;
// Node agent: config and credentials (mode 0600).
export const agentDir = (lab: string, node: string) => `${stateDir(lab)}/agent-${node}`;
export const agentConfigFile = (lab: string, node: string) => `${agentDir(lab, node)}/config.json`;
// Control plane: config, CA key (mode 0600), admin socket.
export const controlDir = (lab: string) => `${stateDir(lab)}/control`;
export const controlConfigFile = (lab: string) => `${controlDir(lab)}/config.json`;
export const controlSocket = (lab: string) => `${controlDir(lab)}/admin.sock`;
// WireGuard: the node's private key beside its agent's files, the static key log, the interface info.
export const wgKeyFile = (lab: string, node: string) => `${agentDir(lab, node)}/wg.key`;
export const wgKeyLogFile = (lab: string) => `${stateDir(lab)}/wg-keylog.txt`;
export const wgInfoFile = (lab: string) => `${stateDir(lab)}/wireguard.json`;
// Flow relay (lab/observe, like hubble-relay): the one reader of every node's
// cilium_events, with its ring buffers, serving observers on a unix socket.
export const relayDir = (lab: string) => `${stateDir(lab)}/relay`;
export const relayConfigFile = (lab: string) => `${relayDir(lab)}/config.json`;
export const relaySocket = (lab: string) => `${relayDir(lab)}/observer.sock`;
// The auth benchmark's floor: SVIDs of the lab's CA for a bare TLS client and server (keys 0600).
export const authFloorDir = (lab: string) => `${stateDir(lab)}/auth-floor`;
// Per-connection mTLS mesh: one folder per node proxy.
export const meshDir = (lab: string) => `${stateDir(lab)}/mesh`;
export const proxyDir = (lab: string, node: string) => `${meshDir(lab)}/${node}`;
export const proxyConfigFile = (lab: string, node: string) => `${proxyDir(lab, node)}/config.json`;
export const labBpffsDir = (lab: string) => `${BPFFS_ROOT}/${TOOL}/${lab}`;
export const nodeBpffsDir = (lab: string, node: string) => `${labBpffsDir(lab)}/${node}`;
export const nodeProgPins = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/progs`;
export const nodeMapPins = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/maps`;
// Objects that reuse the node's pinned maps keep their own programs beside them.
export const overlayDir = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/overlay`;
export const overlayProgPins = (lab: string, node: string) => `${overlayDir(lab, node)}/progs`;
export const strictDir = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/strict`;
export const strictProgPins = (lab: string, node: string) => `${strictDir(lab, node)}/progs`;
export const sockmapDir = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/sockmap`;
/** tcx links of a node's devices (lab/kernel/tc.ts), one pin per hook: links/<dev>/<ingress|egress>. */
export const nodeLinkPins = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/links`;
export const tcxLinkPin = (lab: string, node: string, dev: string, direction: 'ingress' | 'egress') => `${nodeLinkPins(lab, node)}/${dev}/${direction}`;
export const labCgroupDir = (lab: string) => `${cgroupRoot()}/${TOOL}/${lab}`;
export const nodeCgroupDir = (lab: string, node: string) => `${labCgroupDir(lab)}/${node}`;
/** Marker (env MTLAB_TAG) of every process the lab starts, so `down` and `status` find them. */
export const processTag = (lab: string, node: string, role: string) => `${TOOL}:${lab}:${node}:${role}`;

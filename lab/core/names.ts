// Every name the lab gives to a kernel object, file or process comes from
// here, derived from (lab, node, role). `down` relies on this to find what a
// lab owns without its topology file.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The tool's own name: prefix of state, pins and cgroups. */
export const TOOL = 'mtless-lab';
/** Linux limits interface names to 15 characters (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;
/** Lab names: short DNS-like labels, so every derived name stays within limits. */
export const LAB_NAME_RE = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$/;
/** Node and pod names: DNS labels (Kubernetes object names). */
export const OBJECT_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

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
export const labBpffsDir = (lab: string) => `${BPFFS_ROOT}/${TOOL}/${lab}`;
export const nodeBpffsDir = (lab: string, node: string) => `${labBpffsDir(lab)}/${node}`;
export const nodeProgPins = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/progs`;
export const nodeMapPins = (lab: string, node: string) => `${nodeBpffsDir(lab, node)}/maps`;
export const labCgroupDir = (lab: string) => `${cgroupRoot()}/${TOOL}/${lab}`;
export const nodeCgroupDir = (lab: string, node: string) => `${labCgroupDir(lab)}/${node}`;
/** Marker (env MTLAB_TAG) of every process the lab starts, so `down` and `status` find them. */
export const processTag = (lab: string, node: string, role: string) => `${TOOL}:${lab}:${node}:${role}`;

// Pods on a running lab: `mtless pod add|del`. The kernel side (namespace,
// veth, routes, programs) is done here; the control plane then allocates the
// identity and every agent learns the endpoint through its watch stream.
import { ipBatch, run } from '../kernel/run.ts';
import { attachEndpoints, detachEndpoint, readIfindexes } from '../datapath/load.ts';
import { dumpNodeMap } from '../datapath/maps.ts';
import { sharedDumpIo } from '../datapath/map-writer.ts';
import { registerPod, unregisterPod } from '../control/client.ts';
import { podLabels, NAMESPACE_LABEL, SERVICE_ACCOUNT_LABEL, podNameProblem, labelProblems } from '../topology/validate.ts';
import { cidrContains, hostAddress, mustParseCIDR } from '../topology/ipv4.ts';
import * as names from '../core/names.ts';
import { lxcLines, podLines } from '../core/batches.ts';
import { readState, withStateLock, writeState, type LabState } from '../core/state.ts';
import { stopProcesses } from '../core/processes.ts';

export interface PodAddOptions {
  lab: string;
  node: string;
  pod: string;
  labels: Record<string, string>;
  namespace?: string;
  serviceAccount?: string;
  /** Reuse a given address (the identity-confusion scenario needs it). */
  ip?: string;
  /** The pod's namespace, veth and programs were made ahead by stagePod (an app may already wait in it). */
  staged?: boolean;
}

async function labState(lab: string): Promise<LabState> {
  const state = await readState(lab);
  if (!state || state.phase !== 'up') throw new Error(`lab "${lab}" is not up (see \`mtless status\`)`);
  return state;
}

/**
 * Until its node's agent has written the endpoint into cilium_lxc, the
 * datapath drops the pod's packets (fail-closed): wait for that, with a deadline.
 */
async function waitForEndpoint(lab: string, node: string, nodeNs: string, lxc: string, timeoutMs: number): Promise<boolean> {
  const ifindex = (await readIfindexes(nodeNs)).get(lxc);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Polled through the process's long-lived map reader: a bpftool start per poll was most of a busy demo's bpftool runs.
    const rows = await dumpNodeMap(lab, node, 'cilium_lxc', sharedDumpIo());
    if (rows.some((r) => r.key.ifindex === ifindex)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

export async function addPod(opts: PodAddOptions): Promise<{ ip: string; identity: number; synced: boolean }> {
  return withStateLock(opts.lab, () => addPodLocked(opts));
}

async function addPodLocked(opts: PodAddOptions): Promise<{ ip: string; identity: number; synced: boolean }> {
  const state = await labState(opts.lab);
  const node = state.nodes.find((n) => n.name === opts.node);
  if (!node) throw new Error(`lab "${opts.lab}" has no node "${opts.node}" (valid: ${state.nodes.map((n) => n.name).join(', ')})`);
  // The rules of topology files hold for pods added at run time too.
  const nameProblem = podNameProblem(opts.pod, state.nodes.map((n) => n.name));
  if (nameProblem) throw new Error(nameProblem);
  const badLabels = labelProblems(opts.labels);
  if (badLabels.length > 0) throw new Error(`labels of pod "${opts.pod}": ${badLabels.join('; ')}`);
  if (state.pods.some((p) => p.name === opts.pod)) throw new Error(`pod "${opts.pod}" already exists in lab "${opts.lab}"`);
  const range = mustParseCIDR(node.podCidr);
  let ip = opts.ip;
  if (ip) {
    if (!cidrContains(range, ip)) throw new Error(`IP ${ip} is outside node ${node.name}'s pod range ${node.podCidr}`);
    const host = Number(ip.split('.')[3]);
    if (host < 2 || host > 254) throw new Error(`IP ${ip} is reserved; pods get .2 to .254 of ${node.podCidr}`);
    const holder = state.pods.find((p) => p.ip === ip);
    if (holder) throw new Error(`IP ${ip} is in use by pod "${holder.name}"`);
  } else {
    const used = new Set(state.pods.map((p) => p.ip));
    for (let i = 2; i < 255 && !ip; i++) if (!used.has(hostAddress(range, i))) ip = hostAddress(range, i);
    if (!ip) throw new Error(`node ${node.name} has no free pod address`);
  }
  const netns = names.podNetns(opts.lab, opts.pod);
  const lxc = names.lxcIfname(opts.pod);
  const lxcMac = names.macAddress(opts.lab, opts.pod, 'lxc');
  const podMac = names.macAddress(opts.lab, opts.pod, 'pod');
  const labels = podLabels({ labels: opts.labels, namespace: opts.namespace ?? 'default', serviceAccount: opts.serviceAccount ?? 'default' });

  // Recorded first, so `down` finds the namespace even if we crash midway.
  if (!opts.staged) {
    state.netns.push(netns);
    await writeState(state);
  } else if (!state.netns.includes(netns)) {
    throw new Error(`pod "${opts.pod}" was not staged in lab "${opts.lab}"`);
  }
  try {
    const lines = lxcLines({ lxc, lxcMac, podMac, netns, ip });
    if (!opts.staged) {
      await run(['ip', 'netns', 'add', netns]);
      await stageVeth(node.netns, lines, lxc, names.nodeProgPins(opts.lab, node.name));
    }
    // A staged pod may take over an IP whose old pod is still being torn down (reusePodIp): replace its route.
    await ipBatch(opts.staged ? lines.slice(VETH_LINES).map((l) => l.replace(/^route add /, 'route replace ')) : lines.slice(VETH_LINES), node.netns);
    await ipBatch(podLines(state.podRange, { ip, lxcMac }), netns);
    const ep = await registerPod(opts.lab, { pod: opts.pod, node: node.name, ip, labels });
    const { [NAMESPACE_LABEL]: _ns, [SERVICE_ACCOUNT_LABEL]: _sa, ...plain } = labels;
    state.pods.push({ name: opts.pod, node: node.name, netns, ip, lxc, identity: ep.identity, labels: plain });
    await writeState(state);
    const synced = await waitForEndpoint(opts.lab, node.name, node.netns, lxc, 10_000);
    return { ip, identity: ep.identity, synced };
  } catch (e) {
    await detachEndpoint(node.netns, lxc).catch(() => undefined);
    await run(['ip', 'link', 'del', lxc], { netns: node.netns, okCodes: [1] });
    await run(['ip', 'netns', 'delete', netns], { okCodes: [1] });
    state.netns = state.netns.filter((n) => n !== netns);
    await writeState(state);
    throw e;
  }
}

/** The lines of lxcLines that need no address: the veth pair, up. The rest (route, neighbour) come with the IP. */
const VETH_LINES = 3;

/**
 * The veth and its programs: the programs before the pod's address and route, so
 * that an app already in the namespace (the exposure window's probe) never sends
 * through an unguarded veth. Until the agent writes the endpoint, the programs
 * drop its packets (fail-closed).
 */
async function stageVeth(nodeNetns: string, lines: string[], lxc: string, pins: string): Promise<void> {
  await ipBatch(lines.slice(0, VETH_LINES), nodeNetns);
  await attachEndpoints(nodeNetns, [lxc], pins);
}

/**
 * Makes a pod ahead of its address (then addPod with `staged`): its namespace,
 * its veth with the programs on it, no IP, no route, unknown to the control
 * plane. An app can already wait in it, and the pod's add is then only the
 * address, the route and the registration (the exposure window re-uses an IP
 * that fast). Recorded in the state first: `down` removes it even if the pod
 * is never added.
 */
export async function stagePod(lab: string, node: string, pod: string): Promise<void> {
  await withStateLock(lab, async () => {
    const state = await labState(lab);
    const n = state.nodes.find((x) => x.name === node);
    if (!n) throw new Error(`lab "${lab}" has no node "${node}" (valid: ${state.nodes.map((x) => x.name).join(', ')})`);
    const netns = names.podNetns(lab, pod);
    if (state.pods.some((p) => p.name === pod) || state.netns.includes(netns)) throw new Error(`pod "${pod}" already exists in lab "${lab}"`);
    state.netns.push(netns);
    await writeState(state);
    await run(['ip', 'netns', 'add', netns]);
    const lxc = names.lxcIfname(pod);
    // No IP yet: lxcLines' first lines do not use it.
    const lines = lxcLines({ lxc, lxcMac: names.macAddress(lab, pod, 'lxc'), podMac: names.macAddress(lab, pod, 'pod'), netns, ip: '0.0.0.0' });
    await stageVeth(n.netns, lines, lxc, names.nodeProgPins(lab, n.name));
  });
}

export async function deletePod(lab: string, pod: string, node?: string): Promise<void> {
  return withStateLock(lab, () => deletePodLocked(lab, pod, node));
}

async function deletePodLocked(lab: string, pod: string, node?: string): Promise<void> {
  const state = await labState(lab);
  const p = state.pods.find((x) => x.name === pod);
  if (!p) throw new Error(`lab "${lab}" has no pod "${pod}" (valid: ${state.pods.map((x) => x.name).join(', ')})`);
  if (node !== undefined && p.node !== node) throw new Error(`pod "${pod}" runs on node ${p.node}, not ${node}`);
  await unregisterPod(lab, pod);
  await tearDownPod(state, p);
}

/**
 * Deletes `oldPod` and gives its IP to a staged pod at once, as an IPAM that
 * hands a freed address to the next pod does: the delete (the control plane's
 * endpoint-deleted), then the new pod's route, address and registration, and
 * only then the old pod's namespace and veth are torn down. The exposure
 * window's "reuse at once" measures from the delete; no teardown is in it.
 */
export async function reusePodIp(lab: string, oldPod: string, next: Omit<PodAddOptions, 'lab' | 'ip' | 'staged'>): Promise<{ ip: string; identity: number; synced: boolean }> {
  return withStateLock(lab, async () => {
    const state = await labState(lab);
    const p = state.pods.find((x) => x.name === oldPod);
    if (!p) throw new Error(`lab "${lab}" has no pod "${oldPod}" (valid: ${state.pods.map((x) => x.name).join(', ')})`);
    await unregisterPod(lab, oldPod);
    // Out of the pods (its IP is free); its namespace stays listed until it is gone.
    state.pods = state.pods.filter((x) => x.name !== oldPod);
    await writeState(state);
    try {
      return await addPodLocked({ ...next, lab, ip: p.ip, staged: true });
    } finally {
      await tearDownPod(await labState(lab), p);
    }
  });
}

/** A pod's processes, veth, programs and namespace, once the control plane no longer has it; then out of the state. */
async function tearDownPod(state: LabState, p: LabState['pods'][number]): Promise<void> {
  // A process still in the namespace would keep it (and its veth and route) alive.
  const pids = (await run(['ip', 'netns', 'pids', p.netns], { okCodes: [1] })).stdout.split('\n').filter(Boolean).map(Number);
  await stopProcesses(pids);
  // The node's veth end goes first, and its /32 route with it: the namespace's own
  // teardown frees them later, in the kernel's cleanup work, so a pod added at once
  // on the same IP (the exposure window's reuse) would find the route still there.
  // Its programs' tcx links are unpinned too, or their pins would outlive the pod.
  const nodeNetns = state.nodes.find((n) => n.name === p.node)?.netns;
  if (nodeNetns) {
    await detachEndpoint(nodeNetns, p.lxc);
    await run(['ip', 'link', 'del', p.lxc], { netns: nodeNetns, okCodes: [1] });
  }
  await run(['ip', 'netns', 'delete', p.netns], { okCodes: [1] });
  state.pods = state.pods.filter((x) => x.name !== p.name);
  state.netns = state.netns.filter((n) => n !== p.netns);
  await writeState(state);
}

/** Cuts a node off the control plane: its management port goes down, so its ipcache goes stale. */
export async function partitionNode(lab: string, node: string, cut: boolean): Promise<void> {
  const state = await labState(lab);
  if (!state.nodes.some((n) => n.name === node)) throw new Error(`lab "${lab}" has no node "${node}" (valid: ${state.nodes.map((n) => n.name).join(', ')})`);
  await run(['ip', 'link', 'set', names.mgmtPortIfname(node), cut ? 'down' : 'up'], { netns: names.controlNetns(lab) });
}

export async function isPartitioned(lab: string, node: string): Promise<boolean> {
  const r = await run(['ip', '-j', 'link', 'show', names.mgmtPortIfname(node)], { netns: names.controlNetns(lab), okCodes: [1] });
  if (r.exitCode !== 0) return false;
  const [link] = JSON.parse(r.stdout) as { flags: string[] }[];
  return !(link?.flags.includes('UP') ?? true);
}

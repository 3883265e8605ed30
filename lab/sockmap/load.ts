// Installing same-node socket acceleration on a node: one load of
// bpf/build/sockmap.o per node, pinned next to the node's tc datapath,
//
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/sockmap/progs/cil_sock_ops, cil_sk_msg
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/sockmap/maps/cilium_sock_ops, sockmap_pods, sockmap_metrics
//
// cil_sk_msg attached to the sockhash, cil_sock_ops to the node's cgroup
// /sys/fs/cgroup/unified/mtless-lab/<lab>/<node>. Only processes in that
// cgroup are accelerated (see podCommand in pod.ts). `mtless down` frees it all:
// it stops the tagged processes, removes the lab's bpffs folder (the pins)
// and its cgroup tree (which releases the sock_ops attachment).
import { access, mkdir, rm } from 'node:fs/promises';
import { nodeBpffsDir, nodeCgroupDir, sockmapDir } from '../core/names.ts';
import type { LabPlan } from '../core/plan.ts';
import { ensureBpffs } from '../kernel/preflight.ts';

import { BPF_DIR } from '../datapath/load.ts';
import { applyBatch, dumpMapRaw, dumpPerCpuMap, type MapOp } from '../datapath/bpftool.ts';
import { CommandError, run } from '../kernel/run.ts';
import {
  IPV4_CODEC,
  SOCKMAP_MAP_CODECS,
  SOCKMAP_MAPS,
  SOCKMAP_MSG_PASSED,
  SOCKMAP_MSG_REDIRECTED,
  SOCKMAP_PROGRAMS,
  SOCKMAP_SOCK_ADDED,
  SOCKMAP_SOCK_ADD_FAILED,
  SOCKMAP_SOCK_NETNS_MISMATCH,
  SOCKMAP_SOCK_SKIPPED,
  decodeSockKey,
  decodeSockmapPod,
  encodeSockmapPod,
  type SockKey,
  type SockmapMapName,
  type SockmapMetric,
  type SockmapProgram,
} from '../abi/generated.ts';
import { type ExtraStep } from '../core/steps.ts';

export const SOCKMAP_OBJECT = `${BPF_DIR}/build/sockmap.o`;

/** <node bpffs dir>/sockmap: this node's sockmap pins. */
export const sockmapProgPin = (lab: string, node: string, prog: SockmapProgram) => `${sockmapDir(lab, node)}/progs/${prog}`;
export const sockmapMapPin = (lab: string, node: string, map: SockmapMapName) => `${sockmapDir(lab, node)}/maps/${map}`;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Creates the node's cgroup (v2). Idempotent. */
export async function ensureNodeCgroup(lab: string, node: string): Promise<string> {
  const dir = nodeCgroupDir(lab, node);
  await mkdir(dir, { recursive: true });
  return dir;
}

export interface NodeSockmap {
  lab: string;
  node: string;
  dir: string;
  cgroup: string;
}

/** Loads and pins the two programs and three maps of one node (not attached yet). */
export async function loadSockmap(lab: string, node: string, opts: { objectPath?: string } = {}): Promise<NodeSockmap> {
  const object = opts.objectPath ?? SOCKMAP_OBJECT;
  if (!(await exists(object))) throw new Error(`${object} does not exist: build it with \`make -C bpf\` (needs clang and libbpf-dev)`);
  await ensureBpffs();
  const dir = sockmapDir(lab, node);
  if (await exists(dir)) throw new Error(`sockmap of ${lab}/${node} is already loaded (${dir})`);
  await mkdir(dir, { recursive: true });
  try {
    // No `type`: libbpf takes each program's type from its section (sockops, sk_msg).
    await run(['bpftool', 'prog', 'loadall', object, `${dir}/progs`, 'pinmaps', `${dir}/maps`]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    if (error instanceof CommandError) {
      const why = error.result.stderr.split('\n').filter((l) => /libbpf:|Error:|invalid|R\d/.test(l)).slice(-4).join('; ');
      throw new Error(`cannot load ${object} for ${lab}/${node}: ${why || error.message}`, { cause: error });
    }
    throw error;
  }
  return { lab, node, dir, cgroup: await ensureNodeCgroup(lab, node) };
}

/**
 * sk_msg onto the sockhash first, then sock_ops onto the cgroup: a socket
 * takes the sockhash's sk_msg program when it is added, so one added before
 * the sk_msg attach would never be redirected.
 */
export async function attachSockmap(lab: string, node: string): Promise<void> {
  await run(['bpftool', 'prog', 'attach', 'pinned', sockmapProgPin(lab, node, SOCKMAP_PROGRAMS.skMsg), 'sk_msg_verdict',
    'pinned', sockmapMapPin(lab, node, SOCKMAP_MAPS.sockhash)]);
  await attachSockOps(lab, node);
}

/** New connections of the node's pods get accelerated (existing ones are unchanged). */
export async function attachSockOps(lab: string, node: string): Promise<void> {
  await run(['bpftool', 'cgroup', 'attach', await ensureNodeCgroup(lab, node), 'cgroup_sock_ops', 'pinned', sockmapProgPin(lab, node, SOCKMAP_PROGRAMS.sockOps)]);
}

/** New connections are no longer added to the sockhash; sockets already in it stay accelerated. */
export async function detachSockOps(lab: string, node: string): Promise<void> {
  if (!(await sockOpsAttached(lab, node))) return;
  await run(['bpftool', 'cgroup', 'detach', nodeCgroupDir(lab, node), 'cgroup_sock_ops', 'pinned', sockmapProgPin(lab, node, SOCKMAP_PROGRAMS.sockOps)]);
}

/** Whether cil_sock_ops of this node is attached to the node's cgroup. */
export async function sockOpsAttached(lab: string, node: string): Promise<boolean> {
  const cg = nodeCgroupDir(lab, node);
  if (!(await exists(cg)) || !(await exists(sockmapDir(lab, node)))) return false;
  const [ids, attached] = await Promise.all([sockmapProgramIds(lab, node), run(['bpftool', '-j', 'cgroup', 'show', cg])]);
  const progs = JSON.parse(attached.stdout.trim() || '[]') as { id: number; attach_type: string }[];
  return progs.some((p) => p.id === ids[SOCKMAP_PROGRAMS.sockOps] && /sock_ops/.test(p.attach_type));
}

/** Kernel ids of this node's two programs (for `bpftool prog show` checks). */
export async function sockmapProgramIds(lab: string, node: string): Promise<Record<SockmapProgram, number>> {
  const ids = {} as Record<SockmapProgram, number>;
  for (const prog of Object.values(SOCKMAP_PROGRAMS)) {
    const r = await run(['bpftool', '-j', 'prog', 'show', 'pinned', sockmapProgPin(lab, node, prog)]);
    ids[prog] = (JSON.parse(r.stdout) as { id: number }).id;
  }
  return ids;
}

/** Detaches both programs and removes the pins: the sockhash is freed and its sockets fall back to TCP/IP. */
export async function unloadSockmap(lab: string, node: string): Promise<void> {
  const dir = sockmapDir(lab, node);
  if (!(await exists(dir))) return;
  await detachSockOps(lab, node);
  await run(['bpftool', 'prog', 'detach', 'pinned', sockmapProgPin(lab, node, SOCKMAP_PROGRAMS.skMsg), 'sk_msg_verdict',
    'pinned', sockmapMapPin(lab, node, SOCKMAP_MAPS.sockhash)], { okCodes: [255] });
  await rm(dir, { recursive: true, force: true });
}

/**
 * Makes sockmap_pods hold exactly these pod IPs (this node's pods). Entries
 * that stay keep their learned namespace cookie; new ones start at 0.
 */
export async function writeSockmapPods(lab: string, node: string, ips: string[]): Promise<void> {
  const pin = sockmapMapPin(lab, node, SOCKMAP_MAPS.pods);
  const current = new Set((await dumpMapRaw(pin)).map((e) => IPV4_CODEC.decode(e.key)));
  const ops: MapOp[] = [];
  for (const ip of ips) if (!current.has(ip)) ops.push({ op: 'update', pin, key: IPV4_CODEC.encode(ip), value: encodeSockmapPod({ netnsCookie: 0n }) });
  for (const ip of current) if (!ips.includes(ip)) ops.push({ op: 'delete', pin, key: IPV4_CODEC.encode(ip) });
  await applyBatch(ops);
}

/** sockmap_pods: pod IP → its namespace's cookie (0n until its first socket). */
export async function dumpSockmapPods(lab: string, node: string): Promise<Map<string, bigint>> {
  const rows = await dumpMapRaw(sockmapMapPin(lab, node, SOCKMAP_MAPS.pods));
  return new Map(rows.map((r) => [IPV4_CODEC.decode(r.key), decodeSockmapPod(r.value).netnsCookie]));
}

/** Every socket in the node's sockhash, as it sees itself. */
export async function dumpSockhash(lab: string, node: string): Promise<SockKey[]> {
  return (await dumpMapRaw(sockmapMapPin(lab, node, SOCKMAP_MAPS.sockhash))).map((e) => decodeSockKey(e.key));
}

export interface SockmapCounters {
  /** sk_msg calls whose data went straight to the peer socket, and their bytes. */
  redirected: SockmapMetric;
  /** sk_msg calls with no peer socket in the hash: sent through TCP/IP. */
  passed: SockmapMetric;
  /** Sockets added to the sockhash (count only). */
  socketsAdded: bigint;
  /** Established sockets whose peer is not a pod of this node. */
  socketsSkipped: bigint;
  socketsAddFailed: bigint;
  socketsNetnsMismatch: bigint;
}

/** sockmap_metrics, summed over CPUs. */
export async function readSockmapCounters(lab: string, node: string): Promise<SockmapCounters> {
  const { key, value } = SOCKMAP_MAP_CODECS[SOCKMAP_MAPS.metrics];
  const rows = await dumpPerCpuMap(sockmapMapPin(lab, node, SOCKMAP_MAPS.metrics), key, value);
  const slot = (i: number): SockmapMetric => {
    const values = rows.find((r) => r.key === i)?.values ?? [];
    return { count: values.reduce((s, v) => s + v.count, 0n), bytes: values.reduce((s, v) => s + v.bytes, 0n) };
  };
  return {
    redirected: slot(SOCKMAP_MSG_REDIRECTED),
    passed: slot(SOCKMAP_MSG_PASSED),
    socketsAdded: slot(SOCKMAP_SOCK_ADDED).count,
    socketsSkipped: slot(SOCKMAP_SOCK_SKIPPED).count,
    socketsAddFailed: slot(SOCKMAP_SOCK_ADD_FAILED).count,
    socketsNetnsMismatch: slot(SOCKMAP_SOCK_NETNS_MISMATCH).count,
  };
}

/** b - a, field by field (counters only grow). */
export function countersDelta(a: SockmapCounters, b: SockmapCounters): SockmapCounters {
  const m = (x: SockmapMetric, y: SockmapMetric) => ({ count: y.count - x.count, bytes: y.bytes - x.bytes });
  return {
    redirected: m(a.redirected, b.redirected),
    passed: m(a.passed, b.passed),
    socketsAdded: b.socketsAdded - a.socketsAdded,
    socketsSkipped: b.socketsSkipped - a.socketsSkipped,
    socketsAddFailed: b.socketsAddFailed - a.socketsAddFailed,
    socketsNetnsMismatch: b.socketsNetnsMismatch - a.socketsNetnsMismatch,
  };
}

/** Load, fill the pod list, attach: one node, ready for its pods' processes. */
export async function installNodeSockmap(lab: string, node: string, podIps: string[]): Promise<NodeSockmap> {
  const sm = await loadSockmap(lab, node);
  await writeSockmapPods(lab, node, podIps);
  await attachSockmap(lab, node);
  return sm;
}

/**
 * The `up` step: every node of a `sockmap: true` lab gets its sockmap; a
 * `sockmap: false` lab gets nothing. Idempotent: a node already loaded is
 * left alone.
 */
export async function installSockmap(plan: LabPlan): Promise<void> {
  if (!plan.topology.sockmap) return;
  await Promise.all(
    plan.nodes.map(async (n) => {
      if (await exists(sockmapDir(plan.lab, n.name))) return;
      await installNodeSockmap(plan.lab, n.name, n.pods.map((p) => p.ip));
    }),
  );
}

export const SOCKMAP_STEP: ExtraStep = { name: 'sockmap', run: (plan) => installSockmap(plan) };

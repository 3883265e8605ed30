// Installing the datapath: one load per node (programs + maps pinned under
// the node's bpffs folder), then one attach per pod veth.
//
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/progs/cil_from_container
//                                             cil_to_container
//   /sys/fs/bpf/mtless-lab/<lab>/<node>/maps/cilium_ipcache, cilium_policy, …
//
// Removing the node folder (mtless down does) and the veths frees everything.
import { access, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeBpffsDir, nodeLinkPins, nodeMapPins, nodeProgPins } from '../core/names.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { ensureBpffs } from '../kernel/preflight.ts';
import { CommandError, run } from '../kernel/run.ts';
import { tcAttach, tcDetach, type TcAttachMode } from '../kernel/tc.ts';
import { applyBatch } from './bpftool.ts';
import {
  POLICY_MODE_CONNECTION,
  POLICY_MODE_PER_PACKET,
  RUNTIME_CONFIG_CT_ACCOUNTING,
  RUNTIME_CONFIG_POLICY_MODE,
  RUNTIME_CONFIG_UTIME_OFFSET,
  U32_CODEC,
  U64_CODEC,
} from '../abi/generated.ts';
import { PROGRAMS } from '../abi/layouts.ts';
import { mapPin } from './maps.ts';

/** bpf/ of this checkout (also when this module runs compiled from dist/) and the object `make -C bpf` builds. */
export const BPF_DIR = join(REPO_ROOT, 'bpf');
export const DATAPATH_OBJECT = `${BPF_DIR}/build/datapath.o`;

/** Builds (or refreshes) bpf/build/datapath.o. Needs clang, make and libbpf-dev. */
export async function buildDatapath(): Promise<string> {
  await run(['make', '-C', BPF_DIR, '--no-print-directory'], { timeout: 120_000 });
  return DATAPATH_OBJECT;
}

/**
 * A load that failed. `verifierLog` holds the kernel verifier's log when the
 * verifier refused a program (the message ends with its last complaint).
 */
export class DatapathLoadError extends Error {
  constructor(
    message: string,
    readonly verifierLog: string | undefined,
    override readonly cause: CommandError,
  ) {
    super(message);
    this.name = 'DatapathLoadError';
  }
}

export type PolicyMode = 'per-packet' | 'connection';

export interface LoadOptions {
  /** Default: bpf/build/datapath.o of this checkout. */
  objectPath?: string;
  /**
   * 'per-packet' (default, Cilium's behaviour): every non-reply packet is
   * checked against policy and the auth map, so deleting an auth entry cuts
   * established connections at their next packet. 'connection': policy and
   * auth are decided when a connection is set up; established ones pass.
   */
  policyMode?: PolicyMode;
  /** Remove an earlier load of this node first (its attached programs keep running until re-attached). */
  replace?: boolean;
}

export interface NodeDatapath {
  lab: string;
  node: string;
  /** Folder of the pinned programs: attachEndpoint's `progPins`. */
  progPins: string;
  /** Folder of the pinned maps. */
  mapPins: string;
}

/**
 * Loads bpf/build/datapath.o for one node: mounts bpffs if needed, pins the
 * two programs and the node's own maps, and writes the runtime config (clock
 * offset, policy mode). A verifier refusal throws DatapathLoadError with the
 * verifier's log.
 */
export async function loadNodeDatapath(lab: string, node: string, opts: LoadOptions = {}): Promise<NodeDatapath> {
  const object = opts.objectPath ?? DATAPATH_OBJECT;
  if (!(await exists(object))) {
    throw new Error(`${object} does not exist: build it with \`make -C bpf\` (needs clang and libbpf-dev)`);
  }
  await ensureBpffs();
  const dir = nodeBpffsDir(lab, node);
  const progPins = nodeProgPins(lab, node);
  const mapPins = nodeMapPins(lab, node);
  if (await exists(progPins)) {
    if (!opts.replace) throw new Error(`the datapath of ${lab}/${node} is already loaded (${dir}); unload it first or pass replace`);
    await unloadNodeDatapath(lab, node);
  }
  await mkdir(dir, { recursive: true });

  try {
    await run(['bpftool', 'prog', 'loadall', object, progPins, 'type', 'classifier', 'pinmaps', mapPins]);
  } catch (error) {
    // A failed loadall may leave a partial pin folder behind.
    await rm(dir, { recursive: true, force: true });
    if (error instanceof CommandError) throw loadError(object, error);
    throw error;
  }
  await writeRuntimeConfig(lab, node, { utimeOffsetNs: clockOffsetNs(), policyMode: opts.policyMode ?? 'per-packet' });
  return { lab, node, progPins, mapPins };
}

/**
 * Removes the node's pins. Attached programs live on until their veths go:
 * the tcx links (links/) stay, as tc filters would, until re-attached.
 */
export async function unloadNodeDatapath(lab: string, node: string): Promise<void> {
  const dir = nodeBpffsDir(lab, node);
  const keep = nodeLinkPins(lab, node);
  for (const entry of await readdir(dir).catch(() => [])) {
    if (join(dir, entry) !== keep) await rm(join(dir, entry), { recursive: true, force: true });
  }
}

function loadError(object: string, error: CommandError): DatapathLoadError {
  const stderr = error.result.stderr;
  // libbpf prints the log between these markers when the verifier refuses a program.
  const log = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(stderr)?.[1];
  const prog = /prog '([^']+)': BPF program load failed: (.*)/.exec(stderr);
  if (log !== undefined) {
    // The complaint is what follows the last instruction ("N: (op) …") of
    // the trace, minus the closing statistics.
    const lines = log.trim().split('\n');
    let lastInsn = lines.length - 1;
    while (lastInsn >= 0 && !/^\d+: /.test(lines[lastInsn]!)) lastInsn--;
    const stats = /^(processed \d+ insns|verification time|stack depth)/;
    const complaint = lines.slice(lastInsn + 1).filter((l) => l.trim() && !stats.test(l)).join('; ') || 'no message';
    return new DatapathLoadError(
      `the verifier refused ${prog?.[1] ?? 'a program'} of ${object}: ${complaint}`,
      log,
      error,
    );
  }
  const libbpf = stderr.split('\n').filter((l) => /libbpf:|Error:/.test(l)).join('; ');
  return new DatapathLoadError(`cannot load ${object}: ${libbpf || error.message}`, undefined, error);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

// ---- runtime config ------------------------------------------------------------------

/**
 * realtime - monotonic, in ns: what BPF adds to bpf_ktime_get_ns() (the
 * monotonic clock, as process.hrtime is) to get Unix time. Date.now() only
 * has millisecond resolution, so find the moment the millisecond ticks over,
 * bracketed by two monotonic reads: the wall clock is a whole ms there. A
 * bracket is ~0.3 µs wide; a wider one means the thread was preempted
 * inside it (a single sample, as this once took, was off by 3 ms on a busy
 * machine, and the datapath's and the agent's clocks then disagreed by
 * that much): measure again, and keep the narrowest bracket seen.
 */
const CLOCK_BRACKET_NS = 2_000n;
const CLOCK_TRIES = 50;

export function clockOffsetNs(): bigint {
  let best: { width: bigint; offset: bigint } | undefined;
  for (let i = 0; i < CLOCK_TRIES && !(best && best.width <= CLOCK_BRACKET_NS); i++) {
    const sample = tickSample();
    if (!best || sample.width < best.width) best = sample;
  }
  return best!.offset;
}

/** One tick of Date.now(): the wall ms it reached and the monotonic bracket around it. */
function tickSample(): { width: bigint; offset: bigint } {
  let from = process.hrtime.bigint();
  let wall = Date.now();
  for (;;) {
    const mid = process.hrtime.bigint();
    const next = Date.now();
    const to = process.hrtime.bigint();
    // The tick came after the read of `wall` (which followed `from`) and before the read of `next` (before `to`).
    if (next !== wall) return { width: to - from, offset: BigInt(next) * 1_000_000n - (from + to) / 2n };
    from = mid;
    wall = next;
  }
}

/** Writes the runtime config slots (one bpftool process). */
export async function writeRuntimeConfig(
  lab: string,
  node: string,
  config: { utimeOffsetNs?: bigint; policyMode?: PolicyMode; ctAccounting?: boolean },
): Promise<void> {
  const pin = mapPin(lab, node, 'cilium_runtime_config');
  const slot = (index: number, value: bigint) => ({
    op: 'update' as const,
    pin,
    key: U32_CODEC.encode(index),
    value: U64_CODEC.encode(BigInt.asUintN(64, value)),
  });
  const ops = [];
  if (config.utimeOffsetNs !== undefined) ops.push(slot(RUNTIME_CONFIG_UTIME_OFFSET, config.utimeOffsetNs));
  if (config.policyMode !== undefined) {
    ops.push(slot(RUNTIME_CONFIG_POLICY_MODE, BigInt(config.policyMode === 'connection' ? POLICY_MODE_CONNECTION : POLICY_MODE_PER_PACKET)));
  }
  if (config.ctAccounting !== undefined) ops.push(slot(RUNTIME_CONFIG_CT_ACCOUNTING, config.ctAccounting ? 1n : 0n));
  await applyBatch(ops);
}

/** Re-reads the clocks (e.g. after the wall clock was stepped) and stores the new offset. */
export async function refreshClockOffset(lab: string, node: string): Promise<bigint> {
  const offset = clockOffsetNs();
  await writeRuntimeConfig(lab, node, { utimeOffsetNs: offset });
  return offset;
}

export async function setPolicyMode(lab: string, node: string, mode: PolicyMode): Promise<void> {
  await writeRuntimeConfig(lab, node, { policyMode: mode });
}

// ---- attaching ---------------------------------------------------------------------

/**
 * Attaches the node's programs to a pod veth (in the node namespace):
 * cil_from_container at tc ingress (packets leaving the pod),
 * cil_to_container at tc egress (packets entering it).
 */
export async function attachEndpoint(nodeNetns: string, ifname: string, progPins: string): Promise<void> {
  await attachEndpoints(nodeNetns, [ifname], progPins);
}

/** attachEndpoint for many veths of one node, in one process; `mode` overrides the attach mode (lab/kernel/tc.ts). */
export async function attachEndpoints(nodeNetns: string, ifnames: string[], progPins: string, opts: { mode?: TcAttachMode } = {}): Promise<void> {
  await tcAttach(nodeNetns, ifnames.flatMap((dev) => [
    { dev, direction: 'ingress' as const, pin: `${progPins}/${PROGRAMS.fromContainer}` },
    { dev, direction: 'egress' as const, pin: `${progPins}/${PROGRAMS.toContainer}` },
  ]), opts);
}

/** Removes both programs from a veth (tcx links or clsact). A veth without either is fine. */
export async function detachEndpoint(nodeNetns: string, ifname: string): Promise<void> {
  await tcDetach(nodeNetns, ifname);
}

/** Interface name → ifindex inside a namespace (what cilium_lxc is keyed by). */
export async function readIfindexes(netns: string): Promise<Map<string, number>> {
  const r = await run(['ip', '-j', 'link', 'show'], { netns });
  const links = JSON.parse(r.stdout) as { ifindex: number; ifname: string }[];
  return new Map(links.map((l) => [l.ifname, l.ifindex]));
}

export interface NodeObject {
  lab: string;
  node: string;
  /** The object file (bpf/build/…, built by `make -C bpf`). */
  object: string;
  /** Its folder under the node's bpffs folder: must not exist yet; removed if the load fails. */
  dir: string;
  /** Where its programs are pinned (inside `dir`). */
  progPins: string;
  /** Names of the node's pinned datapath maps it reuses (the datapath must be loaded first). */
  sharedMaps: readonly string[];
  /** Maps of its own that `prepare` pins, by name, reused as well. */
  ownMaps?: Record<string, string>;
  /** Runs once `dir` exists, before the load (e.g. create and fill a config map). */
  prepare?: () => Promise<void>;
  /** What it is, for messages: "tunnel mode", "strict mode". */
  feature: string;
}

/**
 * Loads a further object for a node (overlay, strict mode …) whose programs
 * reuse the node's pinned maps instead of making their own: one
 * `bpftool prog loadall … map name M pinned P` per node. On failure `dir`
 * is removed and the error names libbpf's complaint.
 */
export async function loadNodeObject(o: NodeObject): Promise<string> {
  if (!(await exists(o.object))) throw new Error(`${o.object} does not exist: build it with \`make -C bpf\` (needs clang and libbpf-dev)`);
  await ensureBpffs();
  const maps = nodeMapPins(o.lab, o.node);
  for (const m of o.sharedMaps) {
    if (!(await exists(`${maps}/${m}`))) throw new Error(`${o.feature} needs the datapath of ${o.lab}/${o.node} first: ${maps}/${m} is not pinned`);
  }
  if (await exists(o.dir)) throw new Error(`${o.feature} of ${o.lab}/${o.node} is already loaded (${o.dir})`);
  await mkdir(o.dir, { recursive: true });
  const shared = { ...Object.fromEntries(o.sharedMaps.map((m) => [m, `${maps}/${m}`])), ...o.ownMaps };
  const reuse = Object.entries(shared).flatMap(([name, pin]) => ['map', 'name', name, 'pinned', pin]);
  try {
    await o.prepare?.();
    await run(['bpftool', 'prog', 'loadall', o.object, o.progPins, 'type', 'classifier', ...reuse]);
  } catch (error) {
    await rm(o.dir, { recursive: true, force: true });
    if (error instanceof CommandError && error.result.command.startsWith('bpftool prog loadall')) {
      const why = error.result.stderr.split('\n').filter((l) => /libbpf:|Error:/.test(l)).join('; ');
      throw new Error(`cannot load ${o.object} for ${o.lab}/${o.node}: ${why || error.message}`, { cause: error });
    }
    throw error;
  }
  return o.progPins;
}

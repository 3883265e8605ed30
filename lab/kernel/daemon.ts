// Long-lived lab processes (control plane, node agents, mesh proxies):
// started detached inside a namespace, tagged for cleanup, logging to the
// lab's state directory, and considered started only once they print their
// READY line. Which daemons exist is the table of lab/core/daemons.ts.
import { readFile } from 'node:fs/promises';
import { daemonLogFile, processTag, rotatedLogFile } from '../core/names.ts';
import { CONTROL_PLANE, CONTROL_PLANE_NODE, AGENT, daemonKind, type DaemonKey, type DaemonKind } from '../core/daemons.ts';
import { TAG_ENV, findTaggedProcesses, isAlive, stopProcesses } from '../core/processes.ts';
import { readState, withStateLock, writeState, type LabState, type ProcessState } from '../core/state.ts';
import { nodeScriptArgv, REPO_ROOT } from './node-script.ts';
import { startDetached } from './run.ts';

export const READY_LINE = 'READY';

/**
 * When set to a directory, daemons start under `node --cpu-prof` and write
 * <role>-<node>.cpuprofile there when they exit (`mtless bench auth
 * --cpu-prof DIR`); Node refuses --cpu-prof in NODE_OPTIONS.
 */
export const CPU_PROF_ENV = 'MTLESS_CPU_PROF_DIR';

/** The node flags that profile a daemon, or none. */
export function cpuProfArgs(role: string, node: string, dir = process.env[CPU_PROF_ENV]): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${role}-${node}.cpuprofile`] : [];
}

export interface DaemonSpec {
  lab: string;
  /** Node name, or "cp" for the control plane. */
  node: string;
  role: string;
  netns: string;
  /** A Node entry point, repo-relative (e.g. 'lab/agent/main.ts'), and its arguments. */
  script: string;
  args: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/**
 * Starts the Node script in the namespace (nsenter keeps /sys/fs/bpf
 * visible), detached from the CLI so it outlives `mtless up`, and waits for its
 * READY line.
 */
export async function startDaemon(spec: DaemonSpec): Promise<ProcessState> {
  const logFile = daemonLogFile(spec.lab, spec.node, spec.role);
  const tag = processTag(spec.lab, spec.node, spec.role);
  const argv = nodeScriptArgv(spec.script, spec.args);
  argv.splice(1, 0, ...cpuProfArgs(spec.role, spec.node));
  const { pid, logOffset } = await startDetached(argv, {
    netns: spec.netns, logFile, cwd: REPO_ROOT, env: { ...spec.env, [TAG_ENV]: tag },
  });
  // A restart appends to the same log: only what this process writes counts.
  await waitForLogLine(logFile, READY_LINE, pid, spec.readyTimeoutMs ?? 15_000, `${spec.role} on ${spec.node}`, logOffset);
  return { pid, tag, node: spec.node, role: spec.role, logFile, logOffset };
}

/** Starts one daemon of the table for `node` of `lab`, from its config file. */
export async function startLabDaemon(lab: string, kind: DaemonKind, node: string, opts: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<ProcessState> {
  return startDaemon({
    lab, node, role: kind.role, netns: kind.netns(lab, node),
    script: kind.script, args: [kind.configFile(lab, node)], ...opts,
  });
}

/** Polls the log (a readiness signal, not a sleep) until the line appears, the process dies, or the deadline passes. */
export async function waitForLogLine(file: string, needle: string, pid: number, timeoutMs: number, what: string, fromOffset = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = (await logSince(file, fromOffset)).toString('utf8');
    if (text.split('\n').some((l) => l.includes(needle))) return;
    if (!isAlive(pid)) throw new Error(`${what} exited before it was ready; its log (${file}) ends with:\n${text.split('\n').slice(-8).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms; see ${file}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * What a log holds from `offset` on. A capped log (lab/core/log.ts) shorter
 * than the offset was rotated since: its earlier part is in the copy.
 */
async function logSince(file: string, offset: number): Promise<Buffer> {
  const live = await readFile(file).catch(() => Buffer.alloc(0));
  if (live.length >= offset) return live.subarray(offset);
  const copy = await readFile(rotatedLogFile(file)).catch(() => Buffer.alloc(0));
  return Buffer.concat([copy.subarray(offset), live]);
}

/**
 * The daemon a CLI word names: "cp" is the control plane, any other word a
 * node's agent.
 */
export function daemonKeyOf(who: string): DaemonKey {
  return who === CONTROL_PLANE_NODE ? { role: CONTROL_PLANE.role, node: CONTROL_PLANE_NODE } : { role: AGENT.role, node: who };
}

/**
 * Restarts a lab daemon from the table, with its config file in the state
 * directory. Every process carrying its tag (the old daemon, alive or
 * not, and whatever it started: they inherit the tag) is stopped first, so
 * no leftover helper of the old one competes with the new one.
 */
export async function restartDaemon(state: LabState, who: string | DaemonKey): Promise<ProcessState> {
  const key = typeof who === 'string' ? daemonKeyOf(who) : who;
  const old = state.processes.find((p) => p.role === key.role && p.node === key.node);
  if (!old) {
    const valid = state.processes.filter((p) => daemonKind(p.role)).map((p) => `${p.role} ${p.node}`).join(', ');
    throw new Error(`lab "${state.lab}" has no ${key.role} on "${key.node}" (valid: ${valid})`);
  }
  const kind = daemonKind(old.role);
  if (!kind) throw new Error(`cannot restart a ${old.role}`);
  const tag = processTag(state.lab, key.node, key.role);
  const tagged = (await findTaggedProcesses(state.lab)).filter((p) => p.tag === tag).map((p) => p.pid);
  await stopProcesses([...new Set([old.pid, ...tagged])].filter(isAlive));
  const proc = await startLabDaemon(state.lab, kind, key.node);
  // The state file may have changed since `state` was read (pods added): replace only this entry.
  await withStateLock(state.lab, async () => {
    const fresh = (await readState(state.lab)) ?? state;
    const at = fresh.processes.findIndex((p) => p.role === key.role && p.node === key.node);
    if (at >= 0) fresh.processes[at] = proc;
    else fresh.processes.push(proc);
    await writeState(fresh);
  });
  state.processes = state.processes.map((p) => (p === old ? proc : p));
  return proc;
}

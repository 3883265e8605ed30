// Long-lived lab processes (control plane, node agents): started detached
// inside a namespace, tagged for cleanup, logging to the lab's state
// directory, and considered started only once they print their READY line.
import { spawn as spawnChild } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { controlNetns, netnsPath, processTag, stateDir, daemonLogFile } from '../core/names.ts';
import { TAG_ENV, isAlive, stopProcesses } from '../core/processes.ts';
import { writeState, type LabState, type ProcessState } from '../core/state.ts';

export const READY_LINE = 'READY';
const REPO = resolve(import.meta.dirname, '../..');

export interface DaemonSpec {
  lab: string;
  /** Node name, or "cp" for the control plane. */
  node: string;
  role: string;
  netns: string;
  /** A TypeScript entry point under lab/, and its arguments. */
  script: string;
  args: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}


/**
 * Starts `node --import tsx SCRIPT ARGS` in the namespace with nsenter (which
 * keeps /sys/fs/bpf visible), detached from the CLI so it outlives `lab up`.
 */
export async function startDaemon(spec: DaemonSpec): Promise<ProcessState> {
  const logFile = daemonLogFile(spec.lab, spec.node, spec.role);
  const log = await open(logFile, 'a', 0o600);
  // A restart appends to the same log: only what this process writes counts.
  const offset = (await log.stat()).size;
  const tag = processTag(spec.lab, spec.node, spec.role);
  const child = spawnChild(
    'nsenter',
    [`--net=${netnsPath(spec.netns)}`, '--', process.execPath, '--import', 'tsx', resolve(REPO, spec.script), ...spec.args],
    { cwd: REPO, detached: true, stdio: ['ignore', log.fd, log.fd], env: { ...process.env, ...spec.env, [TAG_ENV]: tag } },
  );
  child.unref();
  await log.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${spec.role} for ${spec.node}`);
  await waitForLogLine(logFile, READY_LINE, pid, spec.readyTimeoutMs ?? 15_000, `${spec.role} on ${spec.node}`, offset);
  return { pid, tag, node: spec.node, role: spec.role, logFile, logOffset: offset };
}

/** Polls the log (a readiness signal, not a sleep) until the line appears, the process dies, or the deadline passes. */
export async function waitForLogLine(file: string, needle: string, pid: number, timeoutMs: number, what: string, fromOffset = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(fromOffset).toString('utf8');
    if (text.split('\n').some((l) => l.includes(needle))) return;
    if (!isAlive(pid)) throw new Error(`${what} exited before it was ready; its log (${file}) ends with:\n${text.split('\n').slice(-8).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms; see ${file}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Restarts a lab process from the arguments it was started with (its config
 * file stays in the state directory). The old one is stopped first if alive.
 */
export async function restartDaemon(state: LabState, who: string): Promise<ProcessState> {
  const old = state.processes.find((p) => p.node === who);
  if (!old) throw new Error(`lab "${state.lab}" has no agent or control plane "${who}" (valid: ${state.processes.map((p) => p.node).join(', ')})`);
  const spec = RESTARTABLE[old.role];
  if (!spec) throw new Error(`cannot restart a ${old.role}`);
  if (isAlive(old.pid)) await stopProcesses([old.pid]);
  const node = state.nodes.find((n) => n.name === who);
  const proc = await startDaemon({
    lab: state.lab, node: who, role: old.role,
    netns: node ? node.netns : controlNetns(state.lab),
    script: spec.script, args: [spec.config(state.lab, who)],
  });
  state.processes = state.processes.map((p) => (p === old ? proc : p));
  await writeState(state);
  return proc;
}

const RESTARTABLE: Record<string, { script: string; config: (lab: string, node: string) => string }> = {
  agent: { script: 'lab/agent/main.ts', config: (lab, node) => `${stateDir(lab)}/agent-${node}/config.json` },
  'control-plane': { script: 'lab/control/main.ts', config: (lab) => `${stateDir(lab)}/control/config.json` },
};

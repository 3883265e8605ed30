// Long-lived lab processes (control plane, node agents): started detached
// inside a namespace, tagged for cleanup, logging to the lab's state
// directory, and considered started only once they print their READY line.
import { spawn as spawnChild } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { netnsPath, processTag, stateDir } from './names.ts';
import { TAG_ENV, isAlive } from './processes.ts';
import type { ProcessState } from './state.ts';

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

export const daemonLogFile = (lab: string, node: string, role: string) => `${stateDir(lab)}/${role}-${node}.log`;

/**
 * Starts `node --import tsx SCRIPT ARGS` in the namespace with nsenter (which
 * keeps /sys/fs/bpf visible), detached from the CLI so it outlives `lab up`.
 */
export async function startDaemon(spec: DaemonSpec): Promise<ProcessState> {
  const logFile = daemonLogFile(spec.lab, spec.node, spec.role);
  const log = await open(logFile, 'a', 0o600);
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
  await waitForLogLine(logFile, READY_LINE, pid, spec.readyTimeoutMs ?? 15_000, `${spec.role} on ${spec.node}`);
  return { pid, tag, node: spec.node, role: spec.role, logFile };
}

/** Polls the log (a readiness signal, not a sleep) until the line appears, the process dies, or the deadline passes. */
export async function waitForLogLine(file: string, needle: string, pid: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.split('\n').some((l) => l.includes(needle))) return;
    if (!isAlive(pid)) throw new Error(`${what} exited before it was ready; its log (${file}) ends with:\n${text.split('\n').slice(-8).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms; see ${file}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Mininet as a bring-up builder: mininet-driver.py (beside this file), run by
// Debian's python3 in a root namespace of ours, builds as many hosts as the
// lab has pods; whatever it leaves behind is found by our tag and removed.
import { join } from 'node:path';
import { CommandError, run } from '../../kernel/run.ts';
import { destroyLab } from '../../compose/down.ts';
import * as names from '../../core/names.ts';
import { REPO_ROOT } from '../../core/repo.ts';
import { findTaggedProcesses, stopProcesses, TAG_ENV } from '../../core/processes.ts';
import { MININET_LAB, type BenchSize } from './topology.ts';

/** Debian's mininet is installed for the system interpreter, not pyenv's. */
const SYSTEM_PYTHON = '/usr/bin/python3';
/** The Python side, run from the sources (tsc does not copy it into dist/). */
export const MININET_DRIVER = join(REPO_ROOT, 'lab/bench/up/mininet-driver.py');
/** Mininet's root namespace (its switches and host-side veths): one of the run's, never the host's. */
const mininetRootNetns = (lab: string) => `${names.labNetnsPrefix(lab)}root`;
const MININET_TIMEOUT_MS = 10 * 60_000;

export interface MininetResult {
  upMs: number;
  downMs: number;
  hosts: number;
}

/** The driver's last stdout line, checked: both times, and as many hosts as `pods`. */
export function parseMininetResult(stdout: string, stderr: string, pods: number): MininetResult {
  const last = stdout.trim().split('\n').pop() ?? '';
  let out: { upMs?: number; downMs?: number; hosts?: number };
  try {
    out = JSON.parse(last);
  } catch {
    throw new Error(`mininet printed no result: ${firstLines(stdout + stderr, 6)}`);
  }
  if (typeof out.upMs !== 'number' || typeof out.downMs !== 'number') throw new Error(`mininet result incomplete: ${last}`);
  if (out.hosts !== pods) throw new Error(`mininet built ${out.hosts} hosts, expected ${pods}`);
  return { upMs: out.upMs, downMs: out.downMs, hosts: out.hosts };
}

/**
 * One mininet build and teardown of `size`. Leftovers (tagged processes,
 * links in its root namespace) are recorded in `leftovers`, then removed.
 */
export async function measureMininet(size: BenchSize, leftovers: string[], lab = MININET_LAB): Promise<MininetResult> {
  const tag = names.processTag(lab, 'mininet', 'python');
  const rootNetns = mininetRootNetns(lab);
  await run(['ip', 'netns', 'add', rootNetns]);
  try {
    const r = await run(
      ['env', `${TAG_ENV}=${tag}`, SYSTEM_PYTHON, MININET_DRIVER, String(size.nodes), String(size.podsPerNode)],
      { netns: rootNetns, timeout: MININET_TIMEOUT_MS },
    );
    return parseMininetResult(r.stdout, r.stderr, size.nodes * size.podsPerNode);
  } finally {
    // Anything mininet left: its tagged processes (host shells), links in its root namespace.
    const procs = await findTaggedProcesses(lab);
    if (procs.length > 0) {
      leftovers.push(`${procs.length} mininet process(es) still running after the run (stopped)`);
      await stopProcesses(procs.map((p) => p.pid));
    }
    try {
      const links = (await run(['ip', '-n', rootNetns, '-o', 'link', 'show'])).stdout
        .split('\n')
        .filter((l) => l.trim() && !/^\d+: lo:/.test(l));
      if (links.length > 0) leftovers.push(`${links.length} link(s) left in ${rootNetns} (deleted with it)`);
    } catch {
      /* namespace already gone */
    }
    await destroyLab(lab);
  }
}

/** Why mininet failed, in its first lines (its stderr, when it has one). */
export function mininetError(err: unknown): string {
  return firstLines(errorText(err), 6);
}

function errorText(err: unknown): string {
  if (err instanceof CommandError) {
    const r = err.result;
    return (r.stderr.trim() || r.stdout.trim() || err.message).trim();
  }
  return (err as Error)?.message ?? String(err);
}

function firstLines(text: string, n: number): string {
  return text.trim().split('\n').slice(0, n).join('\n');
}

// Processes the lab starts (agents, control plane, captures) carry
// MTLAB_TAG=<processTag> in their environment. Cleanup finds them by that
// tag in /proc — by ownership, even when the state file is gone.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { TOOL } from './names.ts';

export const TAG_ENV = 'MTLAB_TAG';

export interface TaggedProcess {
  pid: number;
  tag: string;
  /** Parent pid (a tagged process's own children inherit the tag). */
  ppid: number;
}

export async function findTaggedProcesses(lab: string): Promise<TaggedProcess[]> {
  const want = `${TAG_ENV}=${TOOL}:${lab}:`;
  const found: TaggedProcess[] = [];
  // Synchronous reads: /proc never waits on a disk, and one await per process
  // queued behind a busy process's other file work (the demo's, with
  // hundreds of processes on the host) took 9 s of a down.
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or a kernel thread
    }
    const tag = env.split('\0').find((kv) => kv.startsWith(want));
    if (tag) found.push({ pid, tag: tag.slice(TAG_ENV.length + 1), ppid: await parentPid(pid) });
  }
  return found;
}

/** Running (a zombie, dead but not yet reaped, counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after the deadline; resolves when all are gone. */
export async function stopProcesses(pids: number[], graceMs = 2000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    alive = alive.filter(isAlive);
  }
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const killDeadline = Date.now() + graceMs;
  while (alive.some(isAlive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 10));
  const stuck = alive.filter(isAlive);
  if (stuck.length > 0) throw new Error(`processes ${stuck.join(', ')} survived SIGKILL (in uninterruptible sleep?)`);
}

async function parentPid(pid: number): Promise<number> {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

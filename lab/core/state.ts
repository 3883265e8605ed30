// A lab's state file, /run/mtless-lab/<lab>/state.json: what `up` created (it
// is written before each object is made, so a crash leaves a complete list),
// and what `status` and `down` read back.
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { isAlive } from './processes.ts';
import { STATE_ROOT, stateDir, stateFile } from './names.ts';

export interface PodState {
  name: string;
  node: string;
  netns: string;
  ip: string;
  lxc: string;
  identity?: number;
  labels: Record<string, string>;
}

export interface NodeState {
  name: string;
  id: number;
  netns: string;
  underlayIp: string;
  mgmtIp: string;
  podCidr: string;
}

export interface ProcessState {
  pid: number;
  /** processTag(lab, node, role): also in the process's environment as MTLAB_TAG. */
  tag: string;
  node: string;
  role: string;
  logFile?: string;
  /** Where this process's lines start in logFile (restarts append). */
  logOffset?: number;
}

export interface LabState {
  lab: string;
  phase: 'creating' | 'up' | 'failed';
  createdAt: string;
  topologyFile?: string;
  /** The cluster pod range (topology addressing.podCIDR). */
  podRange: string;
  /** Every namespace the lab has created or is about to create. */
  netns: string[];
  nodes: NodeState[];
  pods: PodState[];
  processes: ProcessState[];
}

export async function readState(lab: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile(lab), 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${stateFile(lab)}: ${(e as Error).message}`);
  }
}

/** Atomic replace, so a crash never leaves half a state file. */
export async function writeState(state: LabState): Promise<void> {
  await mkdir(stateDir(state.lab), { recursive: true });
  const tmp = `${stateFile(state.lab)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, stateFile(state.lab));
}

/**
 * Claims a lab name: mkdir is atomic, so two concurrent `up`s of one name
 * cannot both succeed.
 */
export async function claimLabName(lab: string): Promise<boolean> {
  await mkdir(STATE_ROOT, { recursive: true });
  try {
    await mkdir(stateDir(lab));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

export async function listStateLabs(): Promise<string[]> {
  try {
    return (await readdir(STATE_ROOT)).sort();
  } catch {
    return [];
  }
}

/**
 * Serialises read-modify-write of a running lab's state between processes
 * (two `mtless pod add` at once). A lock whose holder died is taken over.
 */
export async function withStateLock<T>(lab: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const lock = `${stateDir(lab)}/lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(await readFile(lock, 'utf8').catch(() => '0'));
      if (!holder || !isAlive(holder)) {
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`lab "${lab}" is busy: process ${holder} holds ${lock}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

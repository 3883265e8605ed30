// What a lab looks like right now: its state file checked against the host.
import { labNetnsOnHost, listLabsOnHost } from './down.ts';
import { findTaggedProcesses, isAlive } from '../core/processes.ts';
import { readState, type LabState } from '../core/state.ts';

export interface LabStatus {
  lab: string;
  phase: LabState['phase'] | 'orphaned';
  createdAt?: string;
  topologyFile?: string;
  nodes: (LabState['nodes'][number] & { netnsPresent: boolean })[];
  pods: (LabState['pods'][number] & { netnsPresent: boolean })[];
  processes: { pid: number; tag: string; node?: string; role?: string; alive: boolean }[];
  /** Namespaces with the lab's prefix that its state does not list (e.g. after a crash). */
  strayNetns: string[];
}

export async function labStatus(lab: string): Promise<LabStatus | undefined> {
  const state = await readState(lab);
  const present = new Set(await labNetnsOnHost(lab));
  const tagged = await findTaggedProcesses(lab);
  if (!state && present.size === 0 && tagged.length === 0) return undefined;
  const known = new Set(state?.netns ?? []);
  const procs = new Map<number, LabStatus['processes'][number]>();
  for (const p of state?.processes ?? []) procs.set(p.pid, { pid: p.pid, tag: p.tag, node: p.node, role: p.role, alive: isAlive(p.pid) });
  // Children of the lab's processes (bpftool readers, esbuild) inherit the tag; show only the top ones.
  const taggedPids = new Set(tagged.map((p) => p.pid));
  for (const p of tagged) if (!procs.has(p.pid) && !taggedPids.has(p.ppid)) procs.set(p.pid, { pid: p.pid, tag: p.tag, alive: true });
  return {
    lab,
    phase: state?.phase ?? 'orphaned',
    createdAt: state?.createdAt,
    topologyFile: state?.topologyFile,
    nodes: (state?.nodes ?? []).map((n) => ({ ...n, netnsPresent: present.has(n.netns) })),
    pods: (state?.pods ?? []).map((p) => ({ ...p, netnsPresent: present.has(p.netns) })),
    processes: [...procs.values()],
    strayNetns: [...present].filter((n) => !known.has(n)),
  };
}

export async function allLabStatuses(): Promise<LabStatus[]> {
  const out: LabStatus[] = [];
  for (const lab of await listLabsOnHost()) {
    const s = await labStatus(lab);
    if (s) out.push(s);
  }
  return out;
}

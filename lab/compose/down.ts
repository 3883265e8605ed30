// Tear a lab down by ownership: its processes (tagged ones, and every other
// process in its namespaces or cgroups, such as `mtless exec LAB/POD -- CMD &`),
// its namespaces (which take every link and route inside them along), its
// bpffs pins, its cgroups and its state directory. Needs no topology file and
// works after a crash.
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../kernel/run.ts';
import * as names from '../core/names.ts';
import { findTaggedProcesses, isAlive, stopProcesses } from '../core/processes.ts';
import { listStateLabs, readState } from '../core/state.ts';
import { noteLabDown } from './open-labs.ts';

export interface DownReport {
  lab: string;
  /** Processes ended: tagged ones and any other in the lab's namespaces and cgroups. */
  processes: number;
  netns: string[];
  removedPins: boolean;
  removedCgroups: boolean;
  /** How long each part took, ms: ending processes, deleting namespaces, the kernel freeing the programs, the rest. */
  phasesMs: { processes: number; namespaces: number; programs: number; rest: number };
}

/** "in 754 ms: processes 218, …" for a down's report. */
export function formatDownTime(t: DownReport['phasesMs']): string {
  const total = t.processes + t.namespaces + t.programs + t.rest;
  return `in ${total} ms: processes ${t.processes}, namespaces ${t.namespaces}, the kernel freeing the programs ${t.programs}, the rest ${t.rest}`;
}

/** Lab namespaces that exist now, found by the lab's own prefix. */
export async function labNetnsOnHost(lab: string): Promise<string[]> {
  const prefix = names.labNetnsPrefix(lab);
  return (await listNetns()).filter((n) => n.startsWith(prefix));
}

export async function listNetns(): Promise<string[]> {
  try {
    return (await readdir('/run/netns')).sort();
  } catch {
    return [];
  }
}

/** Every lab that has any trace on this host: a state dir, namespaces, pins or cgroups. */
export async function listLabsOnHost(): Promise<string[]> {
  const labs = new Set(await listStateLabs());
  for (const ns of await listNetns()) {
    const lab = names.labOfNetns(ns);
    if (lab) labs.add(lab);
  }
  for (const dir of [`${names.BPFFS_ROOT}/${names.TOOL}`, `${names.cgroupRoot()}/${names.TOOL}`]) {
    try {
      for (const lab of await readdir(dir)) labs.add(lab);
    } catch {
      /* none */
    }
  }
  return [...labs].sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Node names of a lab's node namespaces (mtl_<lab>_n_<node>). */
function nodesOfNetns(lab: string, netns: string[]): string[] {
  const prefix = `${names.labNetnsPrefix(lab)}n_`;
  return netns.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
}

/**
 * Ids of the programs pinned in a progs/ folder under `dir` (any depth): one
 * `bpftool prog show` with the pinned paths (-f), not one process per pin.
 */
async function pinnedProgramIds(dir: string): Promise<number[]> {
  if (!(await exists(dir))) return [];
  // Only for waiting until the kernel has let them go: a failed listing waits for nothing.
  const r = await run(['bpftool', '-j', '-f', 'prog', 'show'], { okCodes: 'any' });
  if (r.exitCode !== 0) return [];
  const progs = JSON.parse(r.stdout || '[]') as { id: number; pinned?: string[] }[];
  return progs.filter((p) => p.pinned?.some((path) => path.startsWith(`${dir}/`) && dirname(path).endsWith('/progs'))).map((p) => p.id);
}

async function waitUntilUnloaded(ids: number[], timeoutMs: number): Promise<void> {
  if (ids.length === 0) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const loaded = new Set((JSON.parse((await run(['bpftool', '-j', 'prog', 'show'])).stdout || '[]') as { id: number }[]).map((p) => p.id));
    if (!ids.some((id) => loaded.has(id))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every process in a cgroup tree: the tree belongs to the lab, so they do too. */
async function cgroupPids(dir: string): Promise<number[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const own = (await readFile(`${dir}/cgroup.procs`, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const nested = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => cgroupPids(`${dir}/${e.name}`)));
  return [...own, ...nested.flat()];
}

/** Every process in the namespaces (`ip netns pids` matches by namespace inode: nsenter'd processes too). */
async function netnsPids(netns: string[]): Promise<number[]> {
  if (netns.length === 0) return [];
  // -force: a namespace deleted meanwhile does not stop the batch.
  const r = await run(['ip', '-force', '-batch', '-'], { input: netns.map((n) => `netns pids ${n}`).join('\n') + '\n', okCodes: 'any' });
  return r.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
}

/** This process and its ancestors: `down` may itself run inside a lab namespace (`mtless exec LAB/n1 -- mtless down LAB`). */
async function selfAndAncestors(): Promise<Set<number>> {
  const own = new Set<number>();
  for (let pid = process.pid; pid > 1 && !own.has(pid); ) {
    own.add(pid);
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return own;
}

/**
 * Ends every process in the lab's namespaces and cgroups, in rounds: a
 * shell or launcher may fork while it is being ended. Returns their pids.
 */
async function endLabProcesses(netns: string[], cgroupDir: string): Promise<Set<number>> {
  const spared = await selfAndAncestors();
  const ended = new Set<number>();
  for (let round = 0; round < 10; round++) {
    const pids = [...new Set([...(await netnsPids(netns)), ...(await cgroupPids(cgroupDir))])].filter((pid) => !spared.has(pid) && isAlive(pid));
    if (pids.length === 0) return ended;
    await stopProcesses(pids);
    for (const pid of pids) ended.add(pid);
  }
  return ended;
}

/** cgroup directories can only be removed with rmdir, leaves first. */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(`${dir}/${e.name}`);
  await rmdir(dir);
}

export async function destroyLab(lab: string): Promise<DownReport> {
  const report = await destroyLabObjects(lab);
  noteLabDown(lab);
  return report;
}

async function destroyLabObjects(lab: string): Promise<DownReport> {
  let mark = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = Math.round(now - mark);
    mark = now;
    return ms;
  };
  const state = await readState(lab);

  // 1. Processes first: they hold sockets, TUN devices and perf readers in the
  //    namespaces, and a process left in a deleted namespace keeps it alive.
  //    The tagged ones (the lab's own, wherever they run), then every other
  //    process in the lab's namespaces and cgroups (started by hand).
  const tagged = await findTaggedProcesses(lab);
  const pids = new Set(tagged.map((p) => p.pid));
  await stopProcesses([...pids]);
  const netns = new Set([...(state?.netns ?? []), ...(await labNetnsOnHost(lab))]);
  const present = (await listNetns()).filter((n) => netns.has(n));
  const cgroupDir = names.labCgroupDir(lab);
  for (const pid of await endLabProcesses(present, cgroupDir)) pids.add(pid);
  const processesMs = lap();

  // 2. Namespaces: those the state file lists and any left with the lab's prefix.
  if (present.length > 0) {
    await run(['ip', '-force', '-batch', '-'], { input: present.map((n) => `netns delete ${n}`).join('\n') + '\n' });
  }

  const namespacesMs = lap();

  // 3. cgroups (sockmap): empty once the processes are gone (step 1). Before
  //    the wait below: removing a cgroup is what releases its sock_ops program.
  const removedCgroups = await exists(cgroupDir);
  if (removedCgroups) await removeCgroupTree(cgroupDir);
  await rmdir(`${names.cgroupRoot()}/${names.TOOL}`).catch(() => undefined);

  // 4. Pins: programs detach with their namespaces and cgroups; the pins hold them (and the maps) until removed.
  const pinDir = names.labBpffsDir(lab);
  const removedPins = await exists(pinDir);
  const progIds = removedPins ? await pinnedProgramIds(pinDir) : [];
  if (removedPins) await rm(pinDir, { recursive: true, force: true });
  // The kernel frees programs once the namespaces' devices are gone, in the
  // background: wait for it, so `bpftool prog show` is clean when down returns.
  await waitUntilUnloaded(progIds, 5000);
  const programsMs = lap();
  await rmdir(`${names.BPFFS_ROOT}/${names.TOOL}`).catch(() => undefined);

  // 5. WireGuard control sockets left by a killed wireguard-go: for the nodes
  //    the state lists and those whose namespaces existed (no state file needed).
  const nodeNames = new Set([...(state?.nodes ?? []).map((n) => n.name), ...nodesOfNetns(lab, present)]);
  for (const node of [...nodeNames].map((name) => ({ name }))) {
    await rm(`/var/run/wireguard/${names.wgIfname(lab, node.name)}.sock`, { force: true });
  }
  await rmdir('/var/run/wireguard').catch(() => undefined); // wireguard-go made it; only removed when empty

  // 6. The state directory last: it is the lab's claim on its name.
  await rm(names.stateDir(lab), { recursive: true, force: true });
  return {
    lab, processes: pids.size, netns: present, removedPins, removedCgroups,
    phasesMs: { processes: processesMs, namespaces: namespacesMs, programs: programsMs, rest: lap() },
  };
}

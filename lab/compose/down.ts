// Tear a lab down by ownership: its tagged processes, its namespaces (which
// take every link and route inside them along), its bpffs pins, its cgroups
// and its state directory. Needs no topology file and works after a crash.
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { run } from '../kernel/run.ts';
import * as names from '../core/names.ts';
import { findTaggedProcesses, stopProcesses } from '../core/processes.ts';
import { listStateLabs, readState } from '../core/state.ts';

export interface DownReport {
  lab: string;
  processes: number;
  netns: string[];
  removedPins: boolean;
  removedCgroups: boolean;
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

/** Ids of the programs pinned under a folder (any depth). */
async function pinnedProgramIds(dir: string): Promise<number[]> {
  const ids: number[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const path = `${d}/${e.name}`;
      if (e.isDirectory()) await walk(path);
      else if (d.endsWith('/progs')) {
        const r = await run(['bpftool', '-j', 'prog', 'show', 'pinned', path], { okCodes: [255] });
        const id = r.exitCode === 0 ? (JSON.parse(r.stdout) as { id?: number }).id : undefined;
        if (id !== undefined) ids.push(id);
      }
    }
  };
  await walk(dir);
  return ids;
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
  const state = await readState(lab);

  // 1. Processes first: they hold sockets, TUN devices and perf readers in the namespaces.
  const tagged = await findTaggedProcesses(lab);
  const pids = new Set(tagged.map((p) => p.pid));
  await stopProcesses([...pids]);

  // 2. Namespaces: those the state file lists and any left with the lab's prefix.
  const netns = new Set([...(state?.netns ?? []), ...(await labNetnsOnHost(lab))]);
  const present = (await listNetns()).filter((n) => netns.has(n));
  if (present.length > 0) {
    await run(['ip', '-force', '-batch', '-'], { input: present.map((n) => `netns delete ${n}`).join('\n') + '\n' });
  }

  // 3. Pins: programs detach with their namespaces; the pins hold them (and the maps) until removed.
  const pinDir = names.labBpffsDir(lab);
  const removedPins = await exists(pinDir);
  const progIds = removedPins ? await pinnedProgramIds(pinDir) : [];
  if (removedPins) await rm(pinDir, { recursive: true, force: true });
  // The kernel frees programs once the namespaces' devices are gone, in the
  // background: wait for it, so `bpftool prog show` is clean when down returns.
  await waitUntilUnloaded(progIds, 5000);
  await rmdir(`${names.BPFFS_ROOT}/${names.TOOL}`).catch(() => undefined);

  // 4. cgroups (sockmap): empty once the processes are gone.
  const cgroupDir = names.labCgroupDir(lab);
  const removedCgroups = await exists(cgroupDir);
  if (removedCgroups) {
    // A process still in a lab cgroup (an untagged pod app) would make rmdir fail with EBUSY.
    await stopProcesses(await cgroupPids(cgroupDir));
    await removeCgroupTree(cgroupDir);
  }
  await rmdir(`${names.cgroupRoot()}/${names.TOOL}`).catch(() => undefined);

  // 5. WireGuard control sockets left by a killed wireguard-go: for the nodes
  //    the state lists and those whose namespaces existed (no state file needed).
  const nodeNames = new Set([...(state?.nodes ?? []).map((n) => n.name), ...nodesOfNetns(lab, present)]);
  for (const node of [...nodeNames].map((name) => ({ name }))) {
    await rm(`/var/run/wireguard/${names.wgIfname(lab, node.name)}.sock`, { force: true });
  }
  await rmdir('/var/run/wireguard').catch(() => undefined); // wireguard-go made it; only removed when empty

  // 6. The state directory last: it is the lab's claim on its name.
  await rm(names.stateDir(lab), { recursive: true, force: true });
  return { lab, processes: pids.size, netns: present, removedPins, removedCgroups };
}

// `down` ends every process in a lab's namespaces and cgroups, not only the
// ones the lab tagged: `mtless exec LAB/POD -- CMD &` (nsenter into the pod's
// namespace) starts untagged ones, which used to outlive `down` and hold the
// deleted namespace alive.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import t from 'tap';
import { destroyLab } from '../../lab/compose/down.ts';
import { upLab } from '../../lab/compose/up.ts';
import * as names from '../../lab/core/names.ts';
import { findTaggedProcesses, isAlive } from '../../lab/core/processes.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { labLeftovers, needsRoot, REPO } from '../helpers/kernel.ts';

/** Pids whose network namespace is the one at `path` (by inode, as the kernel sees it). */
async function pidsInNetns(path: string): Promise<number[]> {
  const { ino } = await stat(path);
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ns = await stat(`/proc/${entry}/ns/net`).catch(() => undefined);
    if (ns?.ino === ino && isAlive(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('down ends untagged processes in pod and node namespaces and in lab cgroups', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const lab = 't-down-untagged';
  const children: ChildProcess[] = [];
  const seen = new Set<number>(); // every process of the test, ended in finally should down fail
  // Detached, so only `down` (not our exit) ends them.
  const start = (argv: string[]) => {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore' });
    child.unref();
    children.push(child);
    return child;
  };
  try {
    await upLab(topo, { name: lab });
    const serverNs = names.netnsPath(names.podNetns(lab, 'server'));
    const clientNs = names.netnsPath(names.podNetns(lab, 'client'));
    const nodeNs = names.netnsPath(names.nodeNetns(lab, 'n1'));
    // What `mtless exec` runs: nsenter, which execs the command in the namespace.
    start(['nsenter', `--net=${serverNs}`, '--', 'python3', '-m', 'http.server', '18080']);
    start(['nsenter', `--net=${nodeNs}`, '--', 'sleep', '1000']);
    // A shell with children of its own: all three are ended.
    start(['nsenter', `--net=${clientNs}`, '--', 'sh', '-c', 'sleep 1000 & sleep 1001 & wait']);
    // A process in a lab cgroup but in the host's namespace (as a pod app whose namespace is gone).
    const cgroup = `${names.labCgroupDir(lab)}/stray`;
    await mkdir(cgroup, { recursive: true });
    const stray = start(['sleep', '1002']);
    await writeFile(`${cgroup}/cgroup.procs`, String(stray.pid));

    // Settled: python3 may be a launcher script (pyenv) that forks before it execs the interpreter.
    const inNamespaces = await until('the processes to settle in the lab namespaces', async () => {
      const found = { server: await pidsInNetns(serverNs), node: await pidsInNetns(nodeNs), client: await pidsInNetns(clientNs) };
      const serverRuns = found.server.length === 1 && /python/.test(await readlink(`/proc/${found.server[0]}/exe`).catch(() => ''));
      return serverRuns && found.node.length === 1 && found.client.length === 3 ? found : undefined;
    });
    const serverIno = (await stat(serverNs)).ino;
    const expected = new Set([...inNamespaces.server, ...inNamespaces.node, ...inNamespaces.client, stray.pid!]);
    for (const p of await findTaggedProcesses(lab)) expected.add(p.pid);
    for (const pid of expected) seen.add(pid);
    t.equal(expected.size, 6, 'python, sleep, a shell with two children, the stray sleep; no tagged ones (no agents)');

    const report = await destroyLab(lab);
    t.equal(report.processes, expected.size, 'down counts every process it ended');
    t.strictSame([...expected].filter(isAlive), [], 'none of them is left');
    t.ok(report.removedCgroups, 'the cgroup with a process in it is removed');
    // Nothing holds the deleted pod namespace alive.
    const holders: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (/^\d+$/.test(entry) && (await stat(`/proc/${entry}/ns/net`).catch(() => undefined))?.ino === serverIno) holders.push(Number(entry));
    }
    t.strictSame(holders.filter(isAlive), [], 'no process is in the deleted pod namespace');
  } finally {
    await destroyLab(lab);
    for (const child of children) if (child.pid) seen.add(child.pid);
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  t.same(await labLeftovers(lab), [], 'nothing of the lab is left');
});

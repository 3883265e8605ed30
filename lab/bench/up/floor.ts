// The floor of the bring-up benchmark: the very kernel objects `up` makes,
// built by prebuilt `ip -batch` files (lab/core/batches.ts) with no planning,
// validation, state or preflight, and torn down by one `netns delete` batch.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inNetns, run } from '../../kernel/run.ts';
import { destroyLab, labNetnsOnHost } from '../../compose/down.ts';
import { planLab, type LabPlan } from '../../core/plan.ts';
import { allNetns, fabricLines, managementLines, nodeLines, podLines } from '../../core/batches.ts';
import type { Topology } from '../../topology/model.ts';

/** Pod batches in flight for the floor (the lab's `up` uses 4 as well). */
const FLOOR_POD_JOBS = 4;

export interface FloorFiles {
  /** The floor's lab-like name (the topology's), for the cleanup of a failed run. */
  lab: string;
  dir: string;
  upScript: string;
  downBatch: string;
}

/**
 * Writes the floor's files before any timer starts: one `netns add` batch,
 * one `ip -n NS -batch` file per namespace (the very lines `up` sends), a
 * shell driver that runs them phase by phase (fabric ∥ management, then the
 * nodes in parallel, then the pods FLOOR_POD_JOBS at a time), and one
 * `netns delete` batch for teardown.
 */
export async function prepareFloor(topology: Topology, dir: string): Promise<FloorFiles> {
  const plan = planLab(topology, topology.name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files = floorBatches(plan);
  for (const [file, lines] of Object.entries(files.batches)) await writeFile(join(dir, file), lines.join('\n') + '\n');
  await writeFile(join(dir, 'pods.args'), files.podArgs.join('\n') + '\n');
  await writeFile(join(dir, 'up.sh'), floorScript(plan, dir).join('\n') + '\n');
  await writeFile(join(dir, 'netns-delete.batch'), files.allNetns.map((ns) => `netns delete ${ns}`).join('\n') + '\n');
  return { lab: topology.name, dir, upScript: join(dir, 'up.sh'), downBatch: join(dir, 'netns-delete.batch') };
}

/** The very lines lab/compose/up.ts runs (lab/core/batches.ts), without the planning and process overhead. */
export function floorBatches(plan: LabPlan): { batches: Record<string, string[]>; podArgs: string[]; allNetns: string[] } {
  const netns = allNetns(plan);
  const batches: Record<string, string[]> = {
    'netns-add.batch': netns.map((ns) => `netns add ${ns}`),
    'fabric.batch': fabricLines(plan),
    'mgmt.batch': managementLines(plan),
  };
  const podArgs: string[] = [];
  plan.nodes.forEach((n, i) => {
    batches[`node-${i}.batch`] = nodeLines(plan, n);
    for (const p of n.pods) {
      const file = `pod-${p.name}.batch`;
      batches[file] = podLines(plan.topology.addressing.podCIDR, p);
      podArgs.push(`-n ${p.netns} -batch ${file}`);
    }
  });
  return { batches, podArgs, allNetns: netns };
}

/** The shell driver (up.sh) run in `dir`: the phases of `up`, each phase's batches in parallel. */
export function floorScript(plan: LabPlan, dir: string): string[] {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const sh: string[] = ['set -e', `cd ${q(dir)}`, 'ip -batch netns-add.batch'];
  sh.push(
    `ip -n ${plan.fabricNetns} -batch fabric.batch & f=$!`,
    `ip -n ${plan.controlNetns} -batch mgmt.batch & m=$!`,
    'wait $f; wait $m',
  );
  const waits: string[] = [];
  plan.nodes.forEach((n, i) => {
    sh.push(`ip -n ${n.netns} -batch node-${i}.batch & n${i}=$!`);
    sh.push(`${inNetns(n.netns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']).join(' ')} & s${i}=$!`);
    waits.push(`wait $n${i}`, `wait $s${i}`);
  });
  sh.push(waits.join('; '));
  sh.push(`xargs -P ${FLOOR_POD_JOBS} -L 1 ip < pods.args`);
  return sh;
}

export async function measureFloor(files: FloorFiles): Promise<{ upMs: number; downMs: number }> {
  try {
    const t0 = performance.now();
    await run(['sh', files.upScript], { timeout: 10 * 60_000 }); // 2,000 pods on a busy machine take minutes
    const upMs = performance.now() - t0;
    const t1 = performance.now();
    await run(['ip', '-force', '-batch', files.downBatch]);
    const downMs = performance.now() - t1;
    return { upMs, downMs };
  } finally {
    if ((await labNetnsOnHost(files.lab)).length > 0) await destroyLab(files.lab);
  }
}

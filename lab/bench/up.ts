// Bring-up benchmark: how long `up` and `down` take for 4, 100 and 500 pods,
// measured side by side against
//   - the floor: the same kernel objects made by prebuilt `ip -batch` files,
//     with no planning, validation, state or preflight;
//   - mininet (Debian's, Python API, Linux bridges, no controller) building
//     as many hosts.
// Everything runs in namespaces this benchmark creates, under three lab-like
// names (bench-up, bench-floor, bench-mn), so `lab down <name>` also cleans up
// after a crashed run. Nothing is created in the host namespace: mininet's
// "root" namespace (its switches and host-side veths) is a namespace of ours.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, run } from '../kernel/run.ts';
import { upLab } from '../compose/up.ts';
import { destroyLab, labNetnsOnHost } from '../compose/down.ts';
import { planLab, type LabPlan } from '../core/plan.ts';
import { allNetns, fabricLines, managementLines, nodeLines, podLines } from '../core/batches.ts';
import * as names from '../core/names.ts';
import { findTaggedProcesses, stopProcesses, TAG_ENV } from '../core/processes.ts';
import { readState } from '../core/state.ts';
import type { ProgressEvent } from '../core/progress.ts';
import { DEFAULT_ADDRESSING, type Topology } from '../topology/model.ts';
import { formatSummary, ratios, summarize, type Summary } from './stats.ts';

export interface BenchSize {
  nodes: number;
  podsPerNode: number;
}

export interface BenchUpOptions {
  /** Measured runs per size and builder (default 3). */
  runs?: number;
  /** Default: 2 × 2, 4 × 25, 10 × 50. */
  sizes?: BenchSize[];
  /** One line per measurement, for a live view. */
  log?: (line: string) => void;
}

export type BuilderName = 'lab' | 'floor' | 'mininet';

export interface BuilderResult {
  /** One value per successful run, in run order (paired across builders by index). */
  upMs: number[];
  downMs: number[];
  up?: Summary;
  down?: Summary;
  /** Why this builder has no (or fewer) results at this size. */
  error?: string;
}

export interface LabBuilderResult extends BuilderResult {
  /** upLab's own steps (progress events), plus `other` = total − steps (preflight, plan, state). */
  steps: Record<string, Summary>;
}

export interface RatioSummary {
  up?: Summary;
  down?: Summary;
}

export interface SizeReport {
  nodes: number;
  podsPerNode: number;
  pods: number;
  lab: LabBuilderResult;
  floor: BuilderResult;
  mininet: BuilderResult;
  /** Per-run lab / floor. */
  labOverFloor: RatioSummary;
  /** Per-run mininet / lab. */
  mininetOverLab: RatioSummary;
}

export interface GoalCheck {
  goal: string;
  /** undefined: not measured (e.g. mininet unavailable, no 500-pod size). */
  holds: boolean | undefined;
  detail: string;
}

export interface BenchUpReport {
  runs: number;
  startedAt: string;
  durationMs: number;
  host: { kernel: string; cpus: number };
  mininet: {
    available: boolean;
    /** First lines of its error when it could not run. */
    error?: string;
    /** Processes or links mininet left behind (then removed by us). */
    leftovers: string[];
  };
  sizes: SizeReport[];
  goals: {
    labUpUnder5s: GoalCheck;
    fasterThanMininet: GoalCheck;
    withinFloor: GoalCheck;
  };
}

export const BENCH_LAB = 'bench-up';
export const FLOOR_LAB = 'bench-floor';
export const MININET_LAB = 'bench-mn';
export const DEFAULT_SIZES: BenchSize[] = [
  { nodes: 2, podsPerNode: 2 },
  { nodes: 4, podsPerNode: 25 },
  { nodes: 10, podsPerNode: 50 },
];
export const GOALS = { labUpMs: 5000, labUpPods: 500, fasterThanMininet: 3, withinFloor: 2 } as const;

/** Pod batches in flight for the floor (the lab's `up` uses 4 as well). */
const FLOOR_POD_JOBS = 4;
/** Debian's mininet is installed for the system interpreter, not pyenv's. */
const SYSTEM_PYTHON = '/usr/bin/python3';
const MININET_ROOT_NETNS = `${names.labNetnsPrefix(MININET_LAB)}root`;
const MININET_TIMEOUT_MS = 10 * 60_000;

/** The generated topology: nodes n1…nN, pods nXpY, no policies. */
export function benchTopology(size: BenchSize, name = BENCH_LAB): Topology {
  return {
    name,
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    policies: [],
    nodes: Array.from({ length: size.nodes }, (_, i) => ({
      name: `n${i + 1}`,
      pods: Array.from({ length: size.podsPerNode }, (_, j) => ({
        name: `n${i + 1}p${j + 1}`,
        namespace: 'default',
        serviceAccount: 'default',
        labels: { app: `n${i + 1}p${j + 1}` },
      })),
    })),
  };
}

export async function benchUp(opts: BenchUpOptions = {}): Promise<BenchUpReport> {
  const runs = opts.runs ?? 3;
  const sizes = opts.sizes ?? DEFAULT_SIZES;
  const log = opts.log ?? (() => undefined);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, got ${runs}`);
  for (const s of sizes) {
    if (!Number.isInteger(s.nodes) || s.nodes < 1 || s.nodes > 200 || !Number.isInteger(s.podsPerNode) || s.podsPerNode < 1 || s.podsPerNode > 250) {
      throw new Error(`bad size ${JSON.stringify(s)}: 1-200 nodes of 1-250 pods`);
    }
  }
  await refuseLeftovers();

  const started = performance.now();
  const report: BenchUpReport = {
    runs,
    startedAt: new Date().toISOString(),
    durationMs: 0,
    host: { kernel: release(), cpus: cpus().length },
    mininet: { available: true, leftovers: [] },
    sizes: [],
    goals: undefined as unknown as BenchUpReport['goals'],
  };
  const work = await mkdtemp(join(tmpdir(), 'mtlab-bench-up-'));
  try {
    const mnScript = join(work, 'mininet-bench.py');
    await writeFile(mnScript, MININET_SCRIPT);
    for (const size of sizes) {
      const pods = size.nodes * size.podsPerNode;
      const label = `${size.nodes}×${size.podsPerNode}`;
      const lab = { upMs: [] as number[], downMs: [] as number[], stepRuns: [] as Record<string, number>[] };
      const floor: BuilderResult = { upMs: [], downMs: [] };
      const mininet: BuilderResult = { upMs: [], downMs: [] };
      const floorFiles = await prepareFloor(benchTopology(size, FLOOR_LAB), join(work, `floor-${label}`));

      for (let i = 0; i < runs; i++) {
        // Rotate the order so drift (caches, background cleanup) hits every builder alike.
        const order: BuilderName[] = (['lab', 'floor', 'mininet'] as BuilderName[]).map((_, k, all) => all[(k + i) % all.length]!);
        for (const builder of order) {
          await settle();
          if (builder === 'lab') {
            const r = await measureLab(size);
            lab.upMs.push(r.upMs);
            lab.downMs.push(r.downMs);
            lab.stepRuns.push(r.steps);
            log(`${label} run ${i + 1}/${runs} lab      up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms`);
          } else if (builder === 'floor') {
            const r = await measureFloor(floorFiles);
            floor.upMs.push(r.upMs);
            floor.downMs.push(r.downMs);
            log(`${label} run ${i + 1}/${runs} floor    up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms`);
          } else if (report.mininet.available) {
            try {
              const r = await measureMininet(size, mnScript, report.mininet.leftovers);
              mininet.upMs.push(r.upMs);
              mininet.downMs.push(r.downMs);
              log(`${label} run ${i + 1}/${runs} mininet  up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms (${r.hosts} hosts)`);
            } catch (err) {
              const msg = firstLines(errorText(err), 6);
              mininet.error = msg;
              if (mininet.upMs.length === 0 && report.sizes.every((s) => s.mininet.upMs.length === 0)) {
                // Never ran at all: it cannot run here. Say why once and go on without it.
                report.mininet.available = false;
                report.mininet.error = msg;
              }
              log(`${label} run ${i + 1}/${runs} mininet  failed: ${msg.split('\n')[0]}`);
            }
          }
        }
      }
      if (!report.mininet.available && !mininet.error) mininet.error = 'mininet unavailable (see report.mininet.error)';

      const stepNames = [...new Set(lab.stepRuns.flatMap((s) => Object.keys(s)))];
      const sr: SizeReport = {
        nodes: size.nodes,
        podsPerNode: size.podsPerNode,
        pods,
        lab: {
          upMs: lab.upMs,
          downMs: lab.downMs,
          up: summarize(lab.upMs),
          down: summarize(lab.downMs),
          steps: Object.fromEntries(stepNames.map((n) => [n, summarize(lab.stepRuns.map((s) => s[n] ?? 0))])),
        },
        floor: withSummaries(floor),
        mininet: withSummaries(mininet),
        labOverFloor: { up: summarize(ratios(lab.upMs, floor.upMs)), down: summarize(ratios(lab.downMs, floor.downMs)) },
        mininetOverLab: {},
      };
      // Pair mininet runs with the lab's by index only when every run succeeded.
      if (mininet.upMs.length === lab.upMs.length) {
        sr.mininetOverLab = { up: summarize(ratios(mininet.upMs, lab.upMs)), down: summarize(ratios(mininet.downMs, lab.downMs)) };
      }
      report.sizes.push(sr);
    }
  } finally {
    await cleanupAll(log);
    await rm(work, { recursive: true, force: true });
  }
  report.goals = checkGoals(report.sizes);
  report.durationMs = performance.now() - started;
  return report;
}

function withSummaries(r: BuilderResult): BuilderResult {
  return r.upMs.length > 0 ? { ...r, up: summarize(r.upMs), down: summarize(r.downMs) } : r;
}

// ---- lab ---------------------------------------------------------------------

async function measureLab(size: BenchSize): Promise<{ upMs: number; downMs: number; steps: Record<string, number> }> {
  const topology = benchTopology(size, BENCH_LAB);
  const steps: Record<string, number> = {};
  const progress = (e: ProgressEvent) => {
    if (e.kind === 'done') steps[e.step] = e.ms;
  };
  let up = false;
  try {
    const t0 = performance.now();
    await upLab(topology, { name: BENCH_LAB, progress });
    const upMs = performance.now() - t0;
    up = true;
    const t1 = performance.now();
    await destroyLab(BENCH_LAB);
    const downMs = performance.now() - t1;
    up = false;
    const known = Object.values(steps).reduce((a, b) => a + b, 0);
    steps.other = Math.max(0, upMs - known);
    return { upMs, downMs, steps };
  } finally {
    // upLab rolls back its own failures; this covers a failed or interrupted down.
    if (up || (await labNetnsOnHost(BENCH_LAB)).length > 0) await destroyLab(BENCH_LAB);
  }
}

// ---- floor -------------------------------------------------------------------

interface FloorFiles {
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
  const plan = planLab(topology, FLOOR_LAB);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files = floorBatches(plan);
  for (const [file, lines] of Object.entries(files.batches)) await writeFile(join(dir, file), lines.join('\n') + '\n');

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
    sh.push(`nsenter --net=${names.netnsPath(n.netns)} -- sysctl -qw net.ipv4.ip_forward=1 & s${i}=$!`);
    waits.push(`wait $n${i}`, `wait $s${i}`);
  });
  sh.push(waits.join('; '));
  await writeFile(join(dir, 'pods.args'), files.podArgs.join('\n') + '\n');
  sh.push(`xargs -P ${FLOOR_POD_JOBS} -L 1 ip < pods.args`);
  await writeFile(join(dir, 'up.sh'), sh.join('\n') + '\n');
  await writeFile(join(dir, 'netns-delete.batch'), files.allNetns.map((ns) => `netns delete ${ns}`).join('\n') + '\n');
  return { dir, upScript: join(dir, 'up.sh'), downBatch: join(dir, 'netns-delete.batch') };
}

/** The very lines lab/core/up.ts runs (lab/core/batches.ts), without the planning and process overhead. */
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

async function measureFloor(files: FloorFiles): Promise<{ upMs: number; downMs: number }> {
  try {
    const t0 = performance.now();
    await run(['sh', files.upScript]);
    const upMs = performance.now() - t0;
    const t1 = performance.now();
    await run(['ip', '-force', '-batch', files.downBatch]);
    const downMs = performance.now() - t1;
    return { upMs, downMs };
  } finally {
    if ((await labNetnsOnHost(FLOOR_LAB)).length > 0) await destroyLab(FLOOR_LAB);
  }
}

// ---- mininet -----------------------------------------------------------------

/**
 * Runs in mininet's "root" namespace, which is one of ours (MININET_ROOT_NETNS):
 * its switches (Linux bridges) and host-side veth ends live there, its hosts
 * in namespaces of their own (mnexec). Every process carries our MTLAB_TAG,
 * so leftovers are found by ownership; `mn -c` is never needed.
 */
const MININET_SCRIPT = String.raw`
import json, resource, sys, time

nodes, pods = int(sys.argv[1]), int(sys.argv[2])
# Many hosts need many pty/pipe descriptors: raise this process's limit only.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

setLogLevel('error')

class BenchTopo(Topo):
    "One switch per node with its pods' hosts, every node switch linked to a core switch."
    def build(self, nodes, pods):
        core = self.addSwitch('s0')
        h = 0
        for n in range(1, nodes + 1):
            sw = self.addSwitch('s%d' % n)
            self.addLink(sw, core)
            for _ in range(pods):
                h += 1
                self.addLink(self.addHost('h%d' % h), sw)

# Mininet.init() would raise host-wide sysctls (fs.file-max, kernel.pty.max, ...); skip it.
Mininet.inited = True
net = Mininet(topo=BenchTopo(nodes=nodes, pods=pods), switch=LinuxBridge, controller=None, build=False)
result = {}
try:
    t0 = time.perf_counter()
    net.start()
    result['upMs'] = (time.perf_counter() - t0) * 1000
    result['hosts'] = len(net.hosts)
    result['switches'] = len(net.switches)
finally:
    t0 = time.perf_counter()
    net.stop()
    result['downMs'] = (time.perf_counter() - t0) * 1000
print(json.dumps(result))
`;

async function measureMininet(
  size: BenchSize,
  script: string,
  leftovers: string[],
): Promise<{ upMs: number; downMs: number; hosts: number }> {
  const tag = names.processTag(MININET_LAB, 'mininet', 'python');
  await run(['ip', 'netns', 'add', MININET_ROOT_NETNS]);
  try {
    const r = await run(
      ['env', `${TAG_ENV}=${tag}`, SYSTEM_PYTHON, script, String(size.nodes), String(size.podsPerNode)],
      { netns: MININET_ROOT_NETNS, timeout: MININET_TIMEOUT_MS },
    );
    const last = r.stdout.trim().split('\n').pop() ?? '';
    let out: { upMs?: number; downMs?: number; hosts?: number };
    try {
      out = JSON.parse(last);
    } catch {
      throw new Error(`mininet printed no result: ${firstLines(r.stdout + r.stderr, 6)}`);
    }
    const pods = size.nodes * size.podsPerNode;
    if (typeof out.upMs !== 'number' || typeof out.downMs !== 'number') throw new Error(`mininet result incomplete: ${last}`);
    if (out.hosts !== pods) throw new Error(`mininet built ${out.hosts} hosts, expected ${pods}`);
    return { upMs: out.upMs, downMs: out.downMs, hosts: out.hosts };
  } finally {
    // Anything mininet left: its tagged processes (host shells), links in its root namespace.
    const procs = await findTaggedProcesses(MININET_LAB);
    if (procs.length > 0) {
      leftovers.push(`${procs.length} mininet process(es) still running after the run (stopped)`);
      await stopProcesses(procs.map((p) => p.pid));
    }
    try {
      const links = (await run(['ip', '-n', MININET_ROOT_NETNS, '-o', 'link', 'show'])).stdout
        .split('\n')
        .filter((l) => l.trim() && !/^\d+: lo:/.test(l));
      if (links.length > 0) leftovers.push(`${links.length} link(s) left in ${MININET_ROOT_NETNS} (deleted with it)`);
    } catch {
      /* namespace already gone */
    }
    await destroyLab(MININET_LAB);
  }
}

// ---- cleanup, settling -------------------------------------------------------

async function benchLeftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const lab of [BENCH_LAB, FLOOR_LAB, MININET_LAB]) {
    const ns = await labNetnsOnHost(lab);
    const state = await readState(lab).catch(() => undefined);
    const procs = await findTaggedProcesses(lab);
    if (ns.length > 0 || state || procs.length > 0) found.push(lab);
  }
  return found;
}

/** A crashed earlier run (or one still going) leaves namespaces: never delete another run's objects unasked. */
async function refuseLeftovers(): Promise<void> {
  const labs = await benchLeftovers();
  if (labs.length > 0) {
    throw new Error(
      `a benchmark seems to be running, or a crashed one left objects behind (${labs.join(', ')}): ` +
        `run ${labs.map((l) => `\`lab down ${l}\``).join(', ')} first`,
    );
  }
}

async function cleanupAll(log: (line: string) => void): Promise<void> {
  for (const lab of await benchLeftovers()) {
    try {
      await destroyLab(lab);
      log(`cleaned up leftovers of ${lab}`);
    } catch (err) {
      log(`could not clean up ${lab}: ${(err as Error).message} (run \`lab down ${lab}\`)`);
    }
  }
}

async function cpuTimes(): Promise<{ idle: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { idle, total: v.reduce((a, b) => a + b, 0) };
}

/**
 * Waits until the machine is quiet (≥ 90 % idle over 200 ms, 8 s at most):
 * namespace deletion finishes in kernel workers after `ip netns delete`
 * returns, and must not be billed to the next measurement.
 */
async function settle(): Promise<void> {
  const deadline = Date.now() + 8_000;
  await new Promise((r) => setTimeout(r, 100));
  while (Date.now() < deadline) {
    const a = await cpuTimes();
    await new Promise((r) => setTimeout(r, 200));
    const b = await cpuTimes();
    const total = b.total - a.total;
    if (total <= 0 || (b.idle - a.idle) / total >= 0.9) return;
  }
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

// ---- goals -------------------------------------------------------------------

export function checkGoals(sizes: SizeReport[]): BenchUpReport['goals'] {
  const big = sizes.find((s) => s.pods === GOALS.labUpPods);
  const labUpUnder5s: GoalCheck = big?.lab.up
    ? {
        goal: `lab up of ${GOALS.labUpPods} pods < ${GOALS.labUpMs / 1000} s (every run)`,
        holds: big.lab.up.max < GOALS.labUpMs,
        detail: `max ${(big.lab.up.max / 1000).toFixed(2)} s, median ${(big.lab.up.median / 1000).toFixed(2)} s`,
      }
    : { goal: `lab up of ${GOALS.labUpPods} pods < 5 s`, holds: undefined, detail: `no ${GOALS.labUpPods}-pod size measured` };

  const mn = sizes.filter((s) => s.mininetOverLab.up);
  const fasterThanMininet: GoalCheck = {
    goal: `lab up ≥ ${GOALS.fasterThanMininet}× faster than mininet for the same host count (median per-run ratio, every size)`,
    holds: mn.length === 0 ? undefined : mn.length === sizes.length && mn.every((s) => s.mininetOverLab.up!.median >= GOALS.fasterThanMininet),
    detail:
      mn.length === 0
        ? 'mininet not measured'
        : sizes.map((s) => `${s.pods} pods: ${s.mininetOverLab.up ? s.mininetOverLab.up.median.toFixed(1) + '×' : 'n/a'}`).join(', '),
  };

  const withinFloor: GoalCheck = {
    goal: `lab up within ${GOALS.withinFloor}× of the floor (median per-run ratio, every size)`,
    holds: sizes.length === 0 ? undefined : sizes.every((s) => (s.labOverFloor.up?.median ?? Infinity) <= GOALS.withinFloor),
    detail: sizes.map((s) => `${s.pods} pods: ${s.labOverFloor.up ? s.labOverFloor.up.median.toFixed(2) + '×' : 'n/a'}`).join(', '),
  };
  return { labUpUnder5s, fasterThanMininet, withinFloor };
}

// ---- output ------------------------------------------------------------------

export function formatBenchUp(report: BenchUpReport): string {
  const out: string[] = [];
  out.push(
    `bring-up benchmark: ${report.runs} run(s) per size and builder, kernel ${report.host.kernel}, ${report.host.cpus} CPU(s), ` +
      `took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('times in ms, min / median / max; ratios per run, min / median / max');
  out.push('');
  const rows: string[][] = [['size', 'builder', 'up ms', 'down ms']];
  const dec = (s: { median: number }) => (s.median < 100 ? 1 : 0);
  for (const s of report.sizes) {
    const size = `${s.nodes}×${s.podsPerNode} = ${s.pods}`;
    const builders: [string, BuilderResult][] = [
      ['lab', s.lab],
      ['floor', s.floor],
      ['mininet', s.mininet],
    ];
    builders.forEach(([name, r], i) => {
      rows.push([
        i === 0 ? size : '',
        name,
        r.up ? formatSummary(r.up, dec(r.up)) : 'n/a',
        r.down ? formatSummary(r.down, dec(r.down)) : '',
      ]);
    });
    rows.push(['', 'lab/floor', s.labOverFloor.up ? formatSummary(s.labOverFloor.up, 2) + ' ×' : 'n/a', s.labOverFloor.down ? formatSummary(s.labOverFloor.down, 2) + ' ×' : '']);
    rows.push(['', 'mininet/lab', s.mininetOverLab.up ? formatSummary(s.mininetOverLab.up, 1) + ' ×' : 'n/a', s.mininetOverLab.down ? formatSummary(s.mininetOverLab.down, 1) + ' ×' : '']);
    rows.push(['', '', '', '']);
  }
  out.push(...table(rows));

  out.push('lab up by step (median ms; `other` = preflight, plan, state file):');
  const stepRows: string[][] = [['size', ...Object.keys(report.sizes[0]?.lab.steps ?? {})]];
  for (const s of report.sizes) {
    stepRows.push([`${s.pods} pods`, ...Object.keys(report.sizes[0]?.lab.steps ?? {}).map((k) => (s.lab.steps[k] ? s.lab.steps[k]!.median.toFixed(1) : '-'))]);
  }
  out.push(...table(stepRows).map((l) => '  ' + l));
  out.push('');

  if (!report.mininet.available) out.push(`mininet could not run here:\n${indent(report.mininet.error ?? 'unknown error')}`);
  for (const s of report.sizes) {
    for (const [name, r] of [['lab', s.lab], ['floor', s.floor], ['mininet', s.mininet]] as const) {
      if (r.error && !(name === 'mininet' && !report.mininet.available)) out.push(`${name} at ${s.pods} pods failed:\n${indent(r.error)}`);
    }
  }
  if (report.mininet.leftovers.length > 0) out.push(`mininet left things behind:\n${indent(report.mininet.leftovers.join('\n'))}`);

  out.push('goals:');
  for (const g of Object.values(report.goals)) {
    const mark = g.holds === undefined ? 'NOT MEASURED' : g.holds ? 'holds' : 'MISSED';
    out.push(`  [${mark}] ${g.goal}: ${g.detail}`);
  }
  return out.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
}

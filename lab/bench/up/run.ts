// Bring-up benchmark: how long `up` and `down` take for 4, 100, 500 and 2,000 pods,
// measured side by side against
//   - the floor (floor.ts): the same kernel objects made by prebuilt
//     `ip -batch` files, with no planning, validation, state or preflight;
//   - mininet (mininet.ts: Debian's, Python API, Linux bridges, no
//     controller) building as many hosts.
// Everything runs in namespaces this benchmark creates, under three lab-like
// names (bench-up, bench-floor, bench-mn; PREFIX-bench-up … with a prefix), so `mtless down <name>` also cleans up
// after a crashed run. Nothing is created in the host namespace: mininet's
// "root" namespace (its switches and host-side veths) is a namespace of ours.
// The summaries and goals are in report.ts, the text in format.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upLab } from '../../compose/up.ts';
import { destroyLab, labNetnsOnHost } from '../../compose/down.ts';
import type { ProgressEvent } from '../../core/progress.ts';
import { hostFacts, waitForIdleHost } from '../host.ts';
import { labExists } from '../leftovers.ts';
import { measureFloor, prepareFloor } from './floor.ts';
import { measureMininet, mininetError } from './mininet.ts';
import { checkGoals, sizeReport, type BenchUpReport, type BuilderName, type BuilderResult, type LabRuns } from './report.ts';
import { benchTopology, benchUpLabs, DEFAULT_SIZES, type BenchSize, type BenchUpLabs } from './topology.ts';

export interface BenchUpOptions {
  /** Measured runs per size and builder (default 3). */
  runs?: number;
  /** Default: 2 × 2, 4 × 25, 10 × 50, 10 × 200. */
  sizes?: BenchSize[];
  /** One line per measurement, for a live view. */
  log?: (line: string) => void;
  /** `--name PREFIX`: the builders' labs are PREFIX-bench-up, PREFIX-bench-floor and PREFIX-bench-mn. */
  prefix?: string;
  /** Wait for a quiet host before each measurement (default); a test that checks names, not times, skips it. */
  waitForIdle?: boolean;
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
  const labs = benchUpLabs(opts.prefix);
  await refuseLeftovers(labs);

  const started = performance.now();
  const report: BenchUpReport = {
    runs,
    startedAt: new Date().toISOString(),
    durationMs: 0,
    host: hostFacts(),
    mininet: { available: true, leftovers: [] },
    sizes: [],
    goals: undefined as unknown as BenchUpReport['goals'],
  };
  const work = await mkdtemp(join(tmpdir(), 'mtlab-bench-up-'));
  try {
    for (const size of sizes) {
      const label = `${size.nodes}×${size.podsPerNode}`;
      const lab: LabRuns = { upMs: [], downMs: [], stepRuns: [] };
      const floor: BuilderResult = { upMs: [], downMs: [] };
      const mininet: BuilderResult = { upMs: [], downMs: [] };
      const floorFiles = await prepareFloor(benchTopology(size, labs.floor), join(work, `floor-${label}`));

      for (let i = 0; i < runs; i++) {
        // Rotate the order so drift (caches, background cleanup) hits every builder alike.
        const order: BuilderName[] = (['lab', 'floor', 'mininet'] as BuilderName[]).map((_, k, all) => all[(k + i) % all.length]!);
        for (const builder of order) {
          if (opts.waitForIdle !== false) await waitForIdleHost();
          if (builder === 'lab') {
            const r = await measureLab(size, labs.lab);
            lab.upMs.push(r.upMs);
            lab.downMs.push(r.downMs);
            lab.stepRuns.push(r.steps);
            log(`${label} run ${i + 1}/${runs} lab      up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms`);
          } else if (builder === 'floor') {
            const r = await measureFloor(floorFiles);
            floor.upMs.push(r.upMs);
            floor.downMs.push(r.downMs);
            log(`${label} run ${i + 1}/${runs} floor    up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms`);
          } else if (report.mininet.available && mininet.error === undefined) {
            // A size mininet failed at once is not tried again: a run past its 10-minute bound would only repeat.
            try {
              const r = await measureMininet(size, report.mininet.leftovers, labs.mininet);
              mininet.upMs.push(r.upMs);
              mininet.downMs.push(r.downMs);
              log(`${label} run ${i + 1}/${runs} mininet  up ${r.upMs.toFixed(0)} ms, down ${r.downMs.toFixed(0)} ms (${r.hosts} hosts)`);
            } catch (err) {
              const msg = mininetError(err);
              mininet.error = msg;
              if (mininet.upMs.length === 0 && report.sizes.every((s) => s.mininet.upMs.length === 0)) {
                // Never ran at all: it cannot run here. Say why once and go on without it.
                report.mininet.available = false;
                report.mininet.error = msg;
              }
              log(`${label} run ${i + 1}/${runs} mininet  failed: ${msg.split('\n')[0]}${i + 1 < runs ? ' (not tried again at this size)' : ''}`);
            }
          }
        }
      }
      if (!report.mininet.available && !mininet.error) mininet.error = 'mininet unavailable (see report.mininet.error)';
      report.sizes.push(sizeReport(size, lab, floor, mininet));
    }
  } finally {
    await cleanupAll(log, labs);
    await rm(work, { recursive: true, force: true });
  }
  report.goals = checkGoals(report.sizes);
  report.durationMs = performance.now() - started;
  return report;
}

/** One `upLab` and `destroyLab` of `size`, with upLab's steps from its progress events. */
async function measureLab(size: BenchSize, name: string): Promise<{ upMs: number; downMs: number; steps: Record<string, number> }> {
  const topology = benchTopology(size, name);
  const steps: Record<string, number> = {};
  const progress = (e: ProgressEvent) => {
    if (e.kind === 'done') steps[e.step] = e.ms;
  };
  let up = false;
  try {
    const t0 = performance.now();
    await upLab(topology, { name, progress });
    const upMs = performance.now() - t0;
    up = true;
    const t1 = performance.now();
    await destroyLab(name);
    const downMs = performance.now() - t1;
    up = false;
    const known = Object.values(steps).reduce((a, b) => a + b, 0);
    steps.other = Math.max(0, upMs - known);
    return { upMs, downMs, steps };
  } finally {
    // upLab rolls back its own failures; this covers a failed or interrupted down.
    if (up || (await labNetnsOnHost(name)).length > 0) await destroyLab(name);
  }
}

// ---- leftovers ---------------------------------------------------------------

async function benchLeftovers(labs: BenchUpLabs): Promise<string[]> {
  const found: string[] = [];
  for (const lab of [labs.lab, labs.floor, labs.mininet]) if (await labExists(lab)) found.push(lab);
  return found;
}

/** A crashed earlier run (or one still going) leaves namespaces: never delete another run's objects unasked. */
async function refuseLeftovers(names: BenchUpLabs): Promise<void> {
  const labs = await benchLeftovers(names);
  if (labs.length > 0) {
    throw new Error(
      `a benchmark seems to be running, or a crashed one left objects behind (${labs.join(', ')}): ` +
        `run ${labs.map((l) => `\`mtless down ${l}\``).join(', ')} first`,
    );
  }
}

async function cleanupAll(log: (line: string) => void, labs: BenchUpLabs): Promise<void> {
  for (const lab of await benchLeftovers(labs)) {
    try {
      await destroyLab(lab);
      log(`cleaned up leftovers of ${lab}`);
    } catch (err) {
      log(`could not clean up ${lab}: ${(err as Error).message} (run \`mtless down ${lab}\`)`);
    }
  }
}

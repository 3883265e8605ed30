// What the bring-up benchmark reports: per size and builder (lab, floor,
// mininet) the up/down times, the lab's own steps, the per-run ratios, and
// the goals. Pure.
import type { GoalCheck } from '../goal.ts';
import { ratios, summarize, type Summary } from '../stats.ts';
import type { BenchSize } from './topology.ts';

/**
 * Ratios to builders measured in the same run (absolute times do not travel
 * between machines): today's floor is one `ip -batch` per pod through xargs.
 */
export const GOALS = { bigPods: 500, bigOverFloor: 1.0, smallPods: 4, smallOverFloor: 1.5, fasterThanMininet: 8 } as const;

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

/** The lab's runs at one size, before summaries: per run, its total times and its steps' ms. */
export interface LabRuns {
  upMs: number[];
  downMs: number[];
  stepRuns: Record<string, number>[];
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
  /** Pods brought up per second, from each builder's median up time. */
  podsPerSecond: Partial<Record<BuilderName, number>>;
}

export interface UpGoals {
  bigAtFloor: GoalCheck;
  smallNearFloor: GoalCheck;
  fasterThanMininet: GoalCheck;
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
  goals: UpGoals;
}

export function withSummaries(r: BuilderResult): BuilderResult {
  return r.upMs.length > 0 ? { ...r, up: summarize(r.upMs), down: summarize(r.downMs) } : r;
}

/** One size's summaries; mininet is paired with the lab's runs by index only when every mininet run succeeded. */
export function sizeReport(size: BenchSize, lab: LabRuns, floor: BuilderResult, mininet: BuilderResult): SizeReport {
  const stepNames = [...new Set(lab.stepRuns.flatMap((s) => Object.keys(s)))];
  const sr: SizeReport = {
    nodes: size.nodes,
    podsPerNode: size.podsPerNode,
    pods: size.nodes * size.podsPerNode,
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
    podsPerSecond: {},
  };
  for (const [name, r] of [['lab', sr.lab], ['floor', sr.floor], ['mininet', sr.mininet]] as const) {
    if (r.up && r.up.median > 0) sr.podsPerSecond[name] = sr.pods / (r.up.median / 1000);
  }
  if (mininet.upMs.length === lab.upMs.length) {
    sr.mininetOverLab = { up: summarize(ratios(mininet.upMs, lab.upMs)), down: summarize(ratios(mininet.downMs, lab.downMs)) };
  }
  return sr;
}

/** lab/floor at one size (median per-run ratio) against a bound. */
function floorGoal(sizes: SizeReport[], pods: number, bound: number): GoalCheck {
  const s = sizes.find((x) => x.pods === pods);
  const r = s?.labOverFloor.up;
  return {
    goal: `mtless up of ${pods} pods ≤ ${bound.toFixed(1)}× the floor (median per-run ratio)`,
    holds: r ? r.median <= bound : undefined,
    detail: r
      ? `${r.median.toFixed(2)}× (min ${r.min.toFixed(2)}, max ${r.max.toFixed(2)}), ` +
        (r.median <= bound ? `${((1 - r.median / bound) * 100).toFixed(0)} % under` : `${((r.median / bound - 1) * 100).toFixed(0)} % over`)
      : `no ${pods}-pod size measured`,
  };
}

export function checkGoals(sizes: SizeReport[]): UpGoals {
  const mn = sizes.filter((s) => s.mininetOverLab.up);
  const fasterThanMininet: GoalCheck = {
    goal: `mtless up ≥ ${GOALS.fasterThanMininet}× faster than mininet for the same host count (median per-run ratio, every size)`,
    holds: mn.length === 0 ? undefined : mn.length === sizes.length && mn.every((s) => s.mininetOverLab.up!.median >= GOALS.fasterThanMininet),
    detail:
      mn.length === 0
        ? 'mininet not measured'
        : sizes.map((s) => `${s.pods} pods: ${s.mininetOverLab.up ? s.mininetOverLab.up.median.toFixed(1) + '×' : 'n/a'}`).join(', '),
  };
  return {
    bigAtFloor: floorGoal(sizes, GOALS.bigPods, GOALS.bigOverFloor),
    smallNearFloor: floorGoal(sizes, GOALS.smallPods, GOALS.smallOverFloor),
    fasterThanMininet,
  };
}

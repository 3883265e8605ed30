// What the bring-up benchmark reports: per size and builder (lab, floor,
// mininet) the up/down times, the lab's own steps, the per-run ratios, and
// the goals. Pure.
import type { GoalCheck } from '../goal.ts';
import { ratios, summarize, type Summary } from '../stats.ts';
import type { BenchSize } from './topology.ts';

export const GOALS = { labUpMs: 5000, labUpPods: 500, fasterThanMininet: 3, withinFloor: 2 } as const;

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
}

export interface UpGoals {
  labUpUnder5s: GoalCheck;
  fasterThanMininet: GoalCheck;
  withinFloor: GoalCheck;
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
  };
  if (mininet.upMs.length === lab.upMs.length) {
    sr.mininetOverLab = { up: summarize(ratios(mininet.upMs, lab.upMs)), down: summarize(ratios(mininet.downMs, lab.downMs)) };
  }
  return sr;
}

export function checkGoals(sizes: SizeReport[]): UpGoals {
  const big = sizes.find((s) => s.pods === GOALS.labUpPods);
  const labUpUnder5s: GoalCheck = big?.lab.up
    ? {
        goal: `mtless up of ${GOALS.labUpPods} pods < ${GOALS.labUpMs / 1000} s (every run)`,
        holds: big.lab.up.max < GOALS.labUpMs,
        detail: `max ${(big.lab.up.max / 1000).toFixed(2)} s, median ${(big.lab.up.median / 1000).toFixed(2)} s`,
      }
    : { goal: `mtless up of ${GOALS.labUpPods} pods < 5 s`, holds: undefined, detail: `no ${GOALS.labUpPods}-pod size measured` };

  const mn = sizes.filter((s) => s.mininetOverLab.up);
  const fasterThanMininet: GoalCheck = {
    goal: `mtless up ≥ ${GOALS.fasterThanMininet}× faster than mininet for the same host count (median per-run ratio, every size)`,
    holds: mn.length === 0 ? undefined : mn.length === sizes.length && mn.every((s) => s.mininetOverLab.up!.median >= GOALS.fasterThanMininet),
    detail:
      mn.length === 0
        ? 'mininet not measured'
        : sizes.map((s) => `${s.pods} pods: ${s.mininetOverLab.up ? s.mininetOverLab.up.median.toFixed(1) + '×' : 'n/a'}`).join(', '),
  };

  const withinFloor: GoalCheck = {
    goal: `mtless up within ${GOALS.withinFloor}× of the floor (median per-run ratio, every size)`,
    holds: sizes.length === 0 ? undefined : sizes.every((s) => (s.labOverFloor.up?.median ?? Infinity) <= GOALS.withinFloor),
    detail: sizes.map((s) => `${s.pods} pods: ${s.labOverFloor.up ? s.labOverFloor.up.median.toFixed(2) + '×' : 'n/a'}`).join(', '),
  };
  return { labUpUnder5s, fasterThanMininet, withinFloor };
}

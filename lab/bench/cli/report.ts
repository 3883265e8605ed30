// `mtless bench cli`: what a user waits for when they type a command, next to
// the floor of starting Node at all (`node -e 0`), measured in the same run.
// The types and the pure arithmetic; run.ts measures, format.ts prints.
import { median, ratios, summarize, type Summary } from '../stats.ts';
import type { GoalCheck } from '../goal.ts';

/** What is timed, each run alternating with the floor. */
export const CLI_CASES = ['help', 'validate', 'exec', 'up'] as const;
export type CliCase = (typeof CLI_CASES)[number];

export interface CliSample {
  /** Wall ms of the command, from spawn to exit. */
  ms: number;
  /** Wall ms of `node -e 0` started right before it. */
  floorMs: number;
}

export interface CliBenchReport {
  machine: { kernel: string; cpus: number; node: string; loadavgBefore: string; loadavgAfter: string };
  runs: number;
  /** The argv of each case, as run. */
  commands: Record<CliCase, string>;
  samples: Record<CliCase, CliSample[]>;
  /** Per `up` run: the agents step as `up` printed it, ms. */
  agentsStepMs: number[];
  tookMs: number;
}

export interface CliCaseSummary {
  ms: Summary;
  floorMs: Summary;
  /** Per-run ratio command / floor. */
  ratio: Summary;
}

export function summarizeCase(samples: CliSample[]): CliCaseSummary {
  return {
    ms: summarize(samples.map((s) => s.ms)),
    floorMs: summarize(samples.map((s) => s.floorMs)),
    ratio: summarize(ratios(samples.map((s) => s.ms), samples.map((s) => s.floorMs))),
  };
}

export const CLI_GOALS = { helpMs: 150, helpRatio: 3, execMs: 250, upMs: 2500 } as const;

export function checkCliGoals(r: CliBenchReport): Record<'help' | 'exec' | 'up', GoalCheck> {
  const help = summarizeCase(r.samples.help);
  const exec = r.samples.exec.length ? summarizeCase(r.samples.exec) : undefined;
  const up = r.samples.up.length ? summarizeCase(r.samples.up) : undefined;
  const ms = (x: number) => `${x.toFixed(0)} ms`;
  return {
    help: {
      goal: `mtless --help ≤ ${CLI_GOALS.helpMs} ms median and ≤ ${CLI_GOALS.helpRatio}× the floor`,
      holds: help.ms.median <= CLI_GOALS.helpMs && help.ratio.median <= CLI_GOALS.helpRatio,
      detail: `median ${ms(help.ms.median)}, ${help.ratio.median.toFixed(2)}× node -e 0 (${ms(help.floorMs.median)})`,
    },
    exec: {
      goal: `mtless exec LAB/client -- true ≤ ${CLI_GOALS.execMs} ms median`,
      holds: exec ? exec.ms.median <= CLI_GOALS.execMs : undefined,
      detail: exec ? `median ${ms(exec.ms.median)}, ${exec.ratio.median.toFixed(2)}× the floor` : 'not measured',
    },
    up: {
      goal: `mtless up two-node-auth.yaml, agents ready, ≤ ${CLI_GOALS.upMs / 1000} s median`,
      holds: up ? up.ms.median <= CLI_GOALS.upMs : undefined,
      detail: up ? `median ${ms(up.ms.median)} (agents step ${ms(median(r.agentsStepMs))})` : 'not measured',
    },
  };
}

/** The agents step's time from `up`'s progress lines (`  agents  1234 ms`). */
export function parseStepMs(stderr: string, step: string): number | undefined {
  const m = new RegExp(`^\\s*${step}\\s+(\\d+) ms\\s*$`, 'm').exec(stderr.replace(/\r/g, '\n'));
  return m ? Number(m[1]) : undefined;
}

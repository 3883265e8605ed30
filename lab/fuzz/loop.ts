// The loop every fuzzer shares: cases of a seed in groups (group k+1 built
// while group k runs), each judged against its model; mismatches run again
// alone, then shrunk greedily (the first smaller variant that still
// mismatches on one of the same fields, until none does) and reported.
import { diffFields } from './compare.ts';
import type { FileSink, FuzzNode, GroupItem, ItemResult } from './node.ts';
import type { Window } from './compare.ts';
import type { Clock } from './model.ts';

/** What one fuzz target (datapath, overlay, strict) is made of. */
export interface FuzzTarget<C, T> {
  name: string;
  /** Case `index` of `seed`: a pure function of the two. */
  generate(seed: number, index: number): C;
  /** The commands of one case (the model's expectation goes into the tag). */
  item(c: C, index: number, now: Clock, files: FileSink): GroupItem<T>;
  /** Model against kernel; `coverage` names the outcomes the case reached. */
  judge(result: ItemResult<T>, window: Window): Verdict<C>;
  /** Smaller variants of a case (any order; the loop keeps only smaller ones). */
  shrink(c: C): C[];
  size(c: C): number;
}

export interface Verdict<C> {
  index: number;
  case: C;
  diffs: string[];
  /** The case, the model's expectation and what the kernel did, as text. */
  text: string[];
  coverage: string[];
}

export interface Mismatch<C> extends Verdict<C> {
  /** Mismatched again when run alone (otherwise an earlier mismatch of its batch left something behind). */
  reproducedAlone: boolean;
  /** The smallest variant that still mismatches on one of the same fields. */
  minimal?: Verdict<C>;
  shrinkSteps?: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** First case index (default 0): `--from I --cases 1` runs case I of a seed alone. */
  from?: number;
  /** Cases per bpftool batch (default 250). */
  groupSize?: number;
  /** Shrink mismatches (default true). */
  shrink?: boolean;
  /** Mismatches run again alone and shrunk (default 5); the rest are only counted. */
  explain?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Stops the run between groups (the report says how many cases ran). */
  signal?: AbortSignal;
}

export interface FuzzReport<C> {
  target: string;
  seed: number;
  from: number;
  cases: number;
  /** Every mismatching case. */
  mismatchCount: number;
  /** The first few mismatches, explained (see `explain`). */
  mismatches: Mismatch<C>[];
  /** How often each outcome came up ("drop 133", "pass", "signal", …): what the cases reached. */
  coverage: Record<string, number>;
  /** Map entries left behind by groups (after mismatches), deleted again. */
  leftovers: string[];
  durationMs: number;
  /** The cases alone, without shrinking. */
  casesMs: number;
  /** Stopped early by `signal`: `cases` says how many ran. */
  interrupted: boolean;
}

/** Runs the given cases as one group. */
export async function runCases<C, T>(node: FuzzNode, target: FuzzTarget<C, T>, cases: { index: number; case: C }[]): Promise<{ verdicts: Verdict<C>[]; leftovers: string[] }> {
  const group = await node.runGroup(cases.length, (k, now, files) => target.item(cases[k]!.case, cases[k]!.index, now, files));
  return { verdicts: group.items.map((r) => target.judge(r, group.window)), leftovers: group.leftovers };
}

export async function shrink<C, T>(node: FuzzNode, target: FuzzTarget<C, T>, start: Verdict<C>, maxRounds = 400): Promise<{ minimal: Verdict<C>; steps: number }> {
  const fields = diffFields(start.diffs);
  let best = start;
  let steps = 0;
  for (let round = 0; round < maxRounds; round++) {
    const size = target.size(best.case);
    const candidates = target.shrink(best.case).filter((c) => target.size(c) < size);
    let next: Verdict<C> | undefined;
    for (let i = 0; i < candidates.length && !next; i += 200) {
      const { verdicts } = await runCases(node, target, candidates.slice(i, i + 200).map((c) => ({ index: start.index, case: c })));
      next = verdicts.find((v) => v.diffs.length && [...diffFields(v.diffs)].some((f) => fields.has(f)));
    }
    if (!next) break;
    best = next;
    steps++;
  }
  return { minimal: best, steps };
}

export async function fuzz<C, T>(node: FuzzNode, target: FuzzTarget<C, T>, opts: FuzzOptions): Promise<FuzzReport<C>> {
  const started = performance.now();
  const from = opts.from ?? 0;
  const end = from + opts.cases;
  const groupSize = opts.groupSize ?? 250;
  const failed: Verdict<C>[] = [];
  const leftovers: string[] = [];
  const coverage: Record<string, number> = {};
  const prepare = (first: number) => {
    const cases: { index: number; case: C }[] = [];
    for (let i = first; i < Math.min(first + groupSize, end); i++) cases.push({ index: i, case: target.generate(opts.seed, i) });
    return node.prepare(cases.length, (k, now, files) => target.item(cases[k]!.case, cases[k]!.index, now, files));
  };
  // Group k+1 is generated, modelled and written while group k runs in bpftool.
  let next = opts.cases > 0 ? prepare(from) : undefined;
  let done = 0;
  let interrupted = false;
  for (let first = from; next; first += groupSize) {
    const current = await next;
    if (opts.signal?.aborted) {
      interrupted = true;
      await node.discard(current);
      break;
    }
    next = first + groupSize < end ? prepare(first + groupSize) : undefined;
    const group = await node.execute(current);
    const verdicts = group.items.map((r) => target.judge(r, group.window));
    leftovers.push(...group.leftovers);
    for (const v of verdicts) {
      if (v.diffs.length) failed.push(v);
      for (const k of v.coverage) coverage[k] = (coverage[k] ?? 0) + 1;
    }
    done += verdicts.length;
    opts.log?.(`${target.name}: ${done}/${opts.cases} cases, ${failed.length} mismatching`);
  }
  const casesMs = performance.now() - started;

  const mismatches: Mismatch<C>[] = [];
  for (const f of failed.slice(0, opts.explain ?? 5)) {
    if (opts.signal?.aborted) break;
    const alone = (await runCases(node, target, [{ index: f.index, case: f.case }])).verdicts[0]!;
    if (!alone.diffs.length) {
      mismatches.push({ ...f, reproducedAlone: false });
      continue;
    }
    const m: Mismatch<C> = { ...alone, reproducedAlone: true };
    if (opts.shrink ?? true) {
      const { minimal, steps } = await shrink(node, target, alone);
      m.minimal = minimal;
      m.shrinkSteps = steps;
    }
    mismatches.push(m);
  }
  return {
    target: target.name, seed: opts.seed, from, cases: done, mismatchCount: failed.length, mismatches, coverage, leftovers,
    durationMs: performance.now() - started, casesMs, interrupted,
  };
}

/** A mismatch as text: its minimal input when it was shrunk. */
export function formatMismatch<C>(m: Mismatch<C>): string[] {
  const head = `mismatch at case ${m.index}${m.reproducedAlone ? '' : ' (not when run alone: an earlier mismatch of its batch left state behind)'}`;
  if (!m.minimal) return [`${head}:`, ...m.text];
  return [`${head}; minimal input after ${m.shrinkSteps} shrink steps:`, ...m.minimal.text];
}

/** The one-line summary of a run. */
export function formatSummary(r: FuzzReport<unknown>): string {
  const rate = r.casesMs > 0 ? Math.round(r.cases / (r.casesMs / 1000)) : 0;
  return `fuzz ${r.target}: ${r.cases} cases${r.from ? ` from ${r.from}` : ''}, seed ${r.seed}, ${r.mismatchCount} mismatches, ` +
    `${(r.durationMs / 1000).toFixed(1)} s (cases ${(r.casesMs / 1000).toFixed(1)} s, ${rate} cases/s)${r.interrupted ? ', interrupted' : ''}`;
}

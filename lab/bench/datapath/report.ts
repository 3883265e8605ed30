// What the datapath benchmark reports, and the arithmetic from its runs to
// its verdicts: per-mode summaries, per-round attached/detached ratios, the
// overhead, and the goals (with why a verdict is NOISY). Attached runs say
// how the programs were attached (tcx or clsact); the summary and the goals
// are those of the lab's own attach mode, the other mode is reported beside
// them against the same detached rounds. Pure.
import type { ProgramName } from '../../datapath/maps.ts';
import type { PolicyMode } from '../../datapath/load.ts';
import type { TcAttachMode } from '../../kernel/tc.ts';
import type { GoalCheck } from '../goal.ts';
import type { PathSample } from '../pod-server.ts';
import { QUIET_BUSY } from '../host.ts';
import { formatSummary, median, ratios, summarize, type Summary } from '../stats.ts';
import { signed } from '../text.ts';

/** The goal: the programs cost at most this much latency and throughput. */
export const DATAPATH_GOAL_OVERHEAD_PCT = 5;

export type DatapathMode = 'attached' | 'detached';

/** One client run in one mode. */
export interface DatapathRun extends PathSample {
  round: number;
  mode: DatapathMode;
  /** How the programs were attached (attached runs); reports from before tcx have none: clsact. */
  attach?: TcAttachMode;
  /** Packets the programs counted (cilium_metrics, both nodes) during the two client runs. */
  programPackets: number;
}

export interface ModeSummary {
  rttP50Us: Summary;
  rttAvgUs: Summary;
  rttP99Us: Summary;
  throughputGbps: Summary;
  programPackets: Summary;
  hostBusy: Summary;
  backgroundBusy: Summary;
}

export interface MapIoRow {
  op: string;
  /** Entries the operation handles. */
  entries: number;
  /** Wall time per operation (one run() of bpftool, or writeNodeState's dumps + batch), ms. */
  ms: Summary;
  /** Median ms / entries × 1000. */
  usPerEntry: number;
  note?: string;
}

/** One program on one packet of the flow, timed by the kernel (BPF_PROG_RUN). */
export interface ProgramCost {
  node: string;
  program: ProgramName;
  packet: 'request' | 'reply';
  /** Average ns per run over `repeat` runs. */
  ns: number;
  repeat: number;
  /** 0 = TC_ACT_OK. */
  retval: number;
}

/**
 * The attached programs' own time in the live flow (the kernel's run-time
 * statistics over one sockperf run): what they cost with cold caches and
 * conntrack entries shared between CPUs, without the hook around them.
 */
export interface LiveProgramCost {
  attach: TcAttachMode;
  nsPerRun: number;
  /** Program runs per sockperf round trip (4, plus TCP's own ACKs). */
  runsPerRoundTrip: number;
  usPerRoundTrip: number;
  /** p50 RTT of that run (its programs timed, so not one of the rounds). */
  rttP50Us: number;
}

/**
 * The live cost with conntrack accounting off (the lab's default: an entry
 * is rewritten only when its flags change or its deadline moves a second)
 * and on (every packet counted and refreshing its entry), measured
 * alternately in the same lab after the rounds.
 */
export interface CtAccountingCost {
  off: LiveProgramCost[];
  on: LiveProgramCost[];
}

/** Per-round attached/detached. */
export interface RoundRatios {
  rttP50: Summary;
  rttAvg: Summary;
  rttP99: Summary;
  throughput: Summary;
}

/** From the median ratios: latency (ratio − 1), throughput (1 − ratio), in %. */
export interface OverheadPct {
  rttP50: number;
  rttAvg: number;
  rttP99: number;
  throughput: number;
}

export interface RunsSummary {
  attached: ModeSummary;
  detached: ModeSummary;
  ratio: RoundRatios;
  overheadPct: OverheadPct;
  /** Median attached − median detached p50 RTT, µs: what the programs add per round trip (4 program runs: 2 per direction). */
  rttP50DeltaUs: number;
}

export interface DatapathGoals {
  latency: GoalCheck;
  throughput: GoalCheck;
}

/** An attach mode measured beside the lab's own, against the same detached rounds. */
export interface OtherAttachSummary {
  mode: TcAttachMode;
  attached: ModeSummary;
  ratio: RoundRatios;
  overheadPct: OverheadPct;
  rttP50DeltaUs: number;
}

export interface BenchDatapathReport extends RunsSummary {
  lab: string;
  topologyFile: string;
  startedAt: string;
  durationMs: number;
  host: { kernel: string; cpus: number; loadavg: string };
  rounds: number;
  seconds: number;
  client: { pod: string; node: string; ip: string };
  server: { pod: string; node: string; ip: string };
  /** Every run, in the order it ran. */
  runs: DatapathRun[];
  policyMode: PolicyMode;
  /** How `up` attaches the programs (the `attached` summary); absent in reports from before tcx (clsact). */
  attachMode?: TcAttachMode;
  /** The other attach mode, when the kernel has both. */
  otherAttach?: OtherAttachSummary;
  /** The programs' own time in the live flow; absent in reports from before it was measured. */
  liveProgramCost?: LiveProgramCost;
  /** liveProgramCost again, alternately with CT accounting off and on. */
  ctAccounting?: CtAccountingCost;
  /** The four program runs of one round trip, in path order. */
  programCost?: ProgramCost[];
  mapIo?: MapIoRow[];
  /** Node whose maps the map-I/O part used. */
  mapIoNode?: string;
  goals: DatapathGoals;
  /** Things the reader should know (e.g. a mode whose counters contradict it). */
  notes: string[];
}

/** The detached runs and the attached runs of one attach mode (runs without `attach` are clsact). */
export function runsOfAttachMode(runs: readonly DatapathRun[], attach: TcAttachMode): DatapathRun[] {
  return runs.filter((r) => r.mode === 'detached' || (r.attach ?? 'clsact') === attach);
}

/** `other`'s attached runs against the same detached rounds. */
export function summarizeOtherAttach(runs: readonly DatapathRun[], other: TcAttachMode): OtherAttachSummary {
  const { attached, ratio, overheadPct, rttP50DeltaUs } = summarizeRuns(runsOfAttachMode(runs, other));
  return { mode: other, attached, ratio, overheadPct, rttP50DeltaUs };
}

const byRound = (runs: readonly DatapathRun[], mode: DatapathMode) => runs.filter((r) => r.mode === mode).sort((a, b) => a.round - b.round);

function modeSummary(rs: readonly DatapathRun[]): ModeSummary {
  return {
    rttP50Us: summarize(rs.map((r) => r.rttP50Us)),
    rttAvgUs: summarize(rs.map((r) => r.rttAvgUs)),
    rttP99Us: summarize(rs.map((r) => r.rttP99Us)),
    throughputGbps: summarize(rs.map((r) => r.throughputGbps)),
    programPackets: summarize(rs.map((r) => r.programPackets)),
    hostBusy: summarize(rs.map((r) => r.hostBusy)),
    backgroundBusy: summarize(rs.map((r) => r.backgroundBusy)),
  };
}

/** Both modes' summaries and the per-round ratios; rounds pair by number, so every round must have run in both modes. */
export function summarizeRuns(runs: readonly DatapathRun[]): RunsSummary {
  const a = byRound(runs, 'attached');
  const d = byRound(runs, 'detached');
  const ratio = {
    rttP50: summarize(ratios(a.map((r) => r.rttP50Us), d.map((r) => r.rttP50Us))),
    rttAvg: summarize(ratios(a.map((r) => r.rttAvgUs), d.map((r) => r.rttAvgUs))),
    rttP99: summarize(ratios(a.map((r) => r.rttP99Us), d.map((r) => r.rttP99Us))),
    throughput: summarize(ratios(a.map((r) => r.throughputGbps), d.map((r) => r.throughputGbps))),
  };
  return {
    attached: modeSummary(a),
    detached: modeSummary(d),
    ratio,
    overheadPct: {
      rttP50: (ratio.rttP50.median - 1) * 100,
      rttAvg: (ratio.rttAvg.median - 1) * 100,
      rttP99: (ratio.rttP99.median - 1) * 100,
      throughput: (1 - ratio.throughput.median) * 100,
    },
    rttP50DeltaUs: median(a.map((r) => r.rttP50Us)) - median(d.map((r) => r.rttP50Us)),
  };
}

/**
 * The goals' verdicts. A verdict is only as good as its rounds: it is NOISY
 * when other jobs kept the CPUs busy before a run, or when the per-round
 * ratios spread wider than the goal.
 */
export function checkGoals(summary: Pick<RunsSummary, 'ratio' | 'overheadPct'>, runs: readonly DatapathRun[], goal = DATAPATH_GOAL_OVERHEAD_PCT): DatapathGoals {
  const { ratio, overheadPct } = summary;
  const busiest = Math.max(...runs.map((r) => r.backgroundBusy));
  const noise = (r: Summary) => {
    const why: string[] = [];
    if (busiest > QUIET_BUSY) why.push(`other jobs kept the CPUs up to ${(busiest * 100).toFixed(0)} % busy before a run`);
    if ((r.max - r.min) * 100 > goal) why.push(`per-round ratios spread ${formatSummary(r, 3)}, wider than the ${goal} % goal`);
    return why.length ? why.join('; ') : undefined;
  };
  const latencyNoise = noise(ratio.rttP50);
  const throughputNoise = noise(ratio.throughput);
  return {
    latency: {
      goal: `round-trip latency overhead ≤ ${goal} % (p50 RTT, median of per-round attached/detached)`,
      holds: overheadPct.rttP50 <= goal,
      detail: `${signed(overheadPct.rttP50)} % (avg RTT ${signed(overheadPct.rttAvg)} %, p99 RTT ${signed(overheadPct.rttP99)} %)`,
      ...(latencyNoise ? { noisy: latencyNoise } : {}),
    },
    throughput: {
      goal: `throughput overhead ≤ ${goal} % (median of per-round attached/detached)`,
      holds: overheadPct.throughput <= goal,
      detail: `${signed(overheadPct.throughput)} % (${ratio.throughput.n} rounds, per-round ratios ${formatSummary(ratio.throughput, 3)})`,
      ...(throughputNoise ? { noisy: throughputNoise } : {}),
    },
  };
}

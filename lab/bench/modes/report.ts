// What the modes benchmark reports: per mode the rounds' RR latency and
// throughput, the timed connections' time to first byte, each as a ratio to
// the floor (plain native, no auth) measured in the same run, and what the
// user-space WireGuard costs beside the same routing without it. Pure.
import { median, ratios, summarize, type Summary } from '../stats.ts';
import type { BenchMode } from './topology.ts';
import type { PathSample } from '../pod-server.ts';

/** What proves a run took its mode's path: bytes through the mode's device on n1, or connections through the mesh proxies. */
export interface Carrier {
  /** e.g. "n1 wg… tx bytes", "n2 mesh proxy connections". */
  what: string;
  count: number;
}

/** One round of one mode: a sockperf run, then an iperf3 run, client → server. */
export interface ModeRun extends PathSample {
  round: number;
  mode: BenchMode;
  carrier: Carrier;
}

/** One timed connection of a new identity pair's pod (lab/apps/probe.c --sequential). */
export interface TimedConnection {
  mode: BenchMode;
  pod: string;
  /** 1: the pair's first connection (a new pair); 2: the next one (the pair already authenticated). */
  connection: 1 | 2;
  ok: boolean;
  /** Time to first byte on the pod's veth: its first SYN to the server's first payload byte (capture timestamps). Absent when the capture has not both. */
  ms?: number;
  /** connect() to the echo back, the pod app's clock (a fresh Node process: its first connection also pays Node's own set-up). */
  appMs: number;
  /** SYNs the pod sent for it (2: the first was dropped and retransmitted). */
  syns?: number;
  error?: string;
}

/** One TCP connection of a pod as its veth saw it. */
export interface WireConnection {
  sport: string;
  /** Epoch ms of its first SYN. */
  synMs: number;
  syns: number;
  /** Epoch ms of the server's first payload byte. */
  firstByteMs?: number;
}

/**
 * A pod's connections to the server from tshark fields of its veth
 * (frame.time_epoch, ip.src, tcp.srcport, tcp.dstport, tcp.flags.syn,
 * tcp.flags.ack, tcp.len), in the order of their first SYN.
 */
export function wireConnections(rows: readonly Record<string, string>[], podIp: string, serverIp: string): WireConnection[] {
  const byPort = new Map<string, WireConnection>();
  const flag = (v: string | undefined) => v === '1' || v === 'True';
  for (const r of rows) {
    const t = Number(r['frame.time_epoch']) * 1000;
    const fromPod = r['ip.src'] === podIp;
    if (!fromPod && r['ip.src'] !== serverIp) continue;
    const sport = fromPod ? r['tcp.srcport']! : r['tcp.dstport']!;
    const c = byPort.get(sport) ?? { sport, synMs: Infinity, syns: 0 };
    if (fromPod && flag(r['tcp.flags.syn']) && !flag(r['tcp.flags.ack'])) {
      c.syns++;
      c.synMs = Math.min(c.synMs, t);
    }
    if (!fromPod && Number(r['tcp.len']) > 0 && c.firstByteMs === undefined) c.firstByteMs = t;
    byPort.set(sport, c);
  }
  return [...byPort.values()].filter((c) => Number.isFinite(c.synMs)).sort((a, b) => a.synMs - b.synMs);
}

/** The wire's time to first byte of each timed connection, matched by order; problems where the veth did not see a connection whole. */
export function withWireTimes(connections: readonly TimedConnection[], wire: readonly WireConnection[]): { connections: TimedConnection[]; problems: string[] } {
  const problems: string[] = [];
  const out = connections.map((c, i) => {
    const w = wire[i];
    if (!w || w.firstByteMs === undefined) {
      if (c.ok) problems.push(`${c.pod} connection ${c.connection}: ${w ? 'no payload from the server' : 'no SYN'} on its veth`);
      return { ...c };
    }
    return { ...c, ms: Math.round((w.firstByteMs - w.synMs) * 1000) / 1000, syns: w.syns };
  });
  if (wire.length > connections.length) problems.push(`${connections[0]?.pod ?? '?'}: ${wire.length} connections on its veth, ${connections.length} timed`);
  return { connections: out, problems };
}

/** A ratio to the floor and the difference behind it. */
export interface VsFloor {
  /** Per round mode / floor (RR, throughput), or of the medians (time to first byte). */
  ratio: Summary;
  /** Median of the mode − median of the floor, in the metric's unit. */
  extra: number;
  /** Which way of the ratio is better (the report's ratio bars read it). */
  better: 'lower' | 'higher';
}

export interface ModeSummary {
  mode: BenchMode;
  lab: string;
  rttP50Us?: Summary;
  throughputGbps?: Summary;
  ttfbNewPairMs?: Summary;
  ttfbSamePairMs?: Summary;
  /** Absent for the floor itself, and where either side has no sample. */
  vsFloor: { rttP50?: VsFloor; throughput?: VsFloor; ttfbNewPair?: VsFloor; ttfbSamePair?: VsFloor };
  /** Runs whose carrier contradicts the mode, failed runs and connections: these numbers may not measure what the mode says. */
  problems: string[];
}

/** wireguard-go on the same routing: mode-with / mode-without, per round. */
export interface WireguardCost {
  /** "native-wireguard / native". */
  name: string;
  routing: 'native' | 'tunnel';
  with: BenchMode;
  without: BenchMode;
  rttP50Ratio: Summary;
  throughputRatio: Summary;
}

export interface BenchModesReport {
  /** Names the benchmark in `bench all`'s file. */
  bench: 'modes';
  /** The labs' common prefix (the floor's lab is <lab>-floor, and so on). */
  lab: string;
  labs: Record<BenchMode, string>;
  startedAt: string;
  durationMs: number;
  host: { kernel: string; cpus: number; loadavg: string };
  rounds: number;
  seconds: number;
  pairs: number;
  /** Every run, in the order it ran. */
  runs: ModeRun[];
  connections: TimedConnection[];
  /** Per mode, the capture (merged.pcapng) of its timed connections: the evidence of each time to first byte. */
  captures: Partial<Record<BenchMode, string>>;
  modes: ModeSummary[];
  wireguard: WireguardCost[];
  /** Modes that did not come up or failed as a whole. */
  errors: { mode: BenchMode; error: string }[];
  notes: string[];
}

/** The least a run's carrier must count for its mode: 1 MiB through a device (a keepalive or handshake is far less), one connection per tool through the mesh. */
export function carrierMinimum(mode: BenchMode): number {
  return mode === 'per-connection-mtls' ? 2 : 1 << 20;
}

/** A run whose carrier contradicts its mode, described; undefined when it agrees. */
export function carrierProblem(r: ModeRun): string | undefined {
  return r.carrier.count < carrierMinimum(r.mode) ? `round ${r.round}: ${r.carrier.what} ${r.carrier.count}, expected ≥ ${carrierMinimum(r.mode)}` : undefined;
}

/** The probe's attempts of one pod, as its first and second timed connection; problems when there are not exactly two that succeeded. */
export function timedConnections(mode: BenchMode, pod: string, attempts: readonly { attempt: number; ok: boolean; ms: number; error?: string }[]): { connections: TimedConnection[]; problems: string[] } {
  const sorted = [...attempts].sort((a, b) => a.attempt - b.attempt);
  const connections = sorted.slice(0, 2).map((a, i): TimedConnection => ({
    mode, pod, connection: (i + 1) as 1 | 2, ok: a.ok, appMs: a.ms, ...(a.error !== undefined ? { error: a.error } : {}),
  }));
  const problems: string[] = [];
  if (sorted.length !== 2) problems.push(`${pod}: ${sorted.length} connection(s), expected 2`);
  for (const c of connections) if (!c.ok) problems.push(`${pod} connection ${c.connection} failed: ${c.error ?? 'no echo'}`);
  return { connections, problems };
}

/** Rounds measured in both modes, paired by round number. */
function paired(runs: readonly ModeRun[], a: BenchMode, b: BenchMode): [ModeRun[], ModeRun[]] {
  const of = (m: BenchMode) => new Map(runs.filter((r) => r.mode === m).map((r) => [r.round, r]));
  const ra = of(a);
  const rb = of(b);
  const rounds = [...ra.keys()].filter((k) => rb.has(k)).sort((x, y) => x - y);
  return [rounds.map((k) => ra.get(k)!), rounds.map((k) => rb.get(k)!)];
}

function perRound(runs: readonly ModeRun[], mode: BenchMode, base: BenchMode, metric: 'rttP50Us' | 'throughputGbps'): VsFloor | undefined {
  const [m, f] = paired(runs, mode, base);
  if (m.length === 0) return undefined;
  return {
    ratio: summarize(ratios(m.map((r) => r[metric]), f.map((r) => r[metric]))),
    extra: median(m.map((r) => r[metric])) - median(f.map((r) => r[metric])),
    better: metric === 'throughputGbps' ? 'higher' : 'lower',
  };
}

function ofMedians(a: readonly number[], b: readonly number[]): VsFloor | undefined {
  if (a.length === 0 || b.length === 0) return undefined;
  const ma = median(a);
  const mb = median(b);
  if (mb === 0) return undefined;
  const r = ma / mb;
  return { ratio: { min: r, median: r, max: r, n: 1 }, extra: ma - mb, better: 'lower' };
}

const okMs = (cs: readonly TimedConnection[], mode: BenchMode, connection: 1 | 2) =>
  cs.filter((c) => c.mode === mode && c.connection === connection && c.ok && c.ms !== undefined).map((c) => c.ms!);
const maybe = (xs: number[]) => (xs.length > 0 ? summarize(xs) : undefined);

/** One mode's summaries and ratios to the floor. `problems`: what was already found about this mode (failed runs, connections). */
export function summarizeMode(mode: BenchMode, lab: string, runs: readonly ModeRun[], connections: readonly TimedConnection[], problems: readonly string[] = []): ModeSummary {
  const own = runs.filter((r) => r.mode === mode);
  const newPair = okMs(connections, mode, 1);
  const samePair = okMs(connections, mode, 2);
  const vsFloor: ModeSummary['vsFloor'] = {};
  if (mode !== 'floor') {
    const rtt = perRound(runs, mode, 'floor', 'rttP50Us');
    const thr = perRound(runs, mode, 'floor', 'throughputGbps');
    const ttfbNew = ofMedians(newPair, okMs(connections, 'floor', 1));
    const ttfbSame = ofMedians(samePair, okMs(connections, 'floor', 2));
    if (rtt) vsFloor.rttP50 = rtt;
    if (thr) vsFloor.throughput = thr;
    if (ttfbNew) vsFloor.ttfbNewPair = ttfbNew;
    if (ttfbSame) vsFloor.ttfbSamePair = ttfbSame;
  }
  const s: ModeSummary = { mode, lab, vsFloor, problems: [...problems, ...own.map(carrierProblem).filter((p): p is string => p !== undefined)] };
  const rtt = maybe(own.map((r) => r.rttP50Us));
  const thr = maybe(own.map((r) => r.throughputGbps));
  const tn = maybe(newPair);
  const ts = maybe(samePair);
  if (rtt) s.rttP50Us = rtt;
  if (thr) s.throughputGbps = thr;
  if (tn) s.ttfbNewPairMs = tn;
  if (ts) s.ttfbSamePairMs = ts;
  return s;
}

/** What wireguard-go costs here: each WireGuard mode against the same routing without it, round by round. */
export function wireguardCosts(runs: readonly ModeRun[]): WireguardCost[] {
  const out: WireguardCost[] = [];
  for (const [routing, withWg, without] of [['native', 'native-wireguard', 'native'], ['tunnel', 'tunnel-wireguard', 'tunnel']] as const) {
    const [w, o] = paired(runs, withWg, without);
    if (w.length === 0) continue;
    out.push({
      name: `${withWg} / ${without}`, routing, with: withWg, without,
      rttP50Ratio: summarize(ratios(w.map((r) => r.rttP50Us), o.map((r) => r.rttP50Us))),
      throughputRatio: summarize(ratios(w.map((r) => r.throughputGbps), o.map((r) => r.throughputGbps))),
    });
  }
  return out;
}

/** The order of the labs in a round: rotated by one each round, so no mode always runs first or after the same neighbour. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const k = items.length === 0 ? 0 : (round - 1) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** `ip -j -s link show dev X`'s transmitted bytes (stats64), or undefined when the output has none. */
export function linkTxBytes(ipJson: string): number | undefined {
  try {
    const links = JSON.parse(ipJson) as { stats64?: { tx?: { bytes?: number } } }[];
    const bytes = links[0]?.stats64?.tx?.bytes;
    return typeof bytes === 'number' ? bytes : undefined;
  } catch {
    return undefined;
  }
}

// Sockmap benchmark: does same-node socket redirection make pod-to-pod TCP
// faster? Cilium removed the feature, and an independent study found no
// reliable gain, so this measures instead of assuming:
//
//   request/response latency  sockperf ping-pong (TCP), RTT p50 per run
//   throughput                iperf3 (TCP), receiver's bits/s per run
//
// for small and large messages, with and without sockmap, on one lab whose
// only difference between the two is whether cil_sock_ops is attached to
// n1's cgroup (so new connections do or do not enter the sockhash). The tc
// datapath stays on in both. Runs are interleaved off/on, alternating which
// goes first, and each "on" run is checked to have actually been redirected
// (the sk_msg counter moved) and each "off" run to have not been.
//
// Both tools run natively (the Debian binaries) in the pods `local` (client)
// and `client` (server) of n1, inside n1's cgroup, through podCommand.
import { cpus, release } from 'node:os';
import { resolve } from 'node:path';
import { upWithDatapath } from '../compose/lab.ts';
import { destroyLab } from '../compose/down.ts';
import { findPod } from '../core/plan.ts';
import { formatSummary, ratios, summarize, type Summary } from './stats.ts';
import { loadTopologyFile } from '../topology/validate.ts';
import { attachSockOps, detachSockOps, readSockmapCounters, sockOpsAttached } from '../sockmap/load.ts';
import { runInPod, spawnInPod, type PodProcess } from '../sockmap/pod.ts';

export const BENCH_SOCKMAP_LAB = 'bench-sockmap';
const NODE = 'n1';
const CLIENT_POD = 'local';
const SERVER_POD = 'client';
/** sockperf refuses TCP messages above 65506 bytes ("larger than expected"). */
export const SOCKPERF_MAX_MSG = 65_000;

export interface SockmapBenchOptions {
  /** Paired runs per case (default 3). */
  runs?: number;
  /** Seconds per run (default 3). */
  durationS?: number;
  /** sockperf ping-pong message sizes in bytes (default 64 and 65000). */
  rrSizes?: number[];
  /** iperf3 write sizes in bytes (default 64 and 65536). */
  streamSizes?: number[];
  /** Lab name (default bench-sockmap); `lab down <name>` cleans up after a crash. */
  lab?: string;
  /** Default: topologies/sockmap.yaml. */
  topologyFile?: string;
  /** One line per measurement. */
  log?: (line: string) => void;
}

export type Mode = 'off' | 'on';

export interface RunSample {
  mode: Mode;
  /** The case's metric for this run (µs or Gbit/s). */
  value: number;
  /** sk_msg redirects on n1 during the run (must be > 0 when on, 0 when off). */
  redirected: number;
}

export interface BenchCase {
  name: string;
  tool: 'sockperf' | 'iperf3';
  kind: 'rr' | 'stream';
  size: number;
  metric: string;
  unit: string;
  better: 'lower' | 'higher';
  /** Per run, in run order; paired by index. */
  off: RunSample[];
  on: RunSample[];
  offSummary?: Summary;
  onSummary?: Summary;
  /** on / off per paired run. */
  ratio?: Summary;
  /** "on better in every run", "on worse in every run", or "no consistent difference". */
  verdict: string;
  /** Runs whose redirect counter contradicts their mode (sockmap did not do what the mode says). */
  invalidRuns: string[];
  errors: string[];
}

export interface SockmapBenchReport {
  lab: string;
  host: { kernel: string; cpus: number };
  runs: number;
  durationS: number;
  startedAt: string;
  durationMs: number;
  cases: BenchCase[];
}

// ---- one measurement ---------------------------------------------------------------

async function withServer<T>(proc: PodProcess, ready: RegExp, body: () => Promise<T>): Promise<T> {
  try {
    if (!(await proc.waitForLine(ready, 15_000))) throw new Error(`server not ready: ${proc.describe()}`);
    return await body();
  } finally {
    await proc.stop();
  }
}

/** sockperf ping-pong: RTT p50 in µs. */
async function sockperfRun(lab: string, serverIp: string, port: number, size: number, durationS: number): Promise<number> {
  const server = spawnInPod(lab, NODE, SERVER_POD, ['sockperf', 'server', '--tcp', '-i', serverIp, '-p', String(port)], { role: 'bench' });
  return withServer(server, /block on socket/, async () => {
    const r = await runInPod(lab, NODE, CLIENT_POD,
      ['sockperf', 'ping-pong', '--tcp', '-i', serverIp, '-p', String(port), '-m', String(size), '-t', String(durationS), '--full-rtt'],
      { role: 'bench', timeoutMs: (durationS + 30) * 1000 });
    const out = `${r.stdout}\n${r.stderr}`;
    const p50 = /percentile 50\.000 =\s*([\d.]+)/.exec(out);
    if (r.exitCode !== 0 || !p50 || /ERROR/.test(out)) throw new Error(`sockperf failed (exit ${r.exitCode}): ${out.split('\n').filter((l) => /ERROR|error/.test(l)).slice(-3).join(' | ') || out.slice(-300)}`);
    return Number(p50[1]);
  });
}

/** iperf3: receiver's throughput in Gbit/s. */
async function iperfRun(lab: string, serverIp: string, port: number, size: number, durationS: number): Promise<number> {
  const server = spawnInPod(lab, NODE, SERVER_POD, ['iperf3', '-s', '-1', '-p', String(port), '--forceflush'], { role: 'bench' });
  return withServer(server, /Server listening/, async () => {
    const r = await runInPod(lab, NODE, CLIENT_POD, ['iperf3', '-c', serverIp, '-p', String(port), '-t', String(durationS), '-l', String(size), '-J'],
      { role: 'bench', timeoutMs: (durationS + 30) * 1000 });
    let json: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
    try {
      json = JSON.parse(r.stdout) as typeof json;
    } catch {
      throw new Error(`iperf3 printed no JSON (exit ${r.exitCode}): ${r.stderr.slice(-300)}`);
    }
    const bps = json.end?.sum_received?.bits_per_second;
    if (json.error || bps === undefined) throw new Error(`iperf3 failed: ${json.error ?? 'no sum_received'}`);
    return bps / 1e9;
  });
}

async function setMode(lab: string, mode: Mode): Promise<void> {
  const attached = await sockOpsAttached(lab, NODE);
  if (mode === 'on' && !attached) await attachSockOps(lab, NODE);
  if (mode === 'off' && attached) await detachSockOps(lab, NODE);
}

// ---- the benchmark --------------------------------------------------------------------

function verdictOf(c: BenchCase): string {
  if (!c.ratio) return 'not measured';
  const r = c.on.map((s, i) => s.value / c.off[i]!.value);
  const better = (x: number) => (c.better === 'lower' ? x < 1 : x > 1);
  if (r.every(better)) return 'on better in every run';
  if (r.every((x) => !better(x) && x !== 1)) return 'on worse in every run';
  return 'no consistent difference';
}

export async function benchSockmap(opts: SockmapBenchOptions = {}): Promise<SockmapBenchReport> {
  const lab = opts.lab ?? BENCH_SOCKMAP_LAB;
  const runs = opts.runs ?? 3;
  const durationS = opts.durationS ?? 3;
  const log = opts.log ?? (() => undefined);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const topology = await loadTopologyFile(opts.topologyFile ?? resolve(import.meta.dirname, '../../topologies/sockmap.yaml'));
  const cases: BenchCase[] = [
    ...(opts.rrSizes ?? [64, SOCKPERF_MAX_MSG]).map((size): BenchCase => ({
      name: `RR ${size} B`, tool: 'sockperf', kind: 'rr', size, metric: 'RTT p50', unit: 'µs', better: 'lower',
      off: [], on: [], verdict: '', invalidRuns: [], errors: [],
    })),
    ...(opts.streamSizes ?? [64, 65_536]).map((size): BenchCase => ({
      name: `stream ${size} B writes`, tool: 'iperf3', kind: 'stream', size, metric: 'throughput', unit: 'Gbit/s', better: 'higher',
      off: [], on: [], verdict: '', invalidRuns: [], errors: [],
    })),
  ];
  let port = 20_000;
  try {
    const plan = await upWithDatapath({ ...topology, sockmap: true }, { name: lab, agents: false });
    const serverIp = findPod(plan, SERVER_POD)!.ip;
    for (const c of cases) {
      for (let i = 0; i < runs; i++) {
        // Alternate the order, so neither mode always runs on a warmer machine.
        const order: Mode[] = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
        const pair: Partial<Record<Mode, RunSample>> = {};
        try {
          for (const mode of order) {
            await setMode(lab, mode);
            const before = await readSockmapCounters(lab, NODE);
            const value = c.tool === 'sockperf'
              ? await sockperfRun(lab, serverIp, port++, c.size, durationS)
              : await iperfRun(lab, serverIp, port++, c.size, durationS);
            const redirected = Number((await readSockmapCounters(lab, NODE)).redirected.count - before.redirected.count);
            pair[mode] = { mode, value, redirected };
            if ((mode === 'on') !== redirected > 0) c.invalidRuns.push(`run ${i + 1} ${mode}: ${redirected} messages redirected`);
            log(`${c.name} run ${i + 1} ${mode.padEnd(3)} ${value.toFixed(c.unit === 'µs' ? 1 : 3)} ${c.unit} (redirected ${redirected})`);
          }
          c.off.push(pair.off!);
          c.on.push(pair.on!);
        } catch (e) {
          c.errors.push(`run ${i + 1}: ${(e as Error).message}`);
          log(`${c.name} run ${i + 1} failed: ${(e as Error).message}`);
        }
      }
      if (c.off.length > 0) {
        c.offSummary = summarize(c.off.map((s) => s.value));
        c.onSummary = summarize(c.on.map((s) => s.value));
        c.ratio = summarize(ratios(c.on.map((s) => s.value), c.off.map((s) => s.value)));
      }
      c.verdict = verdictOf(c);
    }
  } finally {
    await destroyLab(lab);
  }
  return { lab, host: { kernel: release(), cpus: cpus().length }, runs, durationS, startedAt, durationMs: performance.now() - started, cases };
}

// ---- output ---------------------------------------------------------------------------

export function formatSockmapBench(r: SockmapBenchReport): string {
  const out: string[] = [];
  out.push(
    `sockmap benchmark: same-node TCP, pod local -> pod client on n1; ${r.runs} paired run(s) of ${r.durationS} s per case, ` +
      `off/on interleaved; kernel ${r.host.kernel}, ${r.host.cpus} CPU(s); took ${(r.durationMs / 1000).toFixed(0)} s`,
  );
  out.push('values: min / median / max over runs; on/off: per-run ratio (RTT: < 1 is faster; throughput: > 1 is faster)');
  out.push('');
  const rows: string[][] = [['case', 'tool', 'metric', 'off', 'on', 'on/off', 'verdict']];
  for (const c of r.cases) {
    const dec = c.unit === 'µs' ? 1 : 2;
    rows.push([
      c.name,
      c.tool,
      `${c.metric} (${c.unit})`,
      c.offSummary ? formatSummary(c.offSummary, dec) : 'n/a',
      c.onSummary ? formatSummary(c.onSummary, dec) : 'n/a',
      c.ratio ? formatSummary(c.ratio, 2) : 'n/a',
      c.verdict,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) out.push(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  out.push('');
  out.push('per run (off | on):');
  for (const c of r.cases) {
    const dec = c.unit === 'µs' ? 1 : 2;
    out.push(`  ${c.name.padEnd(widths[0]!)}  ${c.off.map((s, i) => `${s.value.toFixed(dec)} | ${c.on[i]!.value.toFixed(dec)}`).join(',  ')}`);
  }
  const problems = r.cases.flatMap((c) => [...c.invalidRuns.map((x) => `${c.name}: ${x}`), ...c.errors.map((x) => `${c.name}: ${x}`)]);
  if (problems.length > 0) {
    out.push('');
    out.push('problems (these runs do not measure what their mode says):');
    for (const p of problems) out.push(`  ${p}`);
  }
  return out.join('\n');
}

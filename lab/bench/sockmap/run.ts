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
import { resolve } from 'node:path';
import { upWithDatapath } from '../../compose/lab.ts';
import { destroyLab } from '../../compose/down.ts';
import { findPod } from '../../core/plan.ts';
import { REPO_ROOT } from '../../core/repo.ts';
import { loadTopologyFile } from '../../topology/validate.ts';
import { attachSockOps, detachSockOps, readSockmapCounters, sockOpsAttached } from '../../sockmap/load.ts';
import { runInPod, spawnInPod, type PodProcess } from '../../sockmap/pod.ts';
import { hostFacts } from '../host.ts';
import { parseIperf3, sockperfPercentile } from '../tool-output.ts';
import { benchCases, invalidRun, summarizeCase, type Mode, type RunSample, type SockmapBenchReport } from './report.ts';

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
  /** Lab name (default bench-sockmap); `mtless down <name>` cleans up after a crash. */
  lab?: string;
  /** Default: topologies/sockmap.yaml. */
  topologyFile?: string;
  /** One line per measurement. */
  log?: (line: string) => void;
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
    const p50 = sockperfPercentile(out, 50);
    if (r.exitCode !== 0 || p50 === undefined || /ERROR/.test(out)) throw new Error(`sockperf failed (exit ${r.exitCode}): ${out.split('\n').filter((l) => /ERROR|error/.test(l)).slice(-3).join(' | ') || out.slice(-300)}`);
    return p50;
  });
}

/** iperf3: receiver's throughput in Gbit/s. */
async function iperfRun(lab: string, serverIp: string, port: number, size: number, durationS: number): Promise<number> {
  const server = spawnInPod(lab, NODE, SERVER_POD, ['iperf3', '-s', '-1', '-p', String(port), '--forceflush'], { role: 'bench' });
  return withServer(server, /Server listening/, async () => {
    const r = await runInPod(lab, NODE, CLIENT_POD, ['iperf3', '-c', serverIp, '-p', String(port), '-t', String(durationS), '-l', String(size), '-J'],
      { role: 'bench', timeoutMs: (durationS + 30) * 1000 });
    const out = parseIperf3(r.stdout);
    if (!out) throw new Error(`iperf3 printed no JSON (exit ${r.exitCode}): ${r.stderr.slice(-300)}`);
    if (out.error || out.throughputGbps === undefined) throw new Error(`iperf3 failed: ${out.error ?? 'no sum_received'}`);
    return out.throughputGbps;
  });
}

async function setMode(lab: string, mode: Mode): Promise<void> {
  const attached = await sockOpsAttached(lab, NODE);
  if (mode === 'on' && !attached) await attachSockOps(lab, NODE);
  if (mode === 'off' && attached) await detachSockOps(lab, NODE);
}

// ---- the benchmark --------------------------------------------------------------------

export async function benchSockmap(opts: SockmapBenchOptions = {}): Promise<SockmapBenchReport> {
  const lab = opts.lab ?? BENCH_SOCKMAP_LAB;
  const runs = opts.runs ?? 3;
  const durationS = opts.durationS ?? 3;
  const log = opts.log ?? (() => undefined);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const topology = await loadTopologyFile(opts.topologyFile ?? resolve(REPO_ROOT, 'topologies/sockmap.yaml'));
  const cases = benchCases(opts.rrSizes ?? [64, SOCKPERF_MAX_MSG], opts.streamSizes ?? [64, 65_536]);
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
            const invalid = invalidRun(i + 1, pair[mode]);
            if (invalid) c.invalidRuns.push(invalid);
            log(`${c.name} run ${i + 1} ${mode.padEnd(3)} ${value.toFixed(c.unit === 'µs' ? 1 : 3)} ${c.unit} (redirected ${redirected})`);
          }
          c.off.push(pair.off!);
          c.on.push(pair.on!);
        } catch (e) {
          c.errors.push(`run ${i + 1}: ${(e as Error).message}`);
          log(`${c.name} run ${i + 1} failed: ${(e as Error).message}`);
        }
      }
      summarizeCase(c);
    }
  } finally {
    await destroyLab(lab);
  }
  return { lab, host: hostFacts(), runs, durationS, startedAt, durationMs: performance.now() - started, cases };
}

// Modes benchmark: what each mode of the C6 matrix costs pod-to-pod traffic,
// against plain native routing without auth (the floor), all measured in
// one run on labs brought up side by side (topology.ts):
//
//   RR latency   sockperf pp --tcp --full-rtt -t S, client → server (a pair
//                authenticated in the warm-up), p50 per run
//   throughput   iperf3 -c … -t S -J, receiver's bits/s per run
//   time to first byte of a new connection: each pod pair-k (a new identity)
//                makes two connections one after the other to the server's
//                echo (lab/apps/probe.c --sequential): the first is a new
//                identity pair, the second an already-authenticated one;
//                timed on the pod's veth (captured: first SYN to the
//                server's first payload byte), since the pod app's own clock
//                also counts a fresh Node process's first-connection set-up
//
// Rounds go through the labs one at a time (never two measurements at
// once), in an order rotated every round; each run waits, bounded, for
// other jobs to quiet the CPUs and records how busy they were. Each run
// proves its mode's path: bytes through n1's WireGuard, VXLAN or underlay
// device, or connections logged by the mesh's proxy on n2. Everything is
// bounded (S seconds per client run, timeouts on every command); the
// servers stop and every lab goes down in `finally`. The arithmetic is in
// report.ts, the text in format.ts.
import { join, resolve } from 'node:path';
import { upWithDatapath } from '../../compose/lab.ts';
import { destroyLab } from '../../compose/down.ts';
import { findPod, type LabPlan, type PodPlan } from '../../core/plan.ts';
import { NODE_UNDERLAY_IFNAME, prefixedLabName, wgIfname } from '../../core/names.ts';
import { REPO_ROOT } from '../../core/repo.ts';
import { run } from '../../kernel/run.ts';
import { startEchoServer, runProbe, type EchoServer } from '../../apps/pod-apps.ts';
import { proxyLog, startMesh } from '../../mesh/mesh.ts';
import { VXLAN_IFNAME } from '../../tunnel/tunnel.ts';
import { loadTopologyFile } from '../../topology/validate.ts';
import { startCapture, type CaptureHandle } from '../../capture/capture.ts';
import { CAPTURES_ROOT, finishCapture } from '../../capture/scenario.ts';
import { dfString, frames } from '../../capture/assert.ts';
import type { Topology } from '../../topology/model.ts';
import { busyFraction, cpuTimes, hostFacts, loadavg, waitForQuietHost } from '../host.ts';
import { refuseLeftovers } from '../leftovers.ts';
import { benchTag, IPERF_PORT, iperfRun, SOCKPERF_PORT, sockperfRun, startPodServer, type PodServer } from '../pod-server.ts';
import {
  linkTxBytes, roundOrder, summarizeMode, timedConnections, wireConnections, wireguardCosts, withWireTimes,
  type BenchModesReport, type Carrier, type ModeRun, type TimedConnection,
} from './report.ts';
import { ECHO_PORT, MODE_SPECS, MODES_LAB, modeTopology, pairPod, type BenchMode, type ModeSpec } from './topology.ts';

export interface BenchModesOptions {
  /** Rounds of RR + throughput through every lab. Default 3. */
  rounds?: number;
  /** Seconds per client run. Default 3. */
  seconds?: number;
  /** New identity pairs timed per mode. Default 5. */
  pairs?: number;
  /** The labs' prefix (labs <name>-floor, <name>-nat, …). Default bench-modes. */
  name?: string;
  /** Wait up to this long before each run for other jobs to quiet down. Default 5000 ms; 0 = don't. */
  settleMs?: number;
  log?: (line: string) => void;
  /** Checked between measurements (the CLI sets it on SIGINT). */
  signal?: AbortSignal;
}

/** One mode's lab while the benchmark runs. */
interface ModeLab {
  spec: ModeSpec;
  lab: string;
  plan: LabPlan;
  client: PodPlan;
  server: PodPlan;
  servers: PodServer[];
  echo?: EchoServer;
}

export const modeLabName = (base: string, spec: ModeSpec) => prefixedLabName(base, spec.suffix);
/** Labs brought up at once. */
const UP_AT_ONCE = 2;
/** Where a lab's capture of the timed connections goes. */
export const captureDir = (lab: string) => join(CAPTURES_ROOT, lab, 'bench-modes');
/** The tshark fields wireConnections reads. */
export const WIRE_FIELDS = ['frame.time_epoch', 'ip.src', 'tcp.srcport', 'tcp.dstport', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.len'];

export async function benchModes(opts: BenchModesOptions = {}): Promise<BenchModesReport> {
  const rounds = opts.rounds ?? 3;
  const seconds = opts.seconds ?? 3;
  const pairs = opts.pairs ?? 5;
  const base = opts.name ?? MODES_LAB;
  const settleMs = opts.settleMs ?? 5000;
  const log = opts.log ?? (() => undefined);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`rounds must be an integer in 1..20, got ${rounds}`);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 30) throw new Error(`seconds must be an integer in 1..30, got ${seconds}`);
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > 10) throw new Error(`pairs must be an integer in 1..10, got ${pairs}`);
  const labs = Object.fromEntries(MODE_SPECS.map((s) => [s.mode, modeLabName(base, s)])) as Record<BenchMode, string>;
  if (new Set(Object.values(labs)).size !== MODE_SPECS.length) throw new Error(`--name "${base}" is too long: the labs' names collide after shortening to 24 characters`);
  for (const lab of Object.values(labs)) await refuseLeftovers(lab);

  const started = performance.now();
  const startedAt = new Date().toISOString();
  const topologies = await Promise.all(MODE_SPECS.map(async (spec) => {
    const shipped = await loadTopologyFile(resolve(REPO_ROOT, spec.topology));
    return modeTopology(spec, shipped, pairs, labs[spec.mode]);
  }));
  const errors: BenchModesReport['errors'] = [];
  const problems = new Map<BenchMode, string[]>(MODE_SPECS.map((s) => [s.mode, []]));
  const runs: ModeRun[] = [];
  const connections: TimedConnection[] = [];
  const captureFiles: Partial<Record<BenchMode, string>> = {};
  const notes: string[] = [];
  const up: ModeLab[] = [];
  const captures = new Map<BenchMode, CaptureHandle>();
  try {
    log(`bringing up ${MODE_SPECS.length} labs, ${UP_AT_ONCE} at a time: ${Object.values(labs).join(', ')}`);
    // A few at a time: six at once on a busy 2-CPU machine leave the agents too little CPU to report ready in time.
    const results: PromiseSettledResult<ModeLab>[] = [];
    for (let i = 0; i < MODE_SPECS.length; i += UP_AT_ONCE) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      results.push(...(await Promise.allSettled(MODE_SPECS.slice(i, i + UP_AT_ONCE).map((spec, j) => bringUp(spec, topologies[i + j]!, opts.signal)))));
    }
    results.forEach((r, i) => {
      const spec = MODE_SPECS[i]!;
      if (r.status === 'fulfilled') up.push(r.value);
      else errors.push({ mode: spec.mode, error: `up: ${(r.reason as Error).message}` });
    });
    if (!up.some((m) => m.spec.mode === 'floor')) throw new Error(`the floor's lab did not come up: ${errors.find((e) => e.mode === 'floor')?.error}`);
    for (const m of up) {
      const tag = benchTag(m.lab, m.server);
      m.servers.push(await startPodServer(m.server.netns, ['sockperf', 'sr', '--tcp', '-i', m.server.ip, '-p', String(SOCKPERF_PORT)], SOCKPERF_PORT, tag));
      m.servers.push(await startPodServer(m.server.netns, ['iperf3', '-s', '-B', m.server.ip, '-p', String(IPERF_PORT)], IPERF_PORT, tag));
      m.echo = await startEchoServer(m.lab, 'server', 'tcp', ECHO_PORT);
      // Warm-up (not measured): authenticates client → server (the first SYN of an auth mode waits one RTO), first connections, caches.
      await sockperfRun(m.client.netns, m.server.ip, 1);
      await iperfRun(m.client.netns, m.server.ip, 1);
      log(`${m.spec.mode}: lab ${m.lab} up, servers listening, warmed up`);
    }

    for (let round = 1; round <= rounds; round++) {
      for (const m of roundOrder(up, round)) {
        if (opts.signal?.aborted) throw new Error('interrupted');
        try {
          const backgroundBusy = settleMs > 0 ? await waitForQuietHost(settleMs) : 0;
          const r = await measureRun(m, round, seconds, backgroundBusy);
          runs.push(r);
          log(`round ${round}/${rounds} ${m.spec.mode.padEnd(19)} rtt p50 ${r.rttP50Us.toFixed(1)} µs, ${r.throughputGbps.toFixed(2)} Gbit/s, ${r.carrier.what} ${r.carrier.count}, CPU busy ${(backgroundBusy * 100).toFixed(0)} % before`);
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          problems.get(m.spec.mode)!.push(`round ${round}: ${(e as Error).message}`);
          log(`round ${round} ${m.spec.mode} failed: ${(e as Error).message}`);
        }
      }
    }

    // Time to first byte from the pods' veths (n1/lxc-pair-N), captured while the probes run.
    for (const m of up) {
      const links = Array.from({ length: pairs }, (_, i) => `n1/${findPod(m.plan, pairPod(i + 1))!.lxc}`);
      captures.set(m.spec.mode, await startCapture(m.lab, links, captureDir(m.lab), { filter: `tcp port ${ECHO_PORT}`, secrets: false }));
    }
    const timed = new Map<string, TimedConnection[]>();
    for (let k = 1; k <= pairs; k++) {
      for (const m of roundOrder(up, k)) {
        if (opts.signal?.aborted) throw new Error('interrupted');
        const pod = pairPod(k);
        try {
          const attempts = await runProbe(m.lab, pod, m.server.ip, ECHO_PORT, `ttfb-${pod}`, {
            intervalMs: 50, count: 2, durationMs: 60_000, attemptTimeoutMs: 20_000, sequential: true,
          });
          const t = timedConnections(m.spec.mode, pod, attempts);
          timed.set(`${m.spec.mode}/${pod}`, t.connections);
          problems.get(m.spec.mode)!.push(...t.problems);
          log(`${m.spec.mode.padEnd(19)} ${pod}: first connection ${t.connections[0]?.appMs ?? '?'} ms, second ${t.connections[1]?.appMs ?? '?'} ms (pod app)`);
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          problems.get(m.spec.mode)!.push(`${pod}: ${(e as Error).message}`);
        }
      }
    }
    for (const m of up) {
      const files = await finishCapture(captures.get(m.spec.mode)!, { comments: [`mtless-lab bench modes, mode ${m.spec.mode}, lab "${m.lab}": the timed connections of the new identity pairs`] });
      captureFiles[m.spec.mode] = files.merged;
      for (let k = 1; k <= pairs; k++) {
        const pod = findPod(m.plan, pairPod(k))!;
        const rows = await frames(files.merged, `tcp.port == ${ECHO_PORT} && frame.interface_name == ${dfString(`n1/${pod.lxc}`)}`, WIRE_FIELDS);
        const w = withWireTimes(timed.get(`${m.spec.mode}/${pod.name}`) ?? [], wireConnections(rows, pod.ip, m.server.ip));
        connections.push(...w.connections);
        problems.get(m.spec.mode)!.push(...w.problems);
      }
      log(`${m.spec.mode.padEnd(19)} time to first byte on the veths: ${connections.filter((c) => c.mode === m.spec.mode).map((c) => c.ms?.toFixed(1) ?? '?').join(' ')} ms (${files.merged})`);
    }
  } finally {
    for (const h of captures.values()) await h.stop().catch(() => undefined);
    for (const m of up) {
      for (const s of m.servers) await s.stop().catch(() => undefined);
      await m.echo?.stop().catch(() => undefined);
    }
    await Promise.all(Object.values(labs).map((lab) => destroyLab(lab).catch((e: Error) => log(`down ${lab}: ${e.message}`))));
  }

  const busiest = runs.length > 0 ? Math.max(...runs.map((r) => r.backgroundBusy)) : 0;
  if (busiest > 0.3) notes.push(`other jobs kept the CPUs up to ${(busiest * 100).toFixed(0)} % busy before a run: ratios are less certain than their spread shows`);
  const modes = MODE_SPECS.filter((s) => !errors.some((e) => e.mode === s.mode)).map((s) => summarizeMode(s.mode, labs[s.mode], runs, connections, problems.get(s.mode)));
  return {
    bench: 'modes',
    lab: base,
    labs,
    startedAt,
    durationMs: performance.now() - started,
    host: { ...hostFacts(), loadavg: await loadavg() },
    rounds,
    seconds,
    pairs,
    runs,
    connections,
    captures: captureFiles,
    modes,
    wireguard: wireguardCosts(runs),
    errors,
    notes,
  };
}

async function bringUp(spec: ModeSpec, topology: Topology, signal?: AbortSignal): Promise<ModeLab> {
  const plan = await upWithDatapath(topology, { name: topology.name, signal });
  if (spec.mesh) await startMesh(topology.name, topology);
  const pod = (name: string) => {
    const p = findPod(plan, name);
    if (!p) throw new Error(`lab ${topology.name} has no pod ${name}`);
    return p;
  };
  return { spec, lab: topology.name, plan, client: pod('client'), server: pod('server'), servers: [] };
}

// ---- one run ------------------------------------------------------------------

async function measureRun(m: ModeLab, round: number, seconds: number, backgroundBusy: number): Promise<ModeRun> {
  const before = await carrier(m);
  const cpu0 = await cpuTimes();
  const lat = await sockperfRun(m.client.netns, m.server.ip, seconds);
  const thr = await iperfRun(m.client.netns, m.server.ip, seconds);
  const cpu1 = await cpuTimes();
  const after = await carrier(m);
  return {
    round,
    mode: m.spec.mode,
    rttP50Us: lat.rttP50Us,
    rttAvgUs: lat.rttAvgUs,
    rttP99Us: lat.rttP99Us,
    roundTrips: lat.roundTrips,
    ...thr,
    carrier: { what: after.what, count: after.count - before.count },
    backgroundBusy,
    hostBusy: busyFraction(cpu0, cpu1),
  };
}

/** The counter that proves the mode's path (see report.ts carrierMinimum). */
async function carrier(m: ModeLab): Promise<Carrier> {
  if (m.spec.mesh) {
    const n = (await proxyLog(m.lab, 'n2')).filter((l) => l.msg === 'inbound-allowed').length;
    return { what: 'n2 mesh proxy connections', count: n };
  }
  const n1 = m.plan.nodes.find((n) => n.name === 'n1')!;
  const wireguard = m.spec.mode === 'native-wireguard' || m.spec.mode === 'tunnel-wireguard';
  const dev = wireguard ? wgIfname(m.lab, 'n1') : m.spec.mode === 'tunnel' ? VXLAN_IFNAME : NODE_UNDERLAY_IFNAME;
  const r = await run(['ip', '-j', '-s', 'link', 'show', 'dev', dev], { netns: n1.netns });
  const bytes = linkTxBytes(r.stdout);
  if (bytes === undefined) throw new Error(`n1 ${dev}: no tx bytes in ip -j -s link`);
  return { what: `n1 ${dev} tx bytes`, count: bytes };
}


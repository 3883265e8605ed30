// Datapath benchmark: what the tc programs cost a pod-to-pod flow, and what
// map I/O through bpftool costs per operation.
//
// 1. Flow cost. One lab of topologies/two-node.yaml (no policy, no agents:
//    pure datapath cost), client on n1, server on n2. Each round measures both
//    modes back to back, in alternating order so drift hits both alike:
//      attached  the lab as `up` leaves it: cil_from_container/cil_to_container
//                on every lxc veth of both nodes;
//      detached  no programs: the clsact qdiscs removed with detachEndpoint
//                (routing, routes and neighbours are untouched);
//    and in each mode runs, from the client pod to the server pod,
//      sockperf pp --tcp --full-rtt -t S   (request/response round trip)
//      iperf3 -c … -t S -J                 (bulk TCP throughput).
//    Overhead = per-round attached/detached ratio (median over rounds). The
//    programs' own packet counters (cilium_metrics) prove each mode: they
//    must grow when attached and stay still when detached.
// 2. Map I/O. On n1's maps of the same lab (no traffic by then): one
//    `bpftool map update` per entry vs one `bpftool batch` of 200 / 2000
//    entries into cilium_auth_map, a decoded dump of 200 / 2000 entries, and
//    writeNodeState: the node's real state written fresh, an unchanged
//    re-sync, and an ipcache of a 2000-pod cluster.
//
// Every load is bounded (S seconds per client run, a process timeout on each
// command); servers are killed and the lab destroyed in `finally`.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { upWithDatapath } from '../compose/lab.ts';
import { destroyLab, labNetnsOnHost } from '../compose/down.ts';
import { findPod, type LabPlan, type NodePlan, type PodPlan } from '../core/plan.ts';
import { nodeProgPins, processTag } from '../core/names.ts';
import { readState } from '../core/state.ts';
import { findTaggedProcesses, TAG_ENV } from '../core/processes.ts';
import { run, spawn } from '../kernel/run.ts';
import { applyBatch, mapUpdate, type MapOp } from '../datapath/bpftool.ts';
import { attachEndpoints, detachEndpoint, readIfindexes, type PolicyMode } from '../datapath/load.ts';
import { mapPin, progPin, readMetrics, type ProgramName } from '../datapath/maps.ts';
import { ipv4Packet, skbContext } from '../datapath/progrun.ts';
import { PROGRAMS } from '../abi/layouts.ts';
import { dumpAuth, toAuthExpiration } from '../datapath/auth.ts';
import { compileNodeState, writeNodeState, type NodeDatapathState } from '../datapath/state.ts';
import { AUTH_TYPE_SPIRE, TCP_F_ACK, TCP_F_PSH, encodeAuthInfo, encodeAuthKey } from '../abi/generated.ts';
import { allocateIdentities, type IdentityAllocation } from '../policy/identity.ts';
import { loadTopologyFile } from '../topology/validate.ts';
import { formatSummary, median, ratios, summarize, type Summary } from './stats.ts';

const REPO = resolve(import.meta.dirname, '../..');

export const DATAPATH_LAB = 'bench-dp';
export const DATAPATH_TOPOLOGY = 'topologies/two-node.yaml';
export const SOCKPERF_PORT = 11111;
export const IPERF_PORT = 5201;
/** The goal: the programs cost at most this much latency and throughput. */
export const DATAPATH_GOAL_OVERHEAD_PCT = 10;

export type DatapathMode = 'attached' | 'detached';

export interface MapIoReps {
  /** Single-entry updates (one bpftool process each). Default 20. */
  single?: number;
  /** Batches per size, each followed by a dump. Default 5. */
  batch?: number;
  /** writeNodeState repetitions. Default 5. */
  state?: number;
}

export interface BenchDatapathOptions {
  /** A/B rounds; each measures both modes once. Default 3. */
  rounds?: number;
  /** Seconds per client run (sockperf -t, iperf3 -t). Default 3. */
  seconds?: number;
  /** Lab name. Default bench-dp. */
  name?: string;
  /** Topology file, relative to the repository. Default topologies/two-node.yaml. */
  topologyFile?: string;
  /** Client and server pods (must be on different nodes for a cross-node flow). Default client, server. */
  client?: string;
  server?: string;
  /** Datapath policy mode (default per-packet, as `lab up`). */
  policyMode?: PolicyMode;
  /** Wait up to this long before each run for other jobs to quiet down (CPU ≤ 30 % busy). Default 5000 ms; 0 = don't. */
  settleMs?: number;
  /** Map-I/O part: repetitions, or false to skip it. */
  mapIo?: MapIoReps | false;
  /** One line per measurement, for a live view. */
  log?: (line: string) => void;
  /** Checked between runs (the CLI sets it on SIGINT). */
  signal?: AbortSignal;
}

/** One client run in one mode. */
export interface DatapathRun {
  round: number;
  mode: DatapathMode;
  /** sockperf --full-rtt, µs. */
  rttP50Us: number;
  rttAvgUs: number;
  rttP99Us: number;
  /** Round trips sockperf counted in its valid window. */
  roundTrips: number;
  /** iperf3 receiver side, Gbit/s. */
  throughputGbps: number;
  retransmits: number;
  /** Packets the programs counted (cilium_metrics, both nodes) during the two client runs. */
  programPackets: number;
  /** Host CPU busy fraction (0..1) during the runs (ours included: iperf3 alone fills both CPUs). */
  hostBusy: number;
  /** Host CPU busy fraction just before the runs, while the lab was idle: other jobs on the machine. */
  backgroundBusy: number;
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

export interface GoalCheck {
  goal: string;
  holds: boolean | undefined;
  detail: string;
  /** Why the verdict should not be trusted (other load, rounds that disagree), if so. */
  noisy?: string;
}

export interface BenchDatapathReport {
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
  attached: ModeSummary;
  detached: ModeSummary;
  /** Per-round attached/detached. */
  ratio: { rttP50: Summary; rttAvg: Summary; rttP99: Summary; throughput: Summary };
  /** From the median ratios: latency (ratio − 1), throughput (1 − ratio), in %. */
  overheadPct: { rttP50: number; rttAvg: number; rttP99: number; throughput: number };
  /** Median attached − median detached p50 RTT, µs: what the programs add per round trip (4 program runs: 2 per direction). */
  rttP50DeltaUs: number;
  policyMode: PolicyMode;
  /** The four program runs of one round trip, in path order. */
  programCost?: ProgramCost[];
  mapIo?: MapIoRow[];
  /** Node whose maps the map-I/O part used. */
  mapIoNode?: string;
  goals: { latency: GoalCheck; throughput: GoalCheck };
  /** Things the reader should know (e.g. a mode whose counters contradict it). */
  notes: string[];
}

// ---- the benchmark ------------------------------------------------------------

export async function benchDatapath(opts: BenchDatapathOptions = {}): Promise<BenchDatapathReport> {
  const rounds = opts.rounds ?? 3;
  const seconds = opts.seconds ?? 3;
  const lab = opts.name ?? DATAPATH_LAB;
  const topologyFile = opts.topologyFile ?? DATAPATH_TOPOLOGY;
  const log = opts.log ?? (() => undefined);
  const policyMode = opts.policyMode ?? 'per-packet';
  const settleMs = opts.settleMs ?? 5000;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`rounds must be an integer in 1..20, got ${rounds}`);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 30) throw new Error(`seconds must be an integer in 1..30, got ${seconds}`);
  await refuseLeftovers(lab);

  const topology = await loadTopologyFile(resolve(REPO, topologyFile));
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  if (topology.policies.length > 0) notes.push(`${topologyFile} has ${topology.policies.length} policies: the flow may pay for policy lookups, not only the base datapath`);
  const servers: PodServer[] = [];
  const runs: DatapathRun[] = [];
  let mapIo: MapIoRow[] | undefined;
  let programCost: ProgramCost[] | undefined;
  let client!: PodPlan;
  let server!: PodPlan;
  try {
    const plan = await upWithDatapath(topology, { name: lab, topologyFile, agents: false, policyMode, signal: opts.signal });
    client = needPod(plan, opts.client ?? 'client');
    server = needPod(plan, opts.server ?? 'server');
    if (client.node === server.node) notes.push(`client and server are both on ${client.node}: the flow is same-node, not cross-node`);
    log(`lab ${lab} up: ${client.node}/${client.name} ${client.ip} -> ${server.node}/${server.name} ${server.ip}`);

    const tag = benchTag(lab, server);
    servers.push(await startPodServer(server.netns, ['sockperf', 'sr', '--tcp', '-i', server.ip, '-p', String(SOCKPERF_PORT)], SOCKPERF_PORT, tag));
    servers.push(await startPodServer(server.netns, ['iperf3', '-s', '-B', server.ip, '-p', String(IPERF_PORT)], IPERF_PORT, tag));

    // Warm-up (not measured): first connections, page cache, CPU frequency.
    await sockperfRun(client, server, 1);
    await iperfRun(client, server, 1);

    let current: DatapathMode = 'attached';
    for (let round = 1; round <= rounds; round++) {
      const order: DatapathMode[] = round % 2 === 1 ? ['attached', 'detached'] : ['detached', 'attached'];
      for (const mode of order) {
        if (opts.signal?.aborted) throw new Error('interrupted');
        if (mode !== current) {
          await setMode(plan, mode);
          current = mode;
        }
        const backgroundBusy = await waitForQuietHost(settleMs);
        const r = { ...(await measureRun(lab, plan, client, server, seconds, round, mode)), backgroundBusy };
        runs.push(r);
        log(
          `round ${round}/${rounds} ${mode.padEnd(8)} rtt p50 ${r.rttP50Us.toFixed(1)} µs (avg ${r.rttAvgUs.toFixed(1)}, p99 ${r.rttP99Us.toFixed(1)}), ` +
            `${r.throughputGbps.toFixed(2)} Gbit/s, ${r.programPackets} pkts seen by programs, CPU busy ${(r.backgroundBusy * 100).toFixed(0)} % before / ${(r.hostBusy * 100).toFixed(0)} % during`,
        );
        if (mode === 'attached' && r.programPackets === 0) notes.push(`round ${round}: attached, but the programs counted no packets`);
        if (mode === 'detached' && r.programPackets !== 0) notes.push(`round ${round}: detached, yet the programs counted ${r.programPackets} packets`);
      }
    }
    // Leave the lab as `up` made it before touching its maps.
    if (current !== 'attached') await setMode(plan, 'attached');

    for (const s of servers.splice(0)) await s.stop();
    programCost = await measureProgramCost(plan, client, server);
    log(`program runs (BPF_PROG_RUN): ${programCost.map((c) => `${c.node} ${c.program} ${c.packet} ${c.ns} ns`).join(', ')}`);
    if (opts.mapIo !== false) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      mapIo = await benchMapIo(lab, plan, allocateIdentities(topology), opts.mapIo ?? {}, log);
    }
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await destroyLab(lab);
  }

  const pick = (mode: DatapathMode) => runs.filter((r) => r.mode === mode).sort((a, b) => a.round - b.round);
  const a = pick('attached');
  const d = pick('detached');
  const modeSummary = (rs: DatapathRun[]): ModeSummary => ({
    rttP50Us: summarize(rs.map((r) => r.rttP50Us)),
    rttAvgUs: summarize(rs.map((r) => r.rttAvgUs)),
    rttP99Us: summarize(rs.map((r) => r.rttP99Us)),
    throughputGbps: summarize(rs.map((r) => r.throughputGbps)),
    programPackets: summarize(rs.map((r) => r.programPackets)),
    hostBusy: summarize(rs.map((r) => r.hostBusy)),
    backgroundBusy: summarize(rs.map((r) => r.backgroundBusy)),
  });
  const ratio = {
    rttP50: summarize(ratios(a.map((r) => r.rttP50Us), d.map((r) => r.rttP50Us))),
    rttAvg: summarize(ratios(a.map((r) => r.rttAvgUs), d.map((r) => r.rttAvgUs))),
    rttP99: summarize(ratios(a.map((r) => r.rttP99Us), d.map((r) => r.rttP99Us))),
    throughput: summarize(ratios(a.map((r) => r.throughputGbps), d.map((r) => r.throughputGbps))),
  };
  const overheadPct = {
    rttP50: (ratio.rttP50.median - 1) * 100,
    rttAvg: (ratio.rttAvg.median - 1) * 100,
    rttP99: (ratio.rttP99.median - 1) * 100,
    throughput: (1 - ratio.throughput.median) * 100,
  };
  const goal = DATAPATH_GOAL_OVERHEAD_PCT;
  // A verdict is only as good as its rounds: say so when other jobs were busy, or the rounds disagree by more than the goal.
  const busiest = Math.max(...runs.map((r) => r.backgroundBusy));
  const noise = (r: Summary) => {
    const why: string[] = [];
    if (busiest > QUIET_BUSY) why.push(`other jobs kept the CPUs up to ${(busiest * 100).toFixed(0)} % busy before a run`);
    if ((r.max - r.min) * 100 > goal) why.push(`per-round ratios spread ${formatSummary(r, 3)}, wider than the ${goal} % goal`);
    return why.length ? why.join('; ') : undefined;
  };
  const latencyNoise = noise(ratio.rttP50);
  const throughputNoise = noise(ratio.throughput);
  const load = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  return {
    lab,
    topologyFile,
    startedAt,
    durationMs: performance.now() - started,
    host: { kernel: release(), cpus: cpus().length, loadavg: load.split(' ').slice(0, 3).join(' ') },
    rounds,
    seconds,
    client: { pod: client.name, node: client.node, ip: client.ip },
    server: { pod: server.name, node: server.node, ip: server.ip },
    runs,
    attached: modeSummary(a),
    detached: modeSummary(d),
    ratio,
    overheadPct,
    rttP50DeltaUs: median(a.map((r) => r.rttP50Us)) - median(d.map((r) => r.rttP50Us)),
    policyMode,
    ...(programCost ? { programCost } : {}),
    mapIo,
    ...(mapIo ? { mapIoNode: topology.nodes[0]!.name } : {}),
    goals: {
      latency: {
        goal: `round-trip latency overhead ≤ ${goal} % (p50 RTT, median of per-round attached/detached)`,
        holds: overheadPct.rttP50 <= goal,
        detail: `${signed(overheadPct.rttP50)} % (avg RTT ${signed(overheadPct.rttAvg)} %, p99 RTT ${signed(overheadPct.rttP99)} %)`,
        ...(latencyNoise ? { noisy: latencyNoise } : {}),
      },
      throughput: {
        goal: `throughput overhead ≤ ${goal} % (median of per-round attached/detached)`,
        holds: overheadPct.throughput <= goal,
        detail: `${signed(overheadPct.throughput)} % (${a.length} rounds, per-round ratios ${formatSummary(ratio.throughput, 3)})`,
        ...(throughputNoise ? { noisy: throughputNoise } : {}),
      },
    },
    notes,
  };
}

function needPod(plan: LabPlan, name: string): PodPlan {
  const p = findPod(plan, name);
  if (!p) throw new Error(`topology has no pod "${name}" (pods: ${plan.nodes.flatMap((n) => n.pods.map((x) => x.name)).join(', ')})`);
  return p;
}

/** A crashed earlier run (or one still going) leaves objects: never delete another run's lab unasked. */
export async function refuseLeftovers(lab: string): Promise<void> {
  const ns = await labNetnsOnHost(lab);
  const state = await readState(lab).catch(() => undefined);
  const procs = await findTaggedProcesses(lab);
  if (ns.length > 0 || state || procs.length > 0) {
    throw new Error(`lab "${lab}" exists (a benchmark is running, or a crashed one left it behind): run \`lab down ${lab}\` first`);
  }
}

// ---- modes --------------------------------------------------------------------

/** Detaches (or re-attaches) the programs on every pod veth of every node, then checks tc agrees. */
export async function setMode(plan: LabPlan, mode: DatapathMode): Promise<void> {
  await Promise.all(
    plan.nodes.map(async (n) => {
      const lxcs = n.pods.map((p) => p.lxc);
      if (mode === 'detached') for (const lxc of lxcs) await detachEndpoint(n.netns, lxc);
      else await attachEndpoints(n.netns, lxcs, nodeProgPins(plan.lab, n.name));
      for (const lxc of lxcs) {
        const has = await hasPrograms(n, lxc);
        if (has !== (mode === 'attached')) throw new Error(`${n.name}/${lxc}: programs ${has ? 'still attached' : 'missing'} after switching to ${mode}`);
      }
    }),
  );
}

async function hasPrograms(node: NodePlan, lxc: string): Promise<boolean> {
  const r = await run(['tc', 'filter', 'show', 'dev', lxc, 'ingress'], { netns: node.netns, okCodes: [1, 2] });
  return /\bbpf\b/.test(r.stdout) && r.stdout.includes('cil_from_container');
}

// ---- one run ------------------------------------------------------------------

async function measureRun(lab: string, plan: LabPlan, client: PodPlan, server: PodPlan, seconds: number, round: number, mode: DatapathMode): Promise<Omit<DatapathRun, 'backgroundBusy'>> {
  const before = await programPackets(lab, plan);
  const cpu0 = await cpuTimes();
  const lat = await sockperfRun(client, server, seconds);
  const thr = await iperfRun(client, server, seconds);
  const cpu1 = await cpuTimes();
  const after = await programPackets(lab, plan);
  const total = cpu1.total - cpu0.total;
  return {
    round,
    mode,
    ...lat,
    ...thr,
    programPackets: Number(after - before),
    hostBusy: total > 0 ? 1 - (cpu1.idle - cpu0.idle) / total : 0,
  };
}

async function programPackets(lab: string, plan: LabPlan): Promise<bigint> {
  let sum = 0n;
  for (const n of plan.nodes) for (const row of await readMetrics(lab, n.name)) sum += row.packets;
  return sum;
}

/** Parses sockperf's summary ("avg-rtt=…" with --full-rtt, "avg-latency=…" without; percentiles in µs). */
export function parseSockperf(text: string): { rttP50Us: number; rttAvgUs: number; rttP99Us: number; roundTrips: number } {
  const avg = /avg-(?:rtt|latency)=([\d.]+)/.exec(text);
  const p50 = /percentile 50\.000 =\s*([\d.]+)/.exec(text);
  const p99 = /percentile 99\.000 =\s*([\d.]+)/.exec(text);
  const count = /\[Valid Duration\][^\n]*ReceivedMessages=(\d+)/.exec(text);
  if (!avg || !p50 || !p99) throw new Error(`cannot read sockperf's summary:\n${text.trim().split('\n').slice(-12).join('\n')}`);
  return { rttAvgUs: Number(avg[1]), rttP50Us: Number(p50[1]), rttP99Us: Number(p99[1]), roundTrips: count ? Number(count[1]) : 0 };
}

async function sockperfRun(client: PodPlan, server: PodPlan, seconds: number) {
  const r = await run(['sockperf', 'pp', '--tcp', '--full-rtt', '-i', server.ip, '-p', String(SOCKPERF_PORT), '-t', String(seconds)], {
    netns: client.netns,
    timeout: (seconds + 15) * 1000,
  });
  return parseSockperf(r.stdout + '\n' + r.stderr);
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
}

async function iperfRun(client: PodPlan, server: PodPlan, seconds: number): Promise<{ throughputGbps: number; retransmits: number }> {
  // The server serves one test at a time and may still be closing the last one: one retry.
  for (let attempt = 1; ; attempt++) {
    const r = await run(['iperf3', '-c', server.ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
      netns: client.netns,
      timeout: (seconds + 15) * 1000,
      okCodes: [1],
    });
    let out: IperfJson;
    try {
      out = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 printed no JSON: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
    }
    const bps = out.end?.sum_received?.bits_per_second;
    if (!out.error && typeof bps === 'number') return { throughputGbps: bps / 1e9, retransmits: out.end?.sum_sent?.retransmits ?? 0 };
    if (attempt >= 2 || !/busy/i.test(out.error ?? '')) throw new Error(`iperf3 failed: ${out.error ?? 'no result'}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

// ---- servers ------------------------------------------------------------------

export interface PodServer {
  stop(): Promise<void>;
}

/** The tag of a benchmark's processes in a pod of `pod.node`: `lab down` (destroyLab) stops them if the benchmark dies. */
export const benchTag = (lab: string, pod: Pick<PodPlan, 'node'>) => processTag(lab, pod.node, 'bench');

/**
 * Starts a server in a pod (spawn), tagged with `tag` (benchTag) so a killed
 * benchmark's servers die with its lab, and waits, with a deadline, until it
 * listens on the TCP port.
 */
export async function startPodServer(netns: string, argv: string[], port: number, tag: string, deadlineMs = 5000): Promise<PodServer> {
  const child = spawn(argv, { netns, env: { [TAG_ENV]: tag } });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000); // drained, so a chatty server never blocks on a full pipe
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const done = child.then(() => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => !exited && child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(timer);
  };
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (exited) throw new Error(`${argv[0]} exited before listening: ${output.trim().slice(-400)}`);
    const ss = await run(['ss', '-Hltn', `sport = :${port}`], { netns });
    if (ss.stdout.trim()) return { stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${argv.join(' ')} not listening on :${port} after ${deadlineMs} ms: ${output.trim().slice(-400)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- program cost -------------------------------------------------------------

/** Runs per BPF_PROG_RUN measurement (the kernel reports the average). */
const PROG_RUN_REPEAT = 100_000;

/**
 * The four program runs of one sockperf round trip, each timed on its own by
 * the kernel over PROG_RUN_REPEAT runs: the request leaving the client
 * (n1 cil_from_container) and entering the server (n2 cil_to_container),
 * then the reply leaving the server and entering the client. The request
 * runs first, so the replies find their conntrack entries, as in the flow.
 */
export async function measureProgramCost(plan: LabPlan, client: PodPlan, server: PodPlan): Promise<ProgramCost[]> {
  const nodeOf = (p: PodPlan) => plan.nodes.find((n) => n.name === p.node)!;
  const sport = 40_000;
  const request = ipv4Packet({ src: client.ip, dst: server.ip, protocol: 'tcp', sport, dport: SOCKPERF_PORT, tcpFlags: TCP_F_ACK | TCP_F_PSH, payload: Buffer.alloc(14) });
  const reply = ipv4Packet({ src: server.ip, dst: client.ip, protocol: 'tcp', sport: SOCKPERF_PORT, dport: sport, tcpFlags: TCP_F_ACK | TCP_F_PSH, payload: Buffer.alloc(14) });
  const steps: { pod: PodPlan; program: ProgramName; packet: 'request' | 'reply'; bytes: Buffer }[] = [
    { pod: client, program: PROGRAMS.fromContainer, packet: 'request', bytes: request },
    { pod: server, program: PROGRAMS.toContainer, packet: 'request', bytes: request },
    { pod: server, program: PROGRAMS.fromContainer, packet: 'reply', bytes: reply },
    { pod: client, program: PROGRAMS.toContainer, packet: 'reply', bytes: reply },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'mtlab-bench-dp-'));
  try {
    const out: ProgramCost[] = [];
    for (const [i, st] of steps.entries()) {
      const node = nodeOf(st.pod);
      const ifindex = (await readIfindexes(node.netns)).get(st.pod.lxc);
      if (ifindex === undefined) throw new Error(`no ${st.pod.lxc} on ${node.name}`);
      const dataIn = join(dir, `packet-${i}`);
      const ctxIn = join(dir, `ctx-${i}`);
      await writeFile(dataIn, st.bytes);
      await writeFile(ctxIn, skbContext({ ifindex }));
      const pin = progPin(plan.lab, node.name, st.program);
      // One run first: a new flow's request creates its conntrack entry (and a flow event) once, as in the real flow.
      await run(['bpftool', '-j', 'prog', 'run', 'pinned', pin, 'data_in', dataIn, 'ctx_in', ctxIn, 'repeat', '1'], { netns: node.netns });
      const r = await run(['bpftool', '-j', 'prog', 'run', 'pinned', pin, 'data_in', dataIn, 'ctx_in', ctxIn, 'repeat', String(PROG_RUN_REPEAT)], {
        netns: node.netns,
        timeout: 30_000,
      });
      const res = JSON.parse(r.stdout) as { retval: number; duration: number };
      out.push({ node: node.name, program: st.program, packet: st.packet, ns: res.duration, repeat: PROG_RUN_REPEAT, retval: res.retval });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- map I/O ------------------------------------------------------------------

/** Identities far above any the lab allocates: the benchmark's auth keys can never match real traffic. */
const BENCH_IDENTITY_BASE = 0x0100_0000;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function row(op: string, entries: number, ms: number[], note?: string): MapIoRow {
  const s = summarize(ms);
  return { op, entries, ms: s, usPerEntry: (s.median / entries) * 1000, ...(note ? { note } : {}) };
}

export async function benchMapIo(lab: string, plan: LabPlan, identities: IdentityAllocation, reps: MapIoReps, log: (line: string) => void): Promise<MapIoRow[]> {
  const nSingle = reps.single ?? 20;
  const nBatch = reps.batch ?? 5;
  const nState = reps.state ?? 5;
  const node = plan.nodes[0]!;
  const pin = mapPin(lab, node.name, 'cilium_auth_map');
  const value = encodeAuthInfo({ expiration: toAuthExpiration(Date.now() + 3_600_000) });
  const key = (i: number) => encodeAuthKey({ localSecLabel: BENCH_IDENTITY_BASE + i, remoteSecLabel: BENCH_IDENTITY_BASE, remoteNodeId: 1, authType: AUTH_TYPE_SPIRE });
  const updates = (from: number, n: number): MapOp[] => Array.from({ length: n }, (_, i) => ({ op: 'update', pin, key: key(from + i), value }));
  const deletes = (from: number, n: number): MapOp[] => Array.from({ length: n }, (_, i) => ({ op: 'delete', pin, key: key(from + i) }));
  const rows: MapIoRow[] = [];

  // Single updates: one bpftool process per entry (what the agent does per auth).
  const single: number[] = [];
  for (let i = 0; i < nSingle; i++) single.push(await timed(() => mapUpdate(pin, key(i), value)));
  await applyBatch(deletes(0, nSingle));
  rows.push(row('auth map: update, one bpftool process', 1, single));
  log(`map I/O: single update median ${median(single).toFixed(2)} ms`);

  // Batches of N new entries, each followed by a decoded dump of the map (then emptied, untimed).
  for (const n of [200, 2000]) {
    const write: number[] = [];
    const dump: number[] = [];
    for (let r = 0; r < nBatch; r++) {
      write.push(await timed(() => applyBatch(updates(0, n))));
      let seen = 0;
      dump.push(await timed(async () => (seen = (await dumpAuth(lab, node.name)).length)));
      if (seen < n) throw new Error(`auth map holds ${seen} entries after a batch of ${n}`);
      await applyBatch(deletes(0, n));
    }
    rows.push(row(`auth map: batch update (bpftool batch)`, n, write));
    rows.push(row(`auth map: dump + decode (dumpAuth)`, n, dump));
    log(`map I/O: batch of ${n} median ${median(write).toFixed(2)} ms, dump median ${median(dump).toFixed(2)} ms`);
  }

  // writeNodeState: the node's real state, written into emptied maps (4 dumps + 1 batch) …
  const ifindexes = await readIfindexes(node.netns);
  const real = compileNodeState(plan, node.name, identities);
  const realEntries = real.ipcache.length + real.nodes.length + real.endpoints.length + real.policy.length;
  const empty: NodeDatapathState = { node: node.name, ipcache: [], nodes: [], endpoints: [], policy: [] };
  const fresh: number[] = [];
  for (let r = 0; r < nState; r++) {
    await writeNodeState(lab, node.name, empty, ifindexes);
    fresh.push(await timed(() => writeNodeState(lab, node.name, real, ifindexes)));
  }
  rows.push(row('node state: fresh write (writeNodeState, 4 maps)', realEntries, fresh, `${real.ipcache.length} ipcache, ${real.nodes.length} node, ${real.endpoints.length} endpoint, ${real.policy.length} policy entries`));
  // … an unchanged re-sync (4 dumps, no batch) …
  const noop: number[] = [];
  for (let r = 0; r < nState; r++) noop.push(await timed(() => writeNodeState(lab, node.name, real, ifindexes)));
  rows.push(row('node state: unchanged re-sync (4 dumps, no write)', realEntries, noop));
  // … and the ipcache of a 2000-pod cluster (1 dump + 1 batch of 2000).
  const big: NodeDatapathState = { ...real, ipcache: [...real.ipcache, ...syntheticIpcache(2000, plan)] };
  const ipcacheMs: number[] = [];
  for (let r = 0; r < nState; r++) {
    await writeNodeState(lab, node.name, real, ifindexes, { only: ['ipcache'] });
    ipcacheMs.push(await timed(() => writeNodeState(lab, node.name, big, ifindexes, { only: ['ipcache'] })));
  }
  rows.push(row('node state: ipcache of a 2000-pod cluster (writeNodeState only ipcache)', 2000, ipcacheMs, 'new /32s of pods on other nodes'));
  // Restore the real state and prove it is exact again.
  await writeNodeState(lab, node.name, real, ifindexes);
  const check = await writeNodeState(lab, node.name, real, ifindexes);
  if (check.updated !== 0 || check.deleted !== 0) throw new Error(`node state not restored: ${JSON.stringify(check)}`);
  log(`map I/O: node state fresh ${median(fresh).toFixed(2)} ms, re-sync ${median(noop).toFixed(2)} ms, ipcache 2000 ${median(ipcacheMs).toFixed(2)} ms`);
  return rows;
}

/** /32s of pods on the other nodes (10.245.x.y, outside the lab's pod range), each with its node as tunnel endpoint. */
function syntheticIpcache(n: number, plan: LabPlan) {
  const others = plan.nodes.slice(1);
  return Array.from({ length: n }, (_, i) => ({
    cidr: `10.245.${(i >> 8) & 255}.${i & 255}/32`,
    identity: 256 + (i % 500),
    tunnelEndpoint: (others[i % Math.max(1, others.length)] ?? plan.nodes[0]!).underlayIp,
  }));
}

// ---- host ---------------------------------------------------------------------

/** CPU busy fraction under which the host counts as quiet. */
export const QUIET_BUSY = 0.3;

/**
 * Waits (at most `maxMs`) until the host is quiet: ≤ 30 % CPU busy over
 * 300 ms while the lab is idle. Returns the last busy fraction seen, which
 * is other jobs' load, since nothing of ours runs then.
 */
export async function waitForQuietHost(maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const a = await cpuTimes();
    await new Promise((r) => setTimeout(r, 300));
    const b = await cpuTimes();
    const total = b.total - a.total;
    const busy = total > 0 ? 1 - (b.idle - a.idle) / total : 0;
    if (busy <= QUIET_BUSY || Date.now() >= deadline) return busy;
  }
}

async function cpuTimes(): Promise<{ idle: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return { idle: (v[3] ?? 0) + (v[4] ?? 0), total: v.reduce((a, b) => a + b, 0) };
}

const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;

// ---- output -------------------------------------------------------------------

export function formatBenchDatapath(report: BenchDatapathReport): string {
  const out: string[] = [];
  out.push(
    `datapath benchmark: lab ${report.lab} (${report.topologyFile}, no agents), ${report.client.node}/${report.client.pod} ${report.client.ip} -> ` +
      `${report.server.node}/${report.server.pod} ${report.server.ip}`,
  );
  out.push(
    `${report.rounds} round(s) × {attached, detached} alternating, ${report.seconds} s per client run, policy mode ${report.policyMode}; kernel ${report.host.kernel}, ` +
      `${report.host.cpus} CPU(s), load ${report.host.loadavg}; took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('RTT = sockperf pp --tcp --full-rtt (µs); throughput = iperf3 receiver (Gbit/s); min / median / max over rounds');
  out.push('');
  const a = report.attached;
  const d = report.detached;
  const rows: string[][] = [['', 'attached', 'no programs', 'attached/none per round', 'overhead']];
  rows.push(['RTT p50 µs', formatSummary(a.rttP50Us, 1), formatSummary(d.rttP50Us, 1), formatSummary(report.ratio.rttP50, 3), `${signed(report.overheadPct.rttP50)} %`]);
  rows.push(['RTT avg µs', formatSummary(a.rttAvgUs, 1), formatSummary(d.rttAvgUs, 1), formatSummary(report.ratio.rttAvg, 3), `${signed(report.overheadPct.rttAvg)} %`]);
  rows.push(['RTT p99 µs', formatSummary(a.rttP99Us, 1), formatSummary(d.rttP99Us, 1), formatSummary(report.ratio.rttP99, 3), `${signed(report.overheadPct.rttP99)} %`]);
  rows.push(['throughput Gbit/s', formatSummary(a.throughputGbps, 2), formatSummary(d.throughputGbps, 2), formatSummary(report.ratio.throughput, 3), `${signed(report.overheadPct.throughput)} %`]);
  rows.push(['packets seen by programs', formatSummary(a.programPackets, 0), formatSummary(d.programPackets, 0), '', '']);
  rows.push(['CPU busy % before run (others)', formatSummary(scale(a.backgroundBusy, 100), 0), formatSummary(scale(d.backgroundBusy, 100), 0), '', '']);
  rows.push(['CPU busy % during run', formatSummary(scale(a.hostBusy, 100), 0), formatSummary(scale(d.hostBusy, 100), 0), '', '']);
  out.push(...table(rows));
  const delta = report.rttP50DeltaUs;
  out.push(`programs add ${signed(delta)} µs to the p50 round trip: 4 program runs (from/to-container on both nodes), ≈ ${(delta / 4).toFixed(2)} µs each`);
  if (report.programCost) {
    const sum = report.programCost.reduce((a, c) => a + c.ns, 0);
    out.push(
      `  the programs alone (BPF_PROG_RUN, kernel-timed average of ${report.programCost[0]?.repeat ?? 0} runs): ` +
        report.programCost.map((c) => `${c.node} ${c.program === PROGRAMS.fromContainer ? 'from' : 'to'}-container ${c.packet} ${c.ns} ns`).join(', ') +
        `; ${(sum / 1000).toFixed(2)} µs per round trip, the rest is the tc hook (clsact) and cache effects`,
    );
  }
  out.push('');
  out.push('runs in order:');
  for (const r of report.runs) {
    out.push(
      `  round ${r.round} ${r.mode.padEnd(8)}  RTT p50 ${r.rttP50Us.toFixed(1).padStart(7)} µs  avg ${r.rttAvgUs.toFixed(1).padStart(7)}  p99 ${r.rttP99Us.toFixed(1).padStart(7)}` +
        `  ${r.throughputGbps.toFixed(2).padStart(6)} Gbit/s  retr ${String(r.retransmits).padStart(4)}  CPU busy ${(r.backgroundBusy * 100).toFixed(0).padStart(3)} % before, ${(r.hostBusy * 100).toFixed(0)} % during`,
    );
  }
  if (report.mapIo) {
    out.push('');
    out.push(`map I/O on ${report.mapIoNode}'s maps (bpftool through run(); ms per operation, min / median / max):`);
    const mrows: string[][] = [['operation', 'entries', 'ms per op', 'µs per entry', '']];
    for (const m of report.mapIo) {
      const dec = m.ms.median < 10 ? 2 : 1;
      mrows.push([m.op, String(m.entries), formatSummary(m.ms, dec), m.usPerEntry.toFixed(1), m.note ?? '']);
    }
    out.push(...table(mrows).map((l) => '  ' + l));
  }
  out.push('');
  out.push('goals:');
  for (const g of Object.values(report.goals)) {
    const mark = (g.holds === undefined ? 'NOT MEASURED' : g.holds ? 'holds' : 'MISSED') + (g.noisy ? ', NOISY' : '');
    out.push(`  [${mark}] ${g.goal}: ${g.detail}`);
    if (g.noisy) out.push(`      not conclusive: ${g.noisy}`);
  }
  if (report.notes.length > 0) {
    out.push('notes:');
    for (const n of report.notes) out.push(`  ${n}`);
  }
  return out.join('\n');
}

function scale(s: Summary, k: number): Summary {
  return { min: s.min * k, median: s.median * k, max: s.max * k, n: s.n };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}


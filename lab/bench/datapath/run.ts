// Datapath benchmark: what the tc programs cost a pod-to-pod flow, and what
// map I/O through bpftool costs per operation.
//
// 1. Flow cost. One lab of topologies/two-node.yaml (no policy, no agents:
//    pure datapath cost), client on n1, server on n2. Each round measures
//    every mode back to back, in reversed order every other round so drift
//    hits them alike:
//      attached  the lab as `up` leaves it: cil_from_container/cil_to_container
//                on every lxc veth of both nodes, attached the way `up` does
//                (lab/kernel/tc.ts: tcx links where the kernel has them);
//      attached, the other way (clsact + cls_bpf, or tcx), when the kernel
//                has both: the same programs on another hook;
//      detached  no programs: links and clsact qdiscs removed with
//                detachEndpoint (routing, routes and neighbours are untouched);
//    and in each mode runs, from the client pod to the server pod,
//      sockperf pp --tcp --full-rtt -t S   (request/response round trip)
//      iperf3 -c … -t S -J                 (bulk TCP throughput).
//    Overhead = per-round attached/detached ratio (median over rounds), for
//    each attach mode against the same detached runs. The
//    programs' own packet counters (cilium_metrics) prove each mode: they
//    must grow when attached and stay still when detached.
// 2. The programs in the live flow: one more sockperf run, attached as `up`
//    does, with the kernel's run-time statistics on (lab/kernel/bpf-stats.ts):
//    their own time per run and per round trip, without the hook around
//    them. Apart from the rounds, whose programs run without that timing.
//    Then the programs alone, timed by the kernel (program-cost.ts).
// 3. Map I/O on n1's maps of the same lab, no traffic by then (map-io.ts).
//
// Every load is bounded (S seconds per client run, a process timeout on each
// command); servers are killed and the lab destroyed in `finally`. The
// arithmetic and the goals are in report.ts, the text in format.ts.
import { resolve } from 'node:path';
import { upWithDatapath } from '../../compose/lab.ts';
import { destroyLab } from '../../compose/down.ts';
import { findPod, type LabPlan, type NodePlan, type PodPlan } from '../../core/plan.ts';
import { nodeProgPins } from '../../core/names.ts';
import { REPO_ROOT } from '../../core/repo.ts';
import { programRunTime, withRunTimeStats } from '../../kernel/bpf-stats.ts';
import { run } from '../../kernel/run.ts';
import { probeTcx, tcAttachedPrograms, tcAttachMode, type TcAttachMode } from '../../kernel/tc.ts';
import { attachEndpoints, detachEndpoint, writeRuntimeConfig, type PolicyMode } from '../../datapath/load.ts';
import { readMetrics } from '../../datapath/maps.ts';
import { allocateIdentities } from '../../policy/identity.ts';
import { loadTopologyFile } from '../../topology/validate.ts';
import { busyFraction, cpuTimes, hostFacts, loadavg, waitForQuietHost } from '../host.ts';
import { refuseLeftovers } from '../leftovers.ts';
import { benchTag, IPERF_PORT, iperfRun, SOCKPERF_PORT, sockperfRun, startPodServer, type PodServer } from '../pod-server.ts';
import { benchMapIo, type MapIoReps } from './map-io.ts';
import { measureProgramCost } from './program-cost.ts';
import { PROGRAMS } from '../../abi/layouts.ts';
import {
  checkGoals, runsOfAttachMode, summarizeOtherAttach, summarizeRuns,
  type BenchDatapathReport, type CtAccountingCost, type DatapathMode, type DatapathRun, type LiveProgramCost, type MapIoRow, type ProgramCost,
} from './report.ts';

export const DATAPATH_LAB = 'bench-dp';
export const DATAPATH_TOPOLOGY = 'topologies/two-node.yaml';

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
  /** Datapath policy mode (default per-packet, as `mtless up`). */
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

  const topology = await loadTopologyFile(resolve(REPO_ROOT, topologyFile));
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  if (topology.policies.length > 0) notes.push(`${topologyFile} has ${topology.policies.length} policies: the flow may pay for policy lookups, not only the base datapath`);
  const servers: PodServer[] = [];
  const runs: DatapathRun[] = [];
  let mapIo: MapIoRow[] | undefined;
  let programCost: ProgramCost[] | undefined;
  let liveCost: LiveProgramCost | undefined;
  let ctAccounting: CtAccountingCost | undefined;
  let client!: PodPlan;
  let server!: PodPlan;
  // The lab's own attach mode, and the other one when this kernel has tcx.
  const attachMode = (await tcAttachMode()).mode;
  const otherMode: TcAttachMode | undefined = attachMode === 'clsact' ? ((await probeTcx()).ok ? 'tcx' : undefined) : 'clsact';
  const modes: Setting[] = [{ mode: 'attached', attach: attachMode }, ...(otherMode ? [{ mode: 'attached' as const, attach: otherMode }] : []), { mode: 'detached' }];
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
    await sockperfRun(client.netns, server.ip, 1);
    await iperfRun(client.netns, server.ip, 1);

    let current: Setting = modes[0]!;
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? modes : [...modes].reverse();
      for (const setting of order) {
        const { mode } = setting;
        if (opts.signal?.aborted) throw new Error('interrupted');
        if (!sameSetting(setting, current)) {
          await setMode(plan, mode, setting.attach);
          current = setting;
        }
        const backgroundBusy = await waitForQuietHost(settleMs);
        const r = { ...(await measureRun(lab, plan, client, server, seconds, round, mode)), ...(setting.attach ? { attach: setting.attach } : {}), backgroundBusy };
        runs.push(r);
        log(
          `round ${round}/${rounds} ${settingName(setting).padEnd(15)} rtt p50 ${r.rttP50Us.toFixed(1)} µs (avg ${r.rttAvgUs.toFixed(1)}, p99 ${r.rttP99Us.toFixed(1)}), ` +
            `${r.throughputGbps.toFixed(2)} Gbit/s, ${r.programPackets} pkts seen by programs, CPU busy ${(r.backgroundBusy * 100).toFixed(0)} % before / ${(r.hostBusy * 100).toFixed(0)} % during`,
        );
        if (mode === 'attached' && r.programPackets === 0) notes.push(`round ${round}: attached, but the programs counted no packets`);
        if (mode === 'detached' && r.programPackets !== 0) notes.push(`round ${round}: detached, yet the programs counted ${r.programPackets} packets`);
      }
    }
    // Leave the lab as `up` made it before touching its maps.
    if (!sameSetting(current, modes[0]!)) await setMode(plan, 'attached', attachMode);

    liveCost = await measureLiveCost(plan, client, server, seconds, attachMode);
    log(`programs in the live flow (${attachMode}): ${liveCost.nsPerRun.toFixed(0)} ns per run, ${liveCost.runsPerRoundTrip.toFixed(2)} runs per round trip, ${liveCost.usPerRoundTrip.toFixed(2)} µs per round trip`);
    ctAccounting = await measureCtAccounting(plan, client, server, seconds, attachMode, liveCost, log);

    for (const s of servers.splice(0)) await s.stop();
    programCost = await measureProgramCost(plan, client, server, SOCKPERF_PORT);
    log(`program runs (BPF_PROG_RUN): ${programCost.map((c) => `${c.node} ${c.program} ${c.packet} ${c.ns} ns`).join(', ')}`);
    if (opts.mapIo !== false) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      mapIo = await benchMapIo(lab, plan, allocateIdentities(topology), opts.mapIo ?? {}, log);
    }
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await destroyLab(lab);
  }

  const summary = summarizeRuns(runsOfAttachMode(runs, attachMode));
  const goals = checkGoals(summary, runs);
  const host = { ...hostFacts(), loadavg: await loadavg() };
  return {
    lab,
    topologyFile,
    startedAt,
    durationMs: performance.now() - started,
    host,
    rounds,
    seconds,
    client: { pod: client.name, node: client.node, ip: client.ip },
    server: { pod: server.name, node: server.node, ip: server.ip },
    runs,
    ...summary,
    policyMode,
    attachMode,
    ...(otherMode ? { otherAttach: summarizeOtherAttach(runs, otherMode) } : {}),
    ...(liveCost ? { liveProgramCost: liveCost } : {}),
    ...(ctAccounting ? { ctAccounting } : {}),
    ...(programCost ? { programCost } : {}),
    mapIo,
    ...(mapIo ? { mapIoNode: topology.nodes[0]!.name } : {}),
    goals,
    notes,
  };
}

function needPod(plan: LabPlan, name: string): PodPlan {
  const p = findPod(plan, name);
  if (!p) throw new Error(`topology has no pod "${name}" (pods: ${plan.nodes.flatMap((n) => n.pods.map((x) => x.name)).join(', ')})`);
  return p;
}

// ---- modes --------------------------------------------------------------------

/** A mode of the flow: attached (tcx or clsact) or detached. */
interface Setting {
  mode: DatapathMode;
  attach?: TcAttachMode;
}
const sameSetting = (a: Setting, b: Setting) => a.mode === b.mode && a.attach === b.attach;
const settingName = (s: Setting) => (s.attach ? `${s.mode} ${s.attach}` : s.mode);

/**
 * Detaches the programs from every pod veth of every node and, for
 * attached, attaches them again `attach`'s way (default: as `up` does);
 * then checks that the hooks hold exactly what the mode says.
 */
export async function setMode(plan: LabPlan, mode: DatapathMode, attachAs?: TcAttachMode): Promise<void> {
  const attach = attachAs ?? (await tcAttachMode()).mode;
  await Promise.all(
    plan.nodes.map(async (n) => {
      const lxcs = n.pods.map((p) => p.lxc);
      // Both ways on one hook would run both: clear it before switching.
      for (const lxc of lxcs) await detachEndpoint(n.netns, lxc);
      if (mode === 'attached') await attachEndpoints(n.netns, lxcs, nodeProgPins(plan.lab, n.name), { mode: attach });
      for (const lxc of lxcs) {
        const found = await hookPrograms(n, lxc);
        const want = mode === 'attached' ? [`${attach} ${PROGRAMS.fromContainer}`, `${attach} ${PROGRAMS.toContainer}`] : [];
        if (found.join(', ') !== want.join(', ')) {
          throw new Error(`${n.name}/${lxc}: after switching to ${settingName({ mode, attach })} the hooks hold [${found.join(', ')}], not [${want.join(', ')}]`);
        }
      }
    }),
  );
}

/** "via name" of the programs at ingress, then at egress. */
async function hookPrograms(node: NodePlan, lxc: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of ['ingress', 'egress'] as const) for (const p of await tcAttachedPrograms(node.netns, lxc, dir)) found.push(`${p.via} ${p.name}`);
  return found;
}

// ---- one run ------------------------------------------------------------------

async function measureRun(lab: string, plan: LabPlan, client: PodPlan, server: PodPlan, seconds: number, round: number, mode: DatapathMode): Promise<Omit<DatapathRun, 'backgroundBusy'>> {
  const before = await programPackets(lab, plan);
  const cpu0 = await cpuTimes();
  const lat = await sockperfRun(client.netns, server.ip, seconds);
  const thr = await iperfRun(client.netns, server.ip, seconds);
  const cpu1 = await cpuTimes();
  const after = await programPackets(lab, plan);
  return {
    round,
    mode,
    ...lat,
    ...thr,
    programPackets: Number(after - before),
    hostBusy: busyFraction(cpu0, cpu1),
  };
}

/** One sockperf run with run-time statistics on: the attached programs' own time in the flow. */
async function measureLiveCost(plan: LabPlan, client: PodPlan, server: PodPlan, seconds: number, attach: TcAttachMode): Promise<LiveProgramCost> {
  const pins = plan.nodes.flatMap((n) => [PROGRAMS.fromContainer, PROGRAMS.toContainer].map((p) => `${nodeProgPins(plan.lab, n.name)}/${p}`));
  return withRunTimeStats(async () => {
    const before = await programRunTime(pins);
    const lat = await sockperfRun(client.netns, server.ip, seconds);
    const after = await programRunTime(pins);
    const runs = after.runs - before.runs;
    if (runs <= 0 || lat.roundTrips <= 0) throw new Error(`no program runs counted during the live-cost run (${runs} runs, ${lat.roundTrips} round trips)`);
    const ns = after.runTimeNs - before.runTimeNs;
    return { attach, nsPerRun: ns / runs, runsPerRoundTrip: runs / lat.roundTrips, usPerRoundTrip: ns / lat.roundTrips / 1000, rttP50Us: lat.rttP50Us };
  });
}

/** Live-cost runs with CT accounting off and on, alternating (the first off is liveProgramCost). */
const CT_ACCOUNTING_PAIRS = 3;

/**
 * The live cost again with CT accounting on, alternating with off: what the
 * lab's default (no per-packet write of the CT entry) saves. Leaves it off.
 */
async function measureCtAccounting(plan: LabPlan, client: PodPlan, server: PodPlan, seconds: number, attach: TcAttachMode,
  firstOff: LiveProgramCost, log: (line: string) => void): Promise<CtAccountingCost> {
  const cost: CtAccountingCost = { off: [firstOff], on: [] };
  const setAccounting = (on: boolean) => Promise.all(plan.nodes.map((n) => writeRuntimeConfig(plan.lab, n.name, { ctAccounting: on })));
  try {
    for (let i = 0; i < 2 * CT_ACCOUNTING_PAIRS - 1; i++) {
      const on = i % 2 === 0;
      await setAccounting(on);
      const c = await measureLiveCost(plan, client, server, seconds, attach);
      (on ? cost.on : cost.off).push(c);
      log(`programs in the live flow, CT accounting ${on ? 'on' : 'off'}: ${c.nsPerRun.toFixed(0)} ns per run, RTT p50 ${c.rttP50Us.toFixed(1)} µs`);
    }
  } finally {
    await setAccounting(false);
  }
  return cost;
}

async function programPackets(lab: string, plan: LabPlan): Promise<bigint> {
  let sum = 0n;
  for (const n of plan.nodes) for (const row of await readMetrics(lab, n.name)) sum += row.packets;
  return sum;
}


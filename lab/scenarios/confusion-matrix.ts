// Claim C6: which modes stop identity confusion (C5), and what each costs a
// new connection. Five labs side by side, the same pods and policies
// (two-node-auth.yaml), each mode's routing and encryption from its shipped
// topology:
//
//   native               nothing in the packet names the sender: n2's stale ipcache decides
//   native-wireguard     node keys: the tunnel says "from n1", not which pod
//   tunnel               n1 puts the sender's identity in the VNI, n2 believes it
//   tunnel-wireguard     the same VNI, inside WireGuard (Cilium's recommended mode)
//   per-connection-mtls  node proxies, one TLS handshake per connection with the
//                        workload's certificate (lab/mesh); no datapath auth
//
// In each lab: (1) timed connections to server:8080 — the first and a second
// connection of three new identity pairs that need auth (pods pair-N,
// app=client), against the same for three pairs that need none (plain-N,
// app=local; for the mesh: the same lab before the mesh starts); (2) a
// plaintext probe (the client's secret); (3) CFP-28986's attack: partition n2,
// delete the client, a pod of another identity takes its IP and connects.
// Every cell comes from that run's capture (a display filter) or events.
import { resolve } from 'node:path';
import { echoSend, runProbe, startEchoServer } from '../apps/pod-apps.ts';
import { startCapture } from '../capture/capture.ts';
import { finishCapture, scenarioDir } from '../capture/scenario.ts';
import { dropEventOfFlow, isDrop } from '../capture/drops.ts';
import { countPackets, dfString, frames } from '../capture/assert.ts';
import { UNDERLAY_LINK } from '../capture/links.ts';
import { addPod, deletePod, partitionNode } from '../compose/pods.ts';
import { readState } from '../core/state.ts';
import { dumpAuth } from '../datapath/auth.ts';
import {
  AUTH_PORT, DROP_POLICY, DROP_POLICY_AUTH_REQUIRED, HBONE_PORT, IPPROTO_TCP, TCP_F_ACK, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED, VXLAN_PORT,
} from '../abi/generated.ts';
import { enrollPod, proxyLog, startMesh } from '../mesh/mesh.ts';
import { workloadSpiffeId } from '../mesh/config.ts';
import { loadTopologyFile } from '../topology/validate.ts';
import type { Pod, Topology } from '../topology/model.ts';
import { currentRun, REPO, type FlowWithNode, type Scenario, type ScenarioContext } from './framework.ts';
import {
  flowMs, ipcacheIdentity, markdownTable, median, ownLab, sideLabName, untilRefused, waitUntil, withSideLab, type LabHandle,
} from './side-lab.ts';

export type MatrixMode = 'native' | 'native-wireguard' | 'tunnel' | 'tunnel-wireguard' | 'per-connection-mtls';

interface ModeSpec {
  mode: MatrixMode;
  /** The lab-name suffix of a side lab; none for the scenario's own lab. */
  suffix?: string;
  /** The shipped topology whose routing and encryption the mode uses. */
  topology: string;
  mesh?: boolean;
}

export const MATRIX_MODES: ModeSpec[] = [
  { mode: 'native', topology: 'topologies/two-node-auth.yaml' },
  { mode: 'native-wireguard', suffix: 'nwg', topology: 'topologies/two-node-wireguard.yaml' },
  { mode: 'tunnel', suffix: 'tun', topology: 'topologies/two-node-tunnel.yaml' },
  { mode: 'tunnel-wireguard', suffix: 'twg', topology: 'topologies/two-node-tunnel-wireguard.yaml' },
  { mode: 'per-connection-mtls', suffix: 'mtls', topology: 'topologies/mesh.yaml', mesh: true },
];

const BASE_TOPOLOGY = 'topologies/two-node-auth.yaml';
const PORT = 8080;
/** Identity pairs measured per mode (the medians are over these). */
export const PAIRS = 3;
/** In the demo profile: one pair each (every cell and check the same, a median of one). */
export const DEMO_PAIRS = 1;
/** The pairs of the run this is part of. */
const pairs = () => (currentRun()?.profile === 'demo' ? DEMO_PAIRS : PAIRS);
const TIMEOUT = ['--timeout', '20000'];

/** The scenario's side labs, by mode. */
export const matrixLabs = (lab: string) => Object.fromEntries(MATRIX_MODES.filter((m) => m.suffix).map((m) => [m.mode, sideLabName(lab, m.suffix!)])) as Record<MatrixMode, string>;

const pairPod = (k: number) => `pair-${k}`;
const plainPod = (k: number) => `plain-${k}`;
const measuredPods = () => Array.from({ length: pairs() }, (_, i) => [pairPod(i + 1), plainPod(i + 1)]).flat();
const podLabelsOf = (pod: string) => ({ app: pod.startsWith('pair-') ? 'client' : 'local', pair: pod.split('-')[1]! });

/** Extras per identity pair: the first connection of a new pair, and a second one of the same pair. */
export interface PairCosts {
  newPair?: number;
  samePair?: number;
}

/** One mode's row of the matrix: every cell measured in that mode's lab, with its evidence. */
export interface MatrixRow {
  mode: MatrixMode;
  lab: string;
  /** The forbidden pod's connection got through. */
  attackAdmitted?: boolean;
  /** How the receiving side judged it: FORWARDED/DROPPED and the identity, or the mesh proxy's verdict. */
  attackVerdict: string;
  attackDropReason?: number;
  attackJudgedAs?: number;
  clientIdentity?: number;
  intruderIdentity?: number;
  /** The client's secret crossed the underlay readable. */
  plaintextOnUnderlay?: boolean;
  /** The first SYN of every new auth pair was dropped (189). */
  firstPacketDropped?: boolean;
  /** Median extra time to the first byte over the same mode with auth off (ms). */
  newConnectionExtraMs: PairCosts;
  /** TLS handshakes on the underlay during a connection's set-up, per connection. */
  handshakesPerConnection: PairCosts;
  /** Time to first byte of each measured connection (ms), by group. */
  ttfbMs: { newPairAuth: number[]; samePairAuth: number[]; newPairOff: number[]; samePairOff: number[] };
  /** Behind each cell: a capture file and its display filter, or the flow event / log line. */
  evidence: Record<'attackAdmitted' | 'plaintextOnUnderlay' | 'firstPacketDropped' | 'newConnectionExtraMs' | 'handshakesPerConnection', string>;
  capture?: string;
  problems: string[];
}

const isSyn = (f: { protocol: number; tcpFlags: number }) => f.protocol === IPPROTO_TCP && (f.tcpFlags & TCP_F_SYN) !== 0 && (f.tcpFlags & TCP_F_ACK) === 0;
const round1 = (ms: number) => Math.round(ms * 10) / 10;
const secretOf = (mode: MatrixMode) => `plaintext-probe-${mode}`;

/** A mode's topology: the base pods and policies with the mode's routing and encryption; the mesh's own authentication instead of the datapath's. */
async function modeTopology(spec: ModeSpec): Promise<Topology> {
  const [base, shipped] = await Promise.all([loadTopologyFile(resolve(REPO, BASE_TOPOLOGY)), loadTopologyFile(resolve(REPO, spec.topology))]);
  const topology: Topology = { ...base, routing: shipped.routing, encryption: shipped.encryption };
  if (!spec.mesh) return topology;
  // The mesh authorizes workloads by service account: one per pod; it needs the
  // measured pods at start (its authorization is computed then).
  const withSa = (p: Pod): Pod => ({ ...p, serviceAccount: p.name });
  const measured: Pod[] = measuredPods().map((name) => ({ name, namespace: 'default', serviceAccount: name, labels: podLabelsOf(name) }));
  return {
    ...topology,
    nodes: topology.nodes.map((n, i) => ({ ...n, pods: [...n.pods.map(withSa), ...(i === 0 ? measured : [])] })),
    policies: topology.policies.map((p) => ({ ...p, ingress: p.ingress?.map(({ authentication: _auth, ...rule }) => rule) })),
  };
}

/** One measured connection: its pod, its group, and whether the pod app got the echo. */
interface Connection {
  pod: string;
  group: keyof MatrixRow['ttfbMs'];
  ok: boolean;
  error?: string;
}

/**
 * The timed connections: per pod, a first and a second connection one after
 * the other in one pod app (lab/apps/probe.c --sequential), pod by pod so
 * that each connection's set-up is alone on the wire.
 */
async function timedConnections(lab: LabHandle, serverIp: string, groups: { off: boolean; auth: boolean }): Promise<Connection[]> {
  const out: Connection[] = [];
  for (let k = 1; k <= pairs(); k++) {
    for (const [pod, auth] of [[plainPod(k), false], [pairPod(k), true]] as const) {
      if (!(auth ? groups.auth : groups.off)) continue;
      const attempts = await runProbe(lab.lab, pod, serverIp, PORT, `timed-${pod}`, {
        intervalMs: 50, count: 2, durationMs: 60_000, attemptTimeoutMs: 20_000, sequential: true,
      });
      attempts.forEach((a, i) => out.push({
        pod, group: auth ? (i === 0 ? 'newPairAuth' : 'samePairAuth') : (i === 0 ? 'newPairOff' : 'samePairOff'), ok: a.ok, error: a.error,
      }));
      if (attempts.length !== 2) out.push({ pod, group: auth ? 'newPairAuth' : 'newPairOff', ok: false, error: `${attempts.length} attempts, expected 2` });
    }
  }
  return out;
}

interface AttackOutcome {
  admitted?: boolean;
  verdict: string;
  dropReason?: number;
  judgedAs?: number;
  clientIdentity?: number;
  intruderIdentity?: number;
  evidence: string;
  problems: string[];
}

/** CFP-28986's steps 2-5 against the datapath (the client authenticated in step 1). */
async function datapathAttack(lab: LabHandle, mode: MatrixMode): Promise<AttackOutcome> {
  const out: AttackOutcome = { verdict: 'none', evidence: '', problems: [] };
  const serverIp = await lab.podIp('server');
  const clientIp = await lab.podIp('client');
  out.clientIdentity = await ipcacheIdentity(lab.lab, 'n2', clientIp);
  const entries = await dumpAuth(lab.lab, 'n2');
  if (!entries.some((e) => e.key.remoteSecLabel === out.clientIdentity && e.key.remoteNodeId === 1)) out.problems.push('n2 has no auth entry for (server, client, n1)');
  lab.say(`[${mode}] partition n2, delete the client, an intruder takes ${clientIp}`);
  await partitionNode(lab.lab, 'n2', true);
  await deletePod(lab.lab, 'client');
  const intruder = await addPod({ lab: lab.lab, node: 'n1', pod: 'intruder', labels: { app: 'intruder' }, ip: clientIp });
  out.intruderIdentity = intruder.identity;
  if (intruder.identity === out.clientIdentity) out.problems.push('the intruder got the client\'s identity');
  // The intruder's own node learns it (that is what makes its egress work); n2 cannot.
  await waitUntil(async () => ((await ipcacheIdentity(lab.lab, 'n1', clientIp)) === intruder.identity ? true : undefined), 20_000, 25);
  const stale = await ipcacheIdentity(lab.lab, 'n2', clientIp);
  if (stale !== out.clientIdentity) out.problems.push(`n2's ipcache is not stale (says ${stale})`);
  const mark = lab.flows().length;
  const attackSyns = () => lab.flows().slice(mark).filter((f) => f.node === 'n2' && f.saddr === clientIp && f.daddr === serverIp && f.dport === PORT && isSyn(f));
  // n2 drops a SYN it refuses by policy on every retransmit too: the first
  // two drops tell what the client's 10 s timeout would.
  const attack = await untilRefused(
    (signal) => echoSend(lab.lab, 'intruder', 'tcp', serverIp, PORT, `forbidden-${mode}`, ['--timeout', '10000'], signal),
    () => {
      const syns = attackSyns();
      return syns.length >= 2 && syns.every((f) => f.verdict === VERDICT_DROPPED && f.dropReason === DROP_POLICY);
    });
  const seen = await waitUntil(() => attackSyns()[0], 15_000);
  if (!seen) {
    out.problems.push('n2 reported nothing of the attack');
    return out;
  }
  if (attack.canceled) out.evidence = 'the intruder\'s client stopped after n2 dropped its SYN and the retransmit; ';
  out.judgedAs = seen.srcIdentity;
  out.admitted = seen.verdict === VERDICT_FORWARDED;
  const who = seen.srcIdentity === out.clientIdentity ? ' (the client)' : seen.srcIdentity === out.intruderIdentity ? ' (the intruder)' : '';
  if (out.admitted) out.verdict = `FORWARDED as ${seen.srcIdentity}${who}`;
  else if (seen.verdict === VERDICT_DROPPED) {
    out.dropReason = seen.dropReason;
    out.verdict = `DROPPED ${seen.dropReason} as ${seen.srcIdentity}${who}`;
  }
  if (out.admitted !== (attack.exitCode === 0)) out.problems.push(`the pod app and n2 disagree (echo exit ${attack.exitCode}, n2 ${out.verdict})`);
  out.evidence += `flow event n2/to-container ${clientIp}:${seen.sport} -> ${serverIp}:${PORT} SYN: ${out.verdict} (stale ipcache says ${stale})`;
  return out;
}

/** The same steps against the mesh: the intruder's proxy can present only the intruder's certificate. */
async function meshAttack(lab: LabHandle, mode: MatrixMode): Promise<AttackOutcome> {
  const out: AttackOutcome = { verdict: 'none', evidence: '', problems: [] };
  const serverIp = await lab.podIp('server');
  const clientIp = await lab.podIp('client');
  lab.say(`[${mode}] partition n2, delete the client, an intruder (its own service account) takes ${clientIp}`);
  await partitionNode(lab.lab, 'n2', true);
  await deletePod(lab.lab, 'client');
  const intruder = await addPod({ lab: lab.lab, node: 'n1', pod: 'intruder', labels: { app: 'intruder' }, serviceAccount: 'intruder', ip: clientIp });
  out.intruderIdentity = intruder.identity;
  await enrollPod(lab.lab, 'intruder', { serviceAccount: 'intruder' });
  const mark = (await proxyLog(lab.lab, 'n2')).length;
  const attack = await echoSend(lab.lab, 'intruder', 'tcp', serverIp, PORT, `forbidden-${mode}`, ['--timeout', '4000']);
  const verdict = await waitUntil(async () => (await proxyLog(lab.lab, 'n2')).slice(mark).find((l) => l.msg === 'inbound-denied' || l.msg === 'inbound-allowed'), 15_000, 25);
  if (!verdict) {
    out.problems.push('n2\'s proxy logged nothing of the attack');
    return out;
  }
  out.admitted = verdict.msg === 'inbound-allowed';
  out.verdict = `${out.admitted ? 'allowed' : 'refused'} by certificate ${String(verdict.peer)}`;
  if (verdict.peer !== workloadSpiffeId('default', 'intruder')) out.problems.push(`n2's proxy saw ${String(verdict.peer)}, not the intruder's SPIFFE ID`);
  if (out.admitted !== (attack.exitCode === 0)) out.problems.push(`the pod app and n2's proxy disagree (echo exit ${attack.exitCode})`);
  out.evidence = `n2 mesh proxy log: ${String(verdict.msg)} peer ${String(verdict.peer)}${verdict.reason ? ` (${String(verdict.reason)})` : ''}`;
  return out;
}

/** Adds the measured pods at run time (the Cilium modes) and waits until n2 knows each. */
async function addMeasuredPods(lab: LabHandle): Promise<void> {
  const added: { pod: string; ip: string; identity: number }[] = [];
  for (const pod of measuredPods()) added.push({ pod, ...(await addPod({ lab: lab.lab, node: 'n1', pod, labels: podLabelsOf(pod) })) });
  for (const p of added) {
    const known = await waitUntil(async () => ((await ipcacheIdentity(lab.lab, 'n2', p.ip)) === p.identity ? true : undefined), 20_000, 25);
    if (!known) throw new Error(`n2 never learned ${p.pod}`);
  }
}

/** One mode, start to finish, in a lab that is up. */
async function measureMode(lab: LabHandle, spec: ModeSpec, topology: Topology): Promise<MatrixRow> {
  const mode = spec.mode;
  const row: MatrixRow = {
    mode, lab: lab.lab, attackVerdict: 'none', newConnectionExtraMs: {}, handshakesPerConnection: {},
    ttfbMs: { newPairAuth: [], samePairAuth: [], newPairOff: [], samePairOff: [] },
    evidence: { attackAdmitted: '', plaintextOnUnderlay: '', firstPacketDropped: '', newConnectionExtraMs: '', handshakesPerConnection: '' },
    problems: [],
  };
  if (!spec.mesh) await addMeasuredPods(lab);
  const state = (await readState(lab.lab))!;
  const serverIp = await lab.podIp('server');
  // Not the client's veth: it goes away in the attack (and a capture on a deleted device fails).
  const links = [UNDERLAY_LINK, ...measuredPods().map((p) => `n1/lxc-${p}`)];
  const capture = await startCapture(state, links, scenarioDir(lab.lab, 'confusion-matrix'));
  const server = await startEchoServer(lab.lab, 'server', 'tcp', PORT);
  let connections: Connection[] = [];
  let attack: AttackOutcome | undefined;
  let runError: unknown;
  try {
    lab.say(`[${mode}] timed connections: ${pairs()} new identity pairs that need auth and ${pairs()} that do not, twice each`);
    if (spec.mesh) {
      // "Auth off" for the mesh: the same lab before the mesh starts.
      connections.push(...(await timedConnections(lab, serverIp, { off: true, auth: false })));
      await startMesh(lab.lab, topology);
      connections.push(...(await timedConnections(lab, serverIp, { off: false, auth: true })));
    } else {
      connections = await timedConnections(lab, serverIp, { off: true, auth: true });
    }
    for (const c of connections) if (!c.ok) row.problems.push(`${c.pod} (${c.group}) failed: ${c.error ?? 'no echo'}`);
    lab.say(`[${mode}] plaintext probe: the client sends "${secretOf(mode)}" (and authenticates)`);
    const probe = await echoSend(lab.lab, 'client', 'tcp', serverIp, PORT, secretOf(mode), TIMEOUT);
    if (probe.exitCode !== 0) row.problems.push(`the client did not reach the server (${probe.stderr.trim() || `exit ${probe.exitCode}`})`);
    attack = await (spec.mesh ? meshAttack(lab, mode) : datapathAttack(lab, mode));
  } catch (e) {
    runError = e;
  } finally {
    await server.stop();
  }
  // Drops become comments on their frames in every file, as in the framework's captures; the
  // state read before the attack still names the client the intruder replaced.
  const files = await finishCapture(capture, {
    comments: [`mtless-lab scenario "confusion-matrix", mode ${mode}, lab "${lab.lab}"`, 'claims: C6'],
    drops: lab.flows().filter(isDrop).map((f) => dropEventOfFlow(f, f.node, state, links)),
    interrupted: runError !== undefined,
  });
  if (runError) throw runError;
  row.capture = files.merged;
  if (attack) {
    row.attackAdmitted = attack.admitted;
    row.attackVerdict = attack.verdict;
    row.attackDropReason = attack.dropReason;
    row.attackJudgedAs = attack.judgedAs;
    row.clientIdentity = attack.clientIdentity;
    row.intruderIdentity = attack.intruderIdentity;
    row.evidence.attackAdmitted = attack.evidence;
    row.problems.push(...attack.problems);
  }
  await analyseCapture(row, lab, files.merged, serverIp, spec);
  return row;
}

/** The capture's cells: plaintext, time to first byte, handshakes; and the first-packet drops from the flow events. */
async function analyseCapture(row: MatrixRow, lab: LabHandle, file: string, serverIp: string, spec: ModeSpec): Promise<void> {
  const plainFilter = `frame contains ${dfString(secretOf(row.mode))}`;
  const decodeAs = [`udp.port==${VXLAN_PORT},vxlan`];
  const plain = await countPackets(file, plainFilter, { iface: UNDERLAY_LINK, decodeAs });
  row.plaintextOnUnderlay = plain > 0;
  row.evidence.plaintextOnUnderlay = `${file} [${UNDERLAY_LINK}]: ${plainFilter} → ${plain} frame(s)`;

  // Time to first byte, on the client pod's veth: its first SYN to the server's first payload byte.
  const pktFilter = `tcp.port == ${PORT} && frame.interface_name != ${dfString(UNDERLAY_LINK)}`;
  const pkts = await frames(file, pktFilter, ['frame.interface_name', 'frame.time_epoch', 'ip.src', 'tcp.srcport', 'tcp.dstport', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.len'], { decodeAs });
  const podIps = new Map(await Promise.all(measuredPods().map(async (p) => [p, await lab.podIp(p)] as const)));
  interface Stream { sport: string; syn: number; syns: number; first?: number }
  const streamsOf = (pod: string): Stream[] => {
    const byPort = new Map<string, Stream>();
    for (const p of pkts.filter((x) => x['frame.interface_name'] === `n1/lxc-${pod}`)) {
      const t = Number(p['frame.time_epoch']) * 1000;
      const fromPod = p['ip.src'] === podIps.get(pod);
      const sport = fromPod ? p['tcp.srcport']! : p['tcp.dstport']!;
      const s = byPort.get(sport) ?? { sport, syn: Infinity, syns: 0 };
      const flag = (f: string) => p[f] === '1' || p[f] === 'True';
      if (fromPod && flag('tcp.flags.syn') && !flag('tcp.flags.ack')) {
        s.syns++;
        s.syn = Math.min(s.syn, t);
      }
      if (!fromPod && p['ip.src'] === serverIp && Number(p['tcp.len']) > 0 && s.first === undefined) s.first = t;
      byPort.set(sport, s);
    }
    return [...byPort.values()].filter((s) => Number.isFinite(s.syn)).sort((a, b) => a.syn - b.syn);
  };
  const hellosFilter = `tls.handshake.type == 1 && tcp.dstport == ${spec.mesh ? HBONE_PORT : AUTH_PORT}`;
  const hellos = (await frames(file, hellosFilter, ['frame.time_epoch'], { iface: UNDERLAY_LINK, tlsPort: spec.mesh ? HBONE_PORT : AUTH_PORT }))
    .map((h) => Number(h['frame.time_epoch']) * 1000);
  const handshakes: Record<'newPair' | 'samePair', number[]> = { newPair: [], samePair: [] };
  const newPairSports: { pod: string; sport: number }[] = [];
  for (const pod of measuredPods()) {
    const streams = streamsOf(pod);
    const auth = pod.startsWith('pair-');
    if (streams.length !== 2 || streams.some((s) => s.first === undefined)) {
      row.problems.push(`${pod}: ${streams.length} connection(s) with a first byte on its veth, expected 2`);
      continue;
    }
    streams.forEach((s, i) => {
      const ttfb = round1(s.first! - s.syn);
      const group = auth ? (i === 0 ? 'newPairAuth' : 'samePairAuth') : (i === 0 ? 'newPairOff' : 'samePairOff');
      row.ttfbMs[group].push(ttfb);
      if (auth) handshakes[i === 0 ? 'newPair' : 'samePair'].push(hellos.filter((h) => h >= s.syn && h <= s.first!).length);
    });
    if (auth) newPairSports.push({ pod, sport: Number(streams[0]!.sport) });
  }
  const extra = (a: number[], b: number[]) => {
    const ma = median(a);
    const mb = median(b);
    return ma === undefined || mb === undefined ? undefined : round1(ma - mb);
  };
  row.newConnectionExtraMs = { newPair: extra(row.ttfbMs.newPairAuth, row.ttfbMs.newPairOff), samePair: extra(row.ttfbMs.samePairAuth, row.ttfbMs.samePairOff) };
  const mean = (xs: number[]) => (xs.length === 0 ? undefined : round1(xs.reduce((a, b) => a + b, 0) / xs.length));
  row.handshakesPerConnection = { newPair: mean(handshakes.newPair), samePair: mean(handshakes.samePair) };
  const list = (xs: number[]) => xs.join('/');
  row.evidence.newConnectionExtraMs = `${file} [n1/lxc-pair-N, n1/lxc-plain-N]: ${pktFilter}; first SYN from the pod to the server's first payload byte (ms): `
    + `new pair ${list(row.ttfbMs.newPairAuth)} vs ${list(row.ttfbMs.newPairOff)} auth off${spec.mesh ? ' (before the mesh)' : ''}, `
    + `second connection ${list(row.ttfbMs.samePairAuth)} vs ${list(row.ttfbMs.samePairOff)}`;
  row.evidence.handshakesPerConnection = `${file} [${UNDERLAY_LINK}]: ${hellosFilter} (decoded as TLS) → ${hellos.length} ClientHello(s); `
    + `within each connection's set-up: new pair ${list(handshakes.newPair)}, second connection ${list(handshakes.samePair)}`;

  // The first packet of each new auth pair: a drop event at any node for its first SYN.
  const drops = newPairSports.map(({ pod, sport }) => lab.flows().find((f) => f.verdict === VERDICT_DROPPED && isSyn(f)
    && f.saddr === podIps.get(pod) && f.sport === sport && f.dport === PORT));
  const dropped = drops.filter((d): d is FlowWithNode => d !== undefined);
  row.firstPacketDropped = dropped.length === newPairSports.length && dropped.length > 0;
  if (dropped.length > 0 && dropped.length < newPairSports.length) row.problems.push(`only ${dropped.length} of ${newPairSports.length} new pairs lost their first SYN`);
  row.evidence.firstPacketDropped = dropped.length > 0
    ? `flow events: ${dropped.map((d) => `${d.node} DROPPED ${d.dropReason} ${d.saddr}:${d.sport} at ${new Date(flowMs(d)).toISOString()}`).join('; ')}`
    : `flow events: no drop of the first SYN of ${newPairSports.map((s) => `${s.pod}:${s.sport}`).join(', ')} on any node`;
  if (dropped.some((d) => d.dropReason !== DROP_POLICY_AUTH_REQUIRED)) row.problems.push('a new pair\'s first SYN was dropped for another reason than auth');
}

const yesNo = (b: boolean | undefined) => (b === undefined ? '?' : b ? 'yes' : 'no');
const pairCosts = (c: PairCosts, unit = '') => `${c.newPair ?? '?'}${unit} / ${c.samePair ?? '?'}${unit}`;

export function formatMatrix(rows: MatrixRow[]): string[] {
  return markdownTable(
    ['mode', 'attack admitted', 'plaintext on underlay', 'first packet dropped', 'extra ms: new pair / same pair', 'handshakes per connection: new / same'],
    rows.map((r) => [
      r.mode,
      `${r.attackAdmitted ? '**YES**' : yesNo(r.attackAdmitted)} (${r.attackVerdict})`,
      yesNo(r.plaintextOnUnderlay),
      yesNo(r.firstPacketDropped),
      pairCosts(r.newConnectionExtraMs),
      pairCosts(r.handshakesPerConnection),
    ]),
  );
}

export const confusionMatrix: Scenario = {
  name: 'confusion-matrix',
  summary: 'identity confusion (C5) and the cost of a new connection, measured in five modes side by side: native, native + WireGuard, tunnel (VNI), tunnel + WireGuard, per-connection mTLS',
  claims: ['C6'],
  topology: BASE_TOPOLOGY,
  async run(ctx: ScenarioContext) {
    const labs = matrixLabs(ctx.lab);
    const results = await Promise.allSettled(MATRIX_MODES.map(async (spec) => {
      const topology = await modeTopology(spec);
      if (!spec.suffix) return measureMode(ownLab(ctx), spec, topology);
      ctx.say(`[${spec.mode}] bringing up lab ${labs[spec.mode]} (${spec.topology}'s routing and encryption)`);
      return withSideLab(labs[spec.mode], topology, {}, ctx.say, (lab) => measureMode(lab, spec, topology));
    }));
    const rows: MatrixRow[] = results.map((r, i) => r.status === 'fulfilled' ? r.value : {
      mode: MATRIX_MODES[i]!.mode, lab: labs[MATRIX_MODES[i]!.mode] ?? ctx.lab, attackVerdict: 'none', newConnectionExtraMs: {}, handshakesPerConnection: {},
      ttfbMs: { newPairAuth: [], samePairAuth: [], newPairOff: [], samePairOff: [] },
      evidence: { attackAdmitted: '', plaintextOnUnderlay: '', firstPacketDropped: '', newConnectionExtraMs: '', handshakesPerConnection: '' },
      problems: [`failed: ${(r.reason as Error).message}`],
    });
    ctx.measurements.matrix = rows;

    ctx.say('C6 matrix (measured in this run):');
    for (const l of formatMatrix(rows)) ctx.say(`  ${l}`);
    ctx.say('evidence:');
    for (const r of rows) for (const [cell, ev] of Object.entries(r.evidence)) ctx.say(`  ${r.mode} ${cell}: ${ev}`);

    const row = (m: MatrixMode) => rows.find((r) => r.mode === m)!;
    for (const r of rows) ctx.check(`${r.mode}: every measurement and precondition holds`, r.problems.length === 0, r.problems.join('; ') || undefined);
    for (const m of ['native', 'native-wireguard'] as const) {
      const r = row(m);
      ctx.check(`${m}: CONFUSED — the forbidden pod is admitted, judged by n2's stale ipcache as the client${m === 'native-wireguard' ? ' (WireGuard keys name nodes, not pods)' : ''}`,
        r.attackAdmitted === true && r.attackJudgedAs !== undefined && r.attackJudgedAs === r.clientIdentity, r.attackVerdict);
    }
    for (const m of ['tunnel', 'tunnel-wireguard'] as const) {
      const r = row(m);
      ctx.check(`${m}: denied by policy (${DROP_POLICY}), judged by the VNI as the intruder despite n2's stale ipcache`,
        r.attackAdmitted === false && r.attackDropReason === DROP_POLICY && r.attackJudgedAs !== undefined && r.attackJudgedAs === r.intruderIdentity, r.attackVerdict);
    }
    const mesh = row('per-connection-mtls');
    ctx.check('per-connection-mtls: refused by certificate (the intruder\'s own SPIFFE ID), IP reuse and partition notwithstanding',
      mesh.attackAdmitted === false && mesh.attackVerdict.includes(workloadSpiffeId('default', 'intruder')), mesh.attackVerdict);
    for (const r of rows) {
      const expected = r.mode === 'native' || r.mode === 'tunnel';
      ctx.check(`${r.mode}: the client's secret is ${expected ? '' : 'not '}readable on the underlay`, r.plaintextOnUnderlay === expected, r.evidence.plaintextOnUnderlay);
    }
    for (const r of rows) {
      const cilium = r.mode !== 'per-connection-mtls';
      ctx.check(cilium
        ? `${r.mode}: a new identity pair loses its first SYN (${DROP_POLICY_AUTH_REQUIRED}) and costs one handshake; a second connection of the pair none, and no drop`
        : `${r.mode}: no first-packet drop, and every connection its own handshake`,
      cilium
        ? r.firstPacketDropped === true && r.handshakesPerConnection.newPair === 1 && r.handshakesPerConnection.samePair === 0
          && r.newConnectionExtraMs.newPair !== undefined && r.newConnectionExtraMs.samePair !== undefined && r.newConnectionExtraMs.newPair > r.newConnectionExtraMs.samePair
        : r.firstPacketDropped === false && r.handshakesPerConnection.newPair === 1 && r.handshakesPerConnection.samePair === 1,
      `extra ${pairCosts(r.newConnectionExtraMs, ' ms')}, handshakes ${pairCosts(r.handshakesPerConnection)}`);
    }
  },
};

// Auth benchmark: how long a NEW identity pair waits between the datapath's
// drop (reason 189) and its auth entry, and whether the TCP client gets
// through on its FIRST SYN retransmit (~1 s after the drop), never the second
// (~3 s).
//
// Design: one lab with agents, generated: C client pods on n1, S server pods
// on n2, every pod with its own labels (so its own identity), and one policy
// that makes every server require authentication from every client on one
// TCP port. That gives C × S distinct auth keys (server identity, client
// identity, n1, spire) — 10 × 10 = 100 new pairs — with only C + S pod
// namespaces. Each pair makes exactly one new connection (socat, bounded by
// connect-timeout), started one at a time every `intervalMs` with at most
// `maxInFlight` waiting on their retransmit, so the agents authenticate one
// pair at a time while the waiting sockets cost nothing.
//
// Per pair, from three clocks of the same host:
//   drop       DROPPED SYN (reason 189) at n2/to-endpoint: flow event, kernel
//              time converted to Unix ns by the datapath;
//   signal     the agent's `auth-requested` line (ms);
//   entry      the agent's `auth-completed` line, logged right after
//              writeAuthEntry returned (ms), with totalMs = signal → entry and
//              handshakeMs;
//   forwarded  the FORWARDED SYN at n2/to-endpoint (flow event).
// drop → entry = entry time − drop time (end to end, ±1 ms: the log's
// resolution). The retransmit that passed = the number of drops before it.
// The client's wall time (connect + echo of one line) is the new
// connection's time to first byte; a second connection of the same pair
// (authenticated by then) gives the baseline.
import { readFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { upWithDatapath } from '../compose/lab.ts';
import { destroyLab } from '../compose/down.ts';

import type { PodPlan } from '../core/plan.ts';
import { CommandError, run } from '../kernel/run.ts';
import type { PolicyMode } from '../datapath/load.ts';
import { dumpAuth } from '../datapath/auth.ts';
import { streamFlows, type EventStream } from '../datapath/events.ts';
import {
  AUTH_TYPE_SPIRE,
  DROP_POLICY_AUTH_REQUIRED,
  OBS_TO_ENDPOINT,
  TCP_F_SYN,
  VERDICT_DROPPED,
  VERDICT_FORWARDED,
  type FlowEvent,
} from '../abi/generated.ts';
import { allocateIdentities } from '../policy/identity.ts';
import { DEFAULT_ADDRESSING, type Topology } from '../topology/model.ts';
import { validateTopology } from '../topology/validate.ts';
import { benchTag, QUIET_BUSY, refuseLeftovers, startPodServer, waitForQuietHost, type PodServer } from './datapath.ts';
import { daemonLogFile } from '../core/names.ts';

export const AUTH_LAB = 'bench-auth';
export const AUTH_PORT_DEFAULT = 8080;
export const AUTH_GOALS = { p50Ms: 10, p99Ms: 50 } as const;
const IPPROTO_TCP = 6;

export interface BenchAuthOptions {
  /** Client pods on n1 (each its own identity). Default 10. */
  clients?: number;
  /** Server pods on n2 (each its own identity). Default 10; pairs = clients × servers (≥ 100 by default). */
  servers?: number;
  /** Lab name. Default bench-auth. */
  name?: string;
  /** Server port the policy protects. Default 8080. */
  port?: number;
  /** Spacing of connection starts, ms. Default 250 (longer than one authentication, shorter than the 1 s RTO). */
  intervalMs?: number;
  /** Connections waiting at once, at most. Default 6. */
  maxInFlight?: number;
  /** Per-connection bound (socat connect-timeout and -T). Default 5000 ms: room for the second retransmit (~3 s), not a third. */
  connectTimeoutMs?: number;
  /** Second connections of already-authenticated pairs, for the baseline. Default 10. */
  warmPairs?: number;
  policyMode?: PolicyMode;
  /** Wait up to this long for other jobs to quiet down (CPU ≤ 30 % busy) before the connections. Default 5000 ms; 0 = don't. */
  settleMs?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export type RetransmitClass = 'first' | 'second' | 'later' | 'never' | 'not-dropped';

export interface AuthPairResult {
  client: string;
  server: string;
  /** localSecLabel:remoteSecLabel:remoteNodeId:authType, as the agent logs it. */
  key: string;
  /** Unix ms of the first DROPPED SYN (flow event). */
  dropAt?: number;
  /** DROPPED SYNs of the pair (1 when the first retransmit passed). */
  drops: number;
  /** Any other drop of the pair's packets, either node (should be none). */
  otherDrops: string[];
  dropToSignalMs?: number;
  /** The agent's totalMs: signal → entry written. */
  signalToEntryMs?: number;
  handshakeMs?: number;
  /** End to end: drop event → auth-completed line (entry written). */
  dropToEntryMs?: number;
  /** First drop → FORWARDED SYN. */
  synGapMs?: number;
  /** Which SYN got through. */
  passedOn: RetransmitClass;
  /** The client's wall time: new connection + echo of one line. */
  clientMs: number;
  clientOk: boolean;
  /** auth-failed reasons the agent logged for the key. */
  failures: string[];
  error?: string;
}

export interface Distribution {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface GoalCheck {
  goal: string;
  holds: boolean | undefined;
  detail: string;
}

export interface BenchAuthReport {
  lab: string;
  startedAt: string;
  durationMs: number;
  host: { kernel: string; cpus: number; loadavg: string };
  clients: number;
  servers: number;
  pairs: number;
  port: number;
  intervalMs: number;
  maxInFlight: number;
  connectTimeoutMs: number;
  policyMode: PolicyMode;
  /** Host CPU busy fraction just before the connections, lab idle: other jobs on the machine. */
  backgroundBusy: number;
  results: AuthPairResult[];
  dropToEntry?: Distribution;
  signalToEntry?: Distribution;
  dropToSignal?: Distribution;
  handshake?: Distribution;
  /** signalToEntry − handshake: bpftool map update, logging, scheduling. */
  afterHandshake?: Distribution;
  synGap?: Distribution;
  passedOn: Record<RetransmitClass, number>;
  /** Client wall time of the new connections that succeeded. */
  ttfbNew?: Distribution;
  /** Client wall time of a second connection of an authenticated pair. */
  ttfbWarm?: Distribution;
  /** Drops seen during the warm connections (should be 0). */
  warmDrops: number;
  /** The pairs' keys found in n2's auth map at the end. */
  entriesInMap: number;
  failures: Record<string, number>;
  goals: { p50: GoalCheck; p99: GoalCheck; firstRetransmit: GoalCheck };
  notes: string[];
}

// ---- topology -----------------------------------------------------------------

/** c1…cC on n1 and s1…sS on n2, each its own identity; every server requires auth from every client on `port`. */
export function benchAuthTopology(clients: number, servers: number, port = AUTH_PORT_DEFAULT, name = AUTH_LAB): Topology {
  const pod = (kind: 'client' | 'server', i: number) => ({
    name: `${kind[0]}${i}`,
    namespace: 'default',
    serviceAccount: 'default',
    labels: { app: `bench-${kind}`, [kind]: `${kind[0]}${i}` },
  });
  return {
    name,
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    nodes: [
      { name: 'n1', pods: Array.from({ length: clients }, (_, i) => pod('client', i + 1)) },
      { name: 'n2', pods: Array.from({ length: servers }, (_, i) => pod('server', i + 1)) },
    ],
    policies: [
      {
        name: 'servers-require-auth',
        endpointSelector: { matchLabels: { app: 'bench-server' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'bench-client' } }],
            toPorts: [{ ports: [{ port, protocol: 'TCP' }] }],
            authentication: { mode: 'required' },
          },
        ],
      },
    ],
  };
}

/** Every (client, server) pair, ordered so consecutive attempts change both ends. */
export function pairOrder(clients: number, servers: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let c = 0; c < clients; c++) for (let s = 0; s < servers; s++) pairs.push([c, s]);
  const diag = ([c, s]: [number, number]) => (((s - c) % servers) + servers) % servers;
  return pairs.sort((a, b) => diag(a) - diag(b) || a[0] - b[0]);
}

// ---- the benchmark ------------------------------------------------------------

type Flow = FlowEvent & { node: string };
type LogLine = Record<string, unknown> & { event?: string; key?: string; time?: string };

export async function benchAuth(opts: BenchAuthOptions = {}): Promise<BenchAuthReport> {
  const nClients = opts.clients ?? 10;
  const nServers = opts.servers ?? 10;
  const lab = opts.name ?? AUTH_LAB;
  const port = opts.port ?? AUTH_PORT_DEFAULT;
  const intervalMs = opts.intervalMs ?? 250;
  const maxInFlight = opts.maxInFlight ?? 6;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const warmPairs = opts.warmPairs ?? 10;
  const policyMode = opts.policyMode ?? 'per-packet';
  const log = opts.log ?? (() => undefined);
  for (const [what, v, lo, hi] of [['clients', nClients, 1, 100], ['servers', nServers, 1, 100], ['maxInFlight', maxInFlight, 1, 16]] as const) {
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${what} must be an integer in ${lo}..${hi}, got ${v}`);
  }
  if (nClients * nServers > 2500) throw new Error(`${nClients * nServers} pairs is too many for one run (at most 2500)`);
  if (!(intervalMs >= 0 && intervalMs <= 10_000)) throw new Error(`intervalMs must be in 0..10000, got ${intervalMs}`);
  if (!(connectTimeoutMs >= 1000 && connectTimeoutMs <= 30_000)) throw new Error(`connectTimeoutMs must be in 1000..30000, got ${connectTimeoutMs}`);
  await refuseLeftovers(lab);

  const topology = benchAuthTopology(nClients, nServers, port, lab);
  const issues = validateTopology(topology);
  if (issues.length > 0) throw new Error(`generated topology is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  const identities = allocateIdentities(topology);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const flows: Flow[] = [];
  const streams: EventStream[] = [];
  const servers: PodServer[] = [];
  const results: AuthPairResult[] = [];
  let warmMs: number[] = [];
  let warmDrops = 0;
  let entriesInMap = 0;
  let agentLog: LogLine[] = [];
  let backgroundBusy = 0;
  const inFlight = new Set<Promise<void>>();
  try {
    const plan = await upWithDatapath(topology, { name: lab, agents: true, policyMode, signal: opts.signal });
    const clientNode = plan.nodes[0]!;
    const serverNode = plan.nodes[1]!;
    const clients = clientNode.pods;
    const serverPods = serverNode.pods;
    log(`lab ${lab} up: ${clients.length} clients on ${clientNode.name}, ${serverPods.length} servers on ${serverNode.name}, ${clients.length * serverPods.length} pairs`);

    // The agents must hold an SVID for every local identity before the first drop.
    await waitForSvids(lab, clientNode.name, new Set(clients.map((p) => identities.byPod.get(p.name)!)), 30_000);
    await waitForSvids(lab, serverNode.name, new Set(serverPods.map((p) => identities.byPod.get(p.name)!)), 30_000);

    // Flow events of both nodes, of the benchmark's connections only (either direction of the port).
    for (const n of plan.nodes) {
      const s = streamFlows(lab, n.name, (f) => {
        if (f.protocol === IPPROTO_TCP && (f.dport === port || f.sport === port)) flows.push({ ...f, node: n.name });
      });
      streams.push(s);
    }
    await Promise.all(streams.map((s) => s.ready));

    for (const p of serverPods) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      servers.push(await startPodServer(p.netns, ['socat', `TCP-LISTEN:${port},bind=${p.ip},fork,reuseaddr`, 'PIPE'], port, benchTag(lab, p)));
    }

    backgroundBusy = await waitForQuietHost(opts.settleMs ?? 5000);
    log(`CPU busy before the connections (other jobs): ${(backgroundBusy * 100).toFixed(0)} %`);
    if (backgroundBusy > QUIET_BUSY) notes.push(`other jobs kept the CPUs ${(backgroundBusy * 100).toFixed(0)} % busy before the connections: the agents shared the CPUs with them`);

    // New pairs: one connection each.
    const order = pairOrder(clients.length, serverPods.length);
    const attempts = new Map<string, { ms: number; ok: boolean; error?: string }>();
    let lastStart = -Infinity;
    for (const [ci, si] of order) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
      const wait = lastStart + intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      lastStart = performance.now();
      const c = clients[ci]!;
      const sv = serverPods[si]!;
      const job = connectOnce(c, sv, port, connectTimeoutMs).then((r) => {
        attempts.set(`${c.name}>${sv.name}`, r);
        if (attempts.size % 20 === 0 || attempts.size === order.length) log(`${attempts.size}/${order.length} connections done`);
      });
      const tracked = job.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    await Promise.all(inFlight);
    await sleep(200); // the last flow records and log lines

    agentLog = await readAgentLog(lab, serverNode.name);
    const clientNodeId = clientNode.id;
    for (const [ci, si] of order) {
      const c = clients[ci]!;
      const sv = serverPods[si]!;
      const key = `${identities.byPod.get(sv.name)}:${identities.byPod.get(c.name)}:${clientNodeId}:${AUTH_TYPE_SPIRE}`;
      results.push(pairResult(c, sv, key, flows, agentLog, attempts.get(`${c.name}>${sv.name}`)!));
    }

    // Baseline: a second connection of pairs that are authenticated now.
    const warm = order.slice(0, Math.min(warmPairs, order.length));
    const dropsBefore = flows.filter((f) => f.verdict === VERDICT_DROPPED).length;
    warmMs = [];
    for (const [ci, si] of warm) {
      if (opts.signal?.aborted) throw new Error('interrupted');
      const r = await connectOnce(clients[ci]!, serverPods[si]!, port, connectTimeoutMs);
      if (r.ok) warmMs.push(r.ms);
    }
    await sleep(100);
    warmDrops = flows.filter((f) => f.verdict === VERDICT_DROPPED).length - dropsBefore;

    const keys = new Set(results.map((r) => r.key));
    entriesInMap = (await dumpAuth(lab, serverNode.name)).filter((e) => keys.has(`${e.key.localSecLabel}:${e.key.remoteSecLabel}:${e.key.remoteNodeId}:${e.key.authType}`)).length;
    agentLog = await readAgentLog(lab, serverNode.name);
  } finally {
    await Promise.allSettled(inFlight); // each bounded by its connect timeout
    for (const s of streams) await s.stop().catch(() => undefined);
    for (const s of servers) await s.stop().catch(() => undefined);
    await destroyLab(lab);
  }

  // ---- summary ----
  const dist = (values: (number | undefined)[]) => distribution(values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const passedOn: Record<RetransmitClass, number> = { first: 0, second: 0, later: 0, never: 0, 'not-dropped': 0 };
  for (const r of results) passedOn[r.passedOn]++;
  const failures: Record<string, number> = {};
  for (const l of agentLog) if (l.event === 'auth-failed') failures[String(l.reason)] = (failures[String(l.reason)] ?? 0) + 1;
  const dropToEntry = dist(results.map((r) => r.dropToEntryMs));
  const signalToEntry = dist(results.map((r) => r.signalToEntryMs));
  const missing = results.filter((r) => r.dropToEntryMs === undefined).length;
  if (missing > 0) notes.push(`${missing} pair(s) have no drop→entry time (no drop event, or no auth-completed line)`);
  if (warmDrops > 0) notes.push(`${warmDrops} drop(s) during second connections of authenticated pairs`);
  if (entriesInMap !== results.length) notes.push(`${entriesInMap} of ${results.length} pairs' entries are in the auth map at the end`);
  const measured = results.length - passedOn['not-dropped'];
  const load = await readFile('/proc/loadavg', 'utf8').catch(() => '');

  return {
    lab,
    startedAt,
    durationMs: performance.now() - started,
    host: { kernel: release(), cpus: cpus().length, loadavg: load.split(' ').slice(0, 3).join(' ') },
    clients: nClients,
    servers: nServers,
    pairs: results.length,
    port,
    intervalMs,
    maxInFlight,
    connectTimeoutMs,
    policyMode,
    backgroundBusy,
    results,
    dropToEntry,
    signalToEntry,
    dropToSignal: dist(results.map((r) => r.dropToSignalMs)),
    handshake: dist(results.map((r) => r.handshakeMs)),
    afterHandshake: dist(results.map((r) => (r.signalToEntryMs !== undefined && r.handshakeMs !== undefined ? r.signalToEntryMs - r.handshakeMs : undefined))),
    synGap: dist(results.map((r) => r.synGapMs)),
    passedOn,
    ttfbNew: dist(results.filter((r) => r.clientOk).map((r) => r.clientMs)),
    ttfbWarm: dist(warmMs),
    warmDrops,
    entriesInMap,
    failures,
    goals: {
      p50: {
        goal: `drop → auth entry p50 ≤ ${AUTH_GOALS.p50Ms} ms`,
        holds: dropToEntry ? dropToEntry.p50 <= AUTH_GOALS.p50Ms : undefined,
        detail: dropToEntry ? `${dropToEntry.p50.toFixed(1)} ms (signal → entry ${signalToEntry?.p50.toFixed(1) ?? 'n/a'} ms), ${dropToEntry.n} pairs` : 'not measured',
      },
      p99: {
        goal: `drop → auth entry p99 ≤ ${AUTH_GOALS.p99Ms} ms`,
        holds: dropToEntry ? dropToEntry.p99 <= AUTH_GOALS.p99Ms : undefined,
        detail: dropToEntry ? `${dropToEntry.p99.toFixed(1)} ms (signal → entry ${signalToEntry?.p99.toFixed(1) ?? 'n/a'} ms), max ${dropToEntry.max.toFixed(1)} ms` : 'not measured',
      },
      firstRetransmit: {
        goal: 'every new pair passes on its FIRST SYN retransmit (~1 s), never the second (~3 s)',
        holds: measured > 0 ? passedOn.first === measured : undefined,
        detail: `${passedOn.first} first, ${passedOn.second} second, ${passedOn.later} later, ${passedOn.never} never, of ${measured} new pairs` +
          (passedOn['not-dropped'] ? ` (${passedOn['not-dropped']} not dropped at all)` : ''),
      },
    },
    notes,
  };
}

// ---- pieces -------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One new TCP connection from a client pod: connect, send a line, wait for its echo. Bounded by connect-timeout and -T. */
async function connectOnce(client: PodPlan, server: PodPlan, port: number, timeoutMs: number): Promise<{ ms: number; ok: boolean; error?: string }> {
  const secs = (timeoutMs / 1000).toFixed(1);
  const started = performance.now();
  try {
    const r = await run(['socat', '-T', secs, '-', `TCP:${server.ip}:${port},connect-timeout=${secs}`], {
      netns: client.netns,
      input: 'ping\n',
      timeout: timeoutMs + 3000,
      okCodes: [1],
    });
    const ok = r.exitCode === 0 && r.stdout.includes('ping');
    return { ms: r.durationMs, ok, ...(ok ? {} : { error: (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.exitCode}` }) };
  } catch (e) {
    return { ms: performance.now() - started, ok: false, error: e instanceof CommandError ? e.message : String(e) };
  }
}

async function readAgentLog(lab: string, node: string): Promise<LogLine[]> {
  const text = await readFile(daemonLogFile(lab, node, 'agent'), 'utf8').catch(() => '');
  const lines: LogLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      /* a line cut by a concurrent write */
    }
  }
  return lines;
}

/** Polls the agent's log (a readiness signal, with a deadline) until it holds an SVID for each identity. */
async function waitForSvids(lab: string, node: string, want: Set<number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const have = new Set((await readAgentLog(lab, node)).filter((l) => l.event === 'svid-received').map((l) => Number(l.identity)));
    const missing = [...want].filter((id) => !have.has(id));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`agent on ${node} has no SVID for identities ${missing.join(', ')} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function pairResult(client: PodPlan, server: PodPlan, key: string, flows: Flow[], agentLog: LogLine[], attempt: { ms: number; ok: boolean; error?: string }): AuthPairResult {
  const byTime = (a: Flow, b: Flow) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0);
  const pair = flows.filter((f) => (f.saddr === client.ip && f.daddr === server.ip) || (f.saddr === server.ip && f.daddr === client.ip)).sort(byTime);
  // The SYNs entering the server pod: dropped until the entry exists, then the one that passes.
  const isSynIn = (f: Flow) => f.saddr === client.ip && f.node === server.node && f.obsPoint === OBS_TO_ENDPOINT && (f.tcpFlags & TCP_F_SYN) !== 0;
  const drops = pair.filter((f) => isSynIn(f) && f.verdict === VERDICT_DROPPED && f.dropReason === DROP_POLICY_AUTH_REQUIRED);
  const fwd = pair.find((f) => isSynIn(f) && f.verdict === VERDICT_FORWARDED);
  const otherDrops = pair.filter((f) => f.verdict === VERDICT_DROPPED && !drops.includes(f));
  const ms = (ns: bigint) => Number(ns) / 1e6;
  const dropAt = drops[0] ? ms(drops[0].timestamp) : undefined;
  const requested = agentLog.find((l) => l.event === 'auth-requested' && l.key === key);
  const completed = agentLog.find((l) => l.event === 'auth-completed' && l.key === key);
  const failures = agentLog.filter((l) => l.event === 'auth-failed' && l.key === key).map((l) => String(l.reason));
  const at = (l: LogLine | undefined) => (l?.time ? Date.parse(l.time) : undefined);
  let passedOn: RetransmitClass;
  if (!fwd) passedOn = 'never';
  else {
    const before = drops.filter((d) => d.timestamp < fwd.timestamp).length;
    passedOn = before === 0 ? 'not-dropped' : before === 1 ? 'first' : before === 2 ? 'second' : 'later';
  }
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const requestedAt = at(requested);
  const completedAt = at(completed);
  return {
    client: client.name,
    server: server.name,
    key,
    ...(dropAt !== undefined ? { dropAt } : {}),
    drops: drops.length,
    otherDrops: otherDrops.map((f) => `${f.node} ${f.saddr}:${f.sport}->${f.daddr}:${f.dport} flags ${f.tcpFlags} reason ${f.dropReason}`),
    dropToSignalMs: dropAt !== undefined && requestedAt !== undefined ? requestedAt - dropAt : undefined,
    signalToEntryMs: num(completed?.totalMs),
    handshakeMs: num(completed?.handshakeMs),
    dropToEntryMs: dropAt !== undefined && completedAt !== undefined ? completedAt - dropAt : undefined,
    synGapMs: dropAt !== undefined && fwd ? ms(fwd.timestamp) - dropAt : undefined,
    passedOn,
    clientMs: attempt.ms,
    clientOk: attempt.ok,
    failures,
    ...(attempt.error ? { error: attempt.error } : {}),
  };
}

/** Nearest-rank percentiles (p99 of 100 values is the 99th smallest). */
export function distribution(values: readonly number[]): Distribution | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
  return { n: s.length, min: s[0]!, p50: rank(50), p90: rank(90), p99: rank(99), max: s[s.length - 1]! };
}

// ---- output -------------------------------------------------------------------

export function formatBenchAuth(report: BenchAuthReport): string {
  const out: string[] = [];
  out.push(
    `auth benchmark: lab ${report.lab}, ${report.clients} clients (n1) × ${report.servers} servers (n2) = ${report.pairs} new identity pairs, ` +
      `TCP :${report.port}, policy mode ${report.policyMode}`,
  );
  out.push(
    `one connection per pair, started every ${report.intervalMs} ms, ≤ ${report.maxInFlight} waiting, each bounded to ${report.connectTimeoutMs} ms; ` +
      `kernel ${report.host.kernel}, ${report.host.cpus} CPU(s), load ${report.host.loadavg}, ${(report.backgroundBusy * 100).toFixed(0)} % CPU busy before (other jobs); took ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  out.push('');
  const rows: string[][] = [['ms', 'n', 'min', 'p50', 'p90', 'p99', 'max']];
  const add = (name: string, d: Distribution | undefined, dec = 1) =>
    rows.push(d ? [name, String(d.n), ...[d.min, d.p50, d.p90, d.p99, d.max].map((v) => v.toFixed(dec))] : [name, '0', '-', '-', '-', '-', '-']);
  add('drop → entry (flow event → auth-completed)', report.dropToEntry);
  add('  drop → signal at agent (auth-requested)', report.dropToSignal);
  add('  signal → entry (agent totalMs)', report.signalToEntry);
  add('    handshake (agent handshakeMs)', report.handshake);
  add('    after handshake (entry write, log)', report.afterHandshake);
  add('drop → forwarded SYN (flow events)', report.synGap, 0);
  add('new connection, client wall time', report.ttfbNew, 0);
  add('authenticated pair, client wall time', report.ttfbWarm, 1);
  out.push(...table(rows));
  out.push('');
  const p = report.passedOn;
  out.push(
    `SYN that passed: first retransmit ${p.first}, second ${p.second}, later ${p.later}, never ${p.never}` +
      (p['not-dropped'] ? `, not dropped ${p['not-dropped']}` : ''),
  );
  out.push(`auth entries of the pairs in n2's map at the end: ${report.entriesInMap}/${report.pairs}; drops during second connections: ${report.warmDrops}`);
  const fails = Object.entries(report.failures);
  out.push(`auth failures logged by n2's agent: ${fails.length ? fails.map(([r, n]) => `${r} ×${n}`).join(', ') : 'none'}`);
  const slow = [...report.results].filter((r) => r.dropToEntryMs !== undefined).sort((a, b) => b.dropToEntryMs! - a.dropToEntryMs!).slice(0, 3);
  if (slow.length > 0) {
    out.push('slowest pairs (drop → signal / handshake / entry, ms):');
    for (const r of slow) {
      out.push(
        `  ${r.client}->${r.server} key ${r.key}: ${r.dropToEntryMs!.toFixed(0)} ` +
          `(${fmt(r.dropToSignalMs)} / ${fmt(r.handshakeMs)} / ${fmt(r.signalToEntryMs !== undefined && r.handshakeMs !== undefined ? r.signalToEntryMs - r.handshakeMs : undefined)})`,
      );
    }
  }
  const bad = report.results.filter((r) => r.passedOn !== 'first' || !r.clientOk || r.otherDrops.length > 0 || lateAfterSyn(r) > SLOW_AFTER_SYN_MS);
  if (bad.length > 0) {
    out.push(`pairs not passing on the first retransmit, failing, with other drops, or whose client finished > ${SLOW_AFTER_SYN_MS} ms after its SYN passed:`);
    for (const r of bad.slice(0, 10)) {
      out.push(
        `  ${r.client}->${r.server}: ${r.passedOn}, ${r.drops} SYN drop(s), SYN passed at ${fmt(r.synGapMs)} ms, client ${r.clientOk ? 'ok' : `failed (${r.error ?? '?'})`} ` +
          `in ${r.clientMs.toFixed(0)} ms${r.failures.length ? `, auth-failed: ${r.failures.join(', ')}` : ''}${r.otherDrops.length ? `, other drops: ${r.otherDrops.join('; ')}` : ''}`,
      );
    }
    if (bad.length > 10) out.push(`  … and ${bad.length - 10} more`);
  }
  out.push('');
  out.push('goals:');
  for (const g of Object.values(report.goals)) {
    const mark = g.holds === undefined ? 'NOT MEASURED' : g.holds ? 'holds' : 'MISSED';
    out.push(`  [${mark}] ${g.goal}: ${g.detail}`);
  }
  if (report.notes.length > 0) {
    out.push('notes:');
    for (const n of report.notes) out.push(`  ${n}`);
  }
  return out.join('\n');
}

/** Client time after its SYN got through: the echo's round trip plus process start, normally a few ms. */
const SLOW_AFTER_SYN_MS = 500;
const lateAfterSyn = (r: AuthPairResult) => (r.synGapMs === undefined ? 0 : r.clientMs - r.synGapMs);

const fmt = (v: number | undefined) => (v === undefined ? '?' : v.toFixed(1));

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
}


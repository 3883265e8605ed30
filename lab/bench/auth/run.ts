// Auth benchmark: how long a NEW identity pair waits between the datapath's
// drop (reason 189) and its auth entry, and whether the TCP client gets
// through on its FIRST SYN retransmit (~1 s after the drop), never the second
// (~3 s).
//
// Design: one lab with agents, generated (topology.ts): C client pods on n1,
// S server pods on n2, every pod with its own labels (so its own identity),
// and one policy that makes every server require authentication from every
// client on one TCP port. That gives C × S distinct auth keys (server
// identity, client identity, n1, spire) — 10 × 10 = 100 new pairs — with only
// C + S pod namespaces. Each pair makes exactly one new connection (socat,
// bounded by connect-timeout), started one at a time every `intervalMs` with
// at most `maxInFlight` waiting on their retransmit, so the agents
// authenticate one pair at a time while the waiting sockets cost nothing.
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
// (authenticated by then) gives the baseline. The agent's log is read in
// agent-log.ts, the numbers made in report.ts, the text in format.ts.
//
// The floor, in the same run (floor.ts, tls-floor.ts): right after each
// pair's authentication (its auth-completed line), before the next pair
// starts, a long-lived bare TLS client in n2 makes one fresh mutual TLS 1.3 handshake
// with a bare server in n1, both with SVIDs of the lab's CA, over the same
// underlay. The goals are drop → entry over the floor's p50. `runs` repeats
// the pairs (their entries removed from n2's map between rounds).
import { upWithDatapath } from '../../compose/lab.ts';
import { destroyLab } from '../../compose/down.ts';
import type { PodPlan } from '../../core/plan.ts';
import { CommandError, run } from '../../kernel/run.ts';
import type { PolicyMode } from '../../datapath/load.ts';
import { deleteAuthEntry, dumpAuth } from '../../datapath/auth.ts';
import { AgentLogTail, parseAuthKeyText } from './agent-log.ts';
import { AUTH_BACKOFF_MS } from '../../agent/agent.ts';
import { startFloor, type Floor } from './floor.ts';
import { streamFlows, type EventStream } from '../../datapath/events.ts';
import { AUTH_TYPE_SPIRE, IPPROTO_TCP, VERDICT_DROPPED } from '../../abi/generated.ts';
import { allocateIdentities } from '../../policy/identity.ts';
import { validateTopology } from '../../topology/validate.ts';
import { hostFacts, loadavg, QUIET_BUSY, waitForQuietHost } from '../host.ts';
import { refuseLeftovers } from '../leftovers.ts';
import { benchTag, startPodServer, type PodServer } from '../pod-server.ts';
import { failureCounts, keyAuth, readAgentLog, svidIdentities, type AgentLogLine } from './agent-log.ts';
import { checkGoals, pairResult, resultNotes, roundSummaries, summarizeAuth, type AuthPairResult, type FloorRoundSample, type BenchAuthReport, type ConnectAttempt, type Flow } from './report.ts';
import { AUTH_LAB, AUTH_PORT_DEFAULT, benchAuthTopology, pairOrder } from './topology.ts';

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
  /**
   * Rounds (`--runs`): each makes every pair's new connection again, after
   * removing the pairs' entries from the server node's auth map. Default 1.
   */
  runs?: number;
  /** Second connections of already-authenticated pairs, for the baseline. Default 10. */
  warmPairs?: number;
  policyMode?: PolicyMode;
  /** Wait up to this long for other jobs to quiet down (CPU ≤ 30 % busy) before the connections. Default 5000 ms; 0 = don't. */
  settleMs?: number;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export async function benchAuth(opts: BenchAuthOptions = {}): Promise<BenchAuthReport> {
  const nClients = opts.clients ?? 10;
  const nServers = opts.servers ?? 10;
  const lab = opts.name ?? AUTH_LAB;
  const port = opts.port ?? AUTH_PORT_DEFAULT;
  const intervalMs = opts.intervalMs ?? 250;
  const maxInFlight = opts.maxInFlight ?? 6;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const warmPairs = opts.warmPairs ?? 10;
  const runs = opts.runs ?? 1;
  const policyMode = opts.policyMode ?? 'per-packet';
  const log = opts.log ?? (() => undefined);
  for (const [what, v, lo, hi] of [['clients', nClients, 1, 100], ['servers', nServers, 1, 100], ['maxInFlight', maxInFlight, 1, 16], ['runs', runs, 1, 10]] as const) {
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
  let agentLog: AgentLogLine[] = [];
  let backgroundBusy = 0;
  const inFlight = new Set<Promise<void>>();
  const floorSamples: FloorRoundSample[] = [];
  let floor: Floor | undefined;
  let tail: AgentLogTail | undefined;
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

    // The floor: a bare TLS handshake between the same two nodes, one in each gap between pairs.
    floor = await startFloor(lab, {
      dialer: { netns: serverNode.netns, node: serverNode.name, identity: identities.byPod.get(serverPods[0]!.name)! },
      server: { netns: clientNode.netns, node: clientNode.name, identity: identities.byPod.get(clients[0]!.name)!, ip: clientNode.underlayIp },
    });

    // New pairs: one connection each, every round; a round after the first starts with the pairs' entries removed.
    const order = pairOrder(clients.length, serverPods.length);
    const keyOf = (ci: number, si: number) => `${identities.byPod.get(serverPods[si]!.name)}:${identities.byPod.get(clients[ci]!.name)}:${clientNode.id}:${AUTH_TYPE_SPIRE}`;
    for (let round = 0; round < runs; round++) {
      if (round > 0) {
        await clearPairEntries(lab, serverNode.name, order.map(([ci, si]) => keyOf(ci, si)));
        await sleep(AUTH_BACKOFF_MS); // the agent's backoff after a key's last entry
      }
      const roundStart = Date.now();
      tail?.close();
      tail = await AgentLogTail.open(lab, serverNode.name);
      const doneKeys = new Set<string>();
      const attempts = new Map<string, ConnectAttempt>();
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
          if (attempts.size % 20 === 0 || attempts.size === order.length) log(`${runs > 1 ? `round ${round + 1}/${runs}: ` : ''}${attempts.size}/${order.length} connections done`);
        });
        const tracked = job.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        // Right after this pair's authentication (its auth-completed line), before the next pair:
        // the floor meets the machine as the agents just did, and never overlaps them.
        await untilKeyDone(tail, doneKeys, keyOf(ci, si), lastStart + intervalMs * 0.8);
        floorSamples.push({ round, ...(await floor.handshake()) });
      }
      await Promise.all(inFlight);
      await sleep(200); // the last flow records and log lines

      agentLog = await readAgentLog(lab, serverNode.name);
      const roundFlows = flows.filter((f) => Number(f.timestamp) / 1e6 >= roundStart);
      for (const [ci, si] of order) {
        const c = clients[ci]!;
        const sv = serverPods[si]!;
        const key = keyOf(ci, si);
        results.push({ round, ...pairResult(c, sv, key, roundFlows, keyAuth(agentLog, key, roundStart), attempts.get(`${c.name}>${sv.name}`)!) });
      }
    }
    await floor.stop();
    floor = undefined;

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
    tail?.close();
    await Promise.allSettled(inFlight); // each bounded by its connect timeout
    await floor?.stop().catch(() => undefined);
    for (const s of streams) await s.stop().catch(() => undefined);
    for (const s of servers) await s.stop().catch(() => undefined);
    await destroyLab(lab);
  }

  const summary = summarizeAuth(results, warmMs, floorSamples);
  notes.push(...resultNotes(results, warmDrops, entriesInMap, results.length / runs));
  const host = { ...hostFacts(), loadavg: await loadavg() };
  return {
    lab,
    startedAt,
    durationMs: performance.now() - started,
    host,
    clients: nClients,
    servers: nServers,
    pairs: results.length / runs,
    runs,
    floorSamples,
    port,
    intervalMs,
    maxInFlight,
    connectTimeoutMs,
    policyMode,
    backgroundBusy,
    results,
    ...summary,
    warmDrops,
    entriesInMap,
    failures: failureCounts(agentLog),
    goals: checkGoals(summary, results.length),
    rounds: roundSummaries(results, floorSamples, runs),
    notes,
  };
}

// ---- pieces -------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One new TCP connection from a client pod: connect, send a line, wait for its echo. Bounded by connect-timeout and -T. */
async function connectOnce(client: PodPlan, server: PodPlan, port: number, timeoutMs: number): Promise<ConnectAttempt> {
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

/** Waits until the agent logged the key's completion or failure, or until `deadline` (performance.now() ms). */
async function untilKeyDone(tail: AgentLogTail, done: Set<string>, key: string, deadline: number): Promise<void> {
  for (;;) {
    for (const l of await tail.read()) if (l.key && (l.event === 'auth-completed' || l.event === 'auth-failed')) done.add(l.key);
    const left = deadline - performance.now();
    if (done.has(key) || left <= 0) return;
    await tail.grown(Math.min(left, 50));
  }
}

/** Removes the pairs' entries from a node's auth map, so the next round's connections are new pairs again. */
async function clearPairEntries(lab: string, node: string, keys: string[]): Promise<void> {
  for (const k of keys) await deleteAuthEntry(lab, node, parseAuthKeyText(k));
}

/** Polls the agent's log (a readiness signal, with a deadline) until it holds an SVID for each identity. */
async function waitForSvids(lab: string, node: string, want: Set<number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const have = svidIdentities(await readAgentLog(lab, node));
    const missing = [...want].filter((id) => !have.has(id));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`agent on ${node} has no SVID for identities ${missing.join(', ')} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

// What the auth benchmark reports, and how its three clocks become numbers:
// per pair, the datapath's flow events (drop, forward) and the agent's log
// lines (signal, entry); over all pairs, distributions, which SYN got
// through, and the goals. Pure.
import type { PodPlan } from '../../core/plan.ts';
import type { PolicyMode } from '../../datapath/load.ts';
import { DROP_POLICY_AUTH_REQUIRED, OBS_TO_ENDPOINT, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED, type FlowEvent } from '../../abi/generated.ts';
import type { GoalCheck } from '../goal.ts';
import { distribution, type Distribution } from '../stats.ts';
import type { KeyAuth } from './agent-log.ts';

export const AUTH_GOALS = { p50Ms: 10, p99Ms: 50 } as const;

export type RetransmitClass = 'first' | 'second' | 'later' | 'never' | 'not-dropped';

/** A flow event and the node whose datapath emitted it. */
export type Flow = FlowEvent & { node: string };

/** One new connection of a pair, as the client saw it. */
export interface ConnectAttempt {
  ms: number;
  ok: boolean;
  error?: string;
}

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

export interface AuthSummary {
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
}

export interface AuthGoals {
  p50: GoalCheck;
  p99: GoalCheck;
  firstRetransmit: GoalCheck;
}

export interface BenchAuthReport extends AuthSummary {
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
  /** Drops seen during the warm connections (should be 0). */
  warmDrops: number;
  /** The pairs' keys found in n2's auth map at the end. */
  entriesInMap: number;
  failures: Record<string, number>;
  goals: AuthGoals;
  notes: string[];
}

/**
 * One pair's numbers from the flow events of both nodes and what the agent
 * logged for its key. The SYNs entering the server pod (n2, to-endpoint) are
 * dropped (reason 189) until the entry exists; the one that passes tells
 * which retransmit got through.
 */
export function pairResult(client: PodPlan, server: PodPlan, key: string, flows: readonly Flow[], auth: KeyAuth, attempt: ConnectAttempt): AuthPairResult {
  const byTime = (a: Flow, b: Flow) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0);
  const pair = flows.filter((f) => (f.saddr === client.ip && f.daddr === server.ip) || (f.saddr === server.ip && f.daddr === client.ip)).sort(byTime);
  const isSynIn = (f: Flow) => f.saddr === client.ip && f.node === server.node && f.obsPoint === OBS_TO_ENDPOINT && (f.tcpFlags & TCP_F_SYN) !== 0;
  const drops = pair.filter((f) => isSynIn(f) && f.verdict === VERDICT_DROPPED && f.dropReason === DROP_POLICY_AUTH_REQUIRED);
  const fwd = pair.find((f) => isSynIn(f) && f.verdict === VERDICT_FORWARDED);
  const otherDrops = pair.filter((f) => f.verdict === VERDICT_DROPPED && !drops.includes(f));
  const ms = (ns: bigint) => Number(ns) / 1e6;
  const dropAt = drops[0] ? ms(drops[0].timestamp) : undefined;
  let passedOn: RetransmitClass;
  if (!fwd) passedOn = 'never';
  else {
    const before = drops.filter((d) => d.timestamp < fwd.timestamp).length;
    passedOn = before === 0 ? 'not-dropped' : before === 1 ? 'first' : before === 2 ? 'second' : 'later';
  }
  const { requestedAt, completedAt } = auth;
  return {
    client: client.name,
    server: server.name,
    key,
    ...(dropAt !== undefined ? { dropAt } : {}),
    drops: drops.length,
    otherDrops: otherDrops.map((f) => `${f.node} ${f.saddr}:${f.sport}->${f.daddr}:${f.dport} flags ${f.tcpFlags} reason ${f.dropReason}`),
    dropToSignalMs: dropAt !== undefined && requestedAt !== undefined ? requestedAt - dropAt : undefined,
    signalToEntryMs: auth.totalMs,
    handshakeMs: auth.handshakeMs,
    dropToEntryMs: dropAt !== undefined && completedAt !== undefined ? completedAt - dropAt : undefined,
    synGapMs: dropAt !== undefined && fwd ? ms(fwd.timestamp) - dropAt : undefined,
    passedOn,
    clientMs: attempt.ms,
    clientOk: attempt.ok,
    failures: auth.failures,
    ...(attempt.error ? { error: attempt.error } : {}),
  };
}

/** Distributions over the pairs (each over the pairs that have the number), and the count per SYN that passed. */
export function summarizeAuth(results: readonly AuthPairResult[], warmMs: readonly number[]): AuthSummary {
  const dist = (values: (number | undefined)[]) => distribution(values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const passedOn: Record<RetransmitClass, number> = { first: 0, second: 0, later: 0, never: 0, 'not-dropped': 0 };
  for (const r of results) passedOn[r.passedOn]++;
  return {
    dropToEntry: dist(results.map((r) => r.dropToEntryMs)),
    signalToEntry: dist(results.map((r) => r.signalToEntryMs)),
    dropToSignal: dist(results.map((r) => r.dropToSignalMs)),
    handshake: dist(results.map((r) => r.handshakeMs)),
    afterHandshake: dist(results.map((r) => (r.signalToEntryMs !== undefined && r.handshakeMs !== undefined ? r.signalToEntryMs - r.handshakeMs : undefined))),
    synGap: dist(results.map((r) => r.synGapMs)),
    passedOn,
    ttfbNew: dist(results.filter((r) => r.clientOk).map((r) => r.clientMs)),
    ttfbWarm: dist([...warmMs]),
  };
}

/** p50 and p99 of drop → entry against AUTH_GOALS, and whether every dropped pair passed on its first retransmit. */
export function checkGoals(s: AuthSummary, pairs: number): AuthGoals {
  const { dropToEntry, signalToEntry, passedOn } = s;
  const measured = pairs - passedOn['not-dropped'];
  return {
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
  };
}

/** What the reader should know about the results: pairs without a time, drops of authenticated pairs, entries missing from the map. */
export function resultNotes(results: readonly AuthPairResult[], warmDrops: number, entriesInMap: number): string[] {
  const notes: string[] = [];
  const missing = results.filter((r) => r.dropToEntryMs === undefined).length;
  if (missing > 0) notes.push(`${missing} pair(s) have no drop→entry time (no drop event, or no auth-completed line)`);
  if (warmDrops > 0) notes.push(`${warmDrops} drop(s) during second connections of authenticated pairs`);
  if (entriesInMap !== results.length) notes.push(`${entriesInMap} of ${results.length} pairs' entries are in the auth map at the end`);
  return notes;
}

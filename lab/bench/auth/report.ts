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
import type { FloorSample } from './tls-floor.ts';

/**
 * Goals as ratios to the floor measured in the same run (the p50 of a bare
 * TLS 1.3 mutual handshake between the same nodes, tls-floor.ts): absolute
 * times do not travel between machines, ratios do.
 */
export const AUTH_GOALS = { p50Ratio: 1.5, p99Ratio: 3 } as const;

/** One floor handshake (tls-floor.ts's FloorSample) and the round it was made in. */
export type FloorRoundSample = FloorSample & { round: number };

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
  /** The round (`--runs`), from 0. */
  round?: number;
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
  /** Signal → the entry in the map (the agent's totalMs, less the writer's answer when it is known). */
  signalToEntryMs?: number;
  handshakeMs?: number;
  /** End to end: drop event → the entry in the map (writtenAt; without it, the auth-completed line). */
  dropToEntryMs?: number;
  /** The entry in the map → the agent has the writer's answer (auth-completed − writtenAt). */
  answerMs?: number;
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
  /** signalToEntry − handshake: the map write, scheduling. */
  afterHandshake?: Distribution;
  /** After the entry is in the map: its writer's answer reaching the agent (not part of drop → entry). */
  answer?: Distribution;
  synGap?: Distribution;
  passedOn: Record<RetransmitClass, number>;
  /** Client wall time of the new connections that succeeded. */
  ttfbNew?: Distribution;
  /** Client wall time of a second connection of an authenticated pair. */
  ttfbWarm?: Distribution;
  /** The floor: connect → the server's close after a bare mutual handshake (the exchange the agent makes). */
  floor?: Distribution;
  /** The floor's client side alone: connect → secureConnect (the server's chain verified). */
  floorClientHandshake?: Distribution;
  /** Floor handshakes that failed (not in the distributions). */
  floorFailures: number;
  /** Each figure's quantile over the floor's p50 (same run). */
  ratios: AuthRatios;
}

/** Figures as multiples of the floor's p50. */
export interface AuthRatios {
  dropToEntryP50?: number;
  dropToEntryP99?: number;
  handshakeP50?: number;
  handshakeP99?: number;
  signalToEntryP50?: number;
}

/** One round's headline figures (ms) and ratios. */
export interface AuthRoundSummary {
  round: number;
  pairs: number;
  dropToEntryP50?: number;
  dropToEntryP99?: number;
  handshakeP50?: number;
  floorP50?: number;
  p50Ratio?: number;
  p99Ratio?: number;
  firstRetransmit: number;
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
  /** Rounds run (`--runs`); `pairs` is per round, `results` holds every round's. */
  runs: number;
  rounds: AuthRoundSummary[];
  floorSamples: FloorRoundSample[];
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
  const { requestedAt, completedAt, writtenAt } = auth;
  // The entry exists (and the next retransmit passes) when the kernel has it, not when the agent hears so.
  const entryAt = writtenAt ?? completedAt;
  const answerMs = writtenAt !== undefined && completedAt !== undefined ? completedAt - writtenAt : undefined;
  return {
    client: client.name,
    server: server.name,
    key,
    ...(dropAt !== undefined ? { dropAt } : {}),
    drops: drops.length,
    otherDrops: otherDrops.map((f) => `${f.node} ${f.saddr}:${f.sport}->${f.daddr}:${f.dport} flags ${f.tcpFlags} reason ${f.dropReason}`),
    dropToSignalMs: dropAt !== undefined && requestedAt !== undefined ? requestedAt - dropAt : undefined,
    signalToEntryMs: auth.totalMs !== undefined && answerMs !== undefined ? auth.totalMs - answerMs : auth.totalMs,
    handshakeMs: auth.handshakeMs,
    dropToEntryMs: dropAt !== undefined && entryAt !== undefined ? entryAt - dropAt : undefined,
    ...(answerMs !== undefined ? { answerMs } : {}),
    synGapMs: dropAt !== undefined && fwd ? ms(fwd.timestamp) - dropAt : undefined,
    passedOn,
    clientMs: attempt.ms,
    clientOk: attempt.ok,
    failures: auth.failures,
    ...(attempt.error ? { error: attempt.error } : {}),
  };
}

/** Distributions over the pairs (each over the pairs that have the number), and the count per SYN that passed. */
export function summarizeAuth(results: readonly AuthPairResult[], warmMs: readonly number[], floorSamples: readonly FloorSample[] = []): AuthSummary {
  const dist = (values: (number | undefined)[]) => distribution(values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const okFloor = floorSamples.filter((f) => f.ok);
  const floor = dist(okFloor.map((f) => f.closeMs));
  const dropToEntry = dist(results.map((r) => r.dropToEntryMs));
  const handshake = dist(results.map((r) => r.handshakeMs));
  const signalToEntry = dist(results.map((r) => r.signalToEntryMs));
  const over = (v: number | undefined) => (v !== undefined && floor && floor.p50 > 0 ? v / floor.p50 : undefined);
  const passedOn: Record<RetransmitClass, number> = { first: 0, second: 0, later: 0, never: 0, 'not-dropped': 0 };
  for (const r of results) passedOn[r.passedOn]++;
  return {
    dropToEntry,
    signalToEntry,
    dropToSignal: dist(results.map((r) => r.dropToSignalMs)),
    handshake,
    afterHandshake: dist(results.map((r) => (r.signalToEntryMs !== undefined && r.handshakeMs !== undefined ? r.signalToEntryMs - r.handshakeMs : undefined))),
    answer: dist(results.map((r) => r.answerMs)),
    synGap: dist(results.map((r) => r.synGapMs)),
    passedOn,
    ttfbNew: dist(results.filter((r) => r.clientOk).map((r) => r.clientMs)),
    ttfbWarm: dist([...warmMs]),
    floor,
    floorClientHandshake: dist(okFloor.map((f) => f.secureMs)),
    floorFailures: floorSamples.length - okFloor.length,
    ratios: {
      dropToEntryP50: over(dropToEntry?.p50),
      dropToEntryP99: over(dropToEntry?.p99),
      handshakeP50: over(handshake?.p50),
      handshakeP99: over(handshake?.p99),
      signalToEntryP50: over(signalToEntry?.p50),
    },
  };
}

/** Each round's own p50/p99 and ratios to that round's floor. */
export function roundSummaries(results: readonly AuthPairResult[], floorSamples: readonly FloorRoundSample[], runs: number): AuthRoundSummary[] {
  const out: AuthRoundSummary[] = [];
  for (let round = 0; round < runs; round++) {
    const rs = results.filter((r) => (r.round ?? 0) === round);
    const s = summarizeAuth(rs, [], floorSamples.filter((f) => f.round === round));
    out.push({
      round, pairs: rs.length,
      dropToEntryP50: s.dropToEntry?.p50, dropToEntryP99: s.dropToEntry?.p99, handshakeP50: s.handshake?.p50, floorP50: s.floor?.p50,
      p50Ratio: s.ratios.dropToEntryP50, p99Ratio: s.ratios.dropToEntryP99, firstRetransmit: s.passedOn.first,
    });
  }
  return out;
}

/** p50 and p99 of drop → entry over the floor's p50, against AUTH_GOALS, and whether every dropped pair passed on its first retransmit. */
export function checkGoals(s: AuthSummary, pairs: number): AuthGoals {
  const { dropToEntry, floor, ratios, passedOn } = s;
  const measured = pairs - passedOn['not-dropped'];
  const ratioGoal = (q: 'p50' | 'p99', ratio: number | undefined, goal: number): GoalCheck => ({
    goal: `drop → auth entry ${q} ≤ ${goal}× the floor (a bare TLS 1.3 mutual handshake, p50)`,
    holds: ratio === undefined ? undefined : ratio <= goal,
    detail: ratio === undefined || !dropToEntry || !floor
      ? `not measured (${!floor ? 'no floor handshake' : 'no pair'})`
      : `${ratio.toFixed(2)}× (${dropToEntry[q].toFixed(2)} ms over ${floor.p50.toFixed(2)} ms), ` +
        (ratio <= goal ? `${((goal / ratio - 1) * 100).toFixed(0)} % to spare` : `${((ratio / goal - 1) * 100).toFixed(0)} % over`) + `, ${dropToEntry.n} pairs`,
  });
  return {
    p50: ratioGoal('p50', ratios.dropToEntryP50, AUTH_GOALS.p50Ratio),
    p99: ratioGoal('p99', ratios.dropToEntryP99, AUTH_GOALS.p99Ratio),
    firstRetransmit: {
      goal: 'every new pair passes on its FIRST SYN retransmit (~1 s), never the second (~3 s)',
      holds: measured > 0 ? passedOn.first === measured : undefined,
      detail: `${passedOn.first} first, ${passedOn.second} second, ${passedOn.later} later, ${passedOn.never} never, of ${measured} new pairs` +
        (passedOn['not-dropped'] ? ` (${passedOn['not-dropped']} not dropped at all)` : ''),
    },
  };
}

/** What the reader should know about the results: pairs without a time, drops of authenticated pairs, entries missing from the map. */
export function resultNotes(results: readonly AuthPairResult[], warmDrops: number, entriesInMap: number, pairs = results.length): string[] {
  const notes: string[] = [];
  const missing = results.filter((r) => r.dropToEntryMs === undefined).length;
  if (missing > 0) notes.push(`${missing} pair(s) have no drop→entry time (no drop event, or no auth-completed line)`);
  if (warmDrops > 0) notes.push(`${warmDrops} drop(s) during second connections of authenticated pairs`);
  if (entriesInMap !== pairs) notes.push(`${entriesInMap} of ${pairs} pairs' entries are in the auth map at the end`);
  return notes;
}

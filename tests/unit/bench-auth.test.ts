// The auth benchmark's pure parts: the agent's log (lab/bench/auth/agent-log.ts,
// on real lines of an agent's log), one pair's numbers from flow events and
// that log, the distributions and goals (lab/bench/auth/report.ts), and the
// generated lab (lab/bench/auth/topology.ts). No root.
import t from 'tap';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodPlan } from '../../lab/core/plan.ts';
import { validateTopology } from '../../lab/topology/validate.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import {
  DROP_POLICY, DROP_POLICY_AUTH_REQUIRED, IPPROTO_TCP, OBS_FROM_ENDPOINT, OBS_TO_ENDPOINT, TCP_F_ACK, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED,
} from '../../lab/abi/generated.ts';
import { AgentLogTail, failureCounts, keyAuth, lineTime, parseAgentLog, parseAuthKeyText, svidIdentities } from '../../lab/bench/auth/agent-log.ts';
import { checkGoals, pairResult, resultNotes, roundSummaries, summarizeAuth, type AuthPairResult, type Flow, type FloorRoundSample } from '../../lab/bench/auth/report.ts';
import { benchAuthTopology, pairOrder } from '../../lab/bench/auth/topology.ts';

const LOG = parseAgentLog(readFileSync(join(import.meta.dirname, '../fixtures/bench/agent-n2-log.txt'), 'utf8'));

t.test('agent log: JSON lines only; READY and a line cut mid-write are skipped', async (t) => {
  t.equal(LOG.length, 14);
  t.equal(LOG[0]!.event, 'started');
  t.ok(LOG.every((l) => typeof l.time === 'string'));
});

t.test('agent log: SVIDs held, failures by reason', async (t) => {
  t.same([...svidIdentities(LOG)], [266, 267, 268]);
  t.same(failureCounts(LOG), { timeout: 1, 'no-local-svid': 1 });
  t.same(failureCounts([]), {});
});

t.test('agent log: one key, from signal to entry', async (t) => {
  t.same(keyAuth(LOG, '266:257:1:1'), {
    requestedAt: Date.parse('2026-12-02T03:15:32.506Z'),
    completedAt: Date.parse('2026-12-02T03:15:32.579Z'),
    writtenAt: undefined,
    totalMs: 72.28,
    handshakeMs: 66.55,
    failures: [],
  });
  const retried = keyAuth(LOG, '269:259:1:1');
  t.same(retried.failures, ['timeout'], 'a failed attempt before the one that completed');
  t.equal(retried.totalMs, 23.68);
  t.same(keyAuth(LOG, '999:1:1:1'), { requestedAt: undefined, completedAt: undefined, writtenAt: undefined, totalMs: undefined, handshakeMs: undefined, failures: [] });
});

// ---- one pair ----------------------------------------------------------------

const client = { name: 'c1', node: 'n1', ip: '10.244.0.2' } as PodPlan;
const server = { name: 's1', node: 'n2', ip: '10.244.1.2' } as PodPlan;
const T0 = Date.parse('2026-12-02T03:15:32.500Z'); // the first drop, ms
const ns = (ms: number) => BigInt(Math.round(ms * 1e6));

function flow(ms: number, f: Partial<Flow>): Flow {
  return {
    timestamp: ns(ms), srcIdentity: 257, dstIdentity: 266, saddr: client.ip, daddr: server.ip, sport: 40_000, dport: 8080, protocol: IPPROTO_TCP,
    tcpFlags: TCP_F_SYN, verdict: VERDICT_FORWARDED, dropReason: 0, obsPoint: OBS_TO_ENDPOINT, authType: 1, remoteNodeId: 1, ifindex: 7, node: 'n2',
    ...f,
  } as Flow;
}
const synOut = (ms: number) => flow(ms, { node: 'n1', obsPoint: OBS_FROM_ENDPOINT });
const synDropped = (ms: number) => flow(ms, { verdict: VERDICT_DROPPED, dropReason: DROP_POLICY_AUTH_REQUIRED });
const synPassed = (ms: number) => flow(ms, {});
const synAck = (ms: number) => flow(ms, { saddr: server.ip, daddr: client.ip, sport: 8080, dport: 40_000, tcpFlags: TCP_F_SYN | TCP_F_ACK, node: 'n1' });
const ok = { ms: 1016, ok: true };
const KEY = '266:257:1:1';

t.test('pair: dropped once, through on the first retransmit', async (t) => {
  // Out of order on purpose: the two nodes' streams interleave.
  const flows = [synPassed(T0 + 1010), synOut(T0 - 0.1), synDropped(T0), synAck(T0 + 1010.2), synOut(T0 + 1009.9)];
  const r = pairResult(client, server, KEY, flows, keyAuth(LOG, KEY), ok);
  t.equal(r.passedOn, 'first');
  t.equal(r.drops, 1);
  t.same(r.otherDrops, []);
  t.equal(r.dropAt, T0);
  t.equal(r.dropToSignalMs, 6, 'drop event → auth-requested line');
  t.equal(r.dropToEntryMs, 79, 'drop event → auth-completed line');
  t.equal(r.signalToEntryMs, 72.28);
  t.equal(r.handshakeMs, 66.55);
  t.ok(Math.abs(r.synGapMs! - 1010) < 1e-3, 'first drop → forwarded SYN');
  t.equal(r.clientOk, true);
  t.notOk('error' in r);
});

t.test('pair: the entry counts from when the kernel had it (writtenAt), not from the agent hearing so', async (t) => {
  const at = T0 + 79; // the auth-completed line
  const log = [
    { event: 'auth-requested', key: KEY, at: T0 + 6 },
    { event: 'auth-completed', key: KEY, at, writtenAt: at - 0.4, totalMs: 72.28, handshakeMs: 66.55 },
  ];
  const auth = keyAuth(log, KEY);
  t.equal(auth.writtenAt, at - 0.4);
  const r = pairResult(client, server, KEY, [synDropped(T0), synPassed(T0 + 1010)], auth, ok);
  t.ok(Math.abs(r.dropToEntryMs! - 78.6) < 1e-3, 'drop event → writtenAt');
  t.ok(Math.abs(r.answerMs! - 0.4) < 1e-3, 'the writer\'s answer: auth-completed − writtenAt');
  t.ok(Math.abs(r.signalToEntryMs! - 71.88) < 1e-3, 'the agent\'s totalMs less the answer');
  const s = summarizeAuth([r], []);
  t.ok(Math.abs(s.answer!.p50 - 0.4) < 1e-3, 'and its distribution');
  const old = pairResult(client, server, KEY, [synDropped(T0), synPassed(T0 + 1010)], keyAuth(LOG, KEY), ok);
  t.equal(old.dropToEntryMs, 79, 'without writtenAt (bpftool as the writer): the auth-completed line');
  t.notOk('answerMs' in old);
});

t.test('pair: which SYN passed', async (t) => {
  const auth = keyAuth(LOG, KEY);
  t.equal(pairResult(client, server, KEY, [synDropped(T0), synDropped(T0 + 1000), synPassed(T0 + 3000)], auth, ok).passedOn, 'second');
  t.equal(pairResult(client, server, KEY, [synDropped(T0), synDropped(T0 + 1000), synDropped(T0 + 3000), synPassed(T0 + 7000)], auth, ok).passedOn, 'later');
  t.equal(pairResult(client, server, KEY, [synPassed(T0)], auth, ok).passedOn, 'not-dropped');
  const never = pairResult(client, server, KEY, [synDropped(T0), synDropped(T0 + 1000)], keyAuth(LOG, 'none'), { ms: 5003, ok: false, error: 'Connection timed out' });
  t.equal(never.passedOn, 'never');
  t.equal(never.synGapMs, undefined);
  t.equal(never.dropToEntryMs, undefined, 'no auth-completed line');
  t.equal(never.error, 'Connection timed out');
});

t.test("pair: other drops are reported, other pairs' flows ignored", async (t) => {
  const denied = flow(T0 + 2, { node: 'n1', obsPoint: OBS_FROM_ENDPOINT, verdict: VERDICT_DROPPED, dropReason: DROP_POLICY, tcpFlags: TCP_F_ACK });
  const otherPair = flow(T0 + 1, { saddr: '10.244.0.3', verdict: VERDICT_DROPPED, dropReason: DROP_POLICY_AUTH_REQUIRED });
  const r = pairResult(client, server, KEY, [synDropped(T0), denied, otherPair, synPassed(T0 + 1010)], keyAuth(LOG, KEY), ok);
  t.equal(r.drops, 1);
  t.same(r.otherDrops, [`n1 10.244.0.2:40000->10.244.1.2:8080 flags ${TCP_F_ACK} reason ${DROP_POLICY}`]);
});

// ---- all pairs -----------------------------------------------------------------

function result(over: Partial<AuthPairResult>): AuthPairResult {
  return {
    client: 'c1', server: 's1', key: KEY, drops: 1, otherDrops: [], passedOn: 'first', clientMs: 1016, clientOk: true, failures: [],
    dropAt: T0, dropToSignalMs: 1, signalToEntryMs: 4, handshakeMs: 3, dropToEntryMs: 5, synGapMs: 1010, ...over,
  };
}

t.test('distributions over the pairs that have each number', async (t) => {
  const results = [
    ...Array.from({ length: 98 }, (_, i) => result({ dropToEntryMs: i + 1 })),
    result({ dropToEntryMs: 99, passedOn: 'second', signalToEntryMs: undefined, handshakeMs: undefined }),
    result({ dropToEntryMs: undefined, passedOn: 'not-dropped', dropAt: undefined, clientOk: false }),
  ];
  const s = summarizeAuth(results, [2.1, 1.9]);
  t.same(s.dropToEntry, { n: 99, min: 1, p50: 50, p90: 90, p99: 99, max: 99 }, 'ranks round up: p99 of 99 is the largest');
  t.equal(s.signalToEntry?.n, 99);
  t.same(s.afterHandshake, { n: 99, min: 1, p50: 1, p90: 1, p99: 1, max: 1 }, 'signal → entry − handshake');
  t.same(s.passedOn, { first: 98, second: 1, later: 0, never: 0, 'not-dropped': 1 });
  t.equal(s.ttfbNew?.n, 99, 'only clients that succeeded');
  t.same(s.ttfbWarm, { n: 2, min: 1.9, p50: 1.9, p90: 2.1, p99: 2.1, max: 2.1 });
  t.equal(summarizeAuth([], []).dropToEntry, undefined);

  t.equal(s.floor, undefined, 'no floor handshakes, no floor');
  t.same(s.ratios, {}, 'and no ratios');

  const goals = checkGoals(s, results.length);
  t.same([goals.p50.holds, goals.p99.holds], [undefined, undefined], 'the ratio goals are not measured without a floor');
  t.equal(goals.p50.detail, 'not measured (no floor handshake)');
  t.equal(goals.firstRetransmit.holds, false, 'one pair needed the second retransmit');
  t.equal(goals.firstRetransmit.detail, '98 first, 1 second, 0 later, 0 never, of 99 new pairs (1 not dropped at all)');
});

/** Floor handshakes whose close times are `closeMs`. */
const floorOf = (closeMs: number[], round = 0): FloorRoundSample[] => closeMs.map((c) => ({ round, connectMs: 0.2, secureMs: c * 0.6, closeMs: c, ok: true }));

t.test('ratios to the floor: each quantile over the floor p50; failed floor handshakes left out', async (t) => {
  const results = Array.from({ length: 100 }, (_, i) => result({ dropToEntryMs: i < 98 ? 6 : 20, handshakeMs: 5, signalToEntryMs: 5.5 }));
  const floor = [...floorOf([4, 4, 4, 5, 3]), { round: 0, connectMs: NaN, secureMs: NaN, closeMs: 5000, ok: false, error: 'timeout' }];
  const s = summarizeAuth(results, [], floor);
  t.same(s.floor, { n: 5, min: 3, p50: 4, p90: 5, p99: 5, max: 5 });
  t.equal(s.floorClientHandshake?.p50, 4 * 0.6);
  t.equal(s.floorFailures, 1);
  t.same(s.ratios, { dropToEntryP50: 1.5, dropToEntryP99: 5, handshakeP50: 1.25, handshakeP99: 1.25, signalToEntryP50: 5.5 / 4 });
  const goals = checkGoals(s, results.length);
  t.equal(goals.p50.holds, true, '1.5× is within ≤ 1.5×');
  t.equal(goals.p50.detail, '1.50× (6.00 ms over 4.00 ms), 0 % to spare, 100 pairs');
  t.equal(goals.p99.holds, false, 'p99 20 ms is 5× the floor');
  t.equal(goals.p99.detail, '5.00× (20.00 ms over 4.00 ms), 67 % over, 100 pairs');
  t.match(goals.p99.goal, /p99 ≤ 3× the floor/);
});

t.test('goals hold when every pair is fast and first; NOT MEASURED without drops', async (t) => {
  const fast = Array.from({ length: 100 }, () => result({}));
  const goals = checkGoals(summarizeAuth(fast, [], floorOf([4, 4, 4])), fast.length);
  t.same([goals.p50.holds, goals.p99.holds, goals.firstRetransmit.holds], [true, true, true]);
  const none = [result({ passedOn: 'not-dropped', dropToEntryMs: undefined })];
  const unmeasured = checkGoals(summarizeAuth(none, [], floorOf([4])), 1);
  t.same([unmeasured.p50.holds, unmeasured.p99.holds, unmeasured.firstRetransmit.holds], [undefined, undefined, undefined]);
  t.equal(unmeasured.p50.detail, 'not measured (no pair)');
});

t.test('rounds: each against its own floor', async (t) => {
  const results = [
    ...Array.from({ length: 4 }, () => result({ round: 0, dropToEntryMs: 8 })),
    ...Array.from({ length: 4 }, () => result({ round: 1, dropToEntryMs: 6, passedOn: 'second' })),
  ];
  const rounds = roundSummaries(results, [...floorOf([4, 4], 0), ...floorOf([3, 3], 1)], 2);
  t.same(rounds.map((r) => [r.round, r.pairs, r.dropToEntryP50, r.floorP50, r.p50Ratio, r.firstRetransmit]), [[0, 4, 8, 4, 2, 4], [1, 4, 6, 3, 2, 0]]);
});

t.test('agent log times: `at` (µs) before `time` (ms); a key from its logged text', async (t) => {
  t.equal(lineTime({ time: '2026-01-01T00:00:00.001Z', at: 1767225600001.25 }), 1767225600001.25);
  t.equal(lineTime({ time: '2026-01-01T00:00:00.001Z' }), Date.parse('2026-01-01T00:00:00.001Z'));
  t.equal(lineTime(undefined), undefined);
  t.same(parseAuthKeyText('266:257:1:1'), { localSecLabel: 266, remoteSecLabel: 257, remoteNodeId: 1, authType: 1 });
  t.throws(() => parseAuthKeyText('266:257:1'), /not an auth key/);
  t.throws(() => parseAuthKeyText('a:b:c:d'), /not an auth key/);
});

t.test('agent log by round: only lines from `since` on', async (t) => {
  const key = '1:2:1:1';
  const log = [
    { event: 'auth-requested', key, at: 100 }, { event: 'auth-completed', key, at: 105, totalMs: 5, handshakeMs: 4 },
    { event: 'auth-requested', key, at: 2000 }, { event: 'auth-failed', key, at: 2003, reason: 'timeout' },
    { event: 'auth-requested', key, at: 2010 }, { event: 'auth-completed', key, at: 2016, totalMs: 6, handshakeMs: 5 },
  ];
  t.same(keyAuth(log, key), { requestedAt: 100, completedAt: 105, writtenAt: undefined, totalMs: 5, handshakeMs: 4, failures: ['timeout'] });
  t.same(keyAuth(log, key, 1000), { requestedAt: 2000, completedAt: 2016, writtenAt: undefined, totalMs: 6, handshakeMs: 5, failures: ['timeout'] });
});

t.test('notes on missing times, warm drops, entries not in the map', async (t) => {
  const results = [result({}), result({ dropToEntryMs: undefined })];
  t.same(resultNotes(results, 0, 2), ['1 pair(s) have no drop→entry time (no drop event, or no auth-completed line)']);
  t.same(resultNotes([result({})], 3, 0), ['3 drop(s) during second connections of authenticated pairs', "0 of 1 pairs' entries are in the auth map at the end"]);
});

// ---- the generated lab ----------------------------------------------------------

t.test('the generated lab: one identity per pod, every server requires auth', async (t) => {
  const topo = benchAuthTopology(3, 2, 8080, 'bench-auth');
  t.same(validateTopology(topo), []);
  t.same(topo.nodes.map((n) => n.pods.map((p) => p.name)), [['c1', 'c2', 'c3'], ['s1', 's2']]);
  const ids = allocateIdentities(topo);
  t.equal(new Set(['c1', 'c2', 'c3', 's1', 's2'].map((p) => ids.byPod.get(p))).size, 5, 'distinct identities');
  t.equal(topo.policies[0]!.ingress![0]!.authentication?.mode, 'required');
});

t.test('pair order: every pair once, consecutive attempts change both ends', async (t) => {
  const order = pairOrder(3, 3);
  t.equal(order.length, 9);
  t.equal(new Set(order.map(([c, s]) => `${c},${s}`)).size, 9);
  for (let i = 1; i < order.length; i++) {
    t.not(order[i]![0], order[i - 1]![0], `attempt ${i}: another client`);
    t.not(order[i]![1], order[i - 1]![1], `attempt ${i}: another server`);
  }
  t.same(pairOrder(2, 3), [[0, 0], [1, 1], [0, 1], [1, 2], [0, 2], [1, 0]]);
});

t.test('agent log tail: only what was appended since, whole lines, from 0 after a truncation', async (t) => {
  const dir = t.testdir({ 'agent.log': '{"event":"old"}\n' });
  const file = join(dir, 'agent.log');
  const tail = await AgentLogTail.openFile(file);
  t.same(await tail.read(), [], 'what was there before is not read');
  appendFileSync(file, '{"event":"a","key":"1:2:1:1"}\n{"event":"b"');
  t.same((await tail.read()).map((l) => l.event), ['a'], 'a partial line waits');
  appendFileSync(file, ',"key":"x"}\nREADY\n');
  t.same((await tail.read()).map((l) => [l.event, l.key]), [['b', 'x']], 'and is read once whole; non-JSON lines skipped');
  writeFileSync(file, '{"event":"c"}\n');
  t.same((await tail.read()).map((l) => l.event), ['c'], 'a truncated (capped) log is read from its start');
  t.same(await (await AgentLogTail.openFile(join(dir, 'none.log'))).read(), [], 'no file yet: nothing');
});

t.test('agent log tail: grown() wakes on an append, and without one only at its bound', async (t) => {
  const dir = t.testdir({ 'agent.log': '' });
  const file = join(dir, 'agent.log');
  const tail = await AgentLogTail.openFile(file);
  t.teardown(() => tail.close());
  let woke = false;
  // A bound far beyond any machine's inotify delay: only the append can end the wait in time.
  const waited = tail.grown(60_000).then(() => (woke = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(woke, 'no change yet: still waiting');
  appendFileSync(file, '{"event":"auth-completed","key":"1:2:1:1"}\n');
  await waited;
  t.same((await tail.read()).map((l) => l.event), ['auth-completed'], 'woken by the append, which is read');
  await tail.grown(30);
  t.pass('nothing more appended: the bound ends the wait');
  const none = await AgentLogTail.openFile(join(dir, 'none.log'));
  await none.grown(5);
  none.close();
  t.pass('a file that does not exist: grown() still returns at its bound');
});

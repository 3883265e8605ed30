// The modes benchmark's pure parts (lab/bench/modes/): its labs' topologies,
// the probe's timed connections, the carrier counters, the ratios to the
// floor and the text, on output the tools really printed
// (tests/fixtures/bench/: the probe app in a namespace, `ip -j -s link`, and the
// report of a real `mtless bench modes` run). No root.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeAttempts } from '../../lab/apps/pod-apps.ts';
import { formatBenchModes } from '../../lab/bench/modes/format.ts';
import {
  carrierMinimum, carrierProblem, linkTxBytes, roundOrder, summarizeMode, timedConnections, wireConnections, wireguardCosts, withWireTimes,
  type BenchModesReport, type ModeRun, type TimedConnection,
} from '../../lab/bench/modes/report.ts';
import { ECHO_PORT, MODE_SPECS, modeTopology, type BenchMode } from '../../lab/bench/modes/topology.ts';
import { IPERF_PORT, SOCKPERF_PORT } from '../../lab/bench/pod-server.ts';
import { AUTH_TYPE_SPIRE } from '../../lab/abi/generated.ts';
import { compilePolicies } from '../../lab/policy/compile.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { validateTopology } from '../../lab/topology/validate.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/bench', name), 'utf8');

const NATIVE = { routing: 'native' as const, encryption: { mode: 'none' as const, strict: false } };

t.test('the labs: the same pods and ports in every mode, auth only where Cilium authenticates', async (t) => {
  t.same(MODE_SPECS.map((s) => s.mode), ['floor', 'native', 'native-wireguard', 'tunnel', 'tunnel-wireguard', 'per-connection-mtls'], 'the floor first, then the matrix modes');
  for (const spec of MODE_SPECS) {
    const topo = modeTopology(spec, NATIVE, 3, `bench-modes-${spec.suffix}`);
    t.same(validateTopology(topo), [], `${spec.mode}: a valid topology`);
    t.same(topo.nodes.map((n) => n.pods.map((p) => p.name)), [['client', 'pair-1', 'pair-2', 'pair-3'], ['server']]);
    const rule = topo.policies[0]!.ingress![0]!;
    t.same(rule.toPorts[0]!.ports.map((p) => p.port), [ECHO_PORT, SOCKPERF_PORT, IPERF_PORT]);
    t.equal(rule.authentication?.mode, spec.auth ? 'required' : undefined, `${spec.mode}: auth ${spec.auth ? 'required' : 'off'}`);
  }
  t.same(MODE_SPECS.filter((s) => s.auth).map((s) => s.mode), ['native', 'native-wireguard', 'tunnel', 'tunnel-wireguard']);
  t.same(MODE_SPECS.filter((s) => s.mesh).map((s) => s.mode), ['per-connection-mtls']);
});

t.test('every pair pod is a new identity that needs auth to the server', async (t) => {
  const spec = MODE_SPECS.find((s) => s.mode === 'native')!;
  const topo = modeTopology(spec, NATIVE, 3, 'bench-modes-nat');
  const ids = allocateIdentities(topo);
  const of = (pod: string) => ids.byPod.get(pod);
  const clients = ['client', 'pair-1', 'pair-2', 'pair-3'].map(of);
  t.equal(new Set(clients).size, 4, 'four identities on n1');
  const entries = compilePolicies(topo, ids).get('server')!.entries;
  for (const id of clients) {
    const e = entries.find((x) => x.direction === 'ingress' && x.peerIdentity === id && x.port === ECHO_PORT);
    t.ok(e, `an entry for identity ${id} on ${ECHO_PORT}`);
    t.equal(e?.authType, AUTH_TYPE_SPIRE, 'auth required');
  }
  const floor = modeTopology(MODE_SPECS[0]!, NATIVE, 3, 'bench-modes-floor');
  const floorEntries = compilePolicies(floor, allocateIdentities(floor)).get('server')!.entries;
  t.ok(floorEntries.filter((x) => x.port === ECHO_PORT).every((x) => x.authType === 0), 'the floor: the same entries without auth');
});

t.test('routing and encryption come from the shipped topology', async (t) => {
  const spec = MODE_SPECS.find((s) => s.mode === 'tunnel-wireguard')!;
  const shipped = { routing: 'tunnel' as const, encryption: { mode: 'wireguard' as const, strict: true } };
  const topo = modeTopology(spec, shipped, 1, 'x');
  t.equal(topo.routing, 'tunnel');
  t.same(topo.encryption, { mode: 'wireguard', strict: true });
  shipped.encryption.strict = false;
  t.equal(topo.encryption.strict, true, 'a copy, not the shipped object');
});

t.test('timed connections from the probe app\'s real output', async (t) => {
  const ok = timedConnections('floor', 'pair-1', probeAttempts(fixture('probe-sequential.txt')));
  t.same(ok.problems, []);
  t.same(ok.connections, [
    { mode: 'floor', pod: 'pair-1', connection: 1, ok: true, appMs: 27.38 },
    { mode: 'floor', pod: 'pair-1', connection: 2, ok: true, appMs: 1.93 },
  ]);
  const refused = timedConnections('native', 'pair-2', probeAttempts(fixture('probe-refused.txt')));
  t.same(refused.connections.map((c) => [c.connection, c.ok]), [[1, false], [2, false]]);
  t.same(refused.problems, ['pair-2 connection 1 failed: connect ECONNREFUSED 127.0.0.1:8081', 'pair-2 connection 2 failed: connect ECONNREFUSED 127.0.0.1:8081']);
  const one = timedConnections('tunnel', 'pair-3', probeAttempts(fixture('probe-sequential.txt')).slice(1));
  t.same(one.problems, ['pair-3: 1 connection(s), expected 2']);
  t.equal(one.connections[0]!.connection, 1, 'numbered by order, not by the attempt number');
  const shuffled = timedConnections('tunnel', 'pair-1', probeAttempts(fixture('probe-sequential.txt')).reverse());
  t.same(shuffled.connections.map((c) => c.appMs), [27.38, 1.93], 'sorted by attempt');
});

t.test('time to first byte on the wire, from a real capture of a new pair\'s veth (native: the first SYN dropped)', async (t) => {
  const rows = JSON.parse(fixture('modes-wire-native-pair.json')) as Record<string, string>[];
  const wire = wireConnections(rows, '10.244.0.3', '10.244.1.2');
  t.equal(wire.length, 2, 'two connections');
  t.same(wire.map((w) => [w.sport, w.syns]), [['38728', 2], [wire[1]!.sport, 1]], 'the first connection sent its SYN twice, the second once');
  const ttfb = wire.map((w) => w.firstByteMs! - w.synMs);
  t.ok(ttfb[0]! > 1000 && ttfb[0]! < 1100, `first: one retransmission timeout (${ttfb[0]!.toFixed(1)} ms)`);
  t.ok(ttfb[1]! < 100, `second: no drop (${ttfb[1]!.toFixed(1)} ms)`);
  t.same(wireConnections(rows, '10.244.0.9', '10.244.1.2'), [], 'another pod: nothing of it');
  const timed = timedConnections('native', 'pair-1', [{ attempt: 0, ok: true, ms: 1036.7 }, { attempt: 1, ok: true, ms: 20.3 }]).connections;
  const w = withWireTimes(timed, wire);
  t.same(w.problems, []);
  t.same(w.connections.map((c) => [c.connection, c.ms, c.syns, c.appMs]), [[1, Math.round(ttfb[0]! * 1000) / 1000, 2, 1036.7], [2, Math.round(ttfb[1]! * 1000) / 1000, 1, 20.3]]);
  const missing = withWireTimes(timed, wire.slice(0, 1));
  t.same(missing.problems, ['pair-1 connection 2: no SYN on its veth']);
  t.equal(missing.connections[1]!.ms, undefined, 'no wire time, so no sample');
  const noPayload = withWireTimes(timed, [wire[0]!, { ...wire[1]!, firstByteMs: undefined }]);
  t.same(noPayload.problems, ['pair-1 connection 2: no payload from the server on its veth']);
  t.same(withWireTimes(timed.slice(0, 1), wire).problems, ['pair-1: 2 connections on its veth, 1 timed']);
});

t.test('carrier: tx bytes from ip -j -s link; a run that did not take its path is a problem', async (t) => {
  t.equal(linkTxBytes(fixture('ip-link-stats.json')), 1324);
  t.equal(linkTxBytes('[]'), undefined);
  t.equal(linkTxBytes('not json'), undefined);
  t.equal(linkTxBytes('[{"ifname":"lo"}]'), undefined, 'ip without -s');
  const run = (mode: BenchMode, count: number): ModeRun => ({
    round: 2, mode, rttP50Us: 30, rttAvgUs: 31, rttP99Us: 60, roundTrips: 1000, throughputGbps: 3, retransmits: 0,
    carrier: { what: 'n1 wgX tx bytes', count }, backgroundBusy: 0, hostBusy: 0.5,
  });
  t.equal(carrierProblem(run('native-wireguard', 20_000_000)), undefined);
  t.equal(carrierProblem(run('native-wireguard', 148)), 'round 2: n1 wgX tx bytes 148, expected ≥ 1048576', 'handshakes and keepalives only');
  t.equal(carrierMinimum('per-connection-mtls'), 2, 'one connection per tool through the proxies');
  t.equal(carrierProblem(run('per-connection-mtls', 3)), undefined);
  t.match(carrierProblem(run('per-connection-mtls', 0)), /0, expected ≥ 2/);
});

t.test('rounds rotate the labs', async (t) => {
  const labs = ['a', 'b', 'c'];
  t.same([1, 2, 3, 4].map((r) => roundOrder(labs, r).join('')), ['abc', 'bca', 'cab', 'abc']);
  t.same(roundOrder([], 3), []);
});

const runOf = (mode: BenchMode, round: number, rtt: number, gbps: number): ModeRun => ({
  round, mode, rttP50Us: rtt, rttAvgUs: rtt, rttP99Us: rtt * 2, roundTrips: 1000, throughputGbps: gbps, retransmits: 0,
  carrier: { what: 'x', count: 1 << 24 }, backgroundBusy: 0, hostBusy: 0,
});
const conn = (mode: BenchMode, pod: string, connection: 1 | 2, ms: number, ok = true): TimedConnection => ({ mode, pod, connection, ok, ms, appMs: ms + 20 });

t.test('ratios to the floor: per round for RR and throughput, of the medians for the time to first byte', async (t) => {
  const runs = [
    runOf('floor', 1, 20, 10), runOf('native', 1, 22, 9),
    runOf('floor', 2, 40, 5), runOf('native', 2, 40, 5),
    runOf('floor', 3, 30, 8), // the native run of round 3 failed: no pair
  ];
  const connections = [
    conn('floor', 'pair-1', 1, 4), conn('floor', 'pair-1', 2, 2), conn('floor', 'pair-2', 1, 6), conn('floor', 'pair-2', 2, 2),
    conn('native', 'pair-1', 1, 1010), conn('native', 'pair-1', 2, 3), conn('native', 'pair-2', 1, 1020), conn('native', 'pair-2', 2, 99, false),
  ];
  const m = summarizeMode('native', 'bench-modes-nat', runs, connections, ['round 3: sockperf failed']);
  t.same(m.rttP50Us, { min: 22, median: 31, max: 40, n: 2 });
  t.same(m.vsFloor.rttP50?.ratio, { min: 1, median: 1.05, max: 1.1, n: 2 }, 'rounds 1 and 2 only');
  t.same([m.vsFloor.rttP50?.better, m.vsFloor.throughput?.better, m.vsFloor.ttfbNewPair?.better], ['lower', 'higher', 'lower'], 'which way is better, beside each ratio');
  t.equal(m.vsFloor.rttP50?.extra, 31 - 30, 'median of the mode minus median of the floor over the same rounds');
  t.same(m.vsFloor.throughput?.ratio, { min: 0.9, median: 0.95, max: 1, n: 2 });
  t.same(m.ttfbNewPairMs, { min: 1010, median: 1015, max: 1020, n: 2 });
  t.equal(m.vsFloor.ttfbNewPair?.ratio.median, 1015 / 5);
  t.equal(m.vsFloor.ttfbNewPair?.extra, 1010);
  t.same(m.ttfbSamePairMs, { min: 3, median: 3, max: 3, n: 1 }, 'the failed connection is not a time');
  t.equal(m.vsFloor.ttfbSamePair?.ratio.median, 1.5);
  t.same(m.problems, ['round 3: sockperf failed']);
  const floor = summarizeMode('floor', 'bench-modes-floor', runs, connections);
  t.same(floor.vsFloor, {}, 'the floor has no ratio to itself');
  t.same(floor.rttP50Us, { min: 20, median: 30, max: 40, n: 3 });
  const none = summarizeMode('tunnel', 'bench-modes-tun', runs, connections);
  t.same([none.rttP50Us, none.ttfbNewPairMs, none.vsFloor], [undefined, undefined, {}], 'a mode with no samples has no figures');
  const bad = summarizeMode('native', 'l', [runOf('floor', 1, 20, 10), { ...runOf('native', 1, 22, 9), carrier: { what: 'n1 eth0 tx bytes', count: 10 } }], []);
  t.same(bad.problems, ['round 1: n1 eth0 tx bytes 10, expected ≥ 1048576']);
});

t.test('what wireguard-go costs: each WireGuard mode against its routing without it, round by round', async (t) => {
  const runs = [
    runOf('native', 1, 25, 4), runOf('native-wireguard', 1, 100, 0.2),
    runOf('native', 2, 20, 5), runOf('native-wireguard', 2, 120, 0.1),
    runOf('tunnel', 1, 30, 1),
  ];
  const w = wireguardCosts(runs);
  t.equal(w.length, 1, 'no tunnel + WireGuard runs: no tunnel row');
  t.same(w[0]!.with, 'native-wireguard');
  t.equal(w[0]!.name, 'native-wireguard / native');
  t.same(w[0]!.rttP50Ratio, { min: 4, median: 5, max: 6, n: 2 });
  t.same(w[0]!.throughputRatio, { min: 0.02, median: 0.035, max: 0.05, n: 2 });
});

t.test('a real run: the summaries follow from its samples, and the text is the one it printed', async (t) => {
  const report = JSON.parse(fixture('modes-report.json')) as BenchModesReport;
  t.equal(report.bench, 'modes', 'named for bench all');
  for (const m of report.modes) {
    const again = summarizeMode(m.mode, m.lab, report.runs, report.connections, m.problems.filter((p) => !/expected ≥/.test(p)));
    t.same(again, m, `${m.mode}: recomputed from the runs and connections`);
  }
  t.same(wireguardCosts(report.runs), report.wireguard);
  t.equal(formatBenchModes(report), fixture('modes-report.txt').replace(/\n$/, ''));
});

t.test('bad options are refused before any lab is made', async (t) => {
  const { benchModes, modeLabName } = await import('../../lab/bench/modes/run.ts');
  t.same(MODE_SPECS.map((s) => modeLabName('bench-modes', s)), ['bench-modes-floor', 'bench-modes-nat', 'bench-modes-nwg', 'bench-modes-tun', 'bench-modes-twg', 'bench-modes-mtls']);
  await t.rejects(benchModes({ name: 'a-prefix-of-24-character' }), /too long: the labs' names collide/);
  await t.rejects(benchModes({ rounds: 0 }), /rounds must be an integer in 1\.\.20/);
  await t.rejects(benchModes({ seconds: 31 }), /seconds must be an integer in 1\.\.30/);
  await t.rejects(benchModes({ pairs: 1.5 }), /pairs must be an integer in 1\.\.10/);
});

t.test('the entry bench all runs: named modes, its labs under --name PREFIX as the command names them', async (t) => {
  const { MODES_BENCH } = await import('../../lab/bench/modes/entry.ts');
  t.equal(MODES_BENCH.what, 'modes');
  t.equal(MODES_BENCH.lab, 'bench-modes');
  await t.rejects(MODES_BENCH.run({ runs: 21, name: 'ci1' }), /rounds must be an integer/, 'runs are its rounds');
  await t.rejects(MODES_BENCH.run({ name: 'a-prefix-of-13' }), /too long/, 'a-prefix-of-13-bench-modes: the labs collide at 24 characters');
});

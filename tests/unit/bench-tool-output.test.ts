// Reading sockperf's and iperf3's output (lab/bench/tool-output.ts), on
// output the tools really printed (tests/fixtures/bench/, sockperf 3.7 and
// iperf 3.12 over a namespace's loopback).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIperf3, parseSockperf, sockperfPercentile } from '../../lab/bench/tool-output.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '../fixtures/bench', name), 'utf8');

t.test('sockperf pp --full-rtt: round-trip avg, p50, p99 and the valid window count', async (t) => {
  t.same(parseSockperf(fixture('sockperf-pp-full-rtt.txt')), { rttAvgUs: 56.305, rttP50Us: 24.215, rttP99Us: 331.413, roundTrips: 9725 });
});

t.test('sockperf pp without --full-rtt reports avg-latency', async (t) => {
  const s = parseSockperf(fixture('sockperf-pp.txt'));
  t.equal(s.rttAvgUs, 12.735);
  t.equal(s.roundTrips, 21566);
  t.ok(s.rttP50Us > 0 && s.rttP99Us >= s.rttP50Us);
});

t.test('sockperf percentiles by number, not by a neighbour that starts alike', async (t) => {
  const text = fixture('sockperf-pp-full-rtt.txt');
  t.equal(sockperfPercentile(text, 50), 24.215);
  t.equal(sockperfPercentile(text, 99), 331.413, '99.000, not 99.900 or 99.990');
  t.equal(sockperfPercentile(text, 99.9), 5054.522);
  t.equal(sockperfPercentile(text, 42), undefined);
});

t.test('a failed sockperf is an error that shows its last lines', async (t) => {
  const refused = fixture('sockperf-refused.txt');
  t.throws(() => parseSockperf(refused), /cannot read sockperf's summary:[\s\S]*Connection refused/);
  t.equal(sockperfPercentile(refused, 50), undefined);
});

t.test('iperf3 -J: receiver throughput in Gbit/s, sender retransmits', async (t) => {
  const r = parseIperf3(fixture('iperf3-client.json'));
  t.ok(r);
  t.equal(r!.error, undefined);
  t.equal(r!.throughputGbps, 10571780133.69438 / 1e9, 'end.sum_received, not sum_sent');
  t.equal(r!.retransmits, 1);
});

t.test('iperf3 -J of a failed run: its error, no throughput', async (t) => {
  t.same(parseIperf3(fixture('iperf3-refused.json')), { error: 'unable to connect to server: Connection refused', retransmits: 0 });
  t.same(parseIperf3('{"error":"the server is busy running a test. try again later"}'), { error: 'the server is busy running a test. try again later', retransmits: 0 });
});

t.test('no JSON object from iperf3: undefined, for the caller to report', async (t) => {
  t.equal(parseIperf3(''), undefined);
  t.equal(parseIperf3('iperf3: error - unable to connect'), undefined);
  t.equal(parseIperf3('null'), undefined);
});

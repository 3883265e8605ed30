// The perf-stream parser and the Hubble-like formatter. Pure: no kernel.
import t from 'tap';
import { JsonObjectStream } from '../../lab/datapath/events.ts';
import { formatFlow, formatTime, identityLabel, tcpFlagNames } from '../../lab/datapath/format.ts';
import { hexArgs, bytesFromJson, opLine } from '../../lab/datapath/bpftool.ts';
import { toAuthExpiration, fromAuthExpiration } from '../../lab/datapath/auth.ts';
import { clockOffsetNs } from '../../lab/datapath/load.ts';
import { ipcacheCidr, ipcacheKey4, ipcacheValue4, tunnelEndpointOf } from '../../lab/datapath/maps.ts';
import * as gen from '../../lab/abi/generated.ts';

t.test('JsonObjectStream cuts records out of an endless array, across chunks', async (t) => {
  const seen: unknown[] = [];
  const stream = new JsonObjectStream((v) => seen.push(v));
  // What `bpftool -j map event_pipe` writes, split at awkward places.
  const text = '[{"type":9,"cpu":0,"index":0,"data":[1,0,0,0]},{"type":9,"cpu":1,"index":1,"data":[2]},\n{"type":2,"cpu":0,"lost":{"id":3,"count":7}}';
  for (let i = 0; i < text.length; i += 7) stream.push(text.slice(i, i + 7));
  t.same(seen, [
    { type: 9, cpu: 0, index: 0, data: [1, 0, 0, 0] },
    { type: 9, cpu: 1, index: 1, data: [2] },
    { type: 2, cpu: 0, lost: { id: 3, count: 7 } },
  ]);
  // Braces inside strings do not confuse it.
  stream.push('{"error":"a } and a { in a \\"string\\""}]');
  t.same(seen.at(-1), { error: 'a } and a { in a "string"' });
});

t.test('JsonObjectStream does not wait for bpftool\'s late closing brace', async (t) => {
  const seen: unknown[] = [];
  const whole = (v: Record<string, unknown>) => Array.isArray(v.data) || typeof v.lost === 'object';
  const stream = new JsonObjectStream((v) => seen.push(v), whole);
  // bpftool 7.1 leaves the "}" of a record for the next record's "},{".
  stream.push('[{"type":9,"cpu":1,"index":1,"timestamp":5,"data":[1,0,');
  t.same(seen, [], 'data still open');
  stream.push('0,0]');
  t.same(seen, [{ type: 9, cpu: 1, index: 1, timestamp: 5, data: [1, 0, 0, 0] }], 'emitted before its brace');
  stream.push('},{"type":2,"cpu":0,"lost":{"id":1,"count":3}');
  t.equal(seen.length, 2, 'the late brace emits nothing twice; the lost notice is whole');
  stream.push('}]');
  t.equal(seen.length, 2);
});

const flow: gen.FlowEvent = {
  // 07:41:01.123 UTC
  timestamp: BigInt(Date.UTC(2024, 0, 1, 7, 41, 1, 123)) * 1_000_000n + 456_789n,
  srcIdentity: 256,
  dstIdentity: 257,
  saddr: '10.244.0.2',
  daddr: '10.244.1.2',
  sport: 43210,
  dport: 8080,
  protocol: 6,
  tcpFlags: gen.TCP_F_SYN,
  verdict: gen.VERDICT_DROPPED,
  dropReason: gen.DROP_POLICY_AUTH_REQUIRED,
  obsPoint: gen.OBS_TO_ENDPOINT,
  authType: 1,
  remoteNodeId: 1,
  ifindex: 5,
  pktLen: 74,
  ctStatus: gen.CT_NEW,
};
const names: Record<string, string> = { '10.244.0.2': 'n1/client', '10.244.1.2': 'n2/server' };

t.test('formatFlow prints like Hubble', async (t) => {
  t.equal(
    formatFlow(flow, { resolve: (ip) => names[ip], utc: true }),
    '07:41:01.123 n1/client:43210 (ID:256) -> n2/server:8080 (ID:257) to-endpoint DROPPED (TCP Flags: SYN) Authentication required',
  );
  t.equal(
    formatFlow({ ...flow, verdict: gen.VERDICT_FORWARDED, dropReason: 0, tcpFlags: gen.TCP_F_SYN | gen.TCP_F_ACK, obsPoint: gen.OBS_FROM_ENDPOINT }, { utc: true }),
    '07:41:01.123 10.244.0.2:43210 (ID:256) -> 10.244.1.2:8080 (ID:257) from-endpoint FORWARDED (TCP Flags: SYN, ACK)',
  );
  t.equal(
    formatFlow({ ...flow, protocol: 1, srcIdentity: gen.IDENTITY_WORLD, dropReason: gen.DROP_POLICY }, { utc: true }),
    '07:41:01.123 10.244.0.2 (world) -> 10.244.1.2 (ID:257) to-endpoint DROPPED (ICMPv4) Policy denied',
  );
  t.match(formatFlow({ ...flow, protocol: 17, dropReason: 250 }, { utc: true }), /\(UDP\) drop reason 250$/);
  t.same(tcpFlagNames(gen.TCP_F_FIN | gen.TCP_F_ACK), ['ACK', 'FIN']);
  t.equal(identityLabel(gen.IDENTITY_HOST), '(host)');
  t.equal(formatTime(0n, true), '00:00:00.000');
});

t.test('bpftool byte syntax', async (t) => {
  t.same(hexArgs(Buffer.from([0, 10, 255])), ['hex', '00', '0a', 'ff']);
  t.same([...bytesFromJson(['0x0a', '0xff', 3])], [10, 255, 3]);
  t.equal(
    opLine({ op: 'delete', pin: '/sys/fs/bpf/x/m', key: Buffer.from([1, 2]) }),
    'map delete pinned /sys/fs/bpf/x/m key hex 01 02',
  );
  t.equal(
    opLine({ op: 'update', pin: '/p', key: Buffer.from([1]), value: Buffer.from([2]) }),
    'map update pinned /p key hex 01 value hex 02',
  );
});

t.test('auth expiration: Unix ns >> 9, both ways', async (t) => {
  const when = new Date('2030-01-02T03:04:05.678Z');
  const raw = toAuthExpiration(when);
  t.equal(raw, (BigInt(when.getTime()) * 1_000_000n) >> 9n);
  t.equal(fromAuthExpiration(raw).getTime(), when.getTime());
});

t.test('ipcache keys and values', async (t) => {
  const key = ipcacheKey4('10.244.1.77/24');
  t.equal(key.prefixlen, 32 + 24, 'prefix bits count cluster_id/pad/family');
  t.same([...key.ip.subarray(0, 4)], [10, 244, 1, 0], 'host bits cleared');
  t.equal(ipcacheCidr(key), '10.244.1.0/24');
  t.equal(ipcacheKey4('10.0.0.1').prefixlen, 64, 'a bare address is a /32');
  t.throws(() => ipcacheKey4('10.0.0.1/33'), /bad prefix length/);

  const remote = ipcacheValue4(257, '172.30.0.11');
  t.equal(remote.flags, gen.IPCACHE_F_HAS_TUNNEL_EP);
  t.equal(tunnelEndpointOf(remote), '172.30.0.11');
  t.equal(tunnelEndpointOf(ipcacheValue4(256)), undefined, 'a local pod has none');
});

t.test('parseReaderLine reads perf-reader\'s record and lost lines, and nothing else', async (t) => {
  const { parseReaderLine } = await import('../../lab/datapath/events.ts');
  t.same(parseReaderLine('1 0a0b00ff'), { cpu: 1, data: Buffer.from([10, 11, 0, 255]) });
  t.same(parseReaderLine('0 lost 7'), { cpu: 0, lost: 7 });
  t.equal(parseReaderLine('ready'), undefined, 'the ready line is not a record');
  t.equal(parseReaderLine('0 abc'), undefined, 'odd-length hex');
  t.equal(parseReaderLine('x 00'), undefined, 'no CPU number');
  t.equal(parseReaderLine('0 00 11'), undefined, 'a third field on a record');
});

t.test('clock offset: estimates made apart agree, and turn the monotonic clock into Date.now()', async (t) => {
  // The datapath and each agent estimate it on their own; the auth benchmark subtracts their times.
  const offsets = Array.from({ length: 10 }, () => clockOffsetNs());
  const spread = offsets.reduce((a, b) => (a > b ? a : b)) - offsets.reduce((a, b) => (a < b ? a : b));
  // Each is the narrowest of up to 50 brackets (~0.3 µs); one preempted sample used to be off by milliseconds.
  t.ok(spread < 1_000_000n, `10 estimates within 1 ms of each other (spread ${spread} ns)`);
  const before = Date.now();
  const unixMs = Number(process.hrtime.bigint() + offsets[0]!) / 1e6;
  const after = Date.now();
  t.ok(unixMs >= before - 1 && unixMs <= after + 1, `monotonic + offset = ${unixMs.toFixed(3)}, Date.now() ${before}..${after}`);
});

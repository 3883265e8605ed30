// `hubble observe`'s filter semantics, and the relay's sort buffer and rings.
// Pure.
import t from 'tap';
import * as gen from '../../lab/abi/generated.ts';
import { buildFilters, matchesAny, parseDuration, parsePodFilter, parseTimeFlag, selectHistory, type FilterFlags } from '../../lab/observe/filter.ts';
import { authEvent, flowEvent, lostEvent } from '../../lab/observe/hubble.ts';
import { mergeByTime, Ring, SortBuffer } from '../../lab/observe/buffers.ts';
import { AUTH_DROP, dir } from './observe-format.test.ts';

const drop = flowEvent(AUTH_DROP, 'n2', dir);
const allowed = flowEvent({ ...AUTH_DROP, saddr: '10.244.0.3', srcIdentity: 257, verdict: gen.VERDICT_FORWARDED, dropReason: 0 }, 'n2', dir);
const udpDenied = flowEvent({ ...AUTH_DROP, protocol: gen.IPPROTO_UDP, dport: 9090, dropReason: gen.DROP_POLICY, obsPoint: gen.OBS_FROM_ENDPOINT }, 'n1', dir);
const auth = authEvent({ time: '2023-12-02T01:11:44.900Z', event: 'auth-completed', key: '258:256:1:1', peer: 'spiffe://spiffe.cilium/identity/256', handshakeMs: 2 }, 'n2', dir)!;
const lost = lostEvent(2, 0, 'n1', 0n);
const ALL = { drop, allowed, udpDenied, auth, lost };

/** Names of the events the flags let through. */
const shown = (flags: FilterFlags) => {
  const filters = buildFilters(flags);
  return Object.entries(ALL).filter(([, ev]) => matchesAny(ev, filters)).map(([name]) => name);
};

t.test('the flags build hubble\'s left/right whitelist', async (t) => {
  t.same(buildFilters({}), [], 'no flags, no filter');
  t.same(buildFilters({ 'from-pod': ['client'], 'to-port': ['8080'] }), [{ source_pod: ['client'], destination_port: ['8080'] }], 'directional flags: one filter');
  t.same(buildFilters({ pod: ['client'] }), [{ source_pod: ['client'] }, { destination_pod: ['client'] }], 'an either-way flag: source OR destination');
  t.same(buildFilters({ pod: ['client'], port: ['8080'], verdict: ['dropped'] }), [
    { source_pod: ['client'], source_port: ['8080'], verdict: ['DROPPED'] },
    { destination_pod: ['client'], destination_port: ['8080'], verdict: ['DROPPED'] },
  ], 'either-way flags pair their halves, as flows_filter.go does');
  t.same(buildFilters({ type: ['drop', 'trace:to-endpoint', 'auth:completed'] }), [{ event_type: [{ type: 1 }, { type: 4, sub_type: 0 }, { type: 'auth', sub_type: 'AUTH_COMPLETED' }] }]);
  t.same(buildFilters({ 'from-identity': ['world', '256'] }), [{ source_identity: [2, 256] }], 'reserved identities by name');
});

t.test('conflicting and invalid flags are refused', async (t) => {
  for (const [flags, message] of [
    [{ pod: ['a'], 'from-pod': ['b'] }, /--from-pod and --pod cannot be combined|--pod and --from-pod/],
    [{ port: ['1'], 'to-port': ['2'] }, /cannot be combined/],
    [{ identity: ['256'], 'from-identity': ['257'] }, /cannot be combined/],
    [{ 'from-ip': ['10.0.0.1'], pod: ['x'] }, /cannot be combined/],
    [{ verdict: ['MAYBE'] }, /invalid --verdict value: MAYBE/],
    [{ type: ['l9'] }, /invalid --type "l9"/],
    [{ type: ['trace:to-moon'] }, /invalid trace point/],
    [{ port: ['70000'] }, /invalid port/],
    [{ 'from-identity': ['nobody'] }, /invalid identity "nobody"/],
    [{ protocol: ['carrier-pigeon'] }, /invalid protocol/],
    [{ 'from-ip': ['10.0.0.300'] }, /invalid IP/],
    [{ 'to-pod': ['a/b/c'] }, /invalid pod/],
  ] as [FilterFlags, RegExp][]) {
    t.throws(() => buildFilters(flags), { name: 'FilterError', message }, JSON.stringify(flags));
  }
});

t.test('every filter narrows as hubble\'s does', async (t) => {
  t.same(shown({}), ['drop', 'allowed', 'udpDenied', 'auth', 'lost'], 'nothing filtered');
  t.same(shown({ verdict: ['DROPPED'] }), ['drop', 'udpDenied']);
  t.same(shown({ verdict: ['FORWARDED'] }), ['allowed']);
  t.same(shown({ 'from-pod': ['client'] }), ['drop', 'udpDenied'], 'no namespace means "default"');
  t.same(shown({ 'from-pod': ['default/cli'] }), ['drop', 'udpDenied'], 'a name prefix');
  t.same(shown({ 'from-pod': ['kube-system/client'] }), [], 'another namespace');
  t.same(shown({ 'to-pod': ['default/'] }), ['drop', 'allowed', 'udpDenied', 'auth'], 'a whole namespace');
  t.same(shown({ pod: ['local'] }), ['allowed'], 'either end');
  t.same(shown({ pod: ['server'] }), ['drop', 'allowed', 'udpDenied', 'auth'], "the auth event's source is the node's own (server) side");
  t.same(shown({ 'from-identity': ['256'] }), ['drop', 'udpDenied']);
  t.same(shown({ 'to-identity': ['256'] }), ['auth'], 'auth: destination is the peer');
  t.same(shown({ identity: ['257'] }), ['allowed']);
  t.same(shown({ port: ['8080'] }), ['drop', 'allowed']);
  t.same(shown({ 'from-port': ['39278'] }), ['drop', 'allowed', 'udpDenied']);
  t.same(shown({ 'to-port': ['9090'] }), ['udpDenied']);
  t.same(shown({ protocol: ['UDP'] }), ['udpDenied']);
  t.same(shown({ protocol: ['tcp'] }), ['drop', 'allowed']);
  t.same(shown({ type: ['drop'] }), ['drop', 'udpDenied', 'lost'], 'lost records pass a type filter, as in Hubble');
  t.same(shown({ type: ['policy-verdict'] }), ['allowed', 'lost']);
  t.same(shown({ type: ['trace'] }), ['lost'], 'the datapath sends no trace events');
  t.same(shown({ type: ['auth'] }), ['auth', 'lost']);
  t.same(shown({ type: ['auth:failed'] }), ['lost']);
  t.same(shown({ type: ['drop', 'auth'] }), ['drop', 'udpDenied', 'auth', 'lost'], 'values of one flag: any');
  t.same(shown({ node: ['n1'] }), ['udpDenied', 'lost']);
  t.same(shown({ node: ['n*'] }), ['drop', 'allowed', 'udpDenied', 'auth', 'lost'], 'node patterns');
  t.same(shown({ 'drop-reason-desc': ['AUTH_REQUIRED'] }), ['drop']);
  t.same(shown({ 'traffic-direction': ['egress'] }), ['udpDenied']);
  t.same(shown({ 'to-ip': ['10.244.1.0/24'] }), ['drop', 'allowed', 'udpDenied'], 'a CIDR');
  t.same(shown({ ip: ['10.244.0.3'] }), ['allowed']);
  t.same(shown({ 'from-pod': ['client'], verdict: ['DROPPED'], node: ['n2'] }), ['drop'], 'different flags: all of them');
});

t.test('pod names and times as hubble reads them', async (t) => {
  t.same(parsePodFilter('client'), { ns: 'default', prefix: 'client' });
  t.same(parsePodFilter('kube-system/'), { ns: 'kube-system', prefix: '' });
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('5'), undefined, 'a bare number is no duration');
  const now = Date.parse('2024-01-02T03:04:05Z');
  t.equal(parseTimeFlag('5m', now, 'since'), now - 300_000);
  t.equal(parseTimeFlag('2024-01-02T03:00:00Z', now, 'since'), Date.parse('2024-01-02T03:00:00Z'));
  t.equal(parseTimeFlag('2024-01-02T03:00:00', now, 'since'), Date.parse('2024-01-02T03:00:00Z'), 'no zone: UTC');
  t.throws(() => parseTimeFlag('yesterday', now, 'since'), /invalid --since "yesterday"/);
});

t.test('history: since/until, then the last or first N', async (t) => {
  const events = [10, 20, 30, 40, 50];
  const ms = (n: number) => n;
  t.same(selectHistory(events, ms, { last: 2 }), [40, 50]);
  t.same(selectHistory(events, ms, { first: 2 }), [10, 20]);
  t.same(selectHistory(events, ms, { last: 0 }), [], '--follow alone starts from now');
  t.same(selectHistory(events, ms, { since: 25 }), [30, 40, 50]);
  t.same(selectHistory(events, ms, { since: 15, until: 40, last: 2 }), [30, 40]);
  t.same(selectHistory(events, ms, {}), events);
});

t.test('the sort buffer orders nodes\' events by their own time, each waiting its window', async (t) => {
  const sb = new SortBuffer<{ timeNs: bigint; id: string }>(100);
  t.equal(sb.nextDueMs(), undefined, 'empty: no drain is due');
  sb.push({ timeNs: 30n, id: 'n1-late' }, 0);
  sb.push({ timeNs: 10n, id: 'n2-early' }, 50);
  t.equal(sb.nextDueMs(), 100, 'the first to arrive is due first, whatever its event time');
  t.same(sb.drain(60), [], 'nothing has waited its window');
  t.same(sb.drain(100).map((e) => e.id), ['n2-early', 'n1-late'], 'the first one is due: it goes out after the earlier one still waiting');
  sb.push({ timeNs: 5n, id: 'straggler' }, 120);
  sb.push({ timeNs: 40n, id: 'next' }, 130);
  t.same(sb.drain(200).map((e) => e.id), [], 'neither is due yet');
  t.equal(sb.nextDueMs(), 220, 'the straggler (arrived at 120) is due next');
  t.same(sb.drain(225).map((e) => e.id), ['straggler'], 'one due');
  t.equal(sb.nextDueMs(), 230);
  t.same(sb.flush().map((e) => e.id), ['next']);
  t.equal(sb.size, 0);
});

t.test('rings keep the last N; merged rings are in time order', async (t) => {
  const r = new Ring<number>(3);
  for (const n of [1, 2, 3, 4, 5]) r.push(n);
  t.same(r.toArray(), [3, 4, 5]);
  t.equal(r.length, 3);
  t.same(new Ring<number>(4).toArray(), []);
  t.throws(() => new Ring(0));
  const a = [{ timeNs: 1n, n: 'a1' }, { timeNs: 5n, n: 'a5' }];
  const b = [{ timeNs: 3n, n: 'b3' }, { timeNs: 5n, n: 'b5' }];
  t.same(mergeByTime([a, b]).map((x) => x.n), ['a1', 'b3', 'a5', 'b5'], 'equal times keep node order');
});

// The fuzzers' generators (lab/fuzz/generate.ts and the overlay/strict
// ones), without a kernel: a case is a pure function of (seed, index); every
// case is one the kernel will run and the maps will take; the sentinel's
// reserved space stays untouched; the cases, judged by the models, reach
// every decision the programs can make; the shrinker only ever shrinks.
import t from 'tap';
import {
  AUTH_EXPIRATION_SHIFT,
  CT_ESTABLISHED,
  CT_NEW,
  DROP_INVALID,
  DROP_INVALID_IDENTITY,
  DROP_INVALID_SIP,
  DROP_NO_CONFIG,
  DROP_NO_NODE_ID,
  DROP_NO_TUNNEL_ENDPOINT,
  DROP_NO_TUNNEL_KEY,
  DROP_POLICY,
  DROP_POLICY_AUTH_REQUIRED,
  DROP_POLICY_DENY,
  DROP_UNENCRYPTED_TRAFFIC,
  DROP_UNKNOWN_L3,
} from '../../lab/abi/generated.ts';
import {
  caseSize,
  concretize,
  datapathCase,
  inReserved,
  KEY_EQUALS,
  RESERVED_IDENTITY,
  shrinkCandidates,
  TIME_MARGIN_NS,
  type DatapathCase,
} from '../../lab/fuzz/generate.ts';
import { timeOk } from '../../lab/fuzz/compare.ts';
import { modelDatapath, type Clock } from '../../lab/fuzz/model.ts';
import { modelFromOverlay, modelToOverlay, overlayCase, overlayCaseSize, shrinkOverlayCase } from '../../lab/fuzz/overlay-model.ts';
import { runnable } from '../../lab/fuzz/packet.ts';
import { caseRng, Rng } from '../../lab/fuzz/prng.ts';
import { modelStrict, shrinkStrictCase, strictCase, strictCaseSize } from '../../lab/fuzz/strict-model.ts';

const ENV = { ifindexes: [2, 3, 4, 5] };
const NOW: Clock = { monoNs: 9_000_000_000_000n, unixNs: 1_750_000_000_000_000_000n };
const text = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x && x.type === 'Buffer' ? Buffer.from(x.data).toString('hex') : x));
const ipOf = (b: Buffer) => Array.from(b.subarray(0, 4)).join('.');

t.test('the PRNG: same seed, same numbers; cases independent of each other', async (t) => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 100 }, () => a.u32());
  t.same(Array.from({ length: 100 }, () => b.u32()), xs);
  t.not(new Rng(8).u32(), new Rng(7).u32());
  t.equal(caseRng(1, 5).u32(), caseRng(1, 5).u32(), 'case 5 of seed 1 is always the same');
  t.not(caseRng(1, 5).u32(), caseRng(1, 6).u32());
  t.not(caseRng(1, 5).u32(), caseRng(2, 5).u32());
  const r = new Rng(3);
  const ints = Array.from({ length: 2000 }, () => r.int(0, 9));
  t.same([...new Set(ints)].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'int() covers its range');
  t.ok(ints.every((n) => n >= 0 && n <= 9));
});

t.test('a datapath case is a pure function of (seed, index)', async (t) => {
  for (const i of [0, 1, 17, 999]) t.equal(text(datapathCase(42, i, ENV)), text(datapathCase(42, i, ENV)), `case ${i}`);
  t.not(text(datapathCase(42, 3, ENV)), text(datapathCase(43, 3, ENV)));
  t.equal(text(overlayCase(5, 9, ENV)), text(overlayCase(5, 9, ENV)));
  t.equal(text(strictCase(5, 9, ENV)), text(strictCase(5, 9, ENV)));
});

const CASES: DatapathCase[] = Array.from({ length: 3000 }, (_, i) => datapathCase(1, i, ENV));

t.test('every case can run: a runnable frame, one value per key, valid trie keys, no reserved space', async (t) => {
  const problems: string[] = [];
  CASES.forEach((c, i) => {
    if (!runnable(c.packet)) problems.push(`${i}: frame BPF_PROG_RUN refuses`);
    if (c.ifindex !== 1 && !ENV.ifindexes.includes(c.ifindex)) problems.push(`${i}: ifindex ${c.ifindex} is no device`);
    for (const m of ['ipcache', 'nodes', 'policy', 'auth', 'ct'] as const) {
      const list = c[m] as unknown as { key: never }[];
      const same = KEY_EQUALS[m] as (a: never, b: never) => boolean;
      if (list.some((e, j) => list.findIndex((f) => same(f.key, e.key)) !== j)) problems.push(`${i}: two ${m} entries with one key`);
    }
    if (new Set(c.endpoints.map((e) => e.key)).size !== c.endpoints.length) problems.push(`${i}: two endpoints on one device`);
    for (const e of c.ipcache) {
      if (e.key.prefixlen > 160) problems.push(`${i}: prefixlen ${e.key.prefixlen} beyond the trie`);
      if (e.key.prefixlen >= 64 && inReserved(ipOf(e.key.ip))) problems.push(`${i}: ipcache entry in the sentinel's range`);
    }
    if (c.endpoints.some((e) => e.value.secIdentity === RESERVED_IDENTITY)) problems.push(`${i}: the sentinel's identity`);
    if (c.auth.some((a) => a.key.localSecLabel === RESERVED_IDENTITY)) problems.push(`${i}: an auth entry of the sentinel's identity`);
    if (c.ct.some((e) => inReserved(e.key.saddr) || inReserved(e.key.daddr))) problems.push(`${i}: a ct entry in the sentinel's range`);
    for (const a of c.auth) if ('rel' in a.value && (a.value.rel < 0n ? -a.value.rel : a.value.rel) < TIME_MARGIN_NS) problems.push(`${i}: auth expiry within the margin of now`);
    for (const e of c.ct) if ('rel' in e.value.expires && (e.value.expires.rel < 0n ? -e.value.expires.rel : e.value.expires.rel) < TIME_MARGIN_NS) problems.push(`${i}: ct expiry within the margin of now`);
  });
  t.same(problems.slice(0, 10), []);
});

t.test('relative times become absolute at "now": ct in monotonic ns, auth in Unix ns >> 9', async (t) => {
  const c = CASES.find((x) => x.ct.some((e) => 'rel' in e.value.expires) && x.auth.some((a) => 'rel' in a.value))!;
  const input = concretize(c, NOW);
  const ct = c.ct.findIndex((e) => 'rel' in e.value.expires);
  t.equal(input.maps.ct[ct]!.value.expires, BigInt.asUintN(64, NOW.monoNs + (c.ct[ct]!.value.expires as { rel: bigint }).rel) || 0n);
  const a = c.auth.findIndex((x) => 'rel' in x.value);
  const rel = (c.auth[a]!.value as { rel: bigint }).rel;
  t.equal(input.maps.auth[a]!.value, (NOW.unixNs >> BigInt(AUTH_EXPIRATION_SHIFT)) + (rel >> BigInt(AUTH_EXPIRATION_SHIFT)));
});

t.test('the cases reach every decision of the datapath', async (t) => {
  const reached = new Set<string>();
  for (const c of CASES) {
    const o = modelDatapath(concretize(c, NOW));
    reached.add(o.dropReason ? `drop ${o.dropReason}` : 'pass');
    if (o.signal) reached.add('signal');
    reached.add(`ct ${o.ctEffect.kind}`);
    if (o.flow) reached.add(`event ct ${o.flow.ctStatus}`);
    if (o.policyHit) reached.add(`hit ${o.policyHit.secLabel ? 'id' : 'any'}/${o.policyHit.protocol ? 'proto' : 'any'}/${o.policyHit.dport ? 'port' : 'any'}`);
    if (o.trace.some((l) => l.includes('(from skb->mark)'))) reached.add('identity from mark');
    if (o.trace.some((l) => l.includes('established (connection mode)'))) reached.add('established, connection mode');
    if (o.trace.some((l) => l.includes('reply, passes'))) reached.add('reply');
    if (o.trace.some((l) => l.includes('auth entry expired'))) reached.add('auth expired');
    if (o.trace.some((l) => l.includes('auth entry present'))) reached.add('auth present');
    if (o.trace.some((l) => l.includes('no peer to authenticate'))) reached.add('auth, unknown source');
    if (o.ctEffect.kind === 'refreshed') {
      const key = o.ctEffect.key;
      const e = o.ct.find((x) => JSON.stringify(x.key) === JSON.stringify(key))!.value.expires;
      if (typeof e === 'object' && 'old' in e) reached.add(timeOk(e, e.old, { startMonoNs: NOW.monoNs, endMonoNs: NOW.monoNs, unixOffsetNs: 0n }) ? 'refresh keeps the deadline' : 'refresh moves the deadline');
      else reached.add(c.ctAccounting ? 'refresh counted' : 'refresh on new flags');
    }
  }
  const want = [
    'pass', 'signal', 'ct created', 'ct refreshed', 'ct none', `event ct ${CT_NEW}`, `event ct ${CT_ESTABLISHED}`,
    ...[DROP_INVALID_SIP, DROP_POLICY, DROP_INVALID, DROP_UNKNOWN_L3, DROP_NO_CONFIG, DROP_POLICY_DENY, DROP_POLICY_AUTH_REQUIRED, DROP_NO_NODE_ID].map((d) => `drop ${d}`),
    'hit id/proto/port', 'hit id/proto/any', 'hit id/any/any', 'hit any/proto/port', 'hit any/proto/any', 'hit any/any/any',
    'identity from mark', 'established, connection mode', 'reply', 'auth expired', 'auth present', 'auth, unknown source',
    'refresh keeps the deadline', 'refresh moves the deadline', 'refresh counted', 'refresh on new flags',
  ];
  t.same(want.filter((w) => !reached.has(w)), [], 'every outcome comes up in 3000 cases of seed 1');
});

t.test('the shrinker: every candidate is smaller and runnable, and there is one without each entry', async (t) => {
  const c = CASES.find((x) => x.policy.length >= 2 && x.ct.length >= 1 && x.ipcache.length >= 2 && x.mark)!;
  const candidates = shrinkCandidates(c);
  t.ok(candidates.every((x) => caseSize(x) < caseSize(c)), 'all smaller');
  t.ok(candidates.every((x) => runnable(x.packet)), 'all runnable');
  const entries = c.endpoints.length + c.ipcache.length + c.nodes.length + c.policy.length + c.auth.length + c.ct.length;
  t.equal(candidates.filter((x) => x.packet === c.packet && x.mark === c.mark && x.policyMode === c.policyMode && x.ctAccounting === c.ctAccounting).length, entries, 'one candidate per map entry removed');
  t.ok(candidates.some((x) => x.mark === 0 && x.packet === c.packet), 'a plainer mark');
  t.ok(candidates.some((x) => x.packet.length < c.packet.length), 'a shorter packet');
  const overlayShrinks = Array.from({ length: 50 }, (_, i) => shrinkOverlayCase(overlayCase(1, i, ENV))).flat();
  t.ok(overlayShrinks.every((s) => runnable(s.kind === 'from' ? s.receive.packet : s.packet)), 'overlay candidates runnable');
  const sc = strictCase(1, 3, ENV);
  t.ok(shrinkStrictCase(sc).every((x) => strictCaseSize(x) < strictCaseSize(sc) && runnable(x.packet)));
  const oc = overlayCase(1, 3, ENV);
  t.ok(shrinkOverlayCase(oc).every((x) => overlayCaseSize(x) <= overlayCaseSize(oc)));
});

t.test('overlay and strict cases reach their programs\' decisions', async (t) => {
  const overlay = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const c = overlayCase(1, i, ENV);
    if (c.kind === 'to') {
      const o = modelToOverlay({ packet: c.packet, ifindex: c.ifindex, ingressIfindex: c.ingressIfindex, maps: { endpoints: c.endpoints, ipcache: c.ipcache, nodes: [] } });
      overlay.add(o.flow ? `to drop ${o.flow.dropReason}` : 'to tunnel');
    } else {
      const o = modelFromOverlay({ packet: c.receive.packet, ifindex: c.ifindex, tunnel: c.direct ? null : { vni: c.vni, sender: c.sender }, mark: c.staleMark, maps: c.receive });
      overlay.add(o.flow ? `from drop ${o.flow.dropReason}` : o.mark ? 'from mark' : 'from no mark');
      if (!o.flow && o.mark && (c.vni & 0xffffff) < 256) overlay.add('from reserved');
    }
  }
  const want = ['to tunnel', `to drop ${DROP_NO_TUNNEL_ENDPOINT}`, `to drop ${DROP_UNKNOWN_L3}`, `to drop ${DROP_INVALID}`, 'from mark', 'from no mark', 'from reserved',
    `from drop ${DROP_INVALID_IDENTITY}`, `from drop ${DROP_NO_TUNNEL_KEY}`, `from drop ${DROP_UNKNOWN_L3}`, `from drop ${DROP_INVALID}`];
  t.same(want.filter((w) => !overlay.has(w)), [], 'overlay');

  const strict = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const c = strictCase(1, i, ENV);
    const o = modelStrict({ packet: c.packet, ifindex: c.ifindex, config: c.config, maps: c });
    strict.add(o.flow ? (o.trace.some((l) => l.startsWith('VXLAN')) ? 'drop inside VXLAN' : `drop ${DROP_UNENCRYPTED_TRAFFIC}`) : o.trace.at(-1)!.replace(/ \(.*?\)/, '').replace(/: .*/, ''));
  }
  t.same(['drop inside VXLAN', `drop ${DROP_UNENCRYPTED_TRAFFIC}`, 'strict mode off', 'not IPv4', 'malformed', 'VXLAN packet', 'source or destination outside the strict CIDR',
    'destination is no pod of another node', 'source is no pod of this node'].filter((w) => !strict.has(w)), [], 'strict');
});

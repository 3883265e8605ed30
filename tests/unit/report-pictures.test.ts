// The report's pictures from data: escaping, the ladder layout, a flow's
// ladder from frames, flow events and agent log lines, the topology, the
// charts, the evidence filters and the tshark row parsing.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { clip, el, esc, formatMs, text } from '../../lab/report/svg.ts';
import { layoutLadder, renderLadder, type Ladder } from '../../lab/report/ladder.ts';
import { flowGroups, flowLadder, type FrameRow } from '../../lab/report/flow-ladder.ts';
import { renderTopology } from '../../lab/report/topology-svg.ts';
import { collectGoals, collectRatios, matrixCells, niceTicks, renderMatrix, renderRatioBars, renderWindowPlot, windowPoints } from '../../lab/report/charts.ts';
import { evidenceFilters, filterOfEvidence } from '../../lab/report/filters.ts';
import { epochMs, frameRow, readablePayload } from '../../lab/report/frames.ts';
import type { RunRecord, RecordedFlow } from '../../lab/scenarios/record.ts';
import type { MatrixRow } from '../../lab/scenarios/confusion-matrix.ts';
import type { WindowRow } from '../../lab/scenarios/exposure-window.ts';

t.test('escaping and elements', async (t) => {
  t.equal(esc(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  t.equal(el('rect', { x: 1.23456, y: undefined, hidden: false, fill: 'a"b' }), '<rect x="1.23" fill="a&quot;b"/>');
  t.equal(text(1, 2, '<b>'), '<text x="1" y="2">&lt;b&gt;</text>');
  t.equal(clip('abcdef', 4), 'abc…');
  t.equal(clip('abc', 4), 'abc');
  t.equal(formatMs(1234.5), '1.234 s');
  t.equal(formatMs(12.345), '12.3 ms');
  t.equal(formatMs(1.5), '1.50 ms');
});

const lanes = [{ id: 'a', label: 'A' }, { id: 'b', label: 'B' }, { id: 'c', label: 'C <3>' }];

t.test('ladder layout: time order, lanes left to right, a break where time jumps', async (t) => {
  const ladder: Ladder = {
    id: 'x', title: 't', lanes,
    steps: [
      { tMs: 1010, from: 'a', to: 'c', kind: 'packet', label: 'retransmit' },
      { tMs: 0, from: 'a', to: 'b', kind: 'drop', label: 'drop' },
      { tMs: 5, from: 'b', to: 'c', kind: 'signal', label: 'signal' },
      { tMs: 5, from: 'c', to: 'b', kind: 'write', label: 'write after signal at the same time' },
      { tMs: 7, from: 'a', to: 'zz', kind: 'note', label: 'nowhere' },
    ],
  };
  const l = layoutLadder(ladder, { breakMs: 200 });
  t.same(l.rows.map((r) => r.step.label), ['drop', 'signal', 'write after signal at the same time', 'retransmit'], 'sorted by time, stable at ties');
  t.ok(l.lanes[0]!.x < l.lanes[1]!.x && l.lanes[1]!.x < l.lanes[2]!.x);
  t.ok(l.rows.every((r, i) => i === 0 || r.y > l.rows[i - 1]!.y), 'rows go down');
  t.same(l.rows.map((r) => r.breakBeforeMs), [undefined, undefined, undefined, 1005], 'one break, of the skipped time');
  t.same(l.rows.map((r) => r.sinceStartMs), [0, 5, 5, 1010]);
  t.same(l.unplaced.map((s) => s.label), ['nowhere'], 'a step of an unknown lane is left out, not drawn elsewhere');
  const svg = renderLadder(ladder);
  t.match(svg, /<svg [^>]*class="ladder"[^>]*data-ladder="x"/);
  t.equal((svg.match(/<g class="lane"/g) ?? []).length, 3);
  t.equal((svg.match(/<g class="step"/g) ?? []).length, 4);
  t.match(svg, /data-kind="drop" data-from="a" data-to="b"/);
  t.match(svg, /C &lt;3&gt;/, 'lane labels escaped');
  t.match(svg, /… 1\.005 s later …/);
  t.notMatch(svg, /<script/);
});

// A miniature of a real mtless-basic run: client (n1) → server (n2):8080.
const pods = [
  { name: 'client', node: 'n1', ip: '10.244.0.2', lxc: 'lxc-client', identity: 256, labels: { app: 'client' } },
  { name: 'server', node: 'n2', ip: '10.244.1.2', lxc: 'lxc-server', identity: 258, labels: { app: 'server' } },
];
const nodes = [
  { name: 'n1', id: 1, underlayIp: '172.30.0.10', mgmtIp: '172.31.0.10', podCidr: '10.244.0.0/24', devices: [] },
  { name: 'n2', id: 2, underlayIp: '172.30.0.11', mgmtIp: '172.31.0.11', podCidr: '10.244.1.0/24', devices: [{ name: 'wg1234', kind: 'wireguard' as const }] },
];
const T0 = 1_796_220_827_506;
const flow = (dms: number, verdict: number, dropReason: number): RecordedFlow => ({
  timestamp: String(BigInt(Math.round((T0 + dms) * 1000)) * 1000n), srcIdentity: 256, dstIdentity: 258, saddr: '10.244.0.2', daddr: '10.244.1.2', sport: 39846, dport: 8080,
  protocol: 6, tcpFlags: 2, verdict, dropReason, obsPoint: 0, authType: 1, remoteNodeId: 1, ifindex: 4, pktLen: 74, ctStatus: 0, node: 'n2',
});
const frame = (n: number, dms: number, over: Partial<FrameRow>): FrameRow => ({
  frame: n, tMs: T0 + dms, link: 'fabric/underlay', src: '10.244.0.2', dst: '10.244.1.2', proto: 'tcp', sport: 39846, dport: 8080,
  syn: false, ack: false, fin: false, rst: false, len: 0, tlsHandshakeTypes: [], tlsContentTypes: [], uris: [], comment: '', ...over,
});
const agentLine = (dms: number, event: string, extra: Record<string, unknown> = {}) => ({ time: new Date(T0 + dms).toISOString(), event, at: T0 + dms, key: '258:256:1:1', ...extra });
const record: RunRecord = {
  version: 1, scenario: 'mtless-basic', lab: 'x-mtless-basic', topologyFile: 'topologies/two-node-auth.yaml', routing: 'native', encryption: { mode: 'none' }, sockmap: false,
  underlayCidr: '172.30.0.0/24', mgmtCidr: '172.31.0.0/24', podCidr: '10.244.0.0/16', controlIp: '172.31.0.1', nodes, pods,
  flows: [flow(0.05, 2, 189), flow(1008, 1, 0)],
  logs: {
    'agent-n2': [agentLine(1.5, 'auth-requested'), agentLine(60, 'auth-completed', { peer: 'spiffe://spiffe.cilium/identity/256', expiration: '2026-12-02T15:13:41.000Z', totalMs: 58.5 }), agentLine(5, 'maps-synced')],
    'agent-n1': [agentLine(30, 'auth-served')],
  },
};
const frames: FrameRow[] = [
  frame(1, 0, { syn: true, comment: 'DROPPED: Authentication required (189) at n2/to-container of server' }),
  frame(2, 10, { src: '172.30.0.11', dst: '172.30.0.10', sport: 38740, dport: 4250, syn: true }),
  frame(3, 20, { src: '172.30.0.11', dst: '172.30.0.10', sport: 38740, dport: 4250, ack: true, len: 251, tlsHandshakeTypes: [1], tlsContentTypes: [22] }),
  frame(4, 25, { src: '172.30.0.10', dst: '172.30.0.11', sport: 4250, dport: 38740, ack: true, len: 1506, tlsHandshakeTypes: [2, 8, 13, 11, 15, 20], uris: ['spiffe://spiffe.cilium/identity/256', 'spiffe://spiffe.cilium'] }),
  frame(5, 40, { src: '172.30.0.11', dst: '172.30.0.10', sport: 38740, dport: 4250, ack: true, len: 1240, tlsHandshakeTypes: [11, 15, 20], uris: ['spiffe://spiffe.cilium/identity/258'] }),
  frame(6, 45, { src: '172.30.0.10', dst: '172.30.0.11', sport: 4250, dport: 38740, ack: true, len: 24, tlsContentTypes: [21] }),
  frame(7, 46, { src: '172.30.0.10', dst: '172.30.0.11', sport: 4250, dport: 38740, ack: true, fin: true }),
  frame(8, 1007.5, { syn: true }),
  frame(9, 1007.7, { src: '10.244.1.2', dst: '10.244.0.2', sport: 8080, dport: 39846, syn: true, ack: true }),
  frame(10, 1008.7, { ack: true, len: 35, readable: 'secret-cross-node-TCP-1' }),
  frame(11, 1008.9, { ack: true, len: 35, readable: 'secret-cross-node-TCP-1' }),
  frame(12, 1008.7, { link: 'n1/lxc-client', ack: true, len: 35, readable: 'secret-cross-node-TCP-1' }),
];

t.test('a flow\'s ladder: drop (189), signal, the 4250 handshake with both SPIFFE IDs, the auth-map write, the retransmit, plaintext', async (t) => {
  const groups = flowGroups(record);
  t.same(groups.map((g) => g.key), ['TCP 10.244.0.2 → 10.244.1.2:8080']);
  const l = flowLadder({ record, frames, underlayLink: 'fabric/underlay' }, groups[0]!, 'basic-1');
  t.same(l.lanes.map((x) => x.id), ['src-pod', 'src-node', 'underlay', 'dst-node', 'dst-agent', 'dst-pod']);
  t.same(l.lanes.map((x) => x.label), ['pod client', 'node n1 · agent', 'underlay', 'node n2 datapath', 'node n2 agent', 'pod server']);
  t.same(l.steps.map((s) => `${s.kind} ${s.from}>${s.to}`), [
    'drop src-pod>dst-node', 'signal dst-node>dst-agent', 'tls dst-agent>src-node', 'tls dst-agent>src-node', 'tls src-node>dst-agent',
    'tls dst-agent>src-node', 'tls src-node>dst-agent', 'tls src-node>dst-agent', 'write dst-agent>dst-node',
    'packet src-pod>dst-pod', 'packet dst-pod>src-pod', 'plaintext src-pod>dst-pod',
  ], 'one copy of each packet (the underlay), the first payload of each direction; housekeeping log lines left out');
  t.match(l.steps[0]!.label, /DROPPED \(189 Authentication required\) at n2\/to-endpoint · judged as ID 256 \(client\)/);
  t.match(l.steps[1]!.label, /key 258:256:1:1/);
  t.match(l.steps[4]!.label, /Certificate spiffe:\/\/spiffe\.cilium\/identity\/256 · ServerHello/);
  t.notMatch(l.steps[4]!.label, /spiffe:\/\/spiffe\.cilium(,|$| ·)/, 'the trust domain URI of the CA is not an identity');
  t.match(l.steps[5]!.label, /identity\/258/);
  t.match(l.steps[8]!.label, /auth map write 258:256:1:1 until 2026-12-02T15:13:41Z/);
  t.match(l.steps[9]!.label, /SYN :39846 → :8080 \(retransmitted\) passes/);
  t.equal(l.steps[9]!.tMs - l.steps[0]!.tMs, 1007.5, 'times are the frames\' own');
  t.match(l.steps[11]!.label, /in plaintext on the underlay: "secret-cross-node-TCP-1"/);
});

t.test('identity confusion: the sender from the control plane\'s endpoint log, the judged identity from the flow event', async (t) => {
  const intruder = { name: 'intruder', node: 'n1', ip: '10.244.0.2', lxc: 'lxc-intruder', identity: 259, labels: { app: 'intruder' }, runtime: 'added' as const };
  const rec: RunRecord = {
    ...record, pods: [{ ...pods[0]!, runtime: 'deleted' }, pods[1]!, intruder],
    flows: [...record.flows, { ...flow(3000, 1, 0), sport: 40000 }],
    logs: { ...record.logs, 'control-plane-cp': [
      { time: new Date(T0 + 2000).toISOString(), event: 'endpoint-deleted', pod: 'client', ip: '10.244.0.2' },
      { time: new Date(T0 + 2500).toISOString(), event: 'endpoint-added', pod: 'intruder', ip: '10.244.0.2', identity: 259 },
    ] },
  };
  const l = flowLadder({ record: rec, frames: [...frames, frame(20, 3000, { sport: 40000, syn: true })], underlayLink: 'fabric/underlay' }, flowGroups(rec)[0]!, 'ic');
  t.equal(l.lanes[0]!.label, 'pod client / intruder');
  const attack = l.steps.find((s) => s.label.includes(':40000'))!;
  t.match(attack.label, /from intruder \(ID 259\) · judged as ID 256 \(client\) · IDENTITY CONFUSED/);
  t.ok(l.steps.some((s) => s.kind === 'note' && /pod client deleted/.test(s.label)));
  t.ok(l.steps.some((s) => s.kind === 'note' && /pod intruder added 10\.244\.0\.2, identity 259/.test(s.label)));
});

t.test('topology: nodes, pods with labels and identities, veths with their programs, the networks and devices', async (t) => {
  const svg = renderTopology(record);
  t.match(svg, /class="topology"/);
  for (const n of ['n1', 'n2']) t.match(svg, new RegExp(`<g class="node" data-node="${n}"`));
  t.match(svg, /data-pod="client" data-identity="256"/);
  t.match(svg, /data-veth="lxc-server"/);
  t.match(svg, /cil_from_container/);
  t.match(svg, /data-net="underlay"/);
  t.match(svg, /data-net="mgmt"/);
  t.match(svg, /data-device="wg1234" data-kind="wireguard"/);
  t.match(svg, /app=client/);
});

t.test('charts: matrix tones, W against D, ratios to floors, goals', async (t) => {
  t.same(niceTicks(3000), [0, 1000, 2000, 3000]);
  t.same(niceTicks(0), [0, 1]);
  t.ok(niceTicks(7).at(-1)! >= 7);
  const row = (mode: MatrixRow['mode'], admitted: boolean, plain: boolean): MatrixRow => ({
    mode, lab: 'l', attackAdmitted: admitted, attackVerdict: admitted ? 'FORWARDED as 256' : 'DROPPED 133', plaintextOnUnderlay: plain, firstPacketDropped: true,
    newConnectionExtraMs: { newPair: 1012, samePair: 1 }, handshakesPerConnection: { newPair: 1, samePair: 0 },
    ttfbMs: { newPairAuth: [], samePairAuth: [], newPairOff: [], samePairOff: [] },
    evidence: { attackAdmitted: 'e1', plaintextOnUnderlay: 'f.pcapng [fabric/underlay]: tcp.payload contains "x" → 2 frame(s)', firstPacketDropped: 'e3', newConnectionExtraMs: 'e4', handshakesPerConnection: 'e5' }, problems: [],
  });
  t.same(matrixCells(row('native', true, true)).map((c) => c.tone), ['bad', 'bad', 'cost', 'none', 'none']);
  t.same(matrixCells(row('tunnel-wireguard', false, false)).map((c) => c.tone).slice(0, 2), ['good', 'good']);
  const m = renderMatrix([row('native', true, true), row('tunnel', false, true)]);
  t.equal((m.match(/<g class="cell"/g) ?? []).length, 10);
  t.match(m, /data-mode="native" data-column="attack admitted" data-tone="bad"/);
  t.same(filterOfEvidence(row('x' as never, true, true).evidence.plaintextOnUnderlay), { filter: 'tcp.payload contains "x"', shows: '2 frame(s) on fabric/underlay' });

  const w = (c: string, d: number, win: number, extra: Partial<WindowRow> = {}): WindowRow => ({
    case: c, mode: 'native', delayMs: d, reuseDelayMs: 0, reuse: 'at once', partition: 'none', windowMs: win, admitted: 1, attempts: 2, boundBy: 'update',
    admittedAfterBound: 0, refusedBeforeBound: 0, lab: 'l', problems: [], ...extra,
  });
  const rows = [w('D=0', 0, 0), w('D=250', 250, 260), w('D=3000', 3000, 3010), w('tunnel', 3000, 0, { mode: 'tunnel' })];
  t.same(windowPoints(rows).map((p) => p.series), ['delay', 'delay', 'delay', 'other']);
  const plot = renderWindowPlot(rows);
  t.equal((plot.match(/<g class="point"/g) ?? []).length, 4);
  t.match(plot, /data-series="delay" data-d="250" data-w="260"/);
  t.match(plot, /<polyline/);

  const fixture = (n: string) => JSON.parse(readFileSync(resolve(import.meta.dirname, `../fixtures/bench/${n}-report.json`), 'utf8')) as unknown;
  const auth = collectRatios('auth', fixture('auth'));
  t.ok(auth.some((r) => r.name === 'ratios · dropToEntryP50' && r.value > 0), 'named ratios of an object');
  t.notOk(auth.some((r) => /durationMs|rounds/.test(r.name)), '"duration" is no ratio; unnamed per-round repeats are left out');
  const sock = collectRatios('sockmap', fixture('sockmap'));
  t.ok(sock.some((r) => r.name === 'cases · RR 64 B · ratio'), 'array elements named by their name, summaries by their median');
  t.same(collectRatios('x', { ratio: 'no' }), []);
  const bars = renderRatioBars([...auth, ...sock]);
  t.equal((bars.match(/<g class="ratio"/g) ?? []).length, auth.length + sock.length);
  t.match(bars, /floor = 1×/);
  const goals = collectGoals('up', fixture('up'));
  t.ok(goals.length >= 1 && goals.every((g) => typeof g.goal === 'string'));
  t.same(collectGoals('x', undefined), []);
});

t.test('evidence filters from the frames of a capture', async (t) => {
  const f = evidenceFilters(frames);
  t.same(f.map((x) => x.filter), [
    'frame.comment contains "DROPPED"',
    'tcp.port == 4250 && tls.handshake.type == 11',
    'tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.srcport == 39846',
    'tcp.payload contains "secret-cross-node-TCP-1"',
  ]);
  t.match(f[1]!.shows, /identity\/256, spiffe:\/\/spiffe\.cilium\/identity\/258/);
  t.match(f[2]!.shows, /1\.008 s later/);
  t.same(evidenceFilters([]), []);
});

t.test('tshark rows', async (t) => {
  t.equal(epochMs('1796220827.506993167'), 1796220827506.993);
  t.equal(readablePayload('68656c6c6f0a'), 'hello\n');
  t.equal(readablePayload('1603010100'), undefined, 'binary is not readable');
  t.equal(readablePayload(''), undefined);
  const base = { 'frame.number': '3', 'frame.time_epoch': '1.5', 'ip.src': '172.30.0.10,10.244.0.2', 'ip.dst': '172.30.0.11,10.244.1.2', 'tcp.srcport': '39846', 'tcp.dstport': '8080',
    'udp.srcport': '1234', 'udp.dstport': '8472', 'tcp.flags.syn': '1', 'tcp.flags.ack': '0', 'tcp.flags.fin': '0', 'tcp.flags.reset': '0', 'tcp.len': '0', 'udp.length': '',
    'tls.handshake.type': '', 'tls.record.content_type': '', 'x509ce.uniformResourceIdentifier': '', 'frame.comment': '', 'tcp.payload': '', 'udp.payload': '' };
  const r = frameRow('fabric/underlay', base)!;
  t.match(r, { src: '10.244.0.2', dst: '10.244.1.2', proto: 'tcp', sport: 39846, dport: 8080, syn: true, ack: false, tMs: 1500 }, 'the innermost layer of a VXLAN frame');
  t.equal(frameRow('x', { ...base, 'tcp.srcport': '', 'udp.srcport': '' }), undefined, 'neither TCP nor UDP');
  t.equal(frameRow('x', { ...base, 'tcp.srcport': '', 'udp.length': '21', 'udp.payload': '64676d2d6669727374' })!.len, 13);
});

t.test('ratio bars: coloured good or bad only where the report says which way is better', async (t) => {
  const r = collectRatios('sockmap', { cases: [{ name: 'rr', better: 'lower', ratio: { median: 0.5 } }, { name: 'stream', better: 'higher', ratio: 0.4 }], ratio: 2 });
  t.same(r, [
    { bench: 'sockmap', name: 'cases · rr · ratio', value: 0.5, better: 'lower' },
    { bench: 'sockmap', name: 'cases · stream · ratio', value: 0.4, better: 'higher' },
    { bench: 'sockmap', name: 'ratio', value: 2 },
  ]);
  const bars = renderRatioBars(r);
  t.match(bars, /data-name="cases · rr · ratio"[^>]*data-better="lower"><title>[^<]*<\/title>(<text[^>]*>[^<]*<\/text>)<rect[^>]*fill="#7fbf8a"/, 'lower and below the floor: good');
  t.match(bars, /data-name="cases · stream · ratio"[^>]*><title>[^<]*<\/title><text[^>]*>[^<]*<\/text><rect[^>]*fill="#e0a060"/, 'higher wanted, below the floor: worse');
  t.match(bars, /data-name="ratio" data-value="2"><title>[^<]*<\/title><text[^>]*>[^<]*<\/text><rect[^>]*fill="#8fa8d0"/, 'unknown: neutral');
});

t.test('WireGuard: the pod packets from the veths, the underlay\'s datagrams as encrypted', async (t) => {
  const onVeth = frames.filter((f) => f.src.startsWith('10.') || f.dst.startsWith('10.')).map((f) => ({ ...f, link: 'n2/lxc-server' }));
  const wg = [frame(50, 1007.4, { proto: 'udp', src: '172.30.0.10', dst: '172.30.0.11', sport: 51871, dport: 51871, len: 96 }),
    frame(51, 1007.6, { proto: 'udp', src: '172.30.0.11', dst: '172.30.0.10', sport: 51871, dport: 51871, len: 96 })];
  const l = flowLadder({ record, frames: [...onVeth, ...wg], underlayLink: 'fabric/underlay' }, flowGroups(record)[0]!, 'wg');
  t.ok(l.steps.some((s) => s.kind === 'drop' && s.to === 'dst-node'), 'the drop');
  t.ok(l.steps.some((s) => /\(retransmitted\) passes/.test(s.label)), 'the retransmitted SYN, from the veth');
  t.ok(l.steps.some((s) => s.kind === 'plaintext' && /in plaintext on n2\/lxc-server/.test(s.label)), 'readable on the veth, not said to be on the underlay');
  t.same(l.steps.filter((s) => /WireGuard/.test(s.label)).map((s) => `${s.from}>${s.to}`), ['src-node>dst-node', 'dst-node>src-node']);
});

t.test('benchmarks: bench-all.json when there is one (each report under its name, the failed ones named), else each bench-<what>.json, else nothing', async (t) => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { gatherEvidence } = await import('../../lab/report/gather.ts');
  const dir = await mkdtemp(join(tmpdir(), 'report-bench-'));
  try {
    const fx = (n: string) => JSON.parse(readFileSync(resolve(import.meta.dirname, `../fixtures/bench/${n}-report.json`), 'utf8')) as unknown;
    t.same((await gatherEvidence([], new Date(), { benchDir: dir })).bench, { dir, files: [], ratios: [], goals: [] }, 'no report: nothing drawn');
    await writeFile(join(dir, 'bench-auth.json'), JSON.stringify(fx('auth')));
    const one = (await gatherEvidence([], new Date(), { benchDir: dir })).bench!;
    t.ok(one.ratios.length > 0 && one.ratios.every((r) => r.bench === 'auth'));
    await writeFile(join(dir, 'bench-all.json'), JSON.stringify({ kind: 'mtless-bench-all', version: 1, ran: ['sockmap', 'up'], errors: { up: 'mininet missing' }, sockmap: fx('sockmap'), machine: { ratio: 99 } }));
    const all = (await gatherEvidence([], new Date(), { benchDir: dir })).bench!;
    t.same(all.files.map((f) => f.file), [join(dir, 'bench-all.json')]);
    t.ok(all.ratios.length > 0 && all.ratios.every((r) => r.bench === 'sockmap'), 'only the benchmarks\' own reports, not the machine');
    t.ok(all.goals.some((g) => g.bench === 'up' && g.holds === false && /mininet missing/.test(g.detail)), 'a failed benchmark is a row');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// The pcap/pcapng reader and writer, interface renaming, capture comments,
// timestamp-ordered merges, link naming — on tiny files built by hand here
// (not by the writer under test). Where tshark is installed, the tools agree:
// capinfos sees the names, drop events match frames, the profile loads.
import { mkdtemp, readFile, rm, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { execa } from 'execa';
import {
  CaptureFormatError, LINKTYPE_ETHERNET, PcapStreamReader, SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD, addSecrets, encodePacket, encodeSecrets,
  mergeCaptures, mergeCapturesWithOrigins, readCapture, writeCapture, type PacketCapture,
} from '../../lab/capture/pcapng.ts';
import { UnknownLinkError, linkFileName, listLinks, resolveLink, resolveLinks } from '../../lab/capture/links.ts';
import { dfString, tsharkCounts } from '../../lab/capture/tshark.ts';
import { annotatePackets, matchDropEvents } from '../../lab/capture/merge.ts';
import { captureInfo, countMany, frames, plaintextFilter } from '../../lab/capture/assert.ts';
import type { LabState } from '../../lab/core/state.ts';
import { AUTH_PORT } from '../../lab/abi/generated.ts';

// ---- hand-built files -----------------------------------------------------------

type Endian = 'le' | 'be';
const u16 = (v: number, e: Endian) => { const b = Buffer.alloc(2); e === 'le' ? b.writeUInt16LE(v) : b.writeUInt16BE(v); return b; };
const u32 = (v: number, e: Endian) => { const b = Buffer.alloc(4); e === 'le' ? b.writeUInt32LE(v) : b.writeUInt32BE(v); return b; };
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
const opt = (code: number, value: Buffer | string, e: Endian) => {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([u16(code, e), u16(v.length, e), pad(v)]);
};
const opts = (list: Buffer[], e: Endian) => (list.length ? Buffer.concat([...list, u16(0, e), u16(0, e)]) : Buffer.alloc(0));
const blk = (type: number, body: Buffer, e: Endian) => {
  const len = 12 + body.length;
  return Buffer.concat([u32(type, e), u32(len, e), body, u32(len, e)]);
};
const shb = (e: Endian, comments: string[] = []) =>
  blk(0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d, e), u16(1, e), u16(0, e), Buffer.alloc(8, 0xff), opts(comments.map((c) => opt(1, c, e)), e)]), e);
const idb = (e: Endian, name: string, tsresol?: number, linkType = LINKTYPE_ETHERNET) =>
  blk(1, Buffer.concat([u16(linkType, e), u16(0, e), u32(65535, e), opts([opt(2, name, e), ...(tsresol === undefined ? [] : [opt(9, Buffer.from([tsresol]), e)])], e)]), e);
const epb = (e: Endian, iface: number, ticks: bigint, data: Buffer, comments: string[] = []) =>
  blk(6, Buffer.concat([u32(iface, e), u32(Number(ticks >> 32n), e), u32(Number(ticks & 0xffffffffn), e), u32(data.length, e), u32(data.length, e), pad(data), opts(comments.map((c) => opt(1, c, e)), e)]), e);

/** A pcap file (tcpdump's format): µs or ns, either byte order. */
function pcap(e: Endian, nano: boolean, records: { sec: number; frac: number; data: Buffer }[]): Buffer {
  const head = Buffer.concat([u32(nano ? 0xa1b23c4d : 0xa1b2c3d4, e), u16(2, e), u16(4, e), u32(0, e), u32(0, e), u32(262144, e), u32(1, e)]);
  return Buffer.concat([head, ...records.map((r) => Buffer.concat([u32(r.sec, e), u32(r.frac, e), u32(r.data.length, e), u32(r.data.length, e), r.data]))]);
}

/** Ethernet + IPv4 + TCP, checksums zero (tshark does not check them by default). */
function tcpFrame(src: string, dst: string, sport: number, dport: number, flags: number, payload = Buffer.alloc(0)): Buffer {
  const ip4 = (a: string) => Buffer.from(a.split('.').map(Number));
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(sport, 0); tcp.writeUInt16BE(dport, 2); tcp.writeUInt32BE(1, 4);
  tcp[12] = 5 << 4; tcp[13] = flags; tcp.writeUInt16BE(65535, 14);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + 20 + payload.length, 2); ip[8] = 64; ip[9] = 6;
  ip4(src).copy(ip, 12); ip4(dst).copy(ip, 16);
  const eth = Buffer.concat([Buffer.from('0a0000000002', 'hex'), Buffer.from('0a0000000001', 'hex'), Buffer.from([0x08, 0x00])]);
  return Buffer.concat([eth, ip, tcp, payload]);
}
const SYN = 0x02;
const PSH_ACK = 0x18;

const frameA = Buffer.from('aaaa');
const frameB = Buffer.from('bbbbbb');

// ---- reader --------------------------------------------------------------------------

t.test('reads hand-built pcapng in both byte orders: names, times, data, comments', async (t) => {
  for (const e of ['le', 'be'] as const) {
    const file = Buffer.concat([shb(e, ['hello']), idb(e, 'eth0'), idb(e, 'eth1', 9), epb(e, 0, 1_500_000n, frameA, ['c1', 'c2']), epb(e, 1, 2_000_000_123n, frameB)]);
    const c = readCapture(file);
    t.same(c.comments, ['hello'], `${e}: section comment`);
    t.same(c.interfaces.map((i) => i.name), ['eth0', 'eth1']);
    t.equal(c.packets[0]!.timestampNs, 1_500_000_000n, `${e}: default resolution is microseconds`);
    t.equal(c.packets[1]!.timestampNs, 2_000_000_123n, `${e}: if_tsresol 9 is nanoseconds`);
    t.same(c.packets[0]!.data, frameA);
    t.same(c.packets[0]!.comments, ['c1', 'c2']);
    t.equal(c.packets[1]!.interfaceId, 1);
  }
});

t.test('binary time resolution and unknown blocks', async (t) => {
  const nrb = blk(4, Buffer.from([0, 0, 0, 0]), 'le');
  const c = readCapture(Buffer.concat([shb('le'), idb('le', 'x', 0x80 | 10), nrb, epb('le', 0, 3n * 1024n + 512n, frameA)]));
  t.equal(c.packets[0]!.timestampNs, 3_500_000_000n, '2^-10 ticks');
  t.equal(c.skippedBlocks, 1, 'a name resolution block is counted, not kept');
});

t.test('reads pcap (tcpdump): µs and ns, both byte orders', async (t) => {
  for (const e of ['le', 'be'] as const) {
    const us = readCapture(pcap(e, false, [{ sec: 10, frac: 5, data: frameA }]));
    t.equal(us.packets[0]!.timestampNs, 10_000_005_000n, `${e} µs`);
    const ns = readCapture(pcap(e, true, [{ sec: 10, frac: 5, data: frameB }]));
    t.equal(ns.packets[0]!.timestampNs, 10_000_000_005n, `${e} ns`);
    t.same(ns.packets[0]!.data, frameB);
    t.equal(ns.interfaces[0]!.linkType, LINKTYPE_ETHERNET);
  }
  t.equal(readCapture(pcap('le', true, [])).packets.length, 0, 'a header alone is a valid, empty capture');
});

t.test('truncated or foreign files are errors, never empty captures', async (t) => {
  const good = pcap('le', true, [{ sec: 1, frac: 0, data: frameA }]);
  t.throws(() => readCapture(Buffer.alloc(0)), CaptureFormatError, 'empty file');
  t.throws(() => readCapture(good.subarray(0, good.length - 1)), /truncated/, 'pcap cut inside a record');
  t.throws(() => readCapture(good.subarray(0, 10)), /header truncated/);
  const ng = Buffer.concat([shb('le'), idb('le', 'eth0'), epb('le', 0, 1n, frameA)]);
  t.throws(() => readCapture(ng.subarray(0, ng.length - 4)), /truncated|bad or truncated length/, 'pcapng cut inside a block');
  t.throws(() => readCapture(Buffer.from('hello world, not a capture')), /not a pcap or pcapng/);
  t.throws(() => readCapture(Buffer.concat([shb('le'), epb('le', 3, 1n, frameA)])), /interface 3, which is not described/);
});

t.test('the stream reader returns whole records across arbitrary chunks', async (t) => {
  const file = pcap('le', true, [{ sec: 1, frac: 1, data: frameA }, { sec: 2, frac: 2, data: frameB }]);
  for (const size of [1, 3, 24, 25, 1000]) {
    const r = new PcapStreamReader();
    const got = [];
    for (let i = 0; i < file.length; i += size) got.push(...r.push(Buffer.from(file.subarray(i, i + size))));
    t.same(got.map((p) => p.data.toString()), ['aaaa', 'bbbbbb'], `chunks of ${size}`);
    t.equal(r.leftover, 0);
    t.equal(r.packets, 2);
  }
  const cut = new PcapStreamReader();
  cut.push(file.subarray(0, file.length - 2));
  t.ok(cut.leftover > 0, 'a stream cut inside a record leaves bytes over');
});

// ---- writer and merge --------------------------------------------------------------------

const capture = (name: string, packets: [bigint, Buffer][], comments: string[] = []): PacketCapture => ({
  comments, interfaces: [{ linkType: LINKTYPE_ETHERNET, snapLen: 65535, name, options: [] }],
  packets: packets.map(([ns, data]) => ({ interfaceId: 0, timestampNs: ns, originalLength: data.length, data, comments: [], options: [] })),
  secrets: [], skippedBlocks: 0,
});

t.test('writer round trip keeps names, descriptions, comments, times, data and secrets', async (t) => {
  const c = capture('n1/lxc-client', [[1_700_000_000_123_456_789n, frameA], [1_700_000_001_000_000_000n, frameB]], ['scenario x', 'lab y']);
  c.interfaces[0]!.description = 'pod client veth';
  c.packets[1]!.comments.push('DROPPED: reason 189');
  c.secrets.push({ type: SECRETS_TLS_KEYLOG, data: Buffer.from('CLIENT_RANDOM aa bb\n') });
  const back = readCapture(writeCapture(c));
  t.same(back.comments, c.comments);
  t.same(back.interfaces, c.interfaces);
  t.same(back.packets.map((p) => [p.timestampNs, p.data.toString(), p.comments]), c.packets.map((p) => [p.timestampNs, p.data.toString(), p.comments]));
  t.same(back.secrets.map((s) => [s.type, s.data.toString()]), [[SECRETS_TLS_KEYLOG, 'CLIENT_RANDOM aa bb\n']]);
  t.same(readCapture(writeCapture(back)), back, 'writing what was read changes nothing');
});

t.test('decryption secrets blocks: type, length, padding to 4, as the format says', async (t) => {
  const data = Buffer.from('CLIENT_RANDOM a b\n'); // 18 bytes: 2 of padding
  const block = encodeSecrets({ type: SECRETS_WIREGUARD, data });
  t.equal(block.length, 12 + 8 + 20, 'header, type and length, data padded');
  t.same([block.readUInt32LE(0), block.readUInt32LE(4), block.readUInt32LE(8), block.readUInt32LE(12), block.readUInt32LE(block.length - 4)],
    [0x0000000a, block.length, SECRETS_WIREGUARD, 18, block.length]);
  t.same(block.subarray(16, 34), data);
  t.same(block.subarray(34, 36), Buffer.alloc(2));
  // A DSB between packets (a stream that learns a key later) is read like one before them.
  const file = Buffer.concat([shb('le'), idb('le', 'eth0'), epb('le', 0, 1n, frameA), block, epb('le', 0, 2n, frameB)]);
  const c = readCapture(file);
  t.same(c.secrets.map((x) => [x.type, x.data.toString()]), [[SECRETS_WIREGUARD, data.toString()]]);
  t.equal(c.packets.length, 2);
  const out = writeCapture(c);
  t.equal(out.indexOf(encodeSecrets(c.secrets[0]!)), out.indexOf(encodePacket({ ...c.packets[0]! })) - encodeSecrets(c.secrets[0]!).length,
    'the writer puts secrets before the first packet');
});

t.test('secrets are kept once; a key log that grew replaces its older copy', async (t) => {
  const c = capture('x', []);
  const v1 = Buffer.from('CLIENT_RANDOM 1 1\n');
  const v2 = Buffer.concat([v1, Buffer.from('CLIENT_RANDOM 2 2\n')]);
  addSecrets(c, [{ type: SECRETS_TLS_KEYLOG, data: v1 }, { type: SECRETS_TLS_KEYLOG, data: v1 }]);
  t.equal(c.secrets.length, 1, 'the same key log twice: once');
  addSecrets(c, [{ type: SECRETS_TLS_KEYLOG, data: v2 }]);
  t.same(c.secrets.map((s) => s.data.toString()), [v2.toString()], 'grown: the longer copy only');
  addSecrets(c, [{ type: SECRETS_TLS_KEYLOG, data: v1 }, { type: SECRETS_WIREGUARD, data: Buffer.from('LOCAL_STATIC_PRIVATE_KEY = k\n') }, { type: SECRETS_WIREGUARD, data: Buffer.alloc(0) }]);
  t.same(c.secrets.map((s) => s.type), [SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD], 'an older copy adds nothing; WireGuard is its own block; an empty one is dropped');
  t.equal(c.secrets[0]!.data.length, v2.length);
  const a = capture('a', []);
  const b = capture('b', []);
  a.secrets.push({ type: SECRETS_TLS_KEYLOG, data: v1 });
  b.secrets.push({ type: SECRETS_TLS_KEYLOG, data: v2 });
  t.same(mergeCaptures([{ capture: a }, { capture: b }]).secrets.map((s) => s.data.length), [v2.length], 'a merge of links read at different times keeps the newest');
});

t.test('a merge says where each packet came from, so a comment can go back to its link\'s file', async (t) => {
  const a = capture('eth0', [[100n, Buffer.from('a1')], [300n, Buffer.from('a3')]]);
  const b = capture('eth0', [[200n, Buffer.from('b2')], [300n, Buffer.from('b3')]]);
  const { capture: m, origins } = mergeCapturesWithOrigins([{ capture: a, name: 'A' }, { capture: b, name: 'B' }]);
  t.same(m.packets.map((p) => p.data.toString()), ['a1', 'b2', 'a3', 'b3']);
  t.same(origins, [{ input: 0, packet: 0 }, { input: 1, packet: 0 }, { input: 0, packet: 1 }, { input: 1, packet: 1 }]);
  m.packets[1]!.comments.push('DROPPED: x');
  t.same(b.packets[0]!.comments, [], 'comments on the merge do not leak into the inputs');
});

t.test('merge renames interfaces (every device is "eth0" somewhere) and orders packets by time', async (t) => {
  const a = readCapture(Buffer.concat([shb('le'), idb('le', 'eth0', 9), epb('le', 0, 100n, Buffer.from('a1')), epb('le', 0, 300n, Buffer.from('a3'))]));
  const b = readCapture(pcap('be', true, [{ sec: 0, frac: 200, data: Buffer.from('b2') }, { sec: 0, frac: 300, data: Buffer.from('b3') }]));
  const m = mergeCaptures([
    { capture: a, name: 'fabric/underlay', description: 'the underlay' },
    { capture: b, name: 'n1/lxc-client' },
  ], { comments: ['scenario "s" on lab "l"'] });
  t.same(m.interfaces.map((i) => [i.name, i.description]), [['fabric/underlay', 'the underlay'], ['n1/lxc-client', undefined]]);
  t.same(m.packets.map((p) => p.data.toString()), ['a1', 'b2', 'a3', 'b3'], 'timestamp order; a tie keeps input order');
  t.same(m.packets.map((p) => p.interfaceId), [0, 1, 0, 1]);
  const back = readCapture(writeCapture(m));
  t.same(back.comments, ['scenario "s" on lab "l"'], 'the capture comment');
  t.same(back.interfaces.map((i) => i.name), ['fabric/underlay', 'n1/lxc-client']);
});

t.test('a link captured on several devices (bridge ports) becomes one interface', async (t) => {
  const ports = readCapture(Buffer.concat([shb('le'), idb('le', 'u-n1', 9), idb('le', 'u-n2', 9), epb('le', 1, 5n, frameB), epb('le', 0, 2n, frameA)]));
  const one = mergeCaptures([{ capture: ports, name: 'fabric/underlay' }]);
  t.same(one.interfaces.map((i) => i.name), ['fabric/underlay']);
  t.same(one.packets.map((p) => [p.interfaceId, p.data.toString()]), [[0, 'aaaa'], [0, 'bbbbbb']]);
  const u1 = capture('u-n1', [[2n, frameA]]);
  const u2 = capture('u-n2', [[1n, frameB]]);
  const taps = mergeCaptures([{ capture: u1, name: 'fabric/underlay' }, { capture: u2, name: 'fabric/underlay' }, { capture: capture('eth0', []), name: 'n1/eth0' }]);
  t.same(taps.interfaces.map((i) => i.name), ['fabric/underlay', 'n1/eth0'], 'one file per tap, one interface per link');
  t.same(taps.packets.map((p) => [p.interfaceId, p.data.toString()]), [[0, 'bbbbbb'], [0, 'aaaa']]);
  const mixed = readCapture(Buffer.concat([shb('le'), idb('le', 'eth0', 9), idb('le', 'wg0', 9, 101)]));
  t.same(mergeCaptures([{ capture: mixed, name: 'n1/x' }]).interfaces.map((i) => i.name), ['n1/x (eth0)', 'n1/x (wg0)'], 'different link types stay apart');
});

// ---- links -------------------------------------------------------------------------------

const state: LabState = {
  lab: 'u', phase: 'up', createdAt: '', podRange: '10.244.0.0/16', netns: [], processes: [],
  nodes: [
    { name: 'n1', id: 1, netns: 'mtl_u_n_n1', underlayIp: '172.30.0.10', mgmtIp: '172.31.0.10', podCidr: '10.244.0.0/24' },
    { name: 'n2', id: 2, netns: 'mtl_u_n_n2', underlayIp: '172.30.0.11', mgmtIp: '172.31.0.11', podCidr: '10.244.1.0/24' },
  ],
  pods: [
    { name: 'client', node: 'n1', netns: 'mtl_u_p_client', ip: '10.244.0.2', lxc: 'lxc-client', labels: {} },
    { name: 'a-very-long-pod-name', node: 'n2', netns: 'mtl_u_p_a-very-long-pod-name', ip: '10.244.1.2', lxc: 'lxc5f0e2d1c9a3b', labels: {} },
  ],
};

t.test('links of a lab: stable names, namespaces, devices', async (t) => {
  const links = listLinks(state);
  t.same(links.map((l) => l.name), ['fabric/underlay', 'mgmt', 'n1/eth0', 'n1/mgmt0', 'n1/lxc-client', 'n2/eth0', 'n2/mgmt0', 'n2/lxc-a-very-long-pod-name']);
  const underlay = links[0]!;
  t.same(underlay.taps, [
    { netns: 'mtl_u_fabric', device: 'u-n1', direction: 'in' },
    { netns: 'mtl_u_fabric', device: 'u-n2', direction: 'in' },
    { netns: 'mtl_u_fabric', device: 'underlay', direction: 'out' },
  ], 'a bridge: ports inbound plus the bridge outbound, each frame once');
  t.equal(underlay.owner, 'fabric');
  t.same(resolveLink(state, 'n2/lxc-a-very-long-pod-name').taps, [{ netns: 'mtl_u_n_n2', device: 'lxc5f0e2d1c9a3b', direction: 'inout' }], 'a hashed lxc keeps a readable link name');
  t.same(resolveLink(state, 'client/eth0').taps, [{ netns: 'mtl_u_p_client', device: 'eth0', direction: 'inout' }], 'a pod namespace device');
  t.equal(resolveLink(state, 'client/eth0').owner, 'n1', 'tagged with the pod\'s node');
  t.same(resolveLink(state, 'cp/mgmt').taps, [{ netns: 'mtl_u_cp', device: 'mgmt', direction: 'inout' }]);
  const err = t.throws(() => resolveLink(state, 'n3/eth0')) as UnknownLinkError;
  t.type(err, UnknownLinkError);
  t.match(err.message, /lab "u" has no link "n3\/eth0" \(valid: fabric\/underlay, mgmt, n1\/eth0, n1\/mgmt0, n1\/lxc-client, n2\/eth0/);
  t.throws(() => resolveLinks(state, ['mgmt', 'mgmt']), /listed twice/);
  t.equal(linkFileName('fabric/underlay'), 'fabric.underlay.pcapng');
  t.equal(linkFileName('n1/lxc-client'), 'n1.lxc-client.pcapng');
  t.equal(linkFileName('mgmt'), 'mgmt.pcapng');
});

t.test('display-filter strings are escaped', async (t) => {
  t.equal(dfString('secret'), '"secret"');
  t.equal(dfString('a "b" \\c, d'), '"a \\x22b\\x22 \\x5cc\\x2c d"', 'quotes, backslash, and commas (io,stat splits on them)');
  t.equal(dfString('é'), '"\\xc3\\xa9"', 'UTF-8 bytes');
});

// ---- with the Wireshark tools -------------------------------------------------------------

const haveTshark = await execa('tshark', ['--version'], { reject: false }).then((r) => r.exitCode === 0, () => false);
const noTools: string | false = haveTshark ? false : 'needs tshark, capinfos and editcap (Debian: tshark, wireshark-common)';
const tmp = await mkdtemp(join(tmpdir(), 'capture-unit-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

/** A merged two-link file: a SYN on each link, then the payload "secret-xyz" on the underlay only. */
async function sampleFile(): Promise<{ file: string; t0: number }> {
  const t0 = 1_763_800_000_000; // ms
  const ns = (ms: number) => BigInt(t0 + ms) * 1_000_000n;
  const syn = tcpFrame('10.244.0.2', '10.244.1.2', 40000, 8080, SYN);
  const data = tcpFrame('10.244.0.2', '10.244.1.2', 40000, 8080, PSH_ACK, Buffer.from('secret-xyz'));
  const veth = capture('eth0', [[ns(0), syn], [ns(1000), syn]]);
  const underlay = capture('eth0', [[ns(0) + 1000n, syn], [ns(2000), data]]);
  const m = mergeCaptures([{ capture: veth, name: 'n1/lxc-client' }, { capture: underlay, name: 'fabric/underlay' }], { comments: ['unit sample'] });
  const file = join(tmp, `sample-${Math.random().toString(16).slice(2)}.pcapng`);
  await writeFile(file, writeCapture(m));
  return { file, t0 };
}

t.test('capinfos and tshark read the writer\'s files: named interfaces, comment, link selection', { skip: noTools }, async (t) => {
  const { file } = await sampleFile();
  const info = await captureInfo(file);
  t.match(info.fileType, /pcapng/);
  t.same(info.interfaces.map((i) => i.name), ['n1/lxc-client', 'fabric/underlay']);
  t.same(info.comments, ['unit sample']);
  t.equal(info.packets, 4);
  const all = await countMany(file, { syn: 'tcp.flags.syn == 1', secret: plaintextFilter('secret-xyz'), comma: 'tcp.port in {8080, 1}' });
  t.same(all, { syn: 3, secret: 1, comma: 4 }, 'one io,stat pass, and a filter with a comma on its own');
  t.same(await countMany(file, { syn: 'tcp.flags.syn == 1', secret: plaintextFilter('secret-xyz') }, { iface: 'n1/lxc-client' }), { syn: 2, secret: 0 });
  t.same(await frames(file, 'tcp.len > 0', ['frame.number', 'frame.interface_name'], { iface: 'fabric/underlay' }), [{ 'frame.number': '4', 'frame.interface_name': 'fabric/underlay' }],
    'frame numbers are the merged file\'s, even when tshark reads one link alone');
  await t.rejects(countMany(file, { a: 'tcp' }, { iface: 'n1/lxc-clent' }), /has no interface "n1\/lxc-clent" \(it has: n1\/lxc-client, fabric\/underlay\)/);
});

t.test('counts are right when the capture spans no time (io,stat prints no row then)', { skip: noTools }, async (t) => {
  const syn = tcpFrame('10.244.0.2', '10.244.1.2', 1, 2, SYN);
  const file = join(tmp, 'instant.pcapng');
  await writeFile(file, writeCapture(capture('x', [[5n, syn], [5n, syn]])));
  t.same(await countMany(file, { syn: 'tcp.flags.syn == 1', udp: 'udp' }), { syn: 2, udp: 0 }, 'two packets, one timestamp');
  await writeFile(file, writeCapture(capture('x', [[5n, syn]])));
  t.same(await countMany(file, { syn: 'tcp.flags.syn == 1' }), { syn: 1 }, 'one packet');
  await writeFile(file, writeCapture(capture('x', [])));
  t.same(await countMany(file, { syn: 'tcp.flags.syn == 1' }), { syn: 0 }, 'no packet');
});

t.test('drop events match frames by 5-tuple, link and time; editcap comments them', { skip: noTools }, async (t) => {
  const { file, t0 } = await sampleFile();
  const ev = { src: '10.244.0.2', dst: '10.244.1.2', sport: 40000, dport: 8080, proto: 'tcp' as const };
  const matches = await matchDropEvents(file, [
    { ...ev, time: new Date(t0 + 1005), comment: 'second SYN', iface: 'n1/lxc-client' },
    { ...ev, time: new Date(t0 + 10), comment: 'first SYN', iface: 'n1/lxc-client' },
    { ...ev, time: new Date(t0 + 5000), comment: 'too late' },
    { ...ev, dport: 9999, time: new Date(t0), comment: 'other flow' },
  ]);
  t.same(matches.map((m) => m.frame), [3, 1, undefined, undefined], 'each event gets its own frame, or none');
  t.equal(matches[0]!.iface, 'n1/lxc-client');
  // Links in order of preference: the first one that shows the packet wins over a closer frame elsewhere.
  const preferred = await matchDropEvents(file, [
    { ...ev, time: new Date(t0), comment: 'a', ifaces: ['n2/eth0', 'fabric/underlay', 'n1/lxc-client'] },
    { ...ev, time: new Date(t0), comment: 'b', ifaces: ['n1/lxc-client', 'fabric/underlay'] },
    { ...ev, time: new Date(t0), comment: 'c', ifaces: ['n2/eth0'] },
  ]);
  t.same(preferred.map((m) => [m.frame, m.iface]), [[2, 'fabric/underlay'], [1, 'n1/lxc-client'], [undefined, undefined]],
    'a link that does not show it is skipped; one that was not captured matches nothing');
  await annotatePackets(file, [{ frame: 1, comment: 'DROPPED: one' }, { frame: 1, comment: 'and two' }, { frame: 3, comment: 'DROPPED: three' }]);
  const commented = await frames(file, 'frame.comment', ['frame.number', 'frame.comment']);
  t.same(commented, [{ 'frame.number': '1', 'frame.comment': 'DROPPED: one,and two' }, { 'frame.number': '3', 'frame.comment': 'DROPPED: three' }], 'two comments on one frame are both kept');
  t.same((await captureInfo(file)).interfaces.map((i) => i.name), ['n1/lxc-client', 'fabric/underlay'], 'editcap keeps the interface names');
  await t.rejects(annotatePackets(file, [{ frame: 99, comment: 'x' }]), /frames 1\.\.4; cannot comment frame 99/);

  // editcap cannot rewrite a file holding secrets: the writer adds those comments instead.
  const withSecrets = readCapture(await readFile(file));
  withSecrets.secrets.push({ type: SECRETS_TLS_KEYLOG, data: Buffer.from('# empty key log\n') });
  await writeFile(file, writeCapture(withSecrets));
  await annotatePackets(file, [{ frame: 4, comment: 'DROPPED: four' }]);
  t.equal((await frames(file, 'frame.comment contains "DROPPED"', ['frame.number'])).length, 3);
  t.equal(readCapture(await readFile(file)).secrets.length, 1, 'secrets kept');
});

t.test('the Wireshark profile loads: filters compile, port 4250 decodes as TLS', { skip: noTools }, async (t) => {
  const conf = join(tmp, 'wireshark');
  await cp(resolve(import.meta.dirname, '../../lab/capture/wireshark-profile'), join(conf, 'profiles', 'mtless-lab'), { recursive: true });
  // A TLS record (handshake, ClientHello) to port 4250: Wireshark does not know that port as TLS.
  const hello = Buffer.from('16030100050100000100', 'hex');
  const c = capture('n1/eth0', [[1n, tcpFrame('172.30.0.10', '172.30.0.11', 40000, AUTH_PORT, PSH_ACK, hello)], [2n, tcpFrame('10.244.0.2', '10.244.1.2', 1, 2, PSH_ACK, Buffer.from('hi'))]]);
  c.packets[1]!.comments.push('DROPPED: x');
  const file = join(tmp, 'profile.pcapng');
  await writeFile(file, writeCapture(c));
  const env = { WIRESHARK_CONFIG_DIR: conf };
  const plain = await execa('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.protocols'], { env });
  t.notMatch(plain.stdout.split('\n')[0], /tls/, 'without the profile: not TLS');
  const prof = await execa('tshark', ['--color', '-C', 'mtless-lab', '-r', file, '-T', 'fields', '-e', 'frame.protocols', '-e', 'frame.coloring_rule.name'], { env });
  t.notMatch(prof.stderr, /Could not compile|Warn|error/i, 'every colour rule compiles');
  const [first, second] = prof.stdout.split('\n');
  t.match(first, /:tls\t/, 'decode_as_entries: tcp/4250 is TLS');
  t.match(second, /mtless: dropped by the datapath/, 'the drop colour rule applies');
  const buttons = (await readFile(join(conf, 'profiles', 'mtless-lab', 'dfilter_buttons'), 'utf8'))
    .split('\n').filter((l) => l.startsWith('"')).map((l) => JSON.parse(`[${l.replace(/\\x22/g, '\\"')}]`)[2] as string);
  t.ok(buttons.length >= 5);
  const counts = await tsharkCounts(file, buttons); // throws, naming the filter, if one does not compile
  t.equal(counts[0], 1, 'the "Drops" button finds the commented packet');
});

t.test('sharkd counts as tshark does, and a filter\'s answer never carries over to the next file', { skip: noTools }, async (t) => {
  const saved = process.env.MTLAB_DISSECT;
  t.teardown(() => {
    if (saved === undefined) delete process.env.MTLAB_DISSECT;
    else process.env.MTLAB_DISSECT = saved;
  });
  const { file } = await sampleFile();
  const syn = tcpFrame('10.244.0.2', '10.244.1.2', 1, AUTH_PORT, SYN);
  const other = join(tmp, 'other.pcapng');
  await writeFile(other, writeCapture(capture('x', [[5n, syn], [6n, syn], [7n, syn]])));
  const filters = ['tcp', 'tcp.flags.syn == 1', plaintextFilter('secret-xyz'), 'tcp.port in {8080, 1}', `tcp.port == ${AUTH_PORT}`, 'frame.interface_name == "fabric/underlay"'];
  const expected = { file: [4, 3, 1, 4, 0, 2], other: [3, 3, 0, 3, 3, 0] };
  process.env.MTLAB_DISSECT = 'tshark';
  const fieldsSeen = (await frames(file, 'tcp', ['frame.time_epoch'])).map((r) => r['frame.time_epoch']!);
  t.equal(fieldsSeen.length, 4);
  // Fields whose column shows a name (booleans "Set"/"Not set", ip.proto "TCP"), turned back into tshark's numbers.
  const NAMED = ['frame.number', 'ip.proto', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.flags.fin', 'tcp.flags.reset'];
  const named = await frames(file, 'tcp', NAMED);
  t.same(named.map((r) => r['ip.proto']), ['6', '6', '6', '6'], 'tshark: ip.proto as a number');
  t.ok(named.every((r) => ['0', '1'].includes(r['tcp.flags.syn']!)), 'tshark: flags as 1/0');
  for (const engine of ['tshark', 'sharkd', 'both'] as const) {
    process.env.MTLAB_DISSECT = engine;
    // The same filter text on two files in turn: sharkd 4.0 caches a filter's answer by its text, across loads.
    t.same(await tsharkCounts(file, filters), expected.file, `${engine}: the merged sample`);
    t.same(await tsharkCounts(other, filters), expected.other, `${engine}: then another file, same filters`);
    t.same(await tsharkCounts(file, filters, { tlsPort: AUTH_PORT }), expected.file, `${engine}: with a decode-as rule`);
    await t.rejects(tsharkCounts(file, ['tcp &&& udp']), /tshark/, `${engine}: a bad filter is tshark's error`);
    // Fields sharkd's columns give exactly (numbers, addresses, times, link names), and one they do not (a flag): both as tshark gives them.
    t.same(await frames(file, 'tcp', ['frame.number', 'frame.time_epoch', 'ip.src', 'tcp.srcport', 'tcp.len', 'frame.interface_name']), [1, 2, 3, 4].map((n) => ({
      'frame.number': String(n), 'frame.time_epoch': fieldsSeen[n - 1]!, 'ip.src': '10.244.0.2', 'tcp.srcport': '40000', 'tcp.len': n === 4 ? '10' : '0',
      'frame.interface_name': n === 1 || n === 3 ? 'n1/lxc-client' : 'fabric/underlay',
    })), `${engine}: fields`);
    t.same((await frames(file, 'tcp.len > 0', ['frame.number', 'tcp.flags.push'])), [{ 'frame.number': '4', 'tcp.flags.push': '1' }], `${engine}: a flag`);
    t.same(await frames(file, 'tcp', NAMED), named, `${engine}: flags and ip.proto as tshark prints them`);
  }
  process.env.MTLAB_DISSECT = 'bogus';
  await t.rejects(tsharkCounts(file, ['tcp']), /MTLAB_DISSECT=bogus: expected sharkd, tshark or both/);
});

// The lab's Wireshark profile and what stands in for it, on hand-built
// frames read by the real tshark: without the profile TCP 4250 is GSM over IP
// and UDP 8472 plain UDP; with it (installed in a temporary HOME, as a user
// would) or with its -d/-o equivalents, 4250 and 15008 are TLS, 8472 is
// VXLAN with its VNI, 51871 WireGuard. Also: where Wireshark looks for it,
// installing, exporting (folder, tar), and the pure parts of the secrets and
// drop comments every capture file carries.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { execa } from 'execa';
import {
  columnPreference, decodeAsArgs, decodeAsEntriesText, exportProfile, installProfile, isLabProfile, LAB_DECODE_AS, PROFILE_FILES, PROFILE_HINT,
  PROFILE_NAME, PROFILE_SOURCE, profileArgs, profileDir, profileMatches, profileTar, uninstallProfile, viewerArgv, wiresharkConfigDir,
} from '../../lab/capture/profile.ts';
import { countTlsHandshakes, describeWgKeys, wgKeyLogKeys } from '../../lab/capture/secrets.ts';
import { dropEventOfFlow, dropLinks } from '../../lab/capture/drops.ts';
import { LINKTYPE_ETHERNET, writeCapture } from '../../lab/capture/pcapng.ts';
import { AUTH_PORT, DROP_POLICY, HBONE_PORT, OBS_FROM_ENDPOINT, OBS_FROM_OVERLAY, OBS_TO_ENDPOINT, VERDICT_DROPPED, VXLAN_PORT, WG_PORT, type FlowEvent } from '../../lab/abi/generated.ts';
import type { LabState } from '../../lab/core/state.ts';
import { wgIfname } from '../../lab/core/names.ts';

// ---- frames -----------------------------------------------------------------------------

const ip4 = (a: string) => Buffer.from(a.split('.').map(Number));
const eth = () => Buffer.from('0a00000000020a00000000010800', 'hex');
function ipv4(src: string, dst: string, proto: number, l4: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + l4.length, 2); ip[8] = 64; ip[9] = proto;
  ip4(src).copy(ip, 12); ip4(dst).copy(ip, 16);
  return Buffer.concat([ip, l4]);
}
function tcp(sport: number, dport: number, flags: number, payload = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0); h.writeUInt16BE(dport, 2); h.writeUInt32BE(1, 4); h[12] = 0x50; h[13] = flags; h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, payload]);
}
function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0); h.writeUInt16BE(dport, 2); h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}
const PSH_ACK = 0x18;
const SYN = 0x02;
/** A TLS record: handshake, ClientHello (truncated, enough for the dissector to say "tls"). */
const CLIENT_HELLO = Buffer.from('16030100050100000100', 'hex');
const VNI = 258;
const vxlan = (vni: number, inner: Buffer) => Buffer.concat([Buffer.from([0x08, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]), inner]);
/** A WireGuard handshake initiation: type 1, 148 bytes. */
const wgInitiation = () => { const b = Buffer.alloc(148); b[0] = 1; return b; };

const FRAMES = [
  Buffer.concat([eth(), ipv4('172.30.0.10', '172.30.0.11', 6, tcp(40000, AUTH_PORT, PSH_ACK, CLIENT_HELLO))]),
  Buffer.concat([eth(), ipv4('172.30.0.10', '172.30.0.11', 6, tcp(40001, HBONE_PORT, PSH_ACK, CLIENT_HELLO))]),
  Buffer.concat([eth(), ipv4('172.30.0.10', '172.30.0.11', 17, udp(50000, VXLAN_PORT, vxlan(VNI, Buffer.concat([eth(), ipv4('10.244.0.2', '10.244.1.2', 6, tcp(40002, 8080, SYN))]))))]),
  Buffer.concat([eth(), ipv4('172.30.0.10', '172.30.0.11', 17, udp(WG_PORT, WG_PORT, wgInitiation()))]),
];

const haveTshark = await execa('tshark', ['--version'], { reject: false }).then((r) => r.exitCode === 0, () => false);
const noTools: string | false = haveTshark ? false : 'needs tshark (Debian: tshark)';
const tmp = await mkdtemp(join(tmpdir(), 'capture-profile-'));
t.teardown(() => rm(tmp, { recursive: true, force: true }));

async function sampleFile(): Promise<string> {
  const file = join(tmp, 'ports.pcapng');
  await writeFile(file, writeCapture({
    comments: [], secrets: [], skippedBlocks: 0,
    interfaces: [{ linkType: LINKTYPE_ETHERNET, snapLen: 65535, name: 'fabric/underlay', options: [] }],
    packets: FRAMES.map((data, i) => ({ interfaceId: 0, timestampNs: BigInt(i + 1) * 1_000_000n, originalLength: data.length, data, comments: [], options: [] })),
  }));
  return file;
}

/** frame.protocols and vxlan.vni of each frame, as tshark reads the file with `args`. */
async function dissect(file: string, args: string[], env: Record<string, string>): Promise<string[][]> {
  const r = await execa('tshark', [...args, '-r', file, '-T', 'fields', '-e', 'frame.protocols', '-e', 'vxlan.vni'], { env: { ...process.env, ...env } });
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

// ---- the profile in Wireshark ---------------------------------------------------------------

t.test('decode_as_entries in the checkout is the one the code describes (ports from lab/abi)', async (t) => {
  t.equal(await readFile(join(PROFILE_SOURCE, 'decode_as_entries'), 'utf8'), decodeAsEntriesText(), 'regenerate with decodeAsEntriesText() when a port changes');
  t.same(LAB_DECODE_AS.map((d) => d.port), [AUTH_PORT, HBONE_PORT, VXLAN_PORT, WG_PORT]);
  t.same(decodeAsArgs(), ['-d', `tcp.port==${AUTH_PORT},tls`, '-d', `tcp.port==${HBONE_PORT},tls`, '-d', `udp.port==${VXLAN_PORT},vxlan`, '-d', `udp.port==${WG_PORT},wg`]);
  t.match(PROFILE_HINT, new RegExp(`tcp/${AUTH_PORT} as TLS.*udp/${VXLAN_PORT} as VXLAN.*GSM over IP`));
});

t.test('without the profile Wireshark 4.0 gets the lab\'s ports wrong', { skip: noTools }, async (t) => {
  const file = await sampleFile();
  const home = join(tmp, 'empty-home');
  await mkdir(home, { recursive: true });
  const rows = await dissect(file, [], { HOME: home });
  t.match(rows[0]![0], /:gsm_ipa/, `tcp/${AUTH_PORT} is GSM over IP`);
  t.notMatch(rows[0]![0], /:tls/);
  t.notMatch(rows[2]![0], /vxlan/, `udp/${VXLAN_PORT} is plain UDP`);
  t.equal(rows[2]![1], '', 'so no VNI');
});

t.test('the profile installed in a HOME: tshark -C mtless-lab decodes every lab port', { skip: noTools }, async (t) => {
  const file = await sampleFile();
  const home = join(tmp, 'home');
  const conf = await wiresharkConfigDir({ HOME: home }, home);
  t.equal(conf, join(home, '.config', 'wireshark'), 'a fresh HOME: the XDG folder');
  const r = await installProfile(conf);
  t.same(r, { dir: join(home, '.config/wireshark/profiles', PROFILE_NAME), changed: true });
  t.same(await installProfile(conf), { dir: r.dir, changed: false }, 'a second install changes nothing');
  await writeFile(join(r.dir, 'recent'), '# Wireshark\'s own file\n');
  const rows = await dissect(file, ['-C', PROFILE_NAME], { HOME: home });
  t.match(rows[0]![0], /:tcp:tls$/, `tcp/${AUTH_PORT}: TLS`);
  t.match(rows[1]![0], /:tcp:tls$/, `tcp/${HBONE_PORT}: TLS`);
  t.match(rows[2]![0], /:udp:vxlan:eth:ethertype:ip:tcp$/, `udp/${VXLAN_PORT}: VXLAN, and the pod packet inside`);
  t.equal(rows[2]![1], String(VNI), 'the VNI (the source identity) is decoded');
  t.match(rows[3]![0], /:udp:wg$/, `udp/${WG_PORT}: WireGuard`);

  const args = await profileArgs({ HOME: home, PATH: process.env.PATH });
  t.same(args, { args: ['-C', PROFILE_NAME], installed: true, dir: r.dir }, 'profileArgs: -C when installed and current');
  await writeFile(join(r.dir, 'colorfilters'), '# an older copy\n');
  t.equal((await profileArgs({ HOME: home })).installed, false, 'an older copy is not used');
  t.equal((await installProfile(conf)).changed, true, 'and an install brings it up to date');
  t.equal(await readFile(join(r.dir, 'recent'), 'utf8'), '# Wireshark\'s own file\n', 'Wireshark\'s own files stay');

  t.equal(await uninstallProfile(conf), 'removed');
  t.equal(await uninstallProfile(conf), 'absent');
  await mkdir(r.dir, { recursive: true });
  await writeFile(join(r.dir, 'decode_as_entries'), 'decode_as_entry: tcp.port,1,(none),TLS\n');
  t.equal(await isLabProfile(r.dir), false);
  t.equal(await uninstallProfile(conf), 'not ours', 'a user\'s own profile of that name is left alone');
  t.ok(await stat(r.dir).then(() => true, () => false));
});

t.test('not installed: the -d/-o stand-ins decode the same, columns included', { skip: noTools }, async (t) => {
  const file = await sampleFile();
  const home = join(tmp, 'bare-home');
  await mkdir(home, { recursive: true });
  const p = await profileArgs({ HOME: home });
  t.equal(p.installed, false);
  t.same(p.args.slice(0, 8), decodeAsArgs());
  t.same(p.args.slice(8), ['-o', await columnPreference()]);
  const rows = await dissect(file, p.args, { HOME: home });
  t.same(rows.map((r) => r[0]!.split(':').slice(-1)[0]), ['tls', 'tls', 'tcp', 'wg'], 'TLS, TLS, VXLAN (the inner TCP last), WireGuard');
  t.equal(rows[2]![1], String(VNI));
  const text = await execa('tshark', [...p.args, '-r', file], { env: { ...process.env, HOME: home } });
  t.match(text.stdout.split('\n')[0], /^\s*1 \S+ fabric\/underlay /, 'the Link column is there, as in the profile');
  const v = await viewerArgv('tshark', file, ['-c', '1'], { HOME: home });
  t.same(v.argv, ['tshark', ...p.args, '-r', file, '-c', '1']);
  await t.rejects(viewerArgv('tshark', join(tmp, 'nope.pcapng'), []), /no such file/);
});

t.test('an install for another user (sudo): the files and every folder it made are theirs', { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' }, async (t) => {
  const home = join(tmp, 'someone');
  await mkdir(home);
  const owner = { uid: 65534, gid: 65534 };
  const r = await installProfile(join(home, '.config', 'wireshark'), owner);
  for (const p of ['.config', '.config/wireshark', '.config/wireshark/profiles', `.config/wireshark/profiles/${PROFILE_NAME}`, ...PROFILE_FILES.map((f) => `.config/wireshark/profiles/${PROFILE_NAME}/${f}`)]) {
    const st = await stat(join(home, p));
    t.same([st.uid, st.gid], [owner.uid, owner.gid], `${p}: theirs`);
  }
  t.equal((await stat(home)).uid, 0, 'a folder that was there already is left alone');
  t.equal((await stat(join(r.dir, 'preferences'))).mode & 0o777, 0o644);
});

t.test('where Wireshark looks: WIRESHARK_CONFIG_DIR, XDG, ~/.wireshark when only that exists', async (t) => {
  const home = join(tmp, 'lookup');
  await mkdir(join(home, '.wireshark'), { recursive: true });
  t.equal(await wiresharkConfigDir({ HOME: home }, home), join(home, '.wireshark'), 'only ~/.wireshark: that one');
  await mkdir(join(home, '.config', 'wireshark'), { recursive: true });
  t.equal(await wiresharkConfigDir({ HOME: home }, home), join(home, '.config', 'wireshark'), 'the XDG folder wins once it exists');
  t.equal(await wiresharkConfigDir({ HOME: home, XDG_CONFIG_HOME: join(home, 'x') }, home), join(home, '.wireshark'), 'XDG_CONFIG_HOME/wireshark missing: ~/.wireshark still');
  const fresh = join(tmp, 'lookup-fresh');
  t.equal(await wiresharkConfigDir({ HOME: fresh, XDG_CONFIG_HOME: join(fresh, 'x') }, fresh), join(fresh, 'x', 'wireshark'), 'neither there: XDG_CONFIG_HOME/wireshark');
  t.equal(await wiresharkConfigDir({ HOME: home, WIRESHARK_CONFIG_DIR: '/elsewhere' }, home), '/elsewhere');
  t.equal(profileDir('/c'), `/c/profiles/${PROFILE_NAME}`);
});

t.test('export: a folder to copy, or a tar that tar unpacks into a working profile', { skip: noTools }, async (t) => {
  const out = join(tmp, 'export');
  const r = await exportProfile(out);
  t.equal(r.dir, join(out, PROFILE_NAME));
  t.ok(await profileMatches(r.dir));
  const into = join(tmp, 'untar', 'profiles');
  await mkdir(into, { recursive: true });
  await execa('tar', ['-x', '-C', into], { input: await profileTar() });
  t.ok(await profileMatches(join(into, PROFILE_NAME)), 'every file, byte for byte');
  const listing = await execa('tar', ['-t'], { input: await profileTar() });
  t.same(listing.stdout.split('\n'), [`${PROFILE_NAME}/`, ...PROFILE_FILES.map((f) => `${PROFILE_NAME}/${f}`)]);
  const rows = await dissect(await sampleFile(), ['-C', PROFILE_NAME], { WIRESHARK_CONFIG_DIR: join(tmp, 'untar') });
  t.match(rows[0]![0], /:tls$/, 'the unpacked profile works');
});

// ---- secrets and drops (pure) --------------------------------------------------------------------

t.test('key logs: handshakes counted, WireGuard keys named by node, never printed', async (t) => {
  const tls = [
    'CLIENT_HANDSHAKE_TRAFFIC_SECRET aa11 01', 'SERVER_HANDSHAKE_TRAFFIC_SECRET aa11 02', 'CLIENT_TRAFFIC_SECRET_0 aa11 03',
    'CLIENT_HANDSHAKE_TRAFFIC_SECRET BB22 04', 'CLIENT_RANDOM cc33 05', '# comment', '',
  ].join('\n');
  t.equal(countTlsHandshakes(tls), 3, 'TLS 1.3 (by client random, once) and TLS 1.2');
  const wg = 'LOCAL_STATIC_PRIVATE_KEY = AAAA=\nLOCAL_STATIC_PRIVATE_KEY = BBBB=\nLOCAL_STATIC_PRIVATE_KEY = CCCC=\n';
  t.same(wgKeyLogKeys(wg), ['AAAA=', 'BBBB=', 'CCCC=']);
  const lines = describeWgKeys(wg, [
    { node: 'n2', privateKey: 'BBBB=', publicKey: 'pub2=', ifname: 'wg2', endpoint: '172.30.0.11:51871' },
    { node: 'n1', privateKey: 'AAAA=', publicKey: 'pub1=' },
  ]);
  t.same(lines, ['key 1 = node n1 (public key pub1=)', 'key 2 = node n2 (public key pub2=, device wg2, 172.30.0.11:51871)', 'key 3 = no node of this lab']);
  t.notMatch(lines.join(' '), /AAAA|BBBB|CCCC/, 'no private key in a comment');
});

const state: LabState = {
  lab: 'u', phase: 'up', createdAt: '', podRange: '10.244.0.0/16', netns: [], processes: [],
  nodes: [
    { name: 'n1', id: 1, netns: 'mtl_u_n_n1', underlayIp: '172.30.0.10', mgmtIp: '172.31.0.10', podCidr: '10.244.0.0/24' },
    { name: 'n2', id: 2, netns: 'mtl_u_n_n2', underlayIp: '172.30.0.11', mgmtIp: '172.31.0.11', podCidr: '10.244.1.0/24' },
  ],
  pods: [
    { name: 'client', node: 'n1', netns: 'mtl_u_p_client', ip: '10.244.0.2', lxc: 'lxc-client', labels: {} },
    { name: 'local', node: 'n1', netns: 'mtl_u_p_local', ip: '10.244.0.3', lxc: 'lxc-local', labels: {} },
    { name: 'a-very-long-pod-name', node: 'n2', netns: 'mtl_u_p_a-very-long-pod-name', ip: '10.244.1.2', lxc: 'lxc5f0e2d1c9a3b', labels: {} },
  ],
};

const flow = (over: Partial<FlowEvent>): FlowEvent => ({
  timestamp: 1_763_800_000_123_456_789n, srcIdentity: 256, dstIdentity: 257, saddr: '10.244.0.2', daddr: '10.244.1.2', sport: 40000, dport: 8080,
  protocol: 6, tcpFlags: SYN, verdict: VERDICT_DROPPED, dropReason: 189, obsPoint: OBS_TO_ENDPOINT, authType: 0, remoteNodeId: 1, ifindex: 3, pktLen: 74,
  ...over,
} as FlowEvent);

t.test('a drop is commented where the packet was seen last, on a link that was captured', async (t) => {
  const crossNode = flow({});
  const wg2 = `n2/${wgIfname('u', 'n2')}`;
  t.same(dropLinks(crossNode, 'n2', state), ['fabric/underlay', 'n2/eth0', wg2, 'n1/eth0', 'n1/lxc-client'],
    'to-container from another node: where it was seen last, never on the destination veth; decrypted on the WireGuard device');
  const e = dropEventOfFlow(crossNode, 'n2', state);
  t.same(e, {
    time: new Date(1_763_800_000_123), src: '10.244.0.2', dst: '10.244.1.2', sport: 40000, dport: 8080, proto: 'tcp',
    comment: 'Authentication required (189) at n2/to-container of a-very-long-pod-name', ifaces: dropLinks(crossNode, 'n2', state),
  }, 'dated by the kernel, named by the pod');
  t.same(dropEventOfFlow(crossNode, 'n2', state, ['n2/lxc-a-very-long-pod-name', 'n1/lxc-client', 'fabric/underlay']).ifaces, ['fabric/underlay', 'n1/lxc-client'],
    'only captured links, in order');
  t.equal(dropEventOfFlow(crossNode, 'n2', state, ['mgmt']).ifaces, undefined, 'none captured: any link may match');

  const sameNode = flow({ saddr: '10.244.0.3', daddr: '10.244.0.2' });
  t.same(dropLinks(sameNode, 'n1', state), ['n1/lxc-local'], 'same node: the sender\'s veth');
  const leaving = flow({ obsPoint: OBS_FROM_ENDPOINT, dropReason: DROP_POLICY });
  t.same(dropLinks(leaving, 'n1', state), ['n1/lxc-client'], 'leaving a pod: its veth sees it before tc');
  t.match(dropEventOfFlow(leaving, 'n1', state).comment, /\(133\) at n1\/from-container of client$/);
  const longName = flow({ saddr: '10.244.1.2', daddr: '10.244.0.2', obsPoint: OBS_FROM_ENDPOINT });
  t.same(dropLinks(longName, 'n2', state), ['n2/lxc-a-very-long-pod-name'], 'the link name, not the hashed device');
  const overlay = flow({ obsPoint: OBS_FROM_OVERLAY });
  t.same(dropLinks(overlay, 'n2', state), ['fabric/underlay', 'n2/eth0', wg2]);
  t.match(dropEventOfFlow(overlay, 'n2', state).comment, /at n2\/from-overlay/);
});

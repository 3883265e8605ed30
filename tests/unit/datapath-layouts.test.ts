// The one layout table, its generated C and TS, and Cilium's numbers.
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import t from 'tap';
import { computeAll, computeLayout, GENERATED_FILES, renderAll, REPO_ROOT } from '../../scripts/gen-layouts.ts';
import * as gen from '../../lab/abi/generated.ts';
import { CONSTANT_GROUPS, MAPS, OBJECTS, SOCKMAP, STRICT, STRUCTS, WIRE_CONSTANTS } from '../../lab/abi/layouts.ts';

const ALL_GROUPS = [...OBJECTS.flatMap((o) => o.constants), ...WIRE_CONSTANTS];

t.test('committed generated files match the table', async (t) => {
  const rendered = renderAll();
  for (const [kind, rel] of Object.entries(GENERATED_FILES) as [keyof typeof GENERATED_FILES, string][]) {
    const committed = await readFile(`${REPO_ROOT}${rel}`, 'utf8');
    t.equal(committed, rendered[kind], `${rel} is up to date (else run: npx tsx scripts/gen-layouts.ts)`);
    t.match(committed, /GENERATED .* DO NOT EDIT/, `${rel} says it is generated`);
  }
});

t.test('struct sizes', async (t) => {
  const layouts = computeAll();
  const expected: Record<string, number> = {
    auth_key: 12, // Cilium's exact key
    auth_info: 8,
    ipcache_key: 24,
    remote_endpoint_info: 24,
    node_key: 20,
    node_value: 4,
    signal_msg: 16,
    endpoint_key: 4,
    policy_key: 12,
    ct4_key: 16,
  };
  for (const [name, size] of Object.entries(expected)) t.equal(layouts.get(name)?.size, size, `struct ${name}`);
  // The generated TS agrees.
  t.equal(gen.AUTH_KEY_SIZE, 12);
  t.equal(gen.SIGNAL_MSG_SIZE, 16);
  t.equal(gen.FLOW_EVENT_SIZE, layouts.get('flow_event')?.size);
  // Every size is asserted in C too.
  const header = renderAll().c;
  for (const s of STRUCTS) t.match(header, `_Static_assert(sizeof(struct ${s.name}) == ${s.size}`);
});

t.test('auth_key field offsets are Cilium\'s', async (t) => {
  const layout = computeAll().get('auth_key')!;
  t.same(
    layout.fields.map((f) => [f.name, f.offset, f.size]),
    [['local_sec_label', 0, 4], ['remote_sec_label', 4, 4], ['remote_node_id', 8, 2], ['auth_type', 10, 1], ['pad', 11, 1]],
  );
  // Little-endian, as the BPF side on x86 and arm64 sees it.
  const bytes = gen.encodeAuthKey({ localSecLabel: 0x0102, remoteSecLabel: 257, remoteNodeId: 2, authType: 1 });
  t.same([...bytes], [0x02, 0x01, 0, 0, 0x01, 0x01, 0, 0, 2, 0, 1, 0]);
});

t.test('Cilium\'s numbers, never renumbered', async (t) => {
  t.equal(gen.DROP_POLICY, 133);
  t.equal(gen.DROP_INVALID, 134);
  t.equal(gen.DROP_UNKNOWN_L3, 139);
  t.equal(gen.DROP_POLICY_DENY, 181);
  t.equal(gen.DROP_POLICY_AUTH_REQUIRED, 189);
  t.equal(gen.DROP_UNENCRYPTED_TRAFFIC, 195);
  t.equal(gen.DROP_NO_NODE_ID, 197);
  t.equal(gen.DROP_REASON_TEXT[189], 'Authentication required');
  t.equal(gen.DROP_REASON_TEXT[133], 'Policy denied');
  t.equal(gen.DROP_REASON_TEXT[197], 'No node ID found');
  t.equal(gen.DROP_REASON_TEXT[195], 'Traffic is unencrypted');
  t.same([gen.SIGNAL_NAT_FILL_UP, gen.SIGNAL_CT_FILL_UP, gen.SIGNAL_AUTH_REQUIRED], [0, 1, 2]);
  t.same([gen.AUTH_TYPE_DISABLED, gen.AUTH_TYPE_SPIRE, gen.AUTH_TYPE_ALWAYS_FAIL], [0, 1, 2]);
  t.same(
    [gen.IDENTITY_HOST, gen.IDENTITY_WORLD, gen.IDENTITY_UNMANAGED, gen.IDENTITY_HEALTH, gen.IDENTITY_INIT, gen.IDENTITY_REMOTE_NODE],
    [1, 2, 3, 4, 5, 6],
  );
  t.equal(gen.IDENTITY_MIN_CLUSTER, 256);
  t.same([gen.VERDICT_FORWARDED, gen.VERDICT_DROPPED], [1, 2]);
  t.same([gen.OBS_TO_ENDPOINT, gen.OBS_FROM_ENDPOINT], [0, 5]);
  // C carries drop reasons negative, as Cilium's helpers return them.
  t.match(renderAll().c, /#define DROP_POLICY_AUTH_REQUIRED\s+\(-189\)/);
});

t.test('no code is defined twice within a group', async (t) => {
  for (const group of ALL_GROUPS) {
    const names = group.constants.map((c) => c.name);
    t.equal(new Set(names).size, names.length, `${group.name}: unique names`);
    if (group.name.endsWith('_TEXT')) {
      const values = group.constants.map((c) => c.value);
      t.equal(new Set(values).size, values.length, `${group.name}: unique values`);
    }
  }
});

t.test('every name is defined once across objects and the wire (C macros share one namespace)', async (t) => {
  const names = ALL_GROUPS.flatMap((g) => g.constants.map((c) => c.name));
  t.same(names.filter((n, i) => names.indexOf(n) !== i), [], 'constants');
  const structs = OBJECTS.flatMap((o) => o.structs.map((s) => s.name));
  t.same(structs.filter((n, i) => structs.indexOf(n) !== i), [], 'structs');
  const maps = OBJECTS.flatMap((o) => o.maps.map((m) => m.name));
  t.same(maps.filter((n, i) => maps.indexOf(n) !== i), [], 'maps');
  t.equal(CONSTANT_GROUPS, OBJECTS[0]!.constants, 'the datapath is the first object');
});

t.test('the wire\'s numbers', async (t) => {
  // Cilium's ports (and ztunnel's), the IANA protocol numbers.
  t.same([gen.AUTH_PORT, gen.VXLAN_PORT, gen.WG_PORT, gen.HBONE_PORT], [4250, 8472, 51871, 15008]);
  t.equal(gen.VXLAN_VNI_MASK, 0xffffff, 'a VNI is 24 bits');
  t.same([gen.IPPROTO_ICMP, gen.IPPROTO_TCP, gen.IPPROTO_UDP], [1, 6, 17]);
  t.ok(gen.IDENTITY_MIN_CLUSTER <= gen.VXLAN_VNI_MASK && (gen.IDENTITY_LOCAL_FLAG & gen.VXLAN_VNI_MASK) === 0, 'cluster identities fit the VNI, node-local ones do not');
  t.ok(gen.MESH_OUTBOUND_PORT_BASE > gen.HBONE_PORT, 'the mesh\'s outbound ports start above HBONE');
  const header = renderAll().c;
  t.match(header, /#define VXLAN_VNI_MASK\s+0xffffff/);
  t.match(header, /#define AUTH_PORT\s+4250/);
  // The kernel's headers own IPPROTO_*: the C asserts them instead of redefining them.
  t.match(header, '#include <linux/in.h>');
  t.match(header, '_Static_assert(IPPROTO_TCP == 6,');
  t.notMatch(header, /#define IPPROTO_/);
});

t.test('sockmap: structs, slots, maps and programs', async (t) => {
  const layouts = computeAll();
  t.same(
    layouts.get('sock_key')!.fields.map((f) => [f.name, f.offset, f.size]),
    [['netns_cookie', 0, 8], ['sip4', 8, 4], ['dip4', 12, 4], ['sport', 16, 2], ['dport', 18, 2], ['family', 20, 1], ['pad', 21, 3]],
  );
  t.same(gen.SOCK_KEY_LAYOUT, { size: 24, fields: { netns_cookie: 0, sip4: 8, dip4: 12, sport: 16, dport: 18, family: 20, pad: 21 } });
  t.same([gen.SOCKMAP_POD_SIZE, gen.SOCKMAP_METRIC_SIZE], [8, 16]);
  // Ports as the socket holds them: network byte order.
  const key: gen.SockKey = { netnsCookie: 0x0102n, sip4: '10.244.0.2', dip4: '10.244.0.3', sport: 7070, dport: 40000, family: gen.SOCK_KEY_FAMILY_IPV4 };
  const bytes = gen.encodeSockKey(key);
  t.same([...bytes.subarray(16, 20)], [0x1b, 0x9e, 0x9c, 0x40], 'sport 7070 and dport 40000 big-endian');
  t.same([...bytes.subarray(8, 12)], [10, 244, 0, 2]);
  t.same(gen.decodeSockKey(bytes), key);
  t.same(gen.SOCKMAP_MAP_CODECS.sockmap_pods.key.encode('10.244.0.2'), Buffer.from([10, 244, 0, 2]), 'sockmap_pods is keyed by the be32 address');
  const slots = [gen.SOCKMAP_MSG_REDIRECTED, gen.SOCKMAP_MSG_PASSED, gen.SOCKMAP_SOCK_ADDED, gen.SOCKMAP_SOCK_SKIPPED, gen.SOCKMAP_SOCK_ADD_FAILED, gen.SOCKMAP_SOCK_NETNS_MISMATCH];
  t.same(slots, [0, 1, 2, 3, 4, 5]);
  t.equal(gen.SOCKMAP_METRICS_MAX, slots.length);
  t.equal(gen.SOCKMAP_MAP_SPECS.sockmap_metrics.maxEntries, gen.SOCKMAP_METRICS_MAX, 'one array slot per metric');
  t.same(gen.SOCKMAP_MAPS, { sockhash: 'cilium_sock_ops', pods: 'sockmap_pods', metrics: 'sockmap_metrics' });
  t.same(gen.SOCKMAP_PROGRAMS, { sockOps: 'cil_sock_ops', skMsg: 'cil_sk_msg' });
  t.equal(gen.SOCKMAP_MAP_CODECS.cilium_sock_ops.value.size, 8, 'the sockhash value is a u64 (the socket cookie)');
  // The generated header defines every map of the object, with the table's names.
  const header = renderAll().sockmapC;
  for (const m of SOCKMAP.maps) t.match(header, `} ${m.name} SEC(".maps");`, `defines ${m.name}`);
  t.match(header, /__type\(key, struct sock_key\);\n\t__type\(value, __u64\);/);
  t.match(header, 'BPF_MAP_TYPE_PERCPU_ARRAY');
  t.match(header, '#define SOCKMAP_METRICS_MAX_ENTRIES 6');
});

t.test('strict mode: its config map', async (t) => {
  t.same(gen.STRICT_CONFIG_LAYOUT, { size: 8, fields: { net: 0, mask: 4 } });
  t.same([...gen.encodeStrictConfig({ net: '10.244.0.0', mask: '255.255.0.0' })], [10, 244, 0, 0, 255, 255, 0, 0], 'network byte order');
  t.same(gen.STRICT_MAPS, { config: 'strict_config' });
  t.same(gen.STRICT_MAP_SPECS.strict_config, { type: 'array', maxEntries: 1, flags: [] });
  t.same(gen.STRICT_PROGRAMS, { toNetdev: 'cil_to_netdev_strict' });
  const header = renderAll().strictC;
  for (const m of STRICT.maps) t.match(header, `} ${m.name} SEC(".maps");`);
  t.same(gen.OVERLAY_PROGRAMS, { toOverlay: 'cil_to_overlay', fromOverlay: 'cil_from_overlay' });
});

const multiarch = await execa('clang', ['-print-multiarch'], { reject: false }).then((r) => (r.exitCode === 0 ? r.stdout.trim() : undefined), () => undefined);

t.test('bpf/Makefile lists every header each object includes', { skip: multiarch === undefined ? 'needs clang' : false }, async (t) => {
  // -p prints make's database (every rule with its prerequisites expanded), -q builds nothing.
  const make = await execa('make', ['-C', `${REPO_ROOT}bpf`, '-pq'], { reject: false });
  const prereqs = (object: string) => {
    const line = make.stdout.split('\n').find((l) => l.startsWith(`build/${object}.o:`)) ?? '';
    return line.replace(/^[^:]+:/, '').split('|')[0]!.trim().split(/\s+/).filter((p) => p.endsWith('.h')).sort();
  };
  for (const o of OBJECTS) {
    const deps = await execa('clang', ['-MM', '-target', 'bpf', `-I/usr/include/${multiarch}`, `${o.name}.c`], { cwd: `${REPO_ROOT}bpf` });
    const local = deps.stdout.replace(/\\\n/g, ' ').replace(/^[^:]+:/, '').trim().split(/\s+/).filter((p) => p.endsWith('.h') && !p.startsWith('/')).sort();
    t.same(prereqs(o.name), local, `build/${o.name}.o`);
  }
});

t.test('codecs round-trip', async (t) => {
  const ev: gen.FlowEvent = {
    timestamp: 1_700_000_000_123_456_789n,
    srcIdentity: 256,
    dstIdentity: 257,
    saddr: '10.244.0.2',
    daddr: '10.244.1.2',
    sport: 43210,
    dport: 8080,
    protocol: 6,
    tcpFlags: gen.TCP_F_SYN,
    verdict: gen.VERDICT_DROPPED,
    dropReason: 189,
    obsPoint: gen.OBS_FROM_ENDPOINT,
    authType: 1,
    remoteNodeId: 2,
    ifindex: 7,
    pktLen: 74,
    ctStatus: gen.CT_NEW,
  };
  const bytes = gen.encodeFlowEvent(ev);
  t.equal(bytes.length, gen.FLOW_EVENT_SIZE);
  // Perf records arrive padded: trailing bytes are ignored.
  t.same(gen.decodeFlowEvent(Buffer.concat([bytes, Buffer.alloc(4, 0xff)])), ev);
  // Addresses travel in network byte order.
  t.same([...bytes.subarray(16, 20)], [10, 244, 0, 2]);

  const sig: gen.SignalMsg = { signalNr: gen.SIGNAL_AUTH_REQUIRED, auth: { localSecLabel: 256, remoteSecLabel: 257, remoteNodeId: 2, authType: 1 } };
  t.same(gen.decodeSignalMsg(gen.encodeSignalMsg(sig)), sig);

  const ipc: gen.IpcacheKey = { prefixlen: 64, clusterId: 0, family: 1, ip: Buffer.from([10, 0, 0, 1, ...Array(12).fill(0)]) };
  t.same(gen.decodeIpcacheKey(gen.encodeIpcacheKey(ipc)), ipc);
  t.throws(() => gen.decodeAuthKey(Buffer.alloc(11)), /need 12 bytes/);
  t.throws(() => gen.encodeEndpointInfo({ secIdentity: 1, ipv4: '10.0.0', flags: 0 }), /not an IPv4 address/);
});

t.test('pad bytes are zeroed even in a reused buffer', async (t) => {
  const buf = Buffer.alloc(gen.AUTH_KEY_SIZE, 0xee);
  gen.encodeAuthKey({ localSecLabel: 1, remoteSecLabel: 2, remoteNodeId: 3, authType: 1 }, buf);
  t.equal(buf[11], 0, 'pad');
});

t.test('map codecs match the map table', async (t) => {
  const layouts = computeAll();
  const sizeOf = (type: string) => (type === 'u32' || type === 'ipv4' ? 4 : type === 'u64' ? 8 : layouts.get(type)!.size);
  const byObject: Record<string, Record<string, { key: gen.Codec<unknown>; value: gen.Codec<unknown> }>> = {
    datapath: gen.MAP_CODECS, strict: gen.STRICT_MAP_CODECS, sockmap: gen.SOCKMAP_MAP_CODECS,
  };
  for (const o of OBJECTS.filter((o) => o.maps.length)) {
    t.same(Object.keys(byObject[o.name] ?? {}), o.maps.map((m) => m.name), `${o.name}: every map has codecs`);
    for (const m of o.maps) {
      const codecs = byObject[o.name]![m.name]!;
      t.equal(codecs.key.size, sizeOf(m.key), `${m.name} key`);
      t.equal(codecs.value.size, sizeOf(m.value), `${m.name} value`);
    }
  }
  t.equal(MAPS, OBJECTS[0]!.maps);
  const auth = MAPS.find((m) => m.name === 'cilium_auth_map')!;
  t.equal(auth.type, 'hash');
  t.equal(auth.maxEntries, 512000);
  t.same(auth.flags, ['BPF_F_NO_PREALLOC']);
});

t.test('the generator refuses hidden padding and wrong sizes', async (t) => {
  t.throws(
    () => computeLayout({ name: 'holey', doc: '', size: 8, fields: [{ name: 'a', type: 'u8' }, { name: 'b', type: 'u32' }] }),
    /not 4-aligned; add an explicit pad/,
  );
  t.throws(
    () => computeLayout({ name: 'tail', doc: '', size: 5, fields: [{ name: 'a', type: 'u32' }, { name: 'b', type: 'u8' }] }),
    /not a multiple of its alignment/,
  );
  t.throws(() => computeLayout({ name: 'short', doc: '', size: 12, fields: [{ name: 'a', type: 'u64' }] }), /table says 12/);
});

t.test('the C header draws each struct', async (t) => {
  const header = renderAll().c;
  t.match(header, /\s+8 \|\s+remote_node_id\s+\|\s+auth_type\s+\|\s+pad\s+\|/, 'auth_key diagram row');
});

// The one layout table, its generated C and TS, and Cilium's numbers.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { computeAll, computeLayout, GENERATED_FILES, renderAll, REPO_ROOT } from '../../scripts/gen-layouts.ts';
import * as gen from '../../lab/abi/generated.ts';
import { CONSTANT_GROUPS, MAPS, STRUCTS } from '../../lab/abi/layouts.ts';

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
  for (const group of CONSTANT_GROUPS) {
    const names = group.constants.map((c) => c.name);
    t.equal(new Set(names).size, names.length, `${group.name}: unique names`);
    if (group.name.endsWith('_TEXT')) {
      const values = group.constants.map((c) => c.value);
      t.equal(new Set(values).size, values.length, `${group.name}: unique values`);
    }
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
  const sizeOf = (type: string) => (type === 'u32' ? 4 : type === 'u64' ? 8 : layouts.get(type)!.size);
  for (const m of MAPS) {
    const codecs = gen.MAP_CODECS[m.name as gen.MapName];
    t.ok(codecs, `${m.name} has codecs`);
    t.equal(codecs.key.size, sizeOf(m.key), `${m.name} key`);
    t.equal(codecs.value.size, sizeOf(m.value), `${m.name} value`);
  }
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

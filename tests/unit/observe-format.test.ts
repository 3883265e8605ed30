// Hubble's flow JSON and printer for the lab's events. The expected lines are
// written from hubble/pkg/printer/printer.go (compact: "%s%s: %s %s %s %s %s
// %s %s (%s)", time.StampMilli in UTC, Hostname's namespace/pod:port, the
// arrow rules, getSummary's "; AUTH"), not produced by this code. Pure.
import t from 'tap';
import * as gen from '../../lab/abi/generated.ts';
import { DROP_REASONS } from '../../lab/abi/layouts.ts';
import type { ClusterSnapshot } from '../../lab/control/registry.ts';
import { Directory } from '../../lab/observe/directory.ts';
import { authEvent, flowEvent, lostEvent, parseProtoTime, protoTime, type HubbleFlow, type ObservedEvent } from '../../lab/observe/hubble.ts';
import { compactFlow, fmtIdentity, hostname, Printer, stampMilli } from '../../lab/observe/printer.ts';

const ns = (iso: string, nanos = 0) => BigInt(Date.parse(iso)) * 1_000_000n + BigInt(nanos);
const labels = (app: string) => ({ app, 'io.kubernetes.pod.namespace': 'default', 'io.cilium.k8s.policy.serviceaccount': 'default' });

/** two-node-auth as the control plane publishes it. */
export const SNAPSHOT: ClusterSnapshot = {
  version: 1,
  nodes: [
    { name: 'n1', id: 1, underlayIp: '192.168.100.11', mgmtIp: '172.30.0.11', podCidr: '10.244.0.0/24' },
    { name: 'n2', id: 2, underlayIp: '192.168.100.12', mgmtIp: '172.30.0.12', podCidr: '10.244.1.0/24' },
  ],
  endpoints: [
    { pod: 'client', node: 'n1', ip: '10.244.0.2', labels: labels('client'), identity: 256 },
    { pod: 'local', node: 'n1', ip: '10.244.0.3', labels: labels('local'), identity: 257 },
    { pod: 'server', node: 'n2', ip: '10.244.1.2', labels: labels('server'), identity: 258 },
  ],
  identities: [
    { id: 256, labels: labels('client') },
    { id: 257, labels: labels('local') },
    { id: 258, labels: labels('server') },
  ],
  policies: [
    {
      name: 'server-requires-auth',
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }] }], authentication: { mode: 'required' } },
        { fromEndpoints: [{ matchLabels: { app: 'local' } }], toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }] }] },
        { fromEndpoints: [{ matchLabels: { app: 'local' } }], toPorts: [] },
      ],
    },
  ],
};
export const dir = new Directory(SNAPSHOT, 'unit');

/** The SYN of client -> server:8080 that n2's cil_to_container drops: no auth entry yet. */
export const AUTH_DROP: gen.FlowEvent = {
  timestamp: ns('2023-12-02T01:11:44.834Z', 567_890),
  srcIdentity: 256, dstIdentity: 258,
  saddr: '10.244.0.2', daddr: '10.244.1.2', sport: 39278, dport: 8080,
  protocol: gen.IPPROTO_TCP, tcpFlags: gen.TCP_F_SYN,
  verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_POLICY_AUTH_REQUIRED, obsPoint: gen.OBS_TO_ENDPOINT,
  authType: gen.AUTH_TYPE_SPIRE | gen.AUTH_TYPE_EXPLICIT, remoteNodeId: 1, ifindex: 7, pktLen: 74, ctStatus: gen.CT_NEW,
};

t.test('the compact line of an auth drop is Hubble\'s, with --print-node-name', async (t) => {
  const ev = flowEvent(AUTH_DROP, 'n2', dir, 'u-1');
  t.equal(new Printer({ format: 'compact' }).format(ev),
    'Dec  2 01:11:44.834: default/client:39278 (ID:256) -> default/server:8080 (ID:258) Authentication required DROPPED (TCP Flags: SYN)\n');
  t.equal(new Printer({ format: 'compact', nodeName: true }).format(ev),
    'Dec  2 01:11:44.834 [n2]: default/client:39278 (ID:256) -> default/server:8080 (ID:258) Authentication required DROPPED (TCP Flags: SYN)\n');
});

t.test('policy verdicts: match type, direction, ALLOWED, the auth type after the summary', async (t) => {
  const base = { ...AUTH_DROP, verdict: gen.VERDICT_FORWARDED, dropReason: 0, timestamp: ns('2024-12-12T10:00:00.000Z') };
  const l3l4 = flowEvent({ ...base, saddr: '10.244.0.3', srcIdentity: 257, sport: 40000, authType: 0 }, 'n2', dir);
  t.equal(compactFlow(l3l4.flow!), 'Dec 12 10:00:00.000: default/local:40000 (ID:257) -> default/server:8080 (ID:258) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)\n');
  const l3only = flowEvent({ ...base, saddr: '10.244.0.3', srcIdentity: 257, sport: 40000, dport: 22, authType: 0 }, 'n2', dir);
  t.match(compactFlow(l3only.flow!), / policy-verdict:L3-Only INGRESS ALLOWED \(TCP Flags: SYN\)\n$/);
  const authed = flowEvent(base, 'n2', dir);
  t.equal(compactFlow(authed.flow!), 'Dec 12 10:00:00.000: default/client:39278 (ID:256) -> default/server:8080 (ID:258) policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN; SPIRE)\n');
  // The client's egress is not enforced: no policy matched, Cilium says "none".
  const egress = flowEvent({ ...base, obsPoint: gen.OBS_FROM_ENDPOINT, authType: 0 }, 'n1', dir);
  t.match(compactFlow(egress.flow!), / policy-verdict:none EGRESS ALLOWED \(TCP Flags: SYN\)\n$/);
});

t.test('arrows: "->" when not a reply, "<-" with the ends swapped for a reply, "<>" when unknown', async (t) => {
  // 195 comes from strict mode on the underlay, before any conntrack lookup: reply unknown.
  const strict = flowEvent({ ...AUTH_DROP, dropReason: gen.DROP_UNENCRYPTED_TRAFFIC, obsPoint: gen.OBS_FROM_ENDPOINT }, 'n1', dir);
  t.equal(strict.flow!.is_reply, undefined);
  t.equal(compactFlow(strict.flow!), 'Dec  2 01:11:44.834: default/client:39278 (ID:256) <> default/server:8080 (ID:258) Traffic is unencrypted DROPPED (TCP Flags: SYN)\n');
  const reply: HubbleFlow = { ...flowEvent(AUTH_DROP, 'n2', dir).flow!, is_reply: true };
  t.equal(compactFlow(reply), 'Dec  2 01:11:44.834: default/server:8080 (ID:258) <- default/client:39278 (ID:256) Authentication required DROPPED (TCP Flags: SYN)\n');
});

t.test('hosts without a pod print their IP, reserved identities their name; ports only for TCP/UDP', async (t) => {
  const udp = flowEvent({ ...AUTH_DROP, saddr: '192.168.1.5', srcIdentity: gen.IDENTITY_WORLD, sport: 5353, dport: 9090, protocol: gen.IPPROTO_UDP, tcpFlags: 0, dropReason: gen.DROP_POLICY }, 'n2', dir);
  t.equal(compactFlow(udp.flow!), 'Dec  2 01:11:44.834: 192.168.1.5:5353 (world) -> default/server:9090 (ID:258) Policy denied DROPPED (UDP)\n');
  const icmp = flowEvent({ ...AUTH_DROP, daddr: '10.0.0.9', dstIdentity: gen.IDENTITY_WORLD, sport: 77, dport: 0, protocol: gen.IPPROTO_ICMP, tcpFlags: 0, dropReason: gen.DROP_POLICY, obsPoint: gen.OBS_FROM_ENDPOINT }, 'n1', dir);
  t.equal(compactFlow(icmp.flow!), 'Dec  2 01:11:44.834: default/client (ID:256) -> 10.0.0.9 (world) Policy denied DROPPED (ICMPv4 EchoRequest)\n');
  t.equal(fmtIdentity(0), '(unknown)');
  t.equal(fmtIdentity(gen.IDENTITY_REMOTE_NODE), '(remote-node)');
  t.equal(fmtIdentity(16777217), '(ID:16777217)');
  t.equal(hostname('10.0.0.1', '0', undefined, undefined), '10.0.0.1', 'port 0 is left out');
  t.equal(hostname('10.0.0.1', '80', '', 'pod'), 'pod:80', 'path.Join drops an empty namespace');
  t.equal(hostname('fd00::1', '80', undefined, undefined), '[fd00::1]:80', 'JoinHostPort brackets IPv6');
});

t.test('TCP flags in Hubble\'s summary order (SYN, ACK, RST, FIN, PSH, URG)', async (t) => {
  const flags = (f: number) => flowEvent({ ...AUTH_DROP, tcpFlags: f }, 'n2', dir).flow!;
  t.equal(flags(gen.TCP_F_SYN | gen.TCP_F_ACK).Summary, 'TCP Flags: SYN, ACK');
  t.equal(flags(gen.TCP_F_FIN | gen.TCP_F_ACK | gen.TCP_F_PSH).Summary, 'TCP Flags: ACK, FIN, PSH');
  t.same(flags(gen.TCP_F_FIN | gen.TCP_F_ACK).l4?.TCP?.flags, { FIN: true, ACK: true });
  t.same(flags(0).l4?.TCP?.flags, {}, 'an empty TCPFlags message is still there');
});

t.test('StampMilli: short month, day padded with a space, milliseconds truncated, UTC', async (t) => {
  t.equal(stampMilli('2023-12-02T01:11:44.834567890Z'), 'Dec  2 01:11:44.834');
  t.equal(stampMilli('2024-01-31T23:59:59.9999Z'), 'Jan 31 23:59:59.999');
  t.equal(stampMilli('2024-07-04T00:00:00Z'), 'Jul  4 00:00:00.000');
  t.equal(stampMilli('2024-07-04T02:00:00+02:00'), 'Jul  4 00:00:00.000', 'printed in UTC');
  t.equal(stampMilli('not a time'), 'N/A');
});

t.test('protojson timestamps: RFC 3339 UTC with 0, 3, 6 or 9 digits', async (t) => {
  t.equal(protoTime(ns('2023-12-02T01:11:44Z')), '2023-12-02T01:11:44Z');
  t.equal(protoTime(ns('2023-12-02T01:11:44.834Z')), '2023-12-02T01:11:44.834Z');
  t.equal(protoTime(ns('2023-12-02T01:11:44.834Z', 567_000)), '2023-12-02T01:11:44.834567Z');
  t.equal(protoTime(ns('2023-12-02T01:11:44.834Z', 567_890)), '2023-12-02T01:11:44.834567890Z');
  t.equal(parseProtoTime('2023-12-02T01:11:44.834567890Z'), ns('2023-12-02T01:11:44.834Z', 567_890));
  t.equal(parseProtoTime('2023-12-02T01:11:44.8Z'), ns('2023-12-02T01:11:44.800Z'));
});

t.test('-o json: Hubble\'s field names, enum names and order, zero values left out', async (t) => {
  const ev = flowEvent(AUTH_DROP, 'n2', dir, '3c1a2b9e-0000-4000-8000-000000000001');
  const line = new Printer({ format: 'json' }).format(ev);
  t.ok(line.endsWith('}\n') && !line.slice(0, -1).includes('\n'), 'one object per line');
  const parsed = JSON.parse(line) as ObservedEvent;
  t.same(Object.keys(parsed), ['flow', 'node_name', 'time'], 'GetFlowsResponse: flow, then node_name and time');
  t.same(parsed, {
    flow: {
      time: '2023-12-02T01:11:44.834567890Z',
      uuid: '3c1a2b9e-0000-4000-8000-000000000001',
      verdict: 'DROPPED',
      drop_reason: 189,
      IP: { source: '10.244.0.2', destination: '10.244.1.2', ipVersion: 'IPv4' },
      l4: { TCP: { source_port: 39278, destination_port: 8080, flags: { SYN: true } } },
      source: {
        identity: 256, namespace: 'default', pod_name: 'client',
        labels: ['k8s:app=client', 'k8s:io.cilium.k8s.policy.serviceaccount=default', 'k8s:io.kubernetes.pod.namespace=default'],
      },
      destination: {
        identity: 258, namespace: 'default', pod_name: 'server',
        labels: ['k8s:app=server', 'k8s:io.cilium.k8s.policy.serviceaccount=default', 'k8s:io.kubernetes.pod.namespace=default'],
      },
      Type: 'L3_L4',
      node_name: 'n2',
      event_type: { type: 1, sub_type: 189 },
      traffic_direction: 'INGRESS',
      drop_reason_desc: 'AUTH_REQUIRED',
      is_reply: false,
      Summary: 'TCP Flags: SYN',
    },
    node_name: 'n2',
    time: '2023-12-02T01:11:44.834567890Z',
  });
  // flow.proto's declaration order (protojson writes fields so).
  t.same(Object.keys(parsed.flow!), ['time', 'uuid', 'verdict', 'drop_reason', 'IP', 'l4', 'source', 'destination', 'Type', 'node_name', 'event_type', 'traffic_direction', 'drop_reason_desc', 'is_reply', 'Summary']);
  t.same(Object.keys(parsed.flow!.source), ['identity', 'namespace', 'labels', 'pod_name']);
  const pv = flowEvent({ ...AUTH_DROP, verdict: gen.VERDICT_FORWARDED, dropReason: 0 }, 'n2', dir).flow!;
  t.same([pv.verdict, pv.auth_type, pv.event_type, pv.policy_match_type, pv.drop_reason, pv.drop_reason_desc, pv.is_reply], ['FORWARDED', 'SPIRE', { type: 5 }, 2, undefined, undefined, false]);
  const world = flowEvent({ ...AUTH_DROP, saddr: '192.168.1.5', srcIdentity: gen.IDENTITY_WORLD }, 'n2', dir).flow!;
  t.same(world.source, { identity: 2, labels: ['reserved:world'] }, 'no pod: identity and reserved label only');
});

t.test('drop_reason_desc names come from flow.proto for every drop reason of the table', async (t) => {
  t.same(DROP_REASONS.constants.filter((c) => !c.enumName).map((c) => c.name), [], 'every drop reason has its flow.proto name');
  t.same(
    [133, 181, 189, 197, 195, 171].map((c) => gen.DROP_REASON_DESC[c]),
    ['POLICY_DENIED', 'POLICY_DENY', 'AUTH_REQUIRED', 'NO_NODE_ID', 'UNENCRYPTED_TRAFFIC', 'INVALID_IDENTITY'],
  );
  t.equal(flowEvent({ ...AUTH_DROP, dropReason: 250 }, 'n2', dir).flow!.drop_reason_desc, 250, 'an unknown code stays a number, as protojson writes an unknown enum value');
});

const agentLine = (event: string, fields: Record<string, unknown>) => ({ time: '2023-12-02T01:11:44.900Z', component: 'agent', node: 'n2', event, key: '258:256:1:1', ...fields });

t.test('auth events from the agent log: ends by identity and node, compact and json', async (t) => {
  const done = authEvent(agentLine('auth-completed', { why: 'signal', peer: 'spiffe://spiffe.cilium/identity/256', remoteNodeIp: '192.168.100.11', expiration: '2023-12-02T02:11:44.000Z', handshakeMs: 3.21, totalMs: 4.5 }), 'n2', dir)!;
  t.same(done, {
    auth: {
      time: '2023-12-02T01:11:44.900Z', type: 'AUTH_COMPLETED', auth_type: 'SPIRE',
      source: { identity: 258, namespace: 'default', labels: dir.labels(258), pod_name: 'server' },
      destination: { identity: 256, namespace: 'default', labels: dir.labels(256), pod_name: 'client' },
      node_name: 'n2', remote_node_id: 1, remote_node_name: 'n1', remote_node_ip: '192.168.100.11', why: 'signal',
      peer_spiffe_id: 'spiffe://spiffe.cilium/identity/256', handshake_ms: 3.21, total_ms: 4.5, expiration: '2023-12-02T02:11:44.000Z',
      Summary: 'peer spiffe://spiffe.cilium/identity/256, handshake 3.21 ms',
    },
    node_name: 'n2', time: '2023-12-02T01:11:44.900Z',
  });
  t.equal(new Printer({ format: 'compact', nodeName: true }).format(done),
    'Dec  2 01:11:44.900 [n2]: default/server (ID:258) -> default/client (ID:256) auth COMPLETED (SPIRE; peer spiffe://spiffe.cilium/identity/256, handshake 3.21 ms)\n');
  const asked = authEvent(agentLine('auth-requested', { why: 'signal' }), 'n2', dir)!;
  t.equal(new Printer({ format: 'compact' }).format(asked), 'Dec  2 01:11:44.900: default/server (ID:258) -> default/client (ID:256) auth REQUESTED (SPIRE; signal)\n');
  const failed = authEvent(agentLine('auth-failed', { reason: 'handshake-timeout', detail: 'no answer from 192.168.100.11:4250' }), 'n2', dir)!;
  t.equal(new Printer({ format: 'compact' }).format(failed), 'Dec  2 01:11:44.900: default/server (ID:258) -> default/client (ID:256) auth FAILED (SPIRE; handshake-timeout: no answer from 192.168.100.11:4250)\n');
  // An identity with no single pod on that node: the node stands for it.
  const unknownPeer = authEvent({ ...agentLine('auth-requested', { why: 'rotation' }), key: '258:999:1:1' }, 'n2', dir)!;
  t.match(new Printer({ format: 'compact' }).format(unknownPeer), /: default\/server \(ID:258\) -> n1 \(ID:999\) auth REQUESTED/);
  t.equal(authEvent(agentLine('maps-synced', {}), 'n2', dir), undefined, 'other log lines are not events');
  t.equal(authEvent({ ...agentLine('auth-requested', {}), key: 'junk' }, 'n2', dir), undefined, 'a malformed key is skipped');
});

t.test('lost records and dict output, as Hubble prints them', async (t) => {
  const lost = lostEvent(3, 1, 'n1', ns('2023-12-02T01:11:45Z'));
  t.same(JSON.parse(new Printer({ format: 'json' }).format(lost)), { lost_events: { source: 'PERF_EVENT_RING_BUFFER', num_events_lost: '3', cpu: 1 }, node_name: 'n1', time: '2023-12-02T01:11:45Z' });
  t.equal(new Printer({ format: 'compact' }).format(lost), 'EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(1) 3\n');
  const p = new Printer({ format: 'dict', nodeName: true });
  t.equal(p.format(flowEvent(AUTH_DROP, 'n2', dir)), [
    '  TIMESTAMP: Dec  2 01:11:44.834',
    '       NODE: n2',
    '     SOURCE: default/client:39278',
    'DESTINATION: default/server:8080',
    '       TYPE: Authentication required',
    '    VERDICT: DROPPED',
    '    SUMMARY: TCP Flags: SYN',
    '',
  ].join('\n'));
  t.ok(p.format(flowEvent(AUTH_DROP, 'n2', dir)).startsWith('------------\n  TIMESTAMP: '), 'a separator before every later record');
});

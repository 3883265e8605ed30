// Identities from labels, policies → per-endpoint entries, and a node's
// datapath state. Pure: no kernel.
import t from 'tap';
import { planLab } from '../../lab/core/plan.ts';
import { compileNodeState } from '../../lab/datapath/state.ts';
import { AUTH_TYPE_EXPLICIT, AUTH_TYPE_SPIRE, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IPPROTO_TCP, IPPROTO_UDP } from '../../lab/abi/generated.ts';
import { compilePolicies, type PolicyEntry } from '../../lab/policy/compile.ts';
import { allocateIdentities, identityName, labelKey } from '../../lab/policy/identity.ts';
import { DEFAULT_ADDRESSING, type Pod, type Policy, type Topology } from '../../lab/topology/model.ts';

const pod = (name: string, labels: Record<string, string>, extra: Partial<Pod> = {}): Pod => ({
  name,
  namespace: 'default',
  serviceAccount: 'default',
  labels,
  ...extra,
});

function topology(policies: Policy[] = [], nodes?: Topology['nodes']): Topology {
  return {
    name: 'unit',
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    nodes: nodes ?? [
      { name: 'n1', pods: [pod('client', { app: 'client' }), pod('other', { app: 'other' }), pod('server-b', { app: 'server' })] },
      { name: 'n2', pods: [pod('server', { app: 'server' })] },
    ],
    policies,
  };
}

const serverIngress: Policy = {
  name: 'server-ingress',
  endpointSelector: { matchLabels: { app: 'server' } },
  ingress: [
    {
      fromEndpoints: [{ matchLabels: { app: 'client' } }],
      toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }] }],
      authentication: { mode: 'required' },
    },
  ],
};

const clientEgress: Policy = {
  name: 'client-egress',
  endpointSelector: { matchLabels: { app: 'client' } },
  egress: [{ toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [] }],
};

/** Entries as compact tuples: [direction, peer, protocol, port, authType, explicit]. */
const tuples = (entries: PolicyEntry[]) => entries.map((e) => [e.direction, e.peerIdentity, e.protocol, e.port, e.authType, e.explicitAuth]);

t.test('identities: one per label set, from 256, deterministic', async (t) => {
  const ids = allocateIdentities(topology());
  t.same(
    ids.identities.map((i) => [i.id, i.key]),
    [
      [256, 'k8s:app=client;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default'],
      [257, 'k8s:app=other;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default'],
      [258, 'k8s:app=server;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default'],
    ],
  );
  t.equal(ids.byPod.get('server'), ids.byPod.get('server-b'), 'same labels, same identity');

  // File order does not matter.
  const reversed = topology([], [
    { name: 'n2', pods: [pod('server', { app: 'server' })] },
    { name: 'n1', pods: [pod('server-b', { app: 'server' }), pod('other', { app: 'other' }), pod('client', { app: 'client' })] },
  ]);
  t.same([...allocateIdentities(reversed).byPod].sort(), [...ids.byPod].sort());
});

t.test('identities: implicit namespace and service-account labels count', async (t) => {
  const ids = allocateIdentities(topology([], [
    {
      name: 'n1',
      pods: [
        pod('a', { app: 'x' }),
        pod('b', { app: 'x' }, { namespace: 'prod' }),
        pod('c', { app: 'x' }, { serviceAccount: 'robot' }),
      ],
    },
  ]));
  t.equal(new Set(ids.byPod.values()).size, 3);
  t.equal(labelKey({ b: '2', a: '1' }), 'k8s:a=1;k8s:b=2');
  t.equal(identityName(2), 'reserved:world');
  t.equal(identityName(IDENTITY_REMOTE_NODE), 'reserved:remote-node');
  t.match(identityName(256, ids), /^k8s:app=x/);
});

t.test('no policy: nothing enforced, no entries', async (t) => {
  const topo = topology();
  for (const p of compilePolicies(topo, allocateIdentities(topo)).values()) {
    t.same([p.ingressEnforced, p.egressEnforced, p.entries], [false, false, []], p.pod);
  }
});

t.test('auth required on an ingress port rule', async (t) => {
  const topo = topology([serverIngress, clientEgress]);
  const ids = allocateIdentities(topo);
  const client = ids.byPod.get('client')!;
  const server = ids.byPod.get('server')!;
  const compiled = compilePolicies(topo, ids);

  const s = compiled.get('server')!;
  t.same([s.ingressEnforced, s.egressEnforced], [true, false]);
  t.same(tuples(s.entries), [
    ['ingress', IDENTITY_HOST, 0, 0, 0, false], // allow-localhost
    ['ingress', client, IPPROTO_TCP, 8080, AUTH_TYPE_SPIRE, true],
  ]);
  t.same(s.entries[1]!.sources, ['server-ingress']);

  const c = compiled.get('client')!;
  t.same([c.ingressEnforced, c.egressEnforced], [false, true]);
  t.same(tuples(c.entries), [['egress', server, 0, 0, 0, false]], 'L3-only egress');

  t.same([compiled.get('other')!.ingressEnforced, compiled.get('other')!.egressEnforced], [false, false]);
});

t.test('ports: ANY means TCP and UDP; port 0 ANY is L3-only', async (t) => {
  const topo = topology([
    {
      name: 'p',
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: 53, protocol: 'ANY' }, { port: 0, protocol: 'UDP' }] }] },
        { fromEndpoints: [{ matchLabels: { app: 'other' } }], toPorts: [{ ports: [{ port: 0, protocol: 'ANY' }] }] },
      ],
    },
  ]);
  const ids = allocateIdentities(topo);
  const [client, other] = [ids.byPod.get('client')!, ids.byPod.get('other')!];
  t.same(tuples(compilePolicies(topo, ids).get('server')!.entries), [
    ['ingress', IDENTITY_HOST, 0, 0, 0, false],
    ['ingress', client, IPPROTO_TCP, 53, 0, false],
    ['ingress', client, IPPROTO_UDP, 0, 0, false],
    ['ingress', client, IPPROTO_UDP, 53, 0, false],
    ['ingress', other, 0, 0, 0, false],
  ]);
});

t.test('an empty selector selects every pod identity', async (t) => {
  const topo = topology([{ name: 'all', endpointSelector: { matchLabels: { app: 'server' } }, ingress: [{ fromEndpoints: [{ matchLabels: {} }], toPorts: [] }] }]);
  const ids = allocateIdentities(topo);
  const peers = compilePolicies(topo, ids).get('server')!.entries.map((e) => e.peerIdentity);
  t.same(peers, [IDENTITY_HOST, ...ids.identities.map((i) => i.id)]);
});

t.test('auth: merged rules and derived entries', async (t) => {
  const topo = topology([
    // Port rule without auth, and an L3 rule for the same peer with auth.
    {
      name: 'ports',
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }] }] }],
    },
    {
      name: 'l3-auth',
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [], authentication: { mode: 'required' } }],
    },
    // The same port twice: once with auth, once without.
    {
      name: 'dup-a',
      endpointSelector: { matchLabels: { app: 'client' } },
      egress: [{ toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: 9090, protocol: 'TCP' }] }] }],
    },
    {
      name: 'dup-b',
      endpointSelector: { matchLabels: { app: 'client' } },
      egress: [
        { toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: 9090, protocol: 'TCP' }] }], authentication: { mode: 'required' } },
      ],
    },
  ]);
  const ids = allocateIdentities(topo);
  const [client, server] = [ids.byPod.get('client')!, ids.byPod.get('server')!];
  const compiled = compilePolicies(topo, ids);
  t.same(tuples(compiled.get('server')!.entries), [
    ['ingress', IDENTITY_HOST, 0, 0, 0, false],
    ['ingress', client, 0, 0, AUTH_TYPE_SPIRE, true],
    ['ingress', client, IPPROTO_TCP, 8080, AUTH_TYPE_SPIRE, false], // derived from the L3 rule
  ]);
  const merged = compiled.get('client')!.entries;
  t.same(tuples(merged), [['egress', server, IPPROTO_TCP, 9090, AUTH_TYPE_SPIRE, true]]);
  t.same(merged[0]!.sources, ['dup-a', 'dup-b']);
});

t.test('compileNodeState: one node\'s view', async (t) => {
  const topo = topology([serverIngress, clientEgress]);
  const plan = planLab(topo);
  const ids = allocateIdentities(topo);
  const [n1, n2] = plan.nodes as [typeof plan.nodes[0], typeof plan.nodes[0]];
  const podPlan = (name: string) => plan.nodes.flatMap((n) => n.pods).find((p) => p.name === name)!;

  const s1 = compileNodeState(plan, 'n1', ids);
  t.equal(s1.node, 'n1');
  t.same(s1.nodes, [{ ip: n2.underlayIp, id: n2.id }], 'only the other nodes have node IDs');
  t.same(
    s1.ipcache.find((e) => e.cidr === `${podPlan('server').ip}/32`),
    { cidr: `${podPlan('server').ip}/32`, identity: ids.byPod.get('server'), tunnelEndpoint: n2.underlayIp },
    'a remote pod carries its node as tunnel endpoint',
  );
  t.same(
    s1.ipcache.find((e) => e.cidr === `${podPlan('client').ip}/32`),
    { cidr: `${podPlan('client').ip}/32`, identity: ids.byPod.get('client') },
    'a local pod has no tunnel endpoint',
  );
  t.same(s1.ipcache.find((e) => e.cidr === `${n1.underlayIp}/32`), { cidr: `${n1.underlayIp}/32`, identity: IDENTITY_HOST });
  t.same(s1.ipcache.find((e) => e.cidr === `${n2.underlayIp}/32`), {
    cidr: `${n2.underlayIp}/32`,
    identity: IDENTITY_REMOTE_NODE,
    tunnelEndpoint: n2.underlayIp,
  });
  t.equal(s1.ipcache.length, plan.nodes.length + 4, 'every node and pod');
  t.same(s1.endpoints.map((e) => e.pod), ['client', 'other', 'server-b']);
  t.same(s1.endpoints[0], {
    pod: 'client',
    lxc: podPlan('client').lxc,
    ip: podPlan('client').ip,
    identity: ids.byPod.get('client'),
    ingressEnforced: false,
    egressEnforced: true,
  });
  // server-b (on n1) is selected by server-ingress too.
  t.same(
    s1.policy.filter((p) => p.lxc === podPlan('server-b').lxc).map((p) => [p.direction, p.peerIdentity, p.protocol, p.port, p.authType]),
    [
      ['ingress', IDENTITY_HOST, 0, 0, 0],
      ['ingress', ids.byPod.get('client'), IPPROTO_TCP, 8080, AUTH_TYPE_SPIRE | AUTH_TYPE_EXPLICIT],
    ],
  );

  const s2 = compileNodeState(plan, 'n2', ids);
  t.same(s2.nodes, [{ ip: n1.underlayIp, id: n1.id }]);
  t.same(s2.endpoints.map((e) => e.pod), ['server']);
  t.ok(s2.policy.every((p) => p.lxc === podPlan('server').lxc));

  t.throws(() => compileNodeState(plan, 'n9', ids), /node "n9" is not in lab "unit"/);
  t.throws(() => compileNodeState(plan, 'n1', allocateIdentities(topology([], [{ name: 'x', pods: [] }]))), /has no identity/);
});

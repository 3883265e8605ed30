// Real CiliumNetworkPolicy documents (written as users have them, after the
// examples in Cilium's docs) → the lab's policy model and its policy map
// entries; everything the lab cannot enforce is "not modelled by the lab".
import { readFile } from 'node:fs/promises';
import t from 'tap';

import { AUTH_TYPE_SPIRE, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD, IPPROTO_TCP, IPPROTO_UDP } from '../../lab/abi/generated.ts';
import { compilePolicies, type PolicyEntry } from '../../lab/policy/compile.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { loadPolicyFiles, parseCiliumPolicies, withImportedPolicies } from '../../lab/topology/cnp.ts';
import type { Topology } from '../../lab/topology/model.ts';
import { parseTopology } from '../../lab/topology/validate.ts';

const TOPOLOGIES = new URL('../../topologies/', import.meta.url);
const topologyFile = async (name: string): Promise<Topology> => {
  const { topology, issues } = parseTopology(await readFile(new URL(name, TOPOLOGIES), 'utf8'));
  if (!topology) throw new Error(JSON.stringify(issues));
  return topology;
};
const file = (name: string) => new URL(name, TOPOLOGIES).pathname;

/** Compiled entries of every pod, without the policies' names. */
function compiled(topology: Topology) {
  const ids = allocateIdentities(topology);
  return Object.fromEntries([...compilePolicies(topology, ids)].map(([pod, p]) => [pod, { ...p, entries: p.entries.map(({ sources: _, ...e }) => e) }]));
}

const entry = (e: Partial<PolicyEntry>) => ({ direction: 'ingress', peerIdentity: 0, protocol: 0, port: 0, deny: false, authType: 0, explicitAuth: false, ...e });

/** A lab of two-node.yaml with the documents of `yaml` added. */
async function withDocs(yaml: string) {
  return withImportedPolicies(await topologyFile('two-node.yaml'), parseCiliumPolicies(yaml));
}

t.test('two-node-auth as CNP documents compiles to the same entries as the inline policies', async (t) => {
  const inline = await topologyFile('two-node-auth.yaml');
  const loaded = await loadPolicyFiles(await topologyFile('two-node.yaml'), [file('cnp/two-node-auth.yaml')]);
  t.strictSame(loaded.problems, []);
  t.strictSame(loaded.warnings, []);
  t.strictSame(compiled(loaded.topology!), compiled(inline));
  t.strictSame(loaded.topology!.policies.map((p) => p.name), ['server-requires-auth', 'client-requires-auth']);
});

t.test('a List from kubectl: metadata and status read past; expressions, endPort, entities, deny, CIDR 0.0.0.0/0', async (t) => {
  const loaded = await loadPolicyFiles(await topologyFile('two-node.yaml'), [file('cnp/kubectl-list.yaml')]);
  t.strictSame(loaded.problems, []);
  t.strictSame(loaded.warnings, []);
  const topo = loaded.topology!;
  const ids = allocateIdentities(topo);
  const id = (pod: string) => ids.byPod.get(pod)!;
  const policies = compilePolicies(topo, ids);
  const server = policies.get('server')!;
  t.ok(server.ingressEnforced);
  t.notOk(server.egressEnforced, 'the egress policy selects app NotIn [server]');
  const at = (peer: number, port: number) => server.entries.find((e) => e.peerIdentity === peer && e.port === port && e.protocol === IPPROTO_TCP);
  for (const peer of [id('client'), id('local')]) {
    for (const port of [8000, 8004, 8010]) t.match(at(peer, port), { deny: false, authType: AUTH_TYPE_SPIRE, explicitAuth: true }, `${peer}:${port}`);
    t.equal(at(peer, 8011), undefined, 'endPort is the last port');
  }
  t.match(at(id('local'), 8005), { deny: true, authType: 0 }, 'deny wins over the allow of the same port');
  t.match(at(id('client'), 8005), { deny: false, authType: AUTH_TYPE_SPIRE });
  for (const peer of [IDENTITY_HOST, IDENTITY_REMOTE_NODE]) t.ok(server.entries.some((e) => e.peerIdentity === peer && e.port === 0 && e.protocol === 0), `entity ${peer}`);

  const client = policies.get('client')!;
  t.ok(client.egressEnforced);
  const egress = client.entries.filter((e) => e.direction === 'egress').map(({ sources: _, ...e }) => e);
  t.strictSame(egress, [
    entry({ direction: 'egress', peerIdentity: IDENTITY_WORLD, protocol: IPPROTO_TCP, port: 25, deny: true }),
    entry({ direction: 'egress', peerIdentity: IDENTITY_WORLD, protocol: IPPROTO_TCP, port: 443 }),
    entry({ direction: 'egress', peerIdentity: IDENTITY_WORLD, protocol: IPPROTO_UDP, port: 443 }),
    ...[id('client'), id('local'), id('server')].sort((a, b) => a - b).map((peer) => entry({ direction: 'egress', peerIdentity: peer })),
  ]);
});

t.test("Cilium's mutual-auth example: with its L7 rule not modelled, without it enforced", async (t) => {
  const docs = (rules: string) => `
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: mutual-auth-server
spec:
  endpointSelector:
    matchLabels:
      app: server
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
    authentication:
      mode: "required"
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
${rules}`;
  const l7 = await withDocs(docs('      rules:\n        http:\n        - method: "GET"\n          path: "/headers"\n'));
  t.strictSame(l7.issues, [{ path: 'documents[0].spec.ingress[0].toPorts[0].rules', message: 'not modelled by the lab: L7 rules (the lab has no proxy)' }]);
  t.equal(l7.topology, undefined);
  const l4 = await withDocs(docs(''));
  t.strictSame(l4.issues, []);
  const server = compilePolicies(l4.topology!, allocateIdentities(l4.topology!)).get('server')!;
  t.match(server.entries.find((e) => e.port === 8080), { protocol: IPPROTO_TCP, authType: AUTH_TYPE_SPIRE, explicitAuth: true });
});

t.test("Cilium's deny example: allow all, deny world, and deny wins where they overlap", async (t) => {
  const { topology, issues, warnings } = await withDocs(`
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: external-lockdown
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - world
  ingress:
  - fromEntities:
    - all
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: no-telnet
  namespace: default
spec:
  endpointSelector:
    matchLabels: { app: server }
  ingressDeny:
  - toPorts:
    - ports: [{ port: "23", protocol: TCP }]
`);
  t.strictSame(issues, []);
  t.strictSame(warnings, [{ path: 'documents[0].spec.endpointSelector', message: 'selects every pod of the cluster' }]);
  const server = compilePolicies(topology!, allocateIdentities(topology!)).get('server')!;
  const entries = server.entries.map(({ sources: _, ...e }) => e);
  t.strictSame(entries, [
    entry({}),
    entry({ protocol: IPPROTO_TCP, port: 23, deny: true }),
    entry({ peerIdentity: IDENTITY_HOST }),
    // allow-localhost is an allow like any other: the deny of port 23 wins there too.
    entry({ peerIdentity: IDENTITY_HOST, protocol: IPPROTO_TCP, port: 23, deny: true }),
    entry({ peerIdentity: IDENTITY_WORLD, deny: true }),
  ]);
});

t.test('every unsupported field at once: "not modelled by the lab" with its path', async (t) => {
  const { issues } = await withDocs(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: everything, namespace: default }
specs:
- nodeSelector: { matchLabels: { role: worker } }
- endpointSelector: { matchLabels: { app: client } }
  egress:
  - toFQDNs: [{ matchName: example.com }]
  - toServices: [{ k8sService: { serviceName: db, namespace: default } }]
  - toGroups: [{ aws: { securityGroupsIds: [sg-1] } }]
  - toEndpoints: [{}]
    icmps: [{ fields: [{ type: 8 }] }]
  - toCIDR: [10.0.0.0/8]
  - toCIDRSet: [{ cidr: 0.0.0.0/0, except: [10.0.0.0/8] }]
  - toEntities: [kube-apiserver, moon]
  - toEndpoints: [{ matchLabels: { reserved:host: "" } }]
    toPorts:
    - ports: [{ port: http }, { port: "5000", protocol: SCTP }, { port: "1", endPort: 2000 }]
`);
  t.strictSame(issues, [
    { path: 'documents[0].specs[0].nodeSelector', message: 'not modelled by the lab: host policies (the lab has no host firewall)' },
    { path: 'documents[0].specs[1].egress[0].toFQDNs', message: 'not modelled by the lab: DNS-based policy' },
    { path: 'documents[0].specs[1].egress[1].toServices', message: 'not modelled by the lab: service selectors' },
    { path: 'documents[0].specs[1].egress[2].toGroups', message: 'not modelled by the lab: cloud groups' },
    { path: 'documents[0].specs[1].egress[3].icmps', message: 'not modelled by the lab: ICMP rules (the policy map keys TCP and UDP ports)' },
    { path: 'documents[0].specs[1].egress[5].toCIDRSet[0].except', message: "not modelled by the lab: CIDR exceptions (the lab's ipcache holds no CIDR identities)" },
    { path: 'documents[0].specs[1].egress[6].toEntities[0]', message: 'not modelled by the lab: entity "kube-apiserver" (the lab has world, cluster, host, remote-node and all)' },
    { path: 'documents[0].specs[1].egress[6].toEntities[1]', message: `"moon" is not one of Cilium's entities (world, world-ipv4, cluster, host, remote-node, all, world-ipv6, health, init, unmanaged, kube-apiserver, ingress, none)` },
    { path: 'documents[0].specs[1].egress[7].toEndpoints[0].matchLabels', message: 'not modelled by the lab: "reserved:host" as a label (write fromEntities/toEntities instead)' },
    { path: 'documents[0].specs[1].egress[7].toPorts[0].ports[0].port', message: 'not modelled by the lab: named port "http" (pods in the lab declare no container ports)' },
    { path: 'documents[0].specs[1].egress[7].toPorts[0].ports[1].protocol', message: "not modelled by the lab: protocol SCTP (the lab's policy map keys TCP and UDP)" },
  ]);
  // The CIDR and port-range checks need the rest to parse: they come from the topology's rules.
  const cidr = await withDocs(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: cidr }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
  - toCIDR: [10.0.0.0/8]
  - toPorts: [{ ports: [{ port: "1", endPort: 2000 }] }]
`);
  t.strictSame(cidr.issues, [
    { path: 'documents[0].spec.egress[0].toCIDR[0]', message: 'not modelled by the lab: "10.0.0.0/8" (the lab\'s ipcache holds no CIDR identities; only 0.0.0.0/0, which is reserved:world)' },
    { path: 'documents[0].spec.egress[1].toPorts[0].ports[0].endPort', message: 'not modelled by the lab: a range of 2000 ports (the policy map holds single ports; at most 1024)' },
  ]);
});

t.test('shape problems: kind, apiVersion, missing name and selector, unknown keys; a selector of no pod warns', async (t) => {
  const { issues, warnings, topology } = await withDocs(`
apiVersion: v1
kind: ConfigMap
---
apiVersion: cilium.io/v1
kind: CiliumNetworkPolicy
metadata: {}
spec:
  ingres: []
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ghost, namespace: other }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress:
  - fromEndpoints: [{ matchLabels: { app: client } }]
    toPorts: [{ ports: [{ port: 8080, protocol: tcp }] }]
`);
  t.strictSame(issues, [
    { path: 'documents[0].kind', message: '"ConfigMap": only CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and List are read' },
    { path: 'documents[1].apiVersion', message: 'expected cilium.io/v2, got "cilium.io/v1"' },
    { path: 'documents[1].metadata.name', message: 'required' },
    { path: 'documents[1].spec.ingres', message: 'unknown key "ingres"' },
    { path: 'documents[1].spec.endpointSelector', message: 'required' },
    { path: 'documents[2].spec.ingress[0].toPorts[0].ports[0].protocol', message: 'must be one of "TCP", "UDP", "SCTP", "ANY" (got "tcp")' },
  ]);
  t.equal(topology, undefined);
  t.strictSame(warnings, [{ path: 'documents[2].spec.endpointSelector', message: 'selects no pod' }], 'namespace "other" has no pod');
  const ghost = await withDocs(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: ghost, namespace: other }
spec:
  endpointSelector: { matchLabels: { app: server } }
`);
  t.strictSame(ghost.issues, []);
  t.strictSame(ghost.warnings, [{ path: 'documents[0].spec.endpointSelector', message: 'selects no pod' }], 'namespace "other" has no pod');
});

t.test('a namespaced policy keeps its peers in its namespace unless they name one', async (t) => {
  const base = await topologyFile('two-node.yaml');
  base.nodes[0]!.pods[1]!.namespace = 'tools';
  const docs = (peer: string) => parseCiliumPolicies(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: p, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress: [{ fromEndpoints: [${peer}] }]
`);
  const peersOf = (yaml: ReturnType<typeof docs>) => {
    const topo = withImportedPolicies(base, yaml).topology!;
    const ids = allocateIdentities(topo);
    const server = compilePolicies(topo, ids).get('server')!;
    return server.entries.filter((e) => e.peerIdentity >= 256).map((e) => [...ids.byPod].find(([, id]) => id === e.peerIdentity)![0]);
  };
  t.strictSame(peersOf(docs('{}')).sort(), ['client', 'server']);
  t.strictSame(peersOf(docs('{ matchLabels: { k8s:io.kubernetes.pod.namespace: tools } }')), ['local']);
  t.strictSame(peersOf(docs('{ matchExpressions: [{ key: io.kubernetes.pod.namespace, operator: Exists }] }')).sort(), ['client', 'local', 'server']);
});

t.test('one policy name in two namespaces: both enforced, named <name>.<namespace>, with a warning', async (t) => {
  const base = await topologyFile('two-node.yaml');
  base.nodes[0]!.pods[1]!.namespace = 'tools';
  const imported = parseCiliumPolicies(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: allow-web, namespace: default }
spec:
  endpointSelector: { matchLabels: { app: server } }
  ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: "8080", protocol: TCP }] }] }]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: allow-web, namespace: tools }
spec:
  endpointSelector: { matchLabels: { app: local } }
  ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: "9090", protocol: TCP }] }] }]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: only-here, namespace: tools }
spec:
  endpointSelector: { matchLabels: { app: local } }
  ingress: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: "7070", protocol: TCP }] }] }]
`);
  t.strictSame(imported.issues, []);
  t.strictSame(imported.policies.map((p) => p.name), ['allow-web.default', 'allow-web.tools', 'only-here'], 'only the repeated name is qualified');
  t.strictSame(imported.warnings.map((w) => w.path), ['documents[0].spec', 'documents[1].spec']);
  t.match(imported.warnings[0]!.message, /"allow-web" is in several namespaces: named "allow-web.default"/);
  const { topology, issues } = withImportedPolicies(base, imported);
  t.strictSame(issues, [], 'the lab takes both');
  const ids = allocateIdentities(topology!);
  const ports = (pod: string) => compilePolicies(topology!, ids).get(pod)!.entries.filter((e) => e.direction === 'ingress' && e.port > 0).map((e) => e.port).sort();
  t.strictSame([...new Set(ports('server'))], [8080], 'default/allow-web on the server');
  t.strictSame([...new Set(ports('local'))], [7070, 9090], 'tools/allow-web and tools/only-here on local');
});

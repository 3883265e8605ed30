// mtless export k8s: the manifests of a topology, and the round trip: the
// exported CiliumNetworkPolicies, read back as --policies, compile to the
// same policy map entries as the topology they came from.
import { readdir, readFile } from 'node:fs/promises';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

import { compilePolicies } from '../../lab/policy/compile.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { loadPolicyFiles, parseCiliumPolicies, withImportedPolicies } from '../../lab/topology/cnp.ts';
import { exportKubernetes, NODE_LABEL } from '../../lab/topology/k8s.ts';
import type { Topology } from '../../lab/topology/model.ts';
import { parseTopology } from '../../lab/topology/validate.ts';

const TOPOLOGIES = new URL('../../topologies/', import.meta.url);
const load = async (name: string): Promise<Topology> => {
  const { topology, issues } = parseTopology(await readFile(new URL(name, TOPOLOGIES), 'utf8'));
  if (!topology) throw new Error(JSON.stringify(issues));
  return topology;
};

const compiled = (topology: Topology) => [...compilePolicies(topology, allocateIdentities(topology))];

/** Export, then read the policies file back into the topology without its own policies. */
function roundTrip(topology: Topology) {
  const policies = exportKubernetes(topology).get('20-policies.yaml')!;
  return withImportedPolicies({ ...topology, policies: [] }, parseCiliumPolicies(policies));
}

t.test('every shipped topology with policies round-trips', async (t) => {
  const names = (await readdir(TOPOLOGIES)).filter((f) => f.endsWith('.yaml'));
  let tried = 0;
  for (const name of names) {
    const topology = await load(name);
    if (topology.policies.length === 0) continue;
    tried++;
    const back = roundTrip(topology);
    t.strictSame(back.issues, [], name);
    t.strictSame(compiled(back.topology!), compiled(topology), `${name}: same entries, same sources`);
  }
  t.ok(tried >= 2, `${tried} topologies with policies`);
});

t.test('imported CNPs (namespaced, clusterwide, deny, entities, ranges) round-trip', async (t) => {
  const loaded = await loadPolicyFiles(await load('two-node.yaml'), [new URL('cnp/kubectl-list.yaml', TOPOLOGIES).pathname]);
  const back = roundTrip(loaded.topology!);
  t.strictSame(back.issues, []);
  t.strictSame(compiled(back.topology!), compiled(loaded.topology!));
  const kinds = parseAllDocuments(exportKubernetes(loaded.topology!).get('20-policies.yaml')!).map((d) => d.toJS());
  t.match(kinds, [{ kind: 'CiliumNetworkPolicy', metadata: { name: 'server-from-client', namespace: 'default' } }, { kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'clients-egress' } }]);
});

t.test('pods in several namespaces, peers across them', async (t) => {
  const topology = await load('two-node-auth.yaml');
  topology.nodes[0]!.pods[0]!.namespace = 'team-a';
  topology.nodes[0]!.pods[0]!.serviceAccount = 'client-sa';
  topology.policies[0]!.endpointSelector.matchLabels['io.kubernetes.pod.namespace'] = 'default';
  const files = exportKubernetes(topology);
  const back = roundTrip(topology);
  t.strictSame(back.issues, []);
  t.strictSame(compiled(back.topology!), compiled(topology), 'a namespaced CNP whose peers keep every namespace');
  const [ns, sa] = parseAllDocuments(files.get('00-namespaces.yaml')!).map((d) => d.toJS());
  t.strictSame(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } });
  t.strictSame(sa, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'client-sa', namespace: 'team-a' } });
  const pods = parseAllDocuments(files.get('10-pods.yaml')!).map((d) => d.toJS());
  t.match(pods[0], { kind: 'Pod', metadata: { name: 'client', namespace: 'team-a', labels: { app: 'client' } }, spec: { serviceAccountName: 'client-sa', nodeSelector: { [NODE_LABEL]: 'n1' } } });
  t.match(pods[2], { metadata: { name: 'server' }, spec: { nodeSelector: { [NODE_LABEL]: 'n2' }, containers: [{ args: ['netexec', '--http-port=8080', '--udp-port=9090'] }] } });
});

t.test('Helm values follow routing and encryption', async (t) => {
  const values = (name: string) => load(name).then((topo) => parseAllDocuments(exportKubernetes(topo).get('cilium-values.yaml')!)[0]!.toJS());
  t.match(await values('two-node-auth.yaml'), { authentication: { mutual: { spire: { enabled: true } } }, routingMode: 'native', ipv4NativeRoutingCIDR: '10.244.0.0/16', encryption: { enabled: false } });
  t.match(await values('two-node-tunnel-wireguard.yaml'), { routingMode: 'tunnel', tunnelProtocol: 'vxlan', encryption: { enabled: true, type: 'wireguard' }, extraConfig: { 'wireguard-encapsulate': 'true' } });
  const readme = exportKubernetes(await load('two-node-auth.yaml')).get('README.md')!;
  for (const check of ['hubble observe --verdict DROPPED --type drop', 'cilium-dbg bpf auth list', 'tcpdump', `${NODE_LABEL}=n2`]) t.ok(readme.includes(check), check);
});

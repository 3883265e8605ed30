// Topology files: the shipped ones load, and each kind of mistake is reported
// with its exact path and message, all of them at once.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { topologyJsonSchema } from '../../lab/topology/json-schema.ts';
import type { TopologyIssue } from '../../lab/topology/model.ts';
import {
  formatIssues,
  loadTopologyFile,
  nodePodCIDR,
  parseCIDR,
  parseTopology,
  podLabels,
  selectorMatches,
  TopologyError,
  validateTopology,
} from '../../lab/topology/validate.ts';

const TOPOLOGIES = new URL('../../topologies/', import.meta.url);
const SHIPPED = ['two-node.yaml', 'two-node-auth.yaml'];

t.test('shipped topologies validate and point editors at the schema', async (t) => {
  for (const file of SHIPPED) {
    const text = await readFile(new URL(file, TOPOLOGIES), 'utf8');
    t.equal(text.split('\n')[0], '# yaml-language-server: $schema=./topology.schema.json', `${file}: schema line`);
    const { topology, issues } = parseTopology(text);
    t.strictSame(issues, [], `${file}: no issues`);
    t.ok(topology, `${file}: parsed`);
  }
});

t.test('two-node-auth holds the policies the scenarios rely on', async (t) => {
  const topology = await loadTopologyFile(new URL('two-node-auth.yaml', TOPOLOGIES).pathname);
  t.strictSame(
    topology.nodes.map((n) => [n.name, n.pods.map((p) => p.name)]),
    [['n1', ['client', 'local']], ['n2', ['server']]],
  );
  const [server, client] = topology.policies;
  t.equal(server?.name, 'server-requires-auth');
  t.strictSame(server?.ingress, [
    {
      fromEndpoints: [{ matchLabels: { app: 'client' } }],
      // "8080" in the file, a number here.
      toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }, { port: 9090, protocol: 'UDP' }] }],
      authentication: { mode: 'required' },
    },
    { fromEndpoints: [{ matchLabels: { app: 'local' } }], toPorts: [{ ports: [{ port: 8080, protocol: 'TCP' }] }] },
  ]);
  t.strictSame(client?.endpointSelector, { matchLabels: { app: 'client' } });
  t.strictSame(client?.ingress?.[0]?.toPorts, [{ ports: [{ port: 7070, protocol: 'TCP' }] }]);
  t.equal(client?.ingress?.[0]?.authentication?.mode, 'required');
});

t.test('topology.schema.json is what gen-schema writes', async (t) => {
  const onDisk = JSON.parse(await readFile(new URL('topology.schema.json', TOPOLOGIES), 'utf8'));
  t.strictSame(onDisk, topologyJsonSchema(), 'run: npx tsx scripts/gen-schema.ts');
  // Input side: fields with defaults are optional.
  t.strictSame(onDisk.required, ['name', 'nodes']);
  t.equal(onDisk.additionalProperties, false);
});

t.test('defaults fill everything the file leaves out', async (t) => {
  const { topology, issues } = parseTopology(`
name: tiny
nodes:
  - name: n1
    pods: [{name: p1, labels: {app: p1}}]
  - name: n2
policies:
  - name: open
    endpointSelector: {}
    ingress:
      - fromEndpoints: [{}]
        toPorts: [{ports: [{port: "0"}]}]
`);
  t.strictSame(issues, []);
  t.strictSame(topology, {
    name: 'tiny',
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: { podCIDR: '10.244.0.0/16', underlayCIDR: '172.30.0.0/24', managementCIDR: '172.31.0.0/24' },
    nodes: [
      { name: 'n1', pods: [{ name: 'p1', namespace: 'default', serviceAccount: 'default', labels: { app: 'p1' } }] },
      { name: 'n2', pods: [] },
    ],
    policies: [
      {
        name: 'open',
        endpointSelector: { matchLabels: {} },
        ingress: [{ fromEndpoints: [{ matchLabels: {} }], toPorts: [{ ports: [{ port: 0, protocol: 'ANY' }] }] }],
      },
    ],
  });

  // A partial addressing block keeps the defaults of the fields it leaves out.
  const partial = parseTopology('name: p\naddressing: {podCIDR: 10.8.0.0/16}\nnodes: [{name: n1}]\n');
  t.strictSame(partial.topology?.addressing, {
    podCIDR: '10.8.0.0/16',
    underlayCIDR: '172.30.0.0/24',
    managementCIDR: '172.31.0.0/24',
  });
});

t.test('accepted on purpose', async (t) => {
  const valid: Record<string, string> = {
    // The runtime, not validation, reports that the kernel has no IPsec.
    'ipsec, strict': 'name: a\nencryption: {mode: ipsec, strict: true}\nnodes: [{name: n1}]\n',
    'wireguard, strict, tunnel, sockmap': 'name: a\nrouting: tunnel\nencryption: {mode: wireguard, strict: true}\nsockmap: true\nnodes: [{name: n1}]\n',
    'fixed pod IPs at both ends of the range': `
name: a
nodes:
  - name: n1
  - name: n2
    pods:
      - {name: lo, labels: {app: x}, ip: 10.244.1.2}
      - {name: hi, labels: {app: x}, ip: 10.244.1.254}
`,
    'implicit labels select by namespace and service account': `
name: a
nodes:
  - name: n1
    pods:
      - {name: api, namespace: prod, serviceAccount: api-sa, labels: {app.kubernetes.io/name: api}}
policies:
  - name: by-namespace
    endpointSelector: {matchLabels: {io.kubernetes.pod.namespace: prod}}
    egress:
      - toEndpoints: [{matchLabels: {io.cilium.k8s.policy.serviceaccount: api-sa}}]
`,
    'large ranges, a small one, 40-character names': `
name: a
addressing: {podCIDR: 10.0.0.0/8, underlayCIDR: 172.16.0.0/16, managementCIDR: 192.168.0.0/28}
nodes:
  - name: ${'n'.repeat(40)}
    pods: [{name: ${'p'.repeat(40)}, labels: {app: x}}]
`,
  };
  for (const [name, text] of Object.entries(valid)) t.strictSame(parseTopology(text).issues, [], name);
});

// ---- the table of mistakes --------------------------------------------------

interface Case {
  name: string;
  yaml: string;
  issues: TopologyIssue[];
}

const issue = (path: string, message: string): TopologyIssue => ({ path, message });
const LABEL_SYNTAX = "at most 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit";
const PORT = 'expected a port number such as 8080 or "8080"';
const DNS_LABEL = "is not a DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit)";

/** n nodes named n0…, each with one pod (p0…). */
const manyNodes = (n: number, addressing = '') =>
  `name: big\n${addressing}nodes:\n` +
  Array.from({ length: n }, (_, i) => `  - {name: n${i}, pods: [{name: p${i}, labels: {app: x}}]}\n`).join('');

const cases: Case[] = [
  // YAML syntax: reported with line and column, nothing else runs.
  {
    name: 'duplicate YAML key',
    yaml: 'name: a\nname: b\nnodes: []\n',
    issues: [issue('', 'line 2, column 1: Map keys must be unique')],
  },
  {
    name: 'unclosed flow sequence',
    yaml: 'name: a\nnodes: [{name: n1}\nrouting: native\n',
    issues: [issue('', 'line 3, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]')],
  },
  {
    name: 'two YAML documents',
    yaml: 'name: a\nnodes: [{name: n1}]\n---\nname: b\n',
    issues: [issue('', 'line 3, column 1: a topology file holds one YAML document')],
  },
  {
    name: 'alias without anchor',
    yaml: 'name: a\nnodes: *nodes\n',
    issues: [issue('', 'Unresolved alias (the anchor must be set before the alias): nodes')],
  },
  { name: 'empty file', yaml: '# only a comment\n', issues: [issue('', 'the file is empty')] },
  { name: 'a list, not a mapping', yaml: '- name: a\n', issues: [issue('', 'expected a mapping, got a list')] },

  // Shape (zod): strict keys, types, enums.
  {
    name: 'unknown key in a node',
    yaml: 'name: a\nnodes:\n  - name: n1\n    colour: red\n',
    issues: [issue('nodes[0]', 'unknown key "colour"')],
  },
  {
    name: 'unknown top-level keys, one issue each',
    yaml: 'name: a\nkind: Topology\nspec: {}\nnodes: [{name: n1}]\n',
    issues: [issue('', 'unknown key "kind"'), issue('', 'unknown key "spec"')],
  },
  {
    name: 'matchExpressions: In without values, an unknown operator',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}, matchExpressions: [{key: app, operator: In}, {key: app, operator: Gt}]}
`,
    issues: [
      issue('policies[0].endpointSelector.matchExpressions[0].values', 'In needs at least one value'),
      issue('policies[0].endpointSelector.matchExpressions[1].operator', 'must be one of "In", "NotIn", "Exists", "DoesNotExist" (got "Gt")'),
    ],
  },
  {
    name: 'required fields missing',
    yaml: 'routing: native\n',
    issues: [issue('name', 'required'), issue('nodes', 'required')],
  },
  { name: 'empty values are null', yaml: 'name:\nnodes:\n', issues: [issue('name', 'expected a string, got null'), issue('nodes', 'expected a list, got null')] },
  {
    name: 'lab name syntax',
    yaml: 'name: Two_Node\nnodes: [{name: n1}]\n',
    issues: [issue('name', "must be 1 to 24 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'")],
  },
  {
    name: 'lab name too long for derived names',
    yaml: `name: ${'a'.repeat(25)}\nnodes: [{name: n1}]\n`,
    issues: [issue('name', "must be 1 to 24 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'")],
  },
  { name: 'no nodes', yaml: 'name: a\nnodes: []\n', issues: [issue('nodes', 'must have at least 1 item')] },
  {
    name: 'pod labels: missing, empty, not strings',
    yaml: `
name: a
nodes:
  - name: n1
    pods:
      - name: p1
      - {name: p2, labels: {}}
      - {name: p3, labels: {version: 2, canary: true}}
`,
    issues: [
      issue('nodes[0].pods[0].labels', 'required'),
      issue('nodes[0].pods[1].labels', 'needs at least one label'),
      issue('nodes[0].pods[2].labels.version', 'expected a string, got 2 (quote it)'),
      issue('nodes[0].pods[2].labels.canary', 'expected a string, got true (quote it)'),
    ],
  },
  {
    name: 'ports and protocols of the wrong shape',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}}
    ingress:
      - toPorts: [{ports: [{port: http}, {port: 80.5}, {port: 80, protocol: SCTP}, {protocol: TCP}]}]
`,
    issues: [
      issue('policies[0].ingress[0].fromEndpoints', 'required'),
      issue('policies[0].ingress[0].toPorts[0].ports[0].port', PORT),
      issue('policies[0].ingress[0].toPorts[0].ports[1].port', PORT),
      issue('policies[0].ingress[0].toPorts[0].ports[2].protocol', 'must be one of "TCP", "UDP", "ANY" (got "SCTP")'),
      issue('policies[0].ingress[0].toPorts[0].ports[3].port', 'required'),
    ],
  },
  {
    name: 'authentication mode and empty peer list',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}}
    egress:
      - toEndpoints: []
        authentication: {mode: mtls}
`,
    issues: [
      issue('policies[0].egress[0].toEndpoints', 'must have at least 1 item'),
      issue('policies[0].egress[0].authentication.mode', 'must be one of "required", "disabled", "test-always-fail" (got "mtls")'),
    ],
  },
  {
    // Several shape errors in different places: all reported, with the
    // semantic checks of what did parse (duplicate n1) among them, in file order.
    name: 'several shape errors at once',
    yaml: `
name: a
routing: mesh
encryption: {mode: tls, strict: "yes"}
sockmap: 1
nodes:
  - name: n1
    pods: [{name: p1, labels: {app: p1}, image: nginx}]
  - name: n1
    pods: {name: p2}
policies:
  - endpointSelector: {matchLabels: {app: p1}}
`,
    issues: [
      issue('routing', 'must be one of "native", "tunnel" (got "mesh")'),
      issue('encryption.mode', 'must be one of "none", "wireguard", "ipsec" (got "tls")'),
      issue('encryption.strict', 'expected true or false, got "yes"'),
      issue('sockmap', 'expected true or false, got 1'),
      issue('nodes[0].pods[0]', 'unknown key "image"'),
      issue('nodes[1].name', 'duplicate "n1"'),
      issue('nodes[1].pods', 'expected a list, got a mapping'),
      issue('policies[0].name', 'required'),
    ],
  },

  // Semantic checks.
  {
    name: 'duplicate node names',
    yaml: 'name: a\nnodes: [{name: n1}, {name: n2}, {name: n1}]\n',
    issues: [issue('nodes[2].name', 'duplicate "n1"')],
  },
  {
    name: 'pod names are unique across the lab',
    yaml: `
name: a
nodes:
  - {name: n1, pods: [{name: web, labels: {app: web}}]}
  - {name: n2, pods: [{name: web, labels: {app: web}}]}
`,
    issues: [issue('nodes[1].pods[0].name', 'duplicate "web"')],
  },
  {
    name: 'duplicate policy names',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - {name: allow, endpointSelector: {matchLabels: {app: p}}}
  - {name: allow, endpointSelector: {matchLabels: {app: p}}}
`,
    issues: [issue('policies[1].name', 'duplicate "allow"')],
  },
  {
    name: 'node and pod names: DNS labels of at most 40 characters',
    yaml: `
name: a
nodes:
  - name: N1
    pods: [{name: web_1, labels: {app: web}}]
  - name: ${'n'.repeat(41)}
    pods: [{name: ${'p'.repeat(41)}, labels: {app: web}}, {name: "-p", labels: {app: web}}]
`,
    issues: [
      issue('nodes[0].name', `"N1" ${DNS_LABEL}`),
      issue('nodes[0].pods[0].name', `"web_1" ${DNS_LABEL}`),
      issue('nodes[1].name', `"${'n'.repeat(41)}" is too long (41 characters, at most 40)`),
      issue('nodes[1].pods[0].name', `"${'p'.repeat(41)}" is too long (41 characters, at most 40)`),
      issue('nodes[1].pods[1].name', `"-p" ${DNS_LABEL}`),
    ],
  },
  {
    name: 'namespace, service account and policy name syntax',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, namespace: Prod, serviceAccount: my_sa, labels: {app: p}}]}]
policies:
  - {name: Allow-All, endpointSelector: {matchLabels: {app: p}}}
`,
    issues: [
      issue('nodes[0].pods[0].namespace', `"Prod" ${DNS_LABEL}`),
      issue('nodes[0].pods[0].serviceAccount', `"my_sa" is not a DNS subdomain (a-z, 0-9, '-' and '.', at most 253 characters)`),
      issue('policies[0].name', `"Allow-All" is not a DNS subdomain (a-z, 0-9, '-' and '.', at most 253 characters)`),
    ],
  },
  {
    name: 'label keys and values in Kubernetes syntax',
    yaml: `
name: a
nodes:
  - name: n1
    pods:
      - name: p
        labels:
          "bad key": x
          Example.COM/app: x
          app: "has space"
          tier: "-front"
          ok.example.com/name: ""
          long: ${'v'.repeat(64)}
`,
    issues: [
      issue('nodes[0].pods[0].labels', `invalid key "bad key": the name must be ${LABEL_SYNTAX}`),
      issue('nodes[0].pods[0].labels', 'invalid key "Example.COM/app": the prefix before "/" must be a DNS subdomain'),
      issue('nodes[0].pods[0].labels.app', `invalid value "has space": must be empty or ${LABEL_SYNTAX}`),
      issue('nodes[0].pods[0].labels.tier', `invalid value "-front": must be empty or ${LABEL_SYNTAX}`),
      issue('nodes[0].pods[0].labels.long', `invalid value "${'v'.repeat(64)}": must be empty or ${LABEL_SYNTAX}`),
    ],
  },
  {
    name: 'implicit labels cannot be set by hand',
    yaml: `
name: a
nodes:
  - name: n1
    pods:
      - name: p
        labels: {app: p, io.kubernetes.pod.namespace: prod, io.cilium.k8s.policy.serviceaccount: sa}
`,
    issues: [
      issue('nodes[0].pods[0].labels', `"io.kubernetes.pod.namespace" is implicit; set the pod's namespace instead`),
      issue('nodes[0].pods[0].labels', `"io.cilium.k8s.policy.serviceaccount" is implicit; set the pod's serviceAccount instead`),
    ],
  },
  {
    name: 'selector labels are checked too',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {"app name": p}}
`,
    // A malformed selector is not also reported as selecting nothing.
    issues: [issue('policies[0].endpointSelector.matchLabels', `invalid key "app name": the name must be ${LABEL_SYNTAX}`)],
  },
  {
    name: 'CIDRs that do not parse',
    yaml: 'name: a\naddressing: {podCIDR: 10.244.0.0, underlayCIDR: 172.30.0.300/24, managementCIDR: 172.31.0.0/33}\nnodes: [{name: n1}]\n',
    issues: [
      issue('addressing.podCIDR', '"10.244.0.0" is not an IPv4 CIDR such as 10.244.0.0/16'),
      issue('addressing.underlayCIDR', '"172.30.0.300/24" is not an IPv4 CIDR such as 10.244.0.0/16'),
      issue('addressing.managementCIDR', '"172.31.0.0/33" is not an IPv4 CIDR such as 10.244.0.0/16'),
    ],
  },
  {
    name: 'CIDR sizes and host bits',
    yaml: 'name: a\naddressing: {podCIDR: 10.244.0.0/20, underlayCIDR: 172.30.0.0/30, managementCIDR: 172.31.1.0/16}\nnodes: [{name: n1}]\n',
    issues: [
      issue('addressing.podCIDR', '10.244.0.0/20 must be a /8 to /16 range (each node gets a /24)'),
      issue('addressing.underlayCIDR', '172.30.0.0/30 must be a /16 to /29 range'),
      issue('addressing.managementCIDR', '172.31.1.0/16 has host bits set (the range is 172.31.0.0/16)'),
    ],
  },
  {
    name: 'overlapping ranges',
    yaml: 'name: a\naddressing: {podCIDR: 10.0.0.0/8, underlayCIDR: 10.1.0.0/24, managementCIDR: 10.1.0.0/28}\nnodes: [{name: n1}]\n',
    issues: [
      issue('addressing.underlayCIDR', 'overlaps podCIDR 10.0.0.0/8'),
      issue('addressing.managementCIDR', 'overlaps podCIDR 10.0.0.0/8'),
      issue('addressing.managementCIDR', 'overlaps underlayCIDR 10.1.0.0/24'),
    ],
  },
  {
    // Nodes start at host .10 (lab/core/plan.ts): a /28 holds .10 to .14.
    name: 'more nodes than the underlay and management ranges hold',
    yaml: manyNodes(6, 'addressing: {underlayCIDR: 172.30.0.0/28, managementCIDR: 172.31.0.16/28}\n'),
    issues: [
      issue('nodes', '6 nodes but underlayCIDR 172.30.0.0/28 has room for 5 (node addresses start at .10): use a /27 or larger'),
      issue('nodes', '6 nodes but managementCIDR 172.31.0.16/28 has room for 5 (node addresses start at .10): use a /27 or larger'),
    ],
  },
  {
    name: 'a /29 is a valid range that holds no node',
    yaml: manyNodes(1, 'addressing: {underlayCIDR: 172.30.0.0/29}\n'),
    issues: [issue('nodes', '1 node but underlayCIDR 172.30.0.0/29 has room for 0 (node addresses start at .10): use a /28 or larger')],
  },
  {
    name: 'more nodes than the pod range has /24s',
    yaml: manyNodes(257, 'addressing: {underlayCIDR: 172.30.0.0/16, managementCIDR: 172.31.0.0/16}\n'),
    issues: [issue('nodes', '257 nodes but podCIDR 10.244.0.0/16 has room for 256 (one /24 each)')],
  },
  {
    name: "more pods than a node's /24 holds",
    yaml:
      'name: a\nnodes:\n  - name: n1\n    pods:\n' +
      Array.from({ length: 254 }, (_, i) => `      - {name: p${i}, labels: {app: x}}\n`).join(''),
    issues: [issue('nodes[0].pods', "254 pods but a node's /24 has room for 253")],
  },
  {
    name: 'pod IPs: malformed, reserved, outside the node range, duplicate',
    yaml: `
name: a
nodes:
  - name: n1
    pods:
      - {name: a, labels: {app: x}, ip: 10.244.0.1}
      - {name: b, labels: {app: x}, ip: 10.244.0.255}
      - {name: c, labels: {app: x}, ip: 10.244.00.7}
      - {name: d, labels: {app: x}, ip: 10.244.0.7}
  - name: n2
    pods:
      - {name: e, labels: {app: x}, ip: 10.244.0.9}
      - {name: f, labels: {app: x}, ip: 10.244.1.7}
      - {name: g, labels: {app: x}, ip: 10.244.1.7}
`,
    issues: [
      issue('nodes[0].pods[0].ip', '10.244.0.1 is reserved; pods get .2 to .254 of 10.244.0.0/24'),
      issue('nodes[0].pods[1].ip', '10.244.0.255 is reserved; pods get .2 to .254 of 10.244.0.0/24'),
      issue('nodes[0].pods[2].ip', '"10.244.00.7" is not an IPv4 address'),
      issue('nodes[1].pods[0].ip', '10.244.0.9 is outside node "n2"\'s pod range 10.244.1.0/24'),
      issue('nodes[1].pods[2].ip', 'duplicate "10.244.1.7"'),
    ],
  },
  {
    name: 'encryption.strict without encryption',
    yaml: 'name: a\nencryption: {strict: true}\nnodes: [{name: n1}]\n',
    issues: [issue('encryption.strict', 'strict mode needs encryption.mode wireguard or ipsec')],
  },
  {
    name: 'endpointSelector that selects no pod',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - {name: x, endpointSelector: {matchLabels: {app: server}}}
  - {name: y, endpointSelector: {matchLabels: {app: p, io.kubernetes.pod.namespace: prod}}}
`,
    issues: [issue('policies[0].endpointSelector', 'selects no pod'), issue('policies[1].endpointSelector', 'selects no pod')],
  },
  {
    name: 'dangling fromEndpoints and toEndpoints',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}}
    ingress:
      - fromEndpoints: [{matchLabels: {app: p}}, {matchLabels: {app: ghost}}]
    egress:
      - toEndpoints: [{matchLabels: {app: p, tier: db}}]
`,
    issues: [
      issue('policies[0].ingress[0].fromEndpoints[1]', 'selects no pod'),
      issue('policies[0].egress[0].toEndpoints[0]', 'selects no pod'),
    ],
  },
  {
    name: 'ports outside 0..65535 and empty port lists',
    yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}}
    ingress:
      - fromEndpoints: [{matchLabels: {app: p}}]
        toPorts: [{ports: [{port: "65536"}, {port: -1, protocol: UDP}, {port: 65535}]}, {ports: []}]
    egress:
      - toEndpoints: [{matchLabels: {app: p}}]
        toPorts: [{ports: []}]
`,
    issues: [
      issue('policies[0].ingress[0].toPorts[0].ports[0].port', '65536 is outside 0..65535'),
      issue('policies[0].ingress[0].toPorts[0].ports[1].port', '-1 is outside 0..65535'),
      issue('policies[0].ingress[0].toPorts[1].ports', 'empty (leave out toPorts to allow every port)'),
      issue('policies[0].egress[0].toPorts[0].ports', 'empty (leave out toPorts to allow every port)'),
    ],
  },
  {
    // Semantic checks never stop at the first problem.
    name: 'several semantic errors at once',
    yaml: `
name: messy
encryption: {strict: true}
addressing: {underlayCIDR: 10.244.0.0/24}
nodes:
  - name: n1
    pods: [{name: web, labels: {app: web}}]
  - name: n1
    pods: [{name: web, labels: {app: web}, ip: 10.244.1.1}]
policies:
  - {name: p, endpointSelector: {matchLabels: {app: db}}}
  - name: p
    endpointSelector: {matchLabels: {app: web}}
    ingress:
      - fromEndpoints: [{matchLabels: {app: ghost}}]
        toPorts: [{ports: []}]
`,
    issues: [
      issue('encryption.strict', 'strict mode needs encryption.mode wireguard or ipsec'),
      issue('addressing.underlayCIDR', 'overlaps podCIDR 10.244.0.0/16'),
      issue('nodes[1].name', 'duplicate "n1"'),
      issue('nodes[1].pods[0].name', 'duplicate "web"'),
      issue('nodes[1].pods[0].ip', '10.244.1.1 is reserved; pods get .2 to .254 of 10.244.1.0/24'),
      issue('policies[0].endpointSelector', 'selects no pod'),
      issue('policies[1].name', 'duplicate "p"'),
      issue('policies[1].ingress[0].fromEndpoints[0]', 'selects no pod'),
      issue('policies[1].ingress[0].toPorts[0].ports', 'empty (leave out toPorts to allow every port)'),
    ],
  },
];

t.test('malformed topologies: exact issues', async (t) => {
  t.ok(cases.length >= 32, `${cases.length} cases`);
  t.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are unique');
  for (const c of cases) {
    const { topology, issues } = parseTopology(c.yaml);
    t.strictSame(issues, c.issues, c.name);
    t.equal(topology, undefined, `${c.name}: no topology`);
  }
});

// ---- helpers ----------------------------------------------------------------

t.test('podLabels adds the implicit labels', async (t) => {
  t.strictSame(podLabels({ labels: { app: 'web' }, namespace: 'prod', serviceAccount: 'web-sa' }), {
    app: 'web',
    'io.kubernetes.pod.namespace': 'prod',
    'io.cilium.k8s.policy.serviceaccount': 'web-sa',
  });
});

t.test('selectorMatches: every pair must be present and equal', async (t) => {
  const labels = podLabels({ labels: { app: 'web', tier: 'front' }, namespace: 'default', serviceAccount: 'default' });
  t.ok(selectorMatches({ matchLabels: {} }, labels), 'empty selector matches all');
  t.ok(selectorMatches({ matchLabels: { app: 'web' } }, labels));
  t.ok(selectorMatches({ matchLabels: { app: 'web', tier: 'front' } }, labels));
  t.ok(selectorMatches({ matchLabels: { 'io.kubernetes.pod.namespace': 'default' } }, labels), 'implicit label');
  t.notOk(selectorMatches({ matchLabels: { app: 'db' } }, labels), 'value differs');
  t.notOk(selectorMatches({ matchLabels: { app: 'web', zone: 'a' } }, labels), 'one key missing');
  t.notOk(selectorMatches({ matchLabels: { empty: '' } }, labels), 'missing key is not the empty value');
  t.ok(selectorMatches({ matchLabels: { empty: '' } }, { empty: '' }), 'empty value matches itself');
  t.notOk(selectorMatches({ matchLabels: { toString: '' } }, {}), 'no prototype keys');
});

t.test('address helpers', async (t) => {
  t.equal(nodePodCIDR('10.244.0.0/16', 0), '10.244.0.0/24');
  t.equal(nodePodCIDR('10.244.0.0/16', 255), '10.244.255.0/24');
  t.equal(nodePodCIDR('10.0.0.0/8', 257), '10.1.1.0/24');
  t.throws(() => nodePodCIDR('10.244.0.0/16', 256), RangeError);
  t.strictSame(parseCIDR('192.168.1.0/24'), { base: 0xc0a80100, prefix: 24 });
  for (const bad of ['192.168.1.0', '192.168.1.0/', '192.168.1.0/024', '1.2.3/8', '01.2.3.4/8', '1.2.3.4/33']) {
    t.equal(parseCIDR(bad), undefined, bad);
  }
});

t.test('validateTopology checks a topology built in code', async (t) => {
  const { topology } = parseTopology(await readFile(new URL('two-node.yaml', TOPOLOGIES), 'utf8'));
  t.ok(topology);
  if (!topology) return;
  t.strictSame(validateTopology(topology), []);
  topology.nodes[1]!.name = 'n1';
  t.strictSame(validateTopology(topology), [{ path: 'nodes[1].name', message: 'duplicate "n1"' }]);
});

t.test('formatIssues and loadTopologyFile', async (t) => {
  const issues = [issue('nodes[1].name', 'duplicate "n1"'), issue('', 'the file is empty')];
  t.strictSame(formatIssues(issues, 'lab.yaml'), ['lab.yaml: nodes[1].name: duplicate "n1"', 'lab.yaml: the file is empty']);
  t.strictSame(formatIssues(issues), ['nodes[1].name: duplicate "n1"', 'the file is empty']);

  const dir = t.testdir();
  const file = join(dir, 'bad.yaml');
  await writeFile(file, 'name: a\nnodes: [{name: n1}, {name: n1, colour: red}]\n');
  const error = await loadTopologyFile(file).catch((e: unknown) => e);
  t.ok(error instanceof TopologyError);
  if (!(error instanceof TopologyError)) return;
  t.strictSame(error.issues, [issue('nodes[1]', 'unknown key "colour"'), issue('nodes[1].name', 'duplicate "n1"')]);
  t.equal(error.file, file);
  t.equal(error.message, `${file}: nodes[1]: unknown key "colour"\n${file}: nodes[1].name: duplicate "n1"`);

  const missing = await loadTopologyFile(join(dir, 'absent.yaml')).catch((e: unknown) => e);
  t.ok(missing instanceof TopologyError);
  t.match((missing as TopologyError).issues, [{ path: '', message: /^cannot read: ENOENT/ }]);
});

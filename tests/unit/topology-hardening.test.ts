// Topology files that used to pass validation and fail later (or quietly do
// the wrong thing): names the command line keeps for itself, address ranges
// no lab can use, problems hidden behind other problems, keys that are
// JavaScript's own, nesting deep enough to exhaust the stack. Also: random
// damage to the shipped files never makes validation throw.
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import type { TopologyIssue } from '../../lab/topology/model.ts';
import { compilePolicies } from '../../lab/policy/compile.ts';
import { allocateIdentities, labelKey } from '../../lab/policy/identity.ts';
import { parseTopology, podLabels, selectorMatches } from '../../lab/topology/validate.ts';

const TOPOLOGIES = new URL('../../topologies/', import.meta.url);
const issue = (path: string, message: string): TopologyIssue => ({ path, message });
const LABEL_SYNTAX = "at most 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit";
const PORT = 'expected a port number such as 8080 or "8080"';
const UNUSABLE = 'which no lab can use';

interface Case {
  name: string;
  yaml: string;
  issues: TopologyIssue[];
}

function checkCases(t: Test, cases: Case[]): void {
  for (const c of cases) {
    const { topology, issues } = parseTopology(c.yaml);
    t.strictSame(issues, c.issues, c.name);
    t.equal(topology, undefined, `${c.name}: no topology`);
  }
}

t.test('names the command line uses for its own parts', async (t) => {
  checkCases(t, [
    {
      // `mtless restart LAB cp` would restart the control plane in node cp's namespace.
      name: 'a node named cp',
      yaml: 'name: a\nnodes: [{name: n1}, {name: cp}]\n',
      issues: [issue('nodes[1].name', '"cp" is reserved: mtless uses it for the control plane')],
    },
    {
      name: 'a node named fabric',
      yaml: 'name: a\nnodes: [{name: fabric}]\n',
      issues: [issue('nodes[0].name', '"fabric" is reserved: mtless uses it for the underlay fabric')],
    },
    {
      // `mtless exec LAB/n2` would find the node first and never reach the pod.
      name: 'a pod named like a node, on another node or its own',
      yaml: `
name: a
nodes:
  - name: n1
    pods: [{name: n2, labels: {app: x}}, {name: n1, labels: {app: x}}]
  - name: n2
`,
      issues: [
        issue('nodes[0].pods[0].name', '"n2" is also a node (nodes[1]); pod and node names must differ, as `mtless exec LAB/NAME` takes either'),
        issue('nodes[0].pods[1].name', '"n1" is also a node (nodes[0]); pod and node names must differ, as `mtless exec LAB/NAME` takes either'),
      ],
    },
    {
      name: 'pods named cp and fabric',
      yaml: 'name: a\nnodes: [{name: n1, pods: [{name: cp, labels: {app: x}}, {name: fabric, labels: {app: x}}]}]\n',
      issues: [
        issue('nodes[0].pods[0].name', '"cp" is reserved: mtless uses it for the control plane'),
        issue('nodes[0].pods[1].name', '"fabric" is reserved: mtless uses it for the underlay fabric'),
      ],
    },
  ]);
  // Names that merely contain a reserved word, and JavaScript's own property names, are fine.
  const { issues } = parseTopology('name: a\nnodes: [{name: cp1, pods: [{name: fabric-a, labels: {app: x}}]}, {name: constructor}]\n');
  t.strictSame(issues, []);
});

t.test('address ranges no lab can use', async (t) => {
  checkCases(t, [
    {
      name: 'loopback pod range',
      yaml: 'name: a\naddressing: {podCIDR: 127.0.0.0/16}\nnodes: [{name: n1}]\n',
      issues: [issue('addressing.podCIDR', `127.0.0.0/16 is in 127.0.0.0/8 (loopback), ${UNUSABLE}`)],
    },
    {
      // `up` used to fail deep inside with "Nexthop has invalid gateway".
      name: 'multicast pods on a this-network underlay',
      yaml: 'name: a\naddressing: {podCIDR: 224.0.0.0/16, underlayCIDR: 0.0.0.0/24}\nnodes: [{name: n1}]\n',
      issues: [
        issue('addressing.podCIDR', `224.0.0.0/16 is in 224.0.0.0/4 (multicast), ${UNUSABLE}`),
        issue('addressing.underlayCIDR', `0.0.0.0/24 is in 0.0.0.0/8 (this network), ${UNUSABLE}`),
      ],
    },
    {
      name: 'link-local and reserved ranges, and a range around link-local',
      yaml: 'name: a\naddressing: {podCIDR: 169.0.0.0/8, underlayCIDR: 240.0.0.0/24, managementCIDR: 169.254.1.0/24}\nnodes: [{name: n1}]\n',
      issues: [
        issue('addressing.podCIDR', `169.0.0.0/8 overlaps 169.254.0.0/16 (link-local), ${UNUSABLE}`),
        issue('addressing.underlayCIDR', `240.0.0.0/24 is in 240.0.0.0/4 (reserved), ${UNUSABLE}`),
        issue('addressing.managementCIDR', `169.254.1.0/24 is in 169.254.0.0/16 (link-local), ${UNUSABLE}`),
      ],
    },
    {
      name: 'the broadcast address range',
      yaml: 'name: a\naddressing: {managementCIDR: 255.255.255.0/24}\nnodes: [{name: n1}]\n',
      issues: [issue('addressing.managementCIDR', `255.255.255.0/24 is in 240.0.0.0/4 (reserved), ${UNUSABLE}`)],
    },
    {
      // Reported for the IP itself, even where the pod range is bad too.
      name: 'pod IPs in unusable ranges',
      yaml: `
name: a
addressing: {podCIDR: 127.0.0.0/16}
nodes:
  - name: n1
    pods: [{name: a, labels: {app: x}, ip: 127.0.0.5}, {name: b, labels: {app: x}, ip: 224.0.0.5}]
`,
      issues: [
        issue('addressing.podCIDR', `127.0.0.0/16 is in 127.0.0.0/8 (loopback), ${UNUSABLE}`),
        issue('nodes[0].pods[0].ip', `127.0.0.5 is in 127.0.0.0/8 (loopback), ${UNUSABLE}`),
        issue('nodes[0].pods[1].ip', `224.0.0.5 is in 224.0.0.0/4 (multicast), ${UNUSABLE}`),
      ],
    },
    {
      name: 'a pod IP in an unusable range beside a good pod range',
      yaml: 'name: a\nnodes: [{name: n1, pods: [{name: a, labels: {app: x}, ip: 169.254.0.9}]}]\n',
      issues: [issue('nodes[0].pods[0].ip', `169.254.0.9 is in 169.254.0.0/16 (link-local), ${UNUSABLE}`)],
    },
    {
      // Node addresses start at .10 (NODE_HOST_OFFSET): say which size holds them all.
      name: 'underlay and management ranges too small for the nodes',
      yaml:
        'name: big\naddressing: {underlayCIDR: 172.30.0.0/28, managementCIDR: 172.31.0.0/29}\nnodes:\n' +
        Array.from({ length: 6 }, (_, i) => `  - {name: n${i}}\n`).join(''),
      issues: [
        issue('nodes', '6 nodes but underlayCIDR 172.30.0.0/28 has room for 5 (node addresses start at .10): use a /27 or larger'),
        issue('nodes', '6 nodes but managementCIDR 172.31.0.0/29 has room for 0 (node addresses start at .10): use a /27 or larger'),
      ],
    },
    {
      name: 'a /29 holds no node',
      yaml: 'name: a\naddressing: {underlayCIDR: 172.30.0.0/29}\nnodes: [{name: n1}]\n',
      issues: [issue('nodes', '1 node but underlayCIDR 172.30.0.0/29 has room for 0 (node addresses start at .10): use a /28 or larger')],
    },
  ]);
  // Ranges next to the unusable ones are fine.
  const { issues } = parseTopology(
    'name: a\naddressing: {podCIDR: 1.0.0.0/16, underlayCIDR: 223.255.255.0/24, managementCIDR: 169.253.0.0/24}\nnodes: [{name: n1}]\n',
  );
  t.strictSame(issues, []);
});

t.test('shape and meaning problems are reported together, in path order', async (t) => {
  checkCases(t, [
    {
      name: 'unknown key, duplicate pod, IP outside the range',
      yaml: `
name: a
nodes:
  - name: n1
    colour: red
    pods:
      - {name: web, labels: {app: web}}
      - {name: web, labels: {app: web}, ip: 10.244.9.9}
`,
      issues: [
        issue('nodes[0]', 'unknown key "colour"'),
        issue('nodes[0].pods[1].name', 'duplicate "web"'),
        issue('nodes[0].pods[1].ip', '10.244.9.9 is outside node "n1"\'s pod range 10.244.0.0/24'),
      ],
    },
    {
      name: 'port problems beside a bad port',
      yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - name: x
    endpointSelector: {matchLabels: {app: p}}
    ingress:
      - fromEndpoints: [{matchLabels: {app: ghost}}]
        toPorts: [{ports: [{port: http}, {port: "70000"}]}, {ports: []}]
`,
      issues: [
        issue('policies[0].ingress[0].fromEndpoints[0]', 'selects no pod'),
        issue('policies[0].ingress[0].toPorts[0].ports[0].port', PORT),
        issue('policies[0].ingress[0].toPorts[0].ports[1].port', '70000 is outside 0..65535'),
        issue('policies[0].ingress[0].toPorts[1].ports', 'empty (leave out toPorts to allow every port)'),
      ],
    },
    {
      // Sorted by where each path is in the file, whichever pass found it.
      name: 'interleaved in the order of the file',
      yaml: `
nodes:
  - {name: n1, pods: [{name: p, labels: {app: p}}], zone: a}
  - {name: n1}
encryption: {strict: true}
name: Bad
addressing: {podCIDR: 10.244.0.0/20, underlayCIDR: 172.30.0.0}
routing: mesh
`,
      issues: [
        issue('nodes[0]', 'unknown key "zone"'),
        issue('nodes[1].name', 'duplicate "n1"'),
        issue('encryption.strict', 'strict mode needs encryption.mode wireguard or ipsec'),
        issue('name', "must be 1 to 24 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"),
        issue('addressing.podCIDR', '10.244.0.0/20 must be a /8 to /16 range (each node gets a /24)'),
        issue('addressing.underlayCIDR', '"172.30.0.0" is not an IPv4 CIDR such as 10.244.0.0/16'),
        issue('routing', 'must be one of "native", "tunnel" (got "mesh")'),
      ],
    },
    {
      // A pod whose labels did not parse might be the one a selector means: no guess.
      name: 'no "selects no pod" while pods are malformed',
      yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: 7}}, {name: q, labels: {app: q}}]}]
policies:
  - {name: x, endpointSelector: {matchLabels: {app: "7"}}}
`,
      issues: [issue('nodes[0].pods[0].labels.app', 'expected a string, got 7 (quote it)')],
    },
    {
      name: 'problems of an object before those of its fields',
      yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - endpointSelector: {matchLabels: {app: nope}}
    ingress: [{toPorts: [{ports: [{port: 99999}]}]}]
`,
      issues: [
        issue('policies[0].name', 'required'),
        issue('policies[0].endpointSelector', 'selects no pod'),
        issue('policies[0].ingress[0].fromEndpoints', 'required'),
        issue('policies[0].ingress[0].toPorts[0].ports[0].port', '99999 is outside 0..65535'),
      ],
    },
  ]);
});

t.test('partial data: values of every wrong kind anywhere never make validation throw', async (t) => {
  const JUNK: unknown[] = [null, 0, -1, 1.5, 'x', '', true, [], [null], {}, { name: 'cp' }, { a: 1 }, '10.0.0.0/8', [[{}]]];
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31; // a fixed sequence: the same damage every run
    return seed % n;
  };
  const damage = (value: unknown): unknown => {
    if (random(4) === 0 || value === null || typeof value !== 'object') return JUNK[random(JUNK.length)];
    const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...value };
    const keys = Object.keys(copy);
    if (keys.length === 0) return JUNK[random(JUNK.length)];
    const key = keys[random(keys.length)]!;
    (copy as Record<string, unknown>)[key] = damage((copy as Record<string, unknown>)[key]);
    return copy;
  };
  let runs = 0;
  for (const file of ['two-node-auth.yaml', 'mesh.yaml', 'two-node-wireguard.yaml']) {
    const original = parseTopology(await readFile(new URL(file, TOPOLOGIES), 'utf8')).topology;
    t.ok(original, file);
    for (let i = 0; i < 400; i++) {
      let damaged: unknown = original;
      for (let hits = 1 + random(3); hits > 0; hits--) damaged = damage(damaged);
      const text = stringify(damaged);
      let result: ReturnType<typeof parseTopology> | undefined;
      try {
        result = parseTopology(text);
      } catch (error) {
        t.fail(`threw ${(error as Error).stack}\non:\n${text}`);
        break;
      }
      runs++;
      if (result.topology) t.strictSame(result.issues, [], 'a topology only without issues');
      else if (result.issues.length === 0) t.fail(`neither a topology nor issues for:\n${text}`);
    }
  }
  t.equal(runs, 1200);
});

t.test('keys that are JavaScript property names stay what they are', async (t) => {
  checkCases(t, [
    {
      // Used to become {} silently: a selector of every pod.
      name: '__proto__ in matchLabels',
      yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - {name: x, endpointSelector: {matchLabels: {__proto__: zzz}}}
`,
      issues: [issue('policies[0].endpointSelector.matchLabels', `invalid key "__proto__": the name must be ${LABEL_SYNTAX}`)],
    },
    {
      name: '__proto__ in pod labels, as a string and as a mapping',
      yaml: `
name: a
nodes:
  - name: n1
    pods:
      - {name: p, labels: {app: p, "__proto__": x}}
      - {name: q, labels: {app: q, __proto__: {polluted: "yes"}}}
`,
      issues: [
        issue('nodes[0].pods[0].labels', `invalid key "__proto__": the name must be ${LABEL_SYNTAX}`),
        // (zod skips a "__proto__" key; the key is reported all the same)
        issue('nodes[0].pods[1].labels', `invalid key "__proto__": the name must be ${LABEL_SYNTAX}`),
      ],
    },
    {
      name: '__proto__ as an unknown key of an object',
      yaml: 'name: a\nnodes: [{name: n1, __proto__: {pods: []}}]\n',
      issues: [issue('nodes[0]', 'unknown key "__proto__"')],
    },
    {
      // YAML tells 1 from "1"; a JavaScript object cannot: the second would overwrite the first.
      name: 'keys equal once they are strings',
      yaml: 'name: a\nnodes: [{name: n1, pods: [{name: p, labels: {1: a, "1": b}}]}]\n',
      issues: [issue('', 'line 2, column 52: Map keys must be unique')],
    },
    {
      name: 'null and the empty string are the same key',
      yaml: 'name: a\nnodes: [{name: n1, pods: [{name: p, labels: {~: a, "": b}}]}]\n',
      issues: [issue('', 'line 2, column 52: Map keys must be unique')],
    },
    {
      // YAML 1.1 merge keys are not read: "<<" is an ordinary (here invalid) label key.
      name: 'merge keys are plain keys',
      yaml: 'name: a\nnodes: [{name: n1, pods: [{name: p, labels: {<<: {app: p}}}]}]\n',
      issues: [
        issue('nodes[0].pods[0].labels', `invalid key "<<": the name must be ${LABEL_SYNTAX}`),
        issue('nodes[0].pods[0].labels["<<"]', 'expected a string, got a mapping'),
      ],
    },
    {
      name: 'selector keys that are Object.prototype names select no pod without that label',
      yaml: `
name: a
nodes: [{name: n1, pods: [{name: p, labels: {app: p}}]}]
policies:
  - {name: x, endpointSelector: {matchLabels: {toString: a}}}
  - {name: y, endpointSelector: {matchLabels: {constructor: ""}}}
`,
      issues: [issue('policies[0].endpointSelector', 'selects no pod'), issue('policies[1].endpointSelector', 'selects no pod')],
    },
  ]);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');

  // Label names that are Object.prototype property names are valid labels and stay own keys.
  const { topology, issues } = parseTopology(`
name: a
nodes: [{name: n1, pods: [{name: p, labels: {constructor: c, hasOwnProperty: h, toString: t}}]}]
policies:
  - {name: x, endpointSelector: {matchLabels: {hasOwnProperty: h}}}
`);
  t.strictSame(issues, []);
  const pod = topology!.nodes[0]!.pods[0]!;
  t.strictSame(Object.keys(pod.labels), ['constructor', 'hasOwnProperty', 'toString']);
  t.ok(selectorMatches(topology!.policies[0]!.endpointSelector, podLabels(pod)));

  // A label set built in code with an own __proto__ key keeps it everywhere.
  const odd = Object.fromEntries([['__proto__', 'x'], ['app', 'y']]) as Record<string, string>;
  const labels = podLabels({ labels: odd, namespace: 'default', serviceAccount: 'default' });
  t.ok(Object.hasOwn(labels, '__proto__'), 'podLabels keeps an own __proto__');
  t.equal(Object.getPrototypeOf(labels), Object.prototype, 'and does not turn it into a prototype');
  t.match(labelKey(labels), /k8s:__proto__=x/, 'the identity key counts it');
  t.notOk(selectorMatches({ matchLabels: odd }, podLabels({ labels: { app: 'y' }, namespace: 'default', serviceAccount: 'default' })));
  t.ok(selectorMatches({ matchLabels: odd }, labels));
});

t.test('identities and policies keep label keys that are Object.prototype names', async (t) => {
  const { topology, issues } = parseTopology(`
name: a
nodes:
  - name: n1
    pods:
      - {name: a, labels: {constructor: x}}
      - {name: b, labels: {toString: x}}
      - {name: c, labels: {app: c}}
policies:
  - name: only-constructor
    endpointSelector: {matchLabels: {constructor: x}}
    ingress: [{fromEndpoints: [{matchLabels: {toString: x}}]}]
`);
  t.strictSame(issues, []);
  if (!topology) return;
  const identities = allocateIdentities(topology);
  t.equal(new Set(identities.byPod.values()).size, 3, 'three label sets, three identities');
  const policies = compilePolicies(topology, identities);
  t.strictSame(
    [...policies.values()].filter((p) => p.ingressEnforced).map((p) => p.pod),
    ['a'],
    'the selector picks the pod that has the key, not every pod (whose objects all inherit "constructor")',
  );
  t.strictSame(
    policies.get('a')!.entries.map((e) => e.peerIdentity),
    [identities.byPod.get('b'), 1].sort((x, y) => x! - y!),
    'peer: pod b only (plus the local host)',
  );
});

t.test('nesting deeper than a topology needs', async (t) => {
  const brackets = (n: number) => `name: a\nnodes: ${'['.repeat(n)}${']'.repeat(n)}\n`;
  checkCases(t, [
    // The root mapping is level 1, nodes' list level 2 (column 8): level 65 opens at column 71.
    { name: 'flow lists 100 deep', yaml: brackets(100), issues: [issue('nodes', 'line 2, column 71: nesting deeper than 64 levels')] },
    // Used to be "Maximum call stack size exceeded".
    { name: 'flow lists 100000 deep', yaml: brackets(100_000), issues: [issue('nodes', 'line 2, column 71: nesting deeper than 64 levels')] },
    {
      name: 'block mappings 200 deep',
      yaml: 'name: a\nnodes:\n' + Array.from({ length: 200 }, (_, i) => `${' '.repeat(i + 1)}k${i}:\n`).join(''),
      issues: [issue('nodes', 'line 66, column 65: nesting deeper than 64 levels')],
    },
    {
      name: 'a deep list as the whole file',
      yaml: '- '.repeat(5000) + 'x\n',
      issues: [issue('', 'line 1, column 129: nesting deeper than 64 levels')],
    },
    {
      name: 'a deep key',
      yaml: `name: a\n${'{'.repeat(70)}${'}'.repeat(70)}: x\nnodes: [{name: n1}]\n`,
      issues: [issue('', 'line 2, column 64: nesting deeper than 64 levels')],
    },
  ]);
  // 64 levels are fine for the reader (and wrong for the shape).
  const { issues } = parseTopology(brackets(63));
  t.strictSame(issues, [issue('nodes[0]', 'expected a mapping, got a list')]);
});

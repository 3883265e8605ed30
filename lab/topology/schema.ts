// The shape of a topology FILE, as zod 4 schemas. Shape only: every object is
// strict (unknown keys fail, as in containerlab) and omitted fields get their
// defaults. Cross-field rules (duplicates, CIDRs, selectors …) live in
// validate.ts so that all of them can be reported together.
import { z } from 'zod';

import { DEFAULT_ADDRESSING, type Topology } from './model.ts';
import { LAB_NAME_RE } from './model.ts';

const PORT_MESSAGE = 'expected a port number such as 8080 or "8080"';

/**
 * Label maps. Key and value syntax is checked in validate.ts, on the file's
 * own keys: zod's record output drops an own "__proto__" key, which must be
 * reported (it is not a label name), not lost.
 */
const Labels = z.record(z.string(), z.string());

const SelectorRequirement = z.strictObject({
  key: z.string(),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string()).optional(),
});

const Selector = z
  .strictObject({
    // Like Cilium, an empty selector selects every pod.
    matchLabels: Labels.default({}),
    matchExpressions: z.array(SelectorRequirement).optional(),
  })
  // An id makes JSON Schema define it once, under that name.
  .meta({ id: 'Selector', description: 'Selects the pods that carry every one of these labels.' });

// Cilium writes ports as strings ("8080"); accept those and plain numbers, and
// normalise to a number. The 0..65535 range is a semantic check.
const Port = z
  .union(
    [
      z.number({ error: PORT_MESSAGE }).int({ error: PORT_MESSAGE }),
      z.string({ error: PORT_MESSAGE }).regex(/^[0-9]+$/, { error: PORT_MESSAGE }),
    ],
    { error: PORT_MESSAGE },
  )
  .transform((port) => Number(port))
  .describe('Port number, 0 = any port.');

const PortProtocol = z.strictObject({
  port: Port,
  endPort: z.number().int().optional().describe('Last port of a range from port (at most 1024 ports: the lab\'s policy map holds single ports).'),
  protocol: z.enum(['TCP', 'UDP', 'ANY']).default('ANY'),
});

const PortRule = z
  .strictObject({
    ports: z.array(PortProtocol),
  })
  .meta({ id: 'PortRule' });

// Cilium's CRD enum is disabled | required | test-always-fail; the order here keeps the lab's first.
const Authentication = z
  .strictObject({ mode: z.enum(['required', 'disabled', 'test-always-fail']) })
  .meta({
    id: 'Authentication',
    description: '"required": the first packet of a flow waits for the agents\' mutual-auth handshake. "test-always-fail": the agents\' always-fail handler refuses every request (Cilium\'s test auth type), so the flow stays dropped.',
  });

const Entity = z.enum(['world', 'cluster', 'host', 'remote-node', 'all']);
const WorldCIDR = z.array(z.string()).optional().describe('Only 0.0.0.0/0 (reserved:world): the lab\'s ipcache holds no CIDR identities.');

const IngressRule = z.strictObject({
  fromEndpoints: z.array(Selector).min(1),
  fromEntities: z.array(Entity).optional(),
  fromCIDR: WorldCIDR,
  toPorts: z.array(PortRule).default([]).describe('Omitted: every port.'),
  authentication: Authentication.optional(),
});

const EgressRule = z.strictObject({
  toEndpoints: z.array(Selector).min(1),
  toEntities: z.array(Entity).optional(),
  toCIDR: WorldCIDR,
  toPorts: z.array(PortRule).default([]).describe('Omitted: every port.'),
  authentication: Authentication.optional(),
});

const Policy = z
  .strictObject({
    name: z.string(),
    endpointSelector: Selector,
    ingress: z.array(IngressRule).optional(),
    egress: z.array(EgressRule).optional(),
    ingressDeny: z.array(IngressRule.omit({ authentication: true })).optional(),
    egressDeny: z.array(EgressRule.omit({ authentication: true })).optional(),
  })
  .describe('A CiliumNetworkPolicy spec with its name beside it.');

const NAMES_RULE = 'a DNS label of at most 40 characters, not "cp" or "fabric" (the command line\'s own names)';

const Pod = z.strictObject({
  name: z.string().describe(`Unique in the lab: ${NAMES_RULE}, and not the name of a node.`),
  namespace: z.string().default('default'),
  serviceAccount: z.string().default('default'),
  // A pod without labels has no identity worth a policy; demand one.
  labels: Labels.refine((labels) => Object.keys(labels).length > 0, { error: 'needs at least one label' })
    // refine() is invisible to JSON Schema; tell editors the same rule.
    .meta({ minProperties: 1 }),
  ip: z.string().optional().describe("Fixed IPv4 address inside the node's /24 (.2 to .254); default: the next free one."),
});

const Node = z.strictObject({
  name: z.string().describe(`Unique in the lab: ${NAMES_RULE}.`),
  pods: z.array(Pod).default([]),
});

// Every range: not in 0/8, 127/8, 169.254/16, 224/4 or 240/4 (validate.ts).
const UNUSABLE = 'Not in 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4 or 240.0.0.0/4.';
const NODE_RANGE = `/16 to /29; node i gets host .10+i, so a /28 holds 5 nodes, a /27 21. ${UNUSABLE}`;

const Addressing = z.strictObject({
  podCIDR: z.string().default(DEFAULT_ADDRESSING.podCIDR).describe(`/8 to /16; node i gets its i-th /24. ${UNUSABLE}`),
  underlayCIDR: z.string().default(DEFAULT_ADDRESSING.underlayCIDR).describe(NODE_RANGE),
  managementCIDR: z.string().default(DEFAULT_ADDRESSING.managementCIDR).describe(NODE_RANGE),
});

const Encryption = z.strictObject({
  mode: z.enum(['none', 'wireguard', 'ipsec']).default('none'),
  strict: z.boolean().default(false).describe('Drop unencrypted pod traffic to remote nodes.'),
});

export const TopologyFileSchema = z
  .strictObject({
    name: z.string().regex(LAB_NAME_RE, {
      error: "must be 1 to 24 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'",
    }),
    routing: z.enum(['native', 'tunnel']).default('native'),
    // zod 4 returns a default as given (a shallow copy), without parsing it.
    encryption: Encryption.default({ mode: 'none', strict: false }),
    sockmap: z.boolean().default(false),
    addressing: Addressing.default(DEFAULT_ADDRESSING),
    nodes: z.array(Node).min(1),
    policies: z.array(Policy).default([]),
  })
  .describe('A mtless-lab topology: nodes, pods and CiliumNetworkPolicy-shaped policies.');

/** What a topology file may contain (defaults optional). */
export type TopologyFile = z.input<typeof TopologyFileSchema>;

// The parsed file must be exactly a model.ts Topology; fail the build if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesModel: Same<z.output<typeof TopologyFileSchema>, Topology> = true;
void schemaMatchesModel;

// Topology file → Topology, in three passes that each report every problem
// they find: YAML syntax, then the zod shape (strict), then the semantic rules
// (names, addresses, selectors). A later pass runs only when the earlier ones
// found nothing, so its checks can trust the shape. Pure data: no processes.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';

import { OBJECT_NAME_RE, type Labels, type Pod, type Selector, type Topology, type TopologyIssue } from './model.ts';
import { TopologyFileSchema } from './schema.ts';
import { cidrSize, formatCIDR, formatIPv4, nodePodCIDR, parseCIDR, parseIPv4, type Cidr } from './ipv4.ts';

export const NODE_NAME_MAX = 40;
export const POD_NAME_MAX = 40;
/** Pods get .2 to .254 of their node's /24: .0 and .255 are network and broadcast, .1 is the node's. */
export const PODS_PER_NODE_MAX = 253;

/** Label keys the lab sets on every pod itself, as Kubernetes and Cilium do. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';

/** A topology file that failed to load; `.issues` lists every problem. */
export class TopologyError extends Error {
  constructor(
    readonly issues: TopologyIssue[],
    readonly file?: string,
  ) {
    super(formatIssues(issues, file).join('\n'));
    this.name = 'TopologyError';
  }
}

/** Parses and validates a topology file's text. `topology` is set only when `issues` is empty. */
export function parseTopology(text: string): { topology?: Topology; issues: TopologyIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      issues: doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        // yaml's own advice here (parseAllDocuments) is for programmers, not for this file's author.
        const message = error.code === 'MULTIPLE_DOCS' ? 'a topology file holds one YAML document' : error.message;
        return { path: '', message: `line ${line}, column ${col}: ${message}` };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS(); // throws on unresolved aliases and alias bombs
  } catch (error) {
    return { issues: [{ path: '', message: (error as Error).message }] };
  }
  if (data === null || data === undefined) return { issues: [{ path: '', message: 'the file is empty' }] };

  // reportInput: the messages say what was found, and tell "missing" from "wrong".
  const parsed = TopologyFileSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) return { issues: parsed.error.issues.flatMap(shapeIssues) };

  const issues = validateTopology(parsed.data);
  return issues.length > 0 ? { issues } : { topology: parsed.data, issues };
}

/** Reads and validates a topology file; throws a TopologyError listing every problem. */
export async function loadTopologyFile(path: string): Promise<Topology> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new TopologyError([{ path: '', message: `cannot read: ${(error as Error).message}` }], path);
  }
  const { topology, issues } = parseTopology(text);
  if (!topology) throw new TopologyError(issues, path);
  return topology;
}

/** One line per issue: `FILE: path: message` (parts that are empty are left out). */
export function formatIssues(issues: TopologyIssue[], file?: string): string[] {
  return issues.map((issue) => [file, issue.path, issue.message].filter(Boolean).join(': '));
}

// ---- selectors --------------------------------------------------------------

/** A pod's labels including the implicit namespace and service-account labels. */
export function podLabels(pod: Pick<Pod, 'labels' | 'namespace' | 'serviceAccount'>): Labels {
  return { ...pod.labels, [NAMESPACE_LABEL]: pod.namespace, [SERVICE_ACCOUNT_LABEL]: pod.serviceAccount };
}

/** True when every matchLabels pair is among `labels` (so an empty selector matches everything). */
export function selectorMatches(selector: Selector, labels: Labels): boolean {
  return Object.entries(selector.matchLabels).every(([key, value]) => Object.hasOwn(labels, key) && labels[key] === value);
}

// ---- addresses (helpers in ipv4.ts, shared with the plan) ---------------------
export { formatIPv4, nodePodCIDR, parseCIDR, parseIPv4, type Cidr } from './ipv4.ts';

/**
 * Node i gets host address NODE_HOST_OFFSET + i on the underlay and management
 * networks (as lab/core/plan.ts assigns them); the hosts below are kept for the
 * control plane (.1) and other lab services.
 */
export const NODE_HOST_OFFSET = 10;

/** Nodes that fit on the underlay or management network: from the offset up to, not including, broadcast. */
export const nodesThatFit = (cidr: Cidr) => Math.max(0, cidrSize(cidr) - 1 - NODE_HOST_OFFSET);

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---- semantic checks --------------------------------------------------------

/**
 * Every semantic problem of a shape-valid topology (what parseTopology runs
 * after zod). Exported for topologies built in code.
 */
export function validateTopology(topology: Topology): TopologyIssue[] {
  const issues: TopologyIssue[] = [];
  const report = (path: string, message: string) => issues.push({ path, message });

  if (topology.encryption.strict && topology.encryption.mode === 'none') {
    report('encryption.strict', 'strict mode needs encryption.mode wireguard or ipsec');
  }

  // Ranges: each checked alone, then pairwise; a bad range skips the checks that need it.
  const { podCIDR, underlayCIDR, managementCIDR } = topology.addressing;
  const pods = checkRange(report, 'addressing.podCIDR', podCIDR, 8, 16, ' (each node gets a /24)');
  const underlay = checkRange(report, 'addressing.underlayCIDR', underlayCIDR, 16, 29, '');
  const management = checkRange(report, 'addressing.managementCIDR', managementCIDR, 16, 29, '');
  const overlaps = (a: Cidr | undefined, b: Cidr | undefined) =>
    a !== undefined && b !== undefined && a.base < b.base + cidrSize(b) && b.base < a.base + cidrSize(a);
  if (overlaps(pods, underlay)) report('addressing.underlayCIDR', `overlaps podCIDR ${podCIDR}`);
  if (overlaps(pods, management)) report('addressing.managementCIDR', `overlaps podCIDR ${podCIDR}`);
  if (overlaps(underlay, management)) report('addressing.managementCIDR', `overlaps underlayCIDR ${underlayCIDR}`);

  const nodeCount = topology.nodes.length;
  if (pods && nodeCount > 2 ** (24 - pods.prefix)) {
    report('nodes', `${plural(nodeCount, 'node')} but podCIDR ${podCIDR} has room for ${2 ** (24 - pods.prefix)} (one /24 each)`);
  }
  for (const [field, cidr] of [['underlayCIDR', underlay], ['managementCIDR', management]] as const) {
    if (cidr && nodeCount > nodesThatFit(cidr)) {
      report('nodes', `${plural(nodeCount, 'node')} but ${field} ${topology.addressing[field]} has room for ${nodesThatFit(cidr)}`);
    }
  }

  // Nodes and pods. Pod names and IPs are unique lab-wide.
  const nodeNames = new Set<string>();
  const podNames = new Set<string>();
  const podIPs = new Set<number>();
  topology.nodes.forEach((node, i) => {
    const at = `nodes[${i}]`;
    checkObjectName(report, `${at}.name`, node.name, NODE_NAME_MAX);
    checkUnique(report, nodeNames, `${at}.name`, node.name);
    if (node.pods.length > PODS_PER_NODE_MAX) {
      report(`${at}.pods`, `${plural(node.pods.length, 'pod')} but a node's /24 has room for ${PODS_PER_NODE_MAX}`);
    }
    const range = pods && i < 2 ** (24 - pods.prefix) ? nodePodCIDR(podCIDR, i) : undefined;
    node.pods.forEach((pod, j) => {
      const podAt = `${at}.pods[${j}]`;
      checkObjectName(report, `${podAt}.name`, pod.name, POD_NAME_MAX);
      checkUnique(report, podNames, `${podAt}.name`, pod.name);
      checkObjectName(report, `${podAt}.namespace`, pod.namespace, 63);
      if (!isSubdomain(pod.serviceAccount)) report(`${podAt}.serviceAccount`, notSubdomain(pod.serviceAccount));
      checkLabels(report, `${podAt}.labels`, pod.labels);
      for (const [key, field] of [[NAMESPACE_LABEL, 'namespace'], [SERVICE_ACCOUNT_LABEL, 'serviceAccount']] as const) {
        if (Object.hasOwn(pod.labels, key)) report(`${podAt}.labels`, `"${key}" is implicit; set the pod's ${field} instead`);
      }
      if (pod.ip !== undefined) checkPodIP(report, `${podAt}.ip`, pod.ip, node.name, range, podIPs);
    });
  });

  // Policies: selectors must select something, or the policy is a typo that silently does nothing.
  const allPodLabels = topology.nodes.flatMap((node) => node.pods.map(podLabels));
  const checkSelector = (path: string, selector: Selector) => {
    const wellFormed = checkLabels(report, `${path}.matchLabels`, selector.matchLabels);
    if (wellFormed && !allPodLabels.some((labels) => selectorMatches(selector, labels))) report(path, 'selects no pod');
  };
  const policyNames = new Set<string>();
  topology.policies.forEach((policy, i) => {
    const at = `policies[${i}]`;
    if (!isSubdomain(policy.name)) report(`${at}.name`, notSubdomain(policy.name));
    checkUnique(report, policyNames, `${at}.name`, policy.name);
    checkSelector(`${at}.endpointSelector`, policy.endpointSelector);
    const rules = [
      ...(policy.ingress ?? []).map((rule, j) => ({ at: `${at}.ingress[${j}]`, peers: 'fromEndpoints', selectors: rule.fromEndpoints, toPorts: rule.toPorts })),
      ...(policy.egress ?? []).map((rule, j) => ({ at: `${at}.egress[${j}]`, peers: 'toEndpoints', selectors: rule.toEndpoints, toPorts: rule.toPorts })),
    ];
    for (const rule of rules) {
      rule.selectors.forEach((selector, k) => checkSelector(`${rule.at}.${rule.peers}[${k}]`, selector));
      rule.toPorts.forEach((portRule, k) => {
        const portsAt = `${rule.at}.toPorts[${k}].ports`;
        if (portRule.ports.length === 0) report(portsAt, 'empty (leave out toPorts to allow every port)');
        portRule.ports.forEach(({ port }, m) => {
          if (port < 0 || port > 65535) report(`${portsAt}[${m}].port`, `${port} is outside 0..65535`);
        });
      });
    }
  });
  return issues;
}

type Report = (path: string, message: string) => void;

function checkRange(report: Report, path: string, text: string, minPrefix: number, maxPrefix: number, why: string): Cidr | undefined {
  const cidr = parseCIDR(text);
  if (!cidr) return void report(path, `"${text}" is not an IPv4 CIDR such as 10.244.0.0/16`);
  if (cidr.prefix < minPrefix || cidr.prefix > maxPrefix) {
    return void report(path, `${text} must be a /${minPrefix} to /${maxPrefix} range${why}`);
  }
  const network = cidr.base - (cidr.base % cidrSize(cidr));
  if (network !== cidr.base) return void report(path, `${text} has host bits set (the range is ${formatIPv4(network)}/${cidr.prefix})`);
  return cidr;
}

function checkPodIP(report: Report, path: string, text: string, nodeName: string, range: string | undefined, seen: Set<number>): void {
  const ip = parseIPv4(text);
  if (ip === undefined) return report(path, `"${text}" is not an IPv4 address`);
  if (seen.has(ip)) report(path, `duplicate "${text}"`);
  seen.add(ip);
  if (range === undefined) return; // podCIDR or node count already reported
  const cidr = parseCIDR(range)!;
  if (ip < cidr.base || ip >= cidr.base + 256) {
    report(path, `${text} is outside node "${nodeName}"'s pod range ${formatCIDR(cidr)}`);
  } else if ([0, 1, 255].includes(ip - cidr.base)) {
    report(path, `${text} is reserved; pods get .2 to .254 of ${formatCIDR(cidr)}`);
  }
}

function checkUnique(report: Report, seen: Set<string>, path: string, name: string): void {
  if (seen.has(name)) report(path, `duplicate "${name}"`);
  seen.add(name);
}

function checkObjectName(report: Report, path: string, name: string, max: number): void {
  if (name.length > max) report(path, `"${name}" is too long (${name.length} characters, at most ${max})`);
  else if (!OBJECT_NAME_RE.test(name)) {
    report(path, `"${name}" is not a DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit)`);
  }
}

// Kubernetes object and label syntax (apimachinery validation).
const SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const isSubdomain = (name: string) => name.length <= 253 && SUBDOMAIN_RE.test(name);
const notSubdomain = (name: string) => `"${name}" is not a DNS subdomain (a-z, 0-9, '-' and '.', at most 253 characters)`;
const LABEL_SYNTAX = "at most 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit";

/** Reports bad keys at the map's path and bad values at the key's; true when all are well formed. */
function checkLabels(report: Report, path: string, labels: Labels): boolean {
  let ok = true;
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = key.slice(slash + 1);
    if (prefix !== undefined && !isSubdomain(prefix)) {
      report(path, `invalid key "${key}": the prefix before "/" must be a DNS subdomain`);
      ok = false;
    } else if (name.length > 63 || !LABEL_NAME_RE.test(name)) {
      report(path, `invalid key "${key}": the name must be ${LABEL_SYNTAX}`);
      ok = false;
    }
    if (value !== '' && (value.length > 63 || !LABEL_NAME_RE.test(value))) {
      report(joinPath(path, key), `invalid value "${value}": must be empty or ${LABEL_SYNTAX}`);
      ok = false;
    }
  }
  return ok;
}

// ---- zod issues → TopologyIssue -----------------------------------------------

/** `nodes[1].pods[0].name`; keys that are not plain words are quoted: `labels["app.kubernetes.io/name"]`. */
function joinPath(base: string, key: PropertyKey): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const text = String(key);
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(text)) return base ? `${base}.${text}` : text;
  return `${base}[${JSON.stringify(text)}]`;
}

function shapeIssues(issue: z.core.$ZodIssue): TopologyIssue[] {
  const path = issue.path.reduce<string>(joinPath, '');
  // One issue per unknown key, reported at the object that holds it.
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ path, message: `unknown key "${key}"` }));
  return [{ path, message: shapeMessage(issue) }];
}

const KIND: Record<string, string> = {
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

/** YAML words for what was found: a scalar is shown as written. */
function describeInput(input: unknown): string {
  if (Array.isArray(input)) return 'a list';
  if (input !== null && typeof input === 'object') return 'a mapping';
  return JSON.stringify(input) ?? String(input);
}

function shapeMessage(issue: z.core.$ZodIssue): string {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) return 'required';
  switch (issue.code) {
    case 'invalid_type': {
      // YAML reads 8080, true and 1.0 as numbers and booleans; labels and the like want strings.
      const hint = issue.expected === 'string' && ['number', 'boolean'].includes(typeof issue.input) ? ' (quote it)' : '';
      return `expected ${KIND[issue.expected] ?? issue.expected}, got ${describeInput(issue.input)}${hint}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')} (got ${describeInput(issue.input)})`;
    case 'too_small':
      if (issue.origin === 'array') return `must have at least ${issue.minimum} ${issue.minimum === 1 ? 'item' : 'items'}`;
      return issue.message;
    default:
      // Our own messages (regex, refine, union): already written for people.
      return issue.message;
  }
}

// Topology file → Topology. YAML syntax first (with a nesting limit, so no
// file can exhaust the stack); then the zod shape (strict) and the semantic
// rules (names, addresses, selectors), both on the same data: the semantic
// checks read whatever has the right shape, so a file's problems are all
// reported at once, in the order of the file. Pure data: no processes.
import { readFile } from 'node:fs/promises';
import { CST, isScalar, LineCounter, parseDocument, Parser, type ParsedNode } from 'yaml';
import { z } from 'zod';

import { NAMESPACE_LABEL, NODE_HOST_OFFSET, OBJECT_NAME_RE, podLabels, RESERVED_NAMES, SERVICE_ACCOUNT_LABEL, selectorMatches, type Labels, type Pod, type Selector, type Topology, type TopologyIssue } from './model.ts';
// Re-exported: the pure parts of a topology live in model.ts, which daemons import without the YAML and zod parsers.
export { NAMESPACE_LABEL, NODE_HOST_OFFSET, podLabels, SERVICE_ACCOUNT_LABEL, selectorMatches } from './model.ts';
import { TopologyFileSchema } from './schema.ts';
import { cidrSize, cidrsOverlap, formatCIDR, formatIPv4, nodePodCIDR, parseCIDR, parseIPv4, UNUSABLE_RANGES, type Cidr } from './ipv4.ts';

export const NODE_NAME_MAX = 40;
export const POD_NAME_MAX = 40;
/** Pods get .2 to .254 of their node's /24: .0 and .255 are network and broadcast, .1 is the node's. */
export const PODS_PER_NODE_MAX = 253;


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

/** Collections inside collections, the file's root mapping being level 1; a topology needs 9. */
export const MAX_NESTING = 64;

/** Parses and validates a topology file's text. `topology` is set only when `issues` is empty. */
export function parseTopology(text: string): { topology?: Topology; issues: TopologyIssue[] } {
  // yaml composes documents recursively: deep enough nesting overflows the
  // stack. Its parser (CST) is not recursive, so measure the depth there first.
  const deep = tooDeep(text);
  if (deep) return { issues: [{ path: deep.path, message: `${deep.where}: nesting deeper than ${MAX_NESTING} levels` }] };
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    // YAML 1.1 merge keys ("<<") would copy keys in from elsewhere; here "<<" is an ordinary key.
    merge: false,
    // Keys become JavaScript strings: 1 and "1", or ~ and "", would overwrite each other.
    uniqueKeys: (a, b) => a === b || (isScalar(a) && isScalar(b) && jsKey(a) === jsKey(b)),
    // A collection as a key becomes an odd string key, which the checks report; no console warning.
    logLevel: 'error',
  });
  if (doc.errors.length > 0) {
    return {
      issues: doc.errors.map((error) => {
        // yaml's own advice here (parseAllDocuments) is for programmers, not for this file's author.
        const message = error.code === 'MULTIPLE_DOCS' ? 'a topology file holds one YAML document' : error.message;
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return { path: '', message: `line ${line}, column ${col}: ${message}` };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS(); // throws on unresolved aliases and alias bombs
  } catch (error) {
    const message = error instanceof RangeError ? `nesting deeper than ${MAX_NESTING} levels (through aliases)` : (error as Error).message;
    return { issues: [{ path: '', message }] };
  }
  if (data === null || data === undefined) return { issues: [{ path: '', message: 'the file is empty' }] };

  // reportInput: the messages say what was found, and tell "missing" from "wrong".
  const parsed = TopologyFileSchema.safeParse(data, { reportInput: true });
  const shape = parsed.success ? [] : parsed.error.issues;
  // Pods whose labels may be missing or partial: a selector might mean one of them.
  const podsComplete = !shape.some((issue) => issue.path[0] === 'nodes' && issue.code !== 'unrecognized_keys');
  const found = salvage(TopologyFileSchema, data) as LooseTopology | undefined;
  const issues = sortInFileOrder(
    [...shape.flatMap(shapeIssues), ...(found ? checkSemantics(found, podsComplete) : [])],
    data,
  );
  return parsed.success && issues.length === 0 ? { topology: parsed.data, issues } : { issues };
}

/** The string a scalar key becomes in a JavaScript object (as yaml's toJS makes it). */
function jsKey(node: ParsedNode): string {
  const value = isScalar(node) ? node.value : undefined;
  return value === null || value === undefined ? '' : String(value);
}

const isCollectionToken = (token: CST.Token) => token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection';
const isMapToken = (token: CST.Token) => token.type === 'block-map' || (token.type === 'flow-collection' && token.start.source === '{');

/**
 * The first collection nested deeper than MAX_NESTING, from the parser's
 * tokens (no recursion): where it is, and the top-level key it is under.
 */
export function tooDeep(text: string): { where: string; path: string } | undefined {
  const lineCounter = new LineCounter();
  for (const token of new Parser(lineCounter.addNewLine).parse(text)) {
    if (token.type !== 'document' || !token.value) continue;
    // Depth-first in file order: [token, its level, the path of its top-level key].
    const stack: [CST.Token, number, string][] = [[token.value, 1, '']];
    while (stack.length > 0) {
      const [node, level, path] = stack.pop()!;
      if (node.type !== 'block-map' && node.type !== 'block-seq' && node.type !== 'flow-collection') continue;
      if (level > MAX_NESTING) {
        const { line, col } = lineCounter.linePos(node.offset);
        return { where: `line ${line}, column ${col}`, path };
      }
      const children: [CST.Token, number, string][] = [];
      for (const item of node.items) {
        const key = 'key' in item ? item.key : undefined;
        let under = path;
        if (level === 1) {
          const name = key && isMapToken(node) && !isCollectionToken(key) ? CST.resolveAsScalar(key) : null;
          under = name ? joinPath('', name.value) : '';
        }
        if (key) children.push([key, level + 1, path]);
        if (item.value) children.push([item.value, level + 1, under]);
      }
      stack.push(...children.reverse());
    }
  }
  return undefined;
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

/** The one CIDR the lab can express: every address outside the cluster, Cilium's reserved:world. */
export const WORLD_CIDR = '0.0.0.0/0';
/** The policy map holds single ports, so a range becomes one entry per port; this many at most. */
export const PORT_RANGE_MAX = 1024;

// ---- addresses (helpers in ipv4.ts, shared with the plan) ---------------------
export { formatIPv4, nodePodCIDR, parseCIDR, parseIPv4, type Cidr } from './ipv4.ts';


/** Nodes that fit on the underlay or management network: from the offset up to, not including, broadcast. */
export const nodesThatFit = (cidr: Cidr) => Math.max(0, cidrSize(cidr) - 1 - NODE_HOST_OFFSET);

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---- semantic checks --------------------------------------------------------

/**
 * What the semantic checks see: every value of the file that has its right
 * shape (defaults filled in), and undefined wherever the shape pass found a
 * problem. Lists keep their length, so indexes stay those of the file.
 */
type Loose<T> = T extends readonly (infer U)[]
  ? (Loose<U> | undefined)[]
  : T extends object
    ? { [K in keyof T]?: Loose<T[K]> | undefined }
    : T;
type LooseTopology = Loose<Topology>;

/**
 * Every semantic problem of a shape-valid topology. Exported for topologies
 * built in code; parseTopology runs the same checks on whatever parsed.
 */
export function validateTopology(topology: Topology): TopologyIssue[] {
  return sortInFileOrder(checkSemantics(topology, true), topology);
}

/**
 * Defensive throughout: any value may be missing. `podsComplete`: every pod
 * and its labels parsed, so "selects no pod" can be told.
 */
function checkSemantics(topology: LooseTopology, podsComplete: boolean): TopologyIssue[] {
  const issues: TopologyIssue[] = [];
  const report = (path: string, message: string) => issues.push({ path, message });
  const nodes = topology.nodes ?? [];
  const policies = topology.policies ?? [];

  if (topology.encryption?.strict === true && topology.encryption.mode === 'none') {
    report('encryption.strict', 'strict mode needs encryption.mode wireguard or ipsec');
  }

  // Ranges: each checked alone, then pairwise; a bad range skips the checks that need it.
  const { podCIDR, underlayCIDR, managementCIDR } = topology.addressing ?? {};
  const pods = checkRange(report, 'addressing.podCIDR', podCIDR, 8, 16, ' (each node gets a /24)');
  const underlay = checkRange(report, 'addressing.underlayCIDR', underlayCIDR, 16, 29, '');
  const management = checkRange(report, 'addressing.managementCIDR', managementCIDR, 16, 29, '');
  const overlaps = (a: Cidr | undefined, b: Cidr | undefined) => a !== undefined && b !== undefined && cidrsOverlap(a, b);
  if (overlaps(pods, underlay)) report('addressing.underlayCIDR', `overlaps podCIDR ${podCIDR}`);
  if (overlaps(pods, management)) report('addressing.managementCIDR', `overlaps podCIDR ${podCIDR}`);
  if (overlaps(underlay, management)) report('addressing.managementCIDR', `overlaps underlayCIDR ${underlayCIDR}`);

  const nodeCount = nodes.length;
  const podRanges = pods ? 2 ** (24 - pods.prefix) : 0;
  if (pods && nodeCount > podRanges) {
    report('nodes', `${plural(nodeCount, 'node')} but podCIDR ${podCIDR} has room for ${podRanges} (one /24 each)`);
  }
  for (const [field, cidr, text] of [['underlayCIDR', underlay, underlayCIDR], ['managementCIDR', management, managementCIDR]] as const) {
    if (cidr && nodeCount > nodesThatFit(cidr)) {
      report('nodes', `${plural(nodeCount, 'node')} but ${field} ${text} has room for ${nodesThatFit(cidr)} (node addresses start at .${NODE_HOST_OFFSET}): ${rangeFor(nodeCount, 16)}`);
    }
  }

  // Nodes and pods. Node and pod names are unique lab-wide, and apart: a pod
  // may not take a node's name (`mtless exec LAB/NAME` takes either).
  const nodeIndex = new Map<string, number>();
  nodes.forEach((node, i) => {
    if (typeof node?.name === 'string' && !nodeIndex.has(node.name)) nodeIndex.set(node.name, i);
  });
  const nodeNames = new Set<string>();
  const podNames = new Set<string>();
  const podIPs = new Set<number>();
  const allPodLabels: Labels[] = [];
  nodes.forEach((node, i) => {
    if (!node) return;
    const at = `nodes[${i}]`;
    if (node.name !== undefined) {
      checkObjectName(report, `${at}.name`, node.name, NODE_NAME_MAX);
      checkNotReserved(report, `${at}.name`, node.name);
      checkUnique(report, nodeNames, `${at}.name`, node.name);
    }
    const nodePods = node.pods ?? [];
    if (nodePods.length > PODS_PER_NODE_MAX) {
      report(`${at}.pods`, `${plural(nodePods.length, 'pod')} but a node's /24 has room for ${PODS_PER_NODE_MAX}`);
    }
    const range = pods && podCIDR && i < podRanges ? nodePodCIDR(podCIDR, i) : undefined;
    nodePods.forEach((pod, j) => {
      if (!pod) return;
      const podAt = `${at}.pods[${j}]`;
      if (pod.name !== undefined) {
        checkObjectName(report, `${podAt}.name`, pod.name, POD_NAME_MAX);
        checkNotReserved(report, `${podAt}.name`, pod.name);
        const node = nodeIndex.get(pod.name);
        if (node !== undefined) {
          report(`${podAt}.name`, `"${pod.name}" is also a node (nodes[${node}]); pod and node names must differ, as \`mtless exec LAB/NAME\` takes either`);
        }
        checkUnique(report, podNames, `${podAt}.name`, pod.name);
      }
      if (pod.namespace !== undefined) checkObjectName(report, `${podAt}.namespace`, pod.namespace, 63);
      if (pod.serviceAccount !== undefined && !isSubdomain(pod.serviceAccount)) report(`${podAt}.serviceAccount`, notSubdomain(pod.serviceAccount));
      if (pod.labels) {
        checkLabels(report, `${podAt}.labels`, pod.labels);
        for (const [key, field] of [[NAMESPACE_LABEL, 'namespace'], [SERVICE_ACCOUNT_LABEL, 'serviceAccount']] as const) {
          if (Object.hasOwn(pod.labels, key)) report(`${podAt}.labels`, `"${key}" is implicit; set the pod's ${field} instead`);
        }
        if (pod.namespace !== undefined && pod.serviceAccount !== undefined) {
          allPodLabels.push(podLabels({ labels: pod.labels as Labels, namespace: pod.namespace, serviceAccount: pod.serviceAccount }));
        }
      }
      if (pod.ip !== undefined) checkPodIP(report, `${podAt}.ip`, pod.ip, node.name, range, podIPs);
    });
  });

  // Policies: selectors must select something, or the policy is a typo that silently does nothing.
  const checkSelector = (path: string, selector: Loose<Selector> | undefined) => {
    if (!selector?.matchLabels) return;
    let wellFormed = checkLabels(report, `${path}.matchLabels`, selector.matchLabels);
    (selector.matchExpressions ?? []).forEach((req, i) => {
      if (!req?.operator) return void (wellFormed = false);
      const at = `${path}.matchExpressions[${i}]`;
      const withValues = req.operator === 'In' || req.operator === 'NotIn';
      if (withValues && !(req.values?.length)) {
        report(`${at}.values`, `${req.operator} needs at least one value`);
        wellFormed = false;
      }
      if (!withValues && req.values?.length) {
        report(`${at}.values`, `${req.operator} takes no values`);
        wellFormed = false;
      }
    });
    if (wellFormed && podsComplete && !allPodLabels.some((labels) => selectorMatches(selector as Selector, labels))) {
      report(path, 'selects no pod');
    }
  };
  const policyNames = new Set<string>();
  policies.forEach((policy, i) => {
    if (!policy) return;
    const at = `policies[${i}]`;
    if (policy.name !== undefined) {
      if (!isSubdomain(policy.name)) report(`${at}.name`, notSubdomain(policy.name));
      checkUnique(report, policyNames, `${at}.name`, policy.name);
    }
    checkSelector(`${at}.endpointSelector`, policy.endpointSelector);
    const ingressLike = (field: 'ingress' | 'ingressDeny') => (policy[field] ?? []).map((rule, j) => ({
      at: `${at}.${field}[${j}]`, peers: 'fromEndpoints', selectors: rule?.fromEndpoints, cidrField: 'fromCIDR', cidrs: rule?.fromCIDR, toPorts: rule?.toPorts,
    }));
    const egressLike = (field: 'egress' | 'egressDeny') => (policy[field] ?? []).map((rule, j) => ({
      at: `${at}.${field}[${j}]`, peers: 'toEndpoints', selectors: rule?.toEndpoints, cidrField: 'toCIDR', cidrs: rule?.toCIDR, toPorts: rule?.toPorts,
    }));
    const rules = [...ingressLike('ingress'), ...egressLike('egress'), ...ingressLike('ingressDeny'), ...egressLike('egressDeny')];
    for (const rule of rules) {
      (rule.selectors ?? []).forEach((selector, k) => checkSelector(`${rule.at}.${rule.peers}[${k}]`, selector));
      (rule.cidrs ?? []).forEach((cidr, k) => {
        if (cidr !== undefined && cidr !== WORLD_CIDR) {
          report(`${rule.at}.${rule.cidrField}[${k}]`, `not modelled by the lab: "${cidr}" (the lab's ipcache holds no CIDR identities; only ${WORLD_CIDR}, which is reserved:world)`);
        }
      });
      (rule.toPorts ?? []).forEach((portRule, k) => {
        if (!portRule?.ports) return;
        const portsAt = `${rule.at}.toPorts[${k}].ports`;
        if (portRule.ports.length === 0) report(portsAt, 'empty (leave out toPorts to allow every port)');
        portRule.ports.forEach((entry, m) => {
          const port = entry?.port;
          if (port !== undefined && (port < 0 || port > 65535)) report(`${portsAt}[${m}].port`, `${port} is outside 0..65535`);
          const endPort = entry?.endPort;
          if (endPort === undefined || port === undefined) return;
          if (endPort < port || endPort > 65535) report(`${portsAt}[${m}].endPort`, `${endPort} must be from port (${port}) to 65535`);
          else if (port === 0) report(`${portsAt}[${m}].endPort`, 'port 0 already means every port');
          else if (endPort - port + 1 > PORT_RANGE_MAX) {
            report(`${portsAt}[${m}].endPort`, `not modelled by the lab: a range of ${endPort - port + 1} ports (the policy map holds single ports; at most ${PORT_RANGE_MAX})`);
          }
        });
      });
    }
  });
  return issues;
}

type Report = (path: string, message: string) => void;

/** The first (largest-prefix) range from /maxPrefix down that holds `nodes` nodes, as advice. */
function rangeFor(nodes: number, minPrefix: number): string {
  for (let prefix = 29; prefix >= minPrefix; prefix--) {
    if (nodesThatFit({ base: 0, prefix }) >= nodes) return `use a /${prefix} or larger`;
  }
  return `even a /${minPrefix} holds only ${nodesThatFit({ base: 0, prefix: minPrefix })}`;
}

function checkRange(report: Report, path: string, text: string | undefined, minPrefix: number, maxPrefix: number, why: string): Cidr | undefined {
  if (text === undefined) return undefined; // wrong type: the shape pass said so
  const cidr = parseCIDR(text);
  if (!cidr) return void report(path, `"${text}" is not an IPv4 CIDR such as 10.244.0.0/16`);
  if (cidr.prefix < minPrefix || cidr.prefix > maxPrefix) {
    return void report(path, `${text} must be a /${minPrefix} to /${maxPrefix} range${why}`);
  }
  const network = cidr.base - (cidr.base % cidrSize(cidr));
  if (network !== cidr.base) return void report(path, `${text} has host bits set (the range is ${formatIPv4(network)}/${cidr.prefix})`);
  const unusable = UNUSABLE_RANGES.find((r) => cidrsOverlap(r.cidr, cidr));
  if (unusable) {
    const relation = cidr.prefix >= unusable.cidr.prefix ? 'is in' : 'overlaps';
    return void report(path, `${text} ${relation} ${unusable.text} (${unusable.what}), which no lab can use`);
  }
  return cidr;
}

function checkPodIP(report: Report, path: string, text: string, nodeName: string | undefined, range: string | undefined, seen: Set<number>): void {
  const ip = parseIPv4(text);
  if (ip === undefined) return report(path, `"${text}" is not an IPv4 address`);
  if (seen.has(ip)) report(path, `duplicate "${text}"`);
  seen.add(ip);
  // Checked on its own, so it is reported even where podCIDR is bad too.
  const unusable = UNUSABLE_RANGES.find((r) => cidrsOverlap(r.cidr, { base: ip, prefix: 32 }));
  if (unusable) return report(path, `${text} is in ${unusable.text} (${unusable.what}), which no lab can use`);
  if (range === undefined) return; // podCIDR or node count already reported
  const cidr = parseCIDR(range)!;
  const owner = nodeName === undefined ? 'its node' : `node "${nodeName}"`;
  if (ip < cidr.base || ip >= cidr.base + 256) {
    report(path, `${text} is outside ${owner}'s pod range ${formatCIDR(cidr)}`);
  } else if ([0, 1, 255].includes(ip - cidr.base)) {
    report(path, `${text} is reserved; pods get .2 to .254 of ${formatCIDR(cidr)}`);
  }
}

function checkUnique(report: Report, seen: Set<string>, path: string, name: string): void {
  if (seen.has(name)) report(path, `duplicate "${name}"`);
  seen.add(name);
}

function checkNotReserved(report: Report, path: string, name: string): void {
  const role = RESERVED_NAMES.get(name);
  if (role !== undefined) report(path, `"${name}" is reserved: mtless uses it for ${role}`);
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

/**
 * Reports bad keys at the map's path and bad values at the key's; true when
 * all are well formed (a value the shape pass rejected, undefined here, is not).
 */
function checkLabels(report: Report, path: string, labels: Loose<Labels>): boolean {
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
    if (value === undefined) ok = false;
    else if (value !== '' && (value.length > 63 || !LABEL_NAME_RE.test(value))) {
      report(joinPath(path, key), `invalid value "${value}": must be empty or ${LABEL_SYNTAX}`);
      ok = false;
    }
  }
  return ok;
}

/** The problems of a label set given outside a topology file (`mtless pod add --labels`), one message each. */
export function labelProblems(labels: Labels): string[] {
  const out: string[] = [];
  checkLabels((path, message) => out.push(path ? `${path}: ${message}` : message), '', labels);
  return out;
}

/** Why a node or pod may not be called `name` in a lab whose nodes are `nodeNames`, or undefined. */
export function podNameProblem(name: string, nodeNames: readonly string[]): string | undefined {
  if (!OBJECT_NAME_RE.test(name) || name.length > POD_NAME_MAX) return `invalid pod name "${name}": use a DNS label (a-z, 0-9, "-") of at most ${POD_NAME_MAX} characters`;
  const reserved = RESERVED_NAMES.get(name);
  if (reserved) return `pod name "${name}" is reserved: the command line uses it for ${reserved}`;
  if (nodeNames.includes(name)) return `pod name "${name}" is also a node; pod and node names must differ, as \`mtless exec LAB/NAME\` takes either`;
  return undefined;
}

// ---- what the shape pass lets through -----------------------------------------

const isMapping = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * The parts of `input` that fit `schema`, walking the zod schema: objects
 * keep their known fields (defaults filled in), lists every item (undefined
 * where one does not fit), records every key (values undefined where they do
 * not fit); a leaf schema is parsed as is. Records are null-prototype
 * objects, so every key of the file, "__proto__" too, stays an own key.
 */
function salvage(schema: z.ZodType, input: unknown): unknown {
  if (schema instanceof z.ZodDefault) return salvage(schema.unwrap() as z.ZodType, input === undefined ? schema.def.defaultValue : input);
  if (schema instanceof z.ZodOptional) return input === undefined ? undefined : salvage(schema.unwrap() as z.ZodType, input);
  if (schema instanceof z.ZodObject) {
    if (!isMapping(input)) return undefined;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      const value = salvage(field, Object.hasOwn(input, key) ? input[key] : undefined);
      if (value !== undefined) out[key] = value;
    }
    return out;
  }
  if (schema instanceof z.ZodArray) return Array.isArray(input) ? input.map((item) => salvage(schema.element as z.ZodType, item)) : undefined;
  if (schema instanceof z.ZodRecord) {
    if (!isMapping(input)) return undefined;
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(input)) out[key] = salvage(schema.valueType as z.ZodType, input[key]);
    return out;
  }
  const leaf = schema.safeParse(input);
  return leaf.success ? leaf.data : undefined;
}

// ---- order ----------------------------------------------------------------------

/** `nodes[1].pods[0].name` → ['nodes', 1, 'pods', 0, 'name'] (the inverse of joinPath). */
function pathSegments(path: string): (string | number)[] {
  const segments: (string | number)[] = [];
  const segment = /(?:^|\.)([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  while (segment.lastIndex < path.length) {
    const start = segment.lastIndex;
    const m = segment.exec(path);
    if (!m) {
      segments.push(path.slice(start)); // not joinPath's: one opaque segment
      break;
    }
    segments.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : (JSON.parse(m[3]!) as string)));
  }
  return segments;
}

/**
 * Issues in the order of the file: by path, list items by index and keys
 * as the file has them; an object's own problems (a missing field, an
 * unknown key) before those of its fields. Stable: issues at the same place
 * keep their order, shape before meaning.
 */
function sortInFileOrder(issues: TopologyIssue[], data: unknown): TopologyIssue[] {
  const rank = (container: unknown, segment: string | number) => {
    if (typeof segment === 'number') return segment;
    return isMapping(container) ? Object.keys(container).indexOf(segment) : -1; // missing: first
  };
  const paths = new Map(issues.map((issue) => [issue, pathSegments(issue.path)]));
  return [...issues].sort((a, b) => {
    const x = paths.get(a)!;
    const y = paths.get(b)!;
    let container = data;
    for (let i = 0; i < x.length && i < y.length; i++) {
      if (x[i] !== y[i]) return rank(container, x[i]!) - rank(container, y[i]!);
      const next: unknown = isMapping(container) || Array.isArray(container) ? (container as Record<string, unknown>)[x[i]!] : undefined;
      container = isMapping(container) && !Object.hasOwn(container, x[i]!) ? undefined : next;
    }
    return x.length - y.length;
  });
}

// ---- zod issues → TopologyIssue -----------------------------------------------

/** `nodes[1].pods[0].name`; keys that are not plain words are quoted: `labels["app.kubernetes.io/name"]`. */
export function joinPath(base: string, key: PropertyKey): string {
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

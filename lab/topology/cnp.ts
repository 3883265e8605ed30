// CiliumNetworkPolicy documents as users have them (pasted from a cluster,
// `kubectl get cnp -A -o yaml`, a List, several YAML documents) → the lab's
// policy model. Cilium's field names (pkg/policy/api: rule.go, l4.go,
// selector.go, entity.go); what the lab's datapath cannot enforce is an
// error "not modelled by the lab", never dropped. Every problem is reported
// at once with its path. Pure data: no processes.
import { isScalar, parseAllDocuments, type ParsedNode } from 'yaml';

import type { Authentication, EgressRule, Entity, IngressRule, Labels, Policy, PortProtocol, PortRule, Selector, SelectorRequirement, Topology, TopologyIssue } from './model.ts';
import { joinPath, MAX_NESTING, NAMESPACE_LABEL, tooDeep, validateTopology } from './validate.ts';

export const CNP_API_VERSION = 'cilium.io/v2';
export const CNP_KIND = 'CiliumNetworkPolicy';
export const CCNP_KIND = 'CiliumClusterwideNetworkPolicy';
const LIST_KINDS = new Set(['List', 'CiliumNetworkPolicyList', 'CiliumClusterwideNetworkPolicyList']);

const NOT_MODELLED = 'not modelled by the lab';

/** Cilium's entities (api/entity.go) → the lab's; missing here: not modelled. IPv4 only, so world-ipv4 is world. */
const ENTITIES: Record<string, Entity | undefined> = {
  world: 'world', 'world-ipv4': 'world', cluster: 'cluster', host: 'host', 'remote-node': 'remote-node', all: 'all',
  'world-ipv6': undefined, health: undefined, init: undefined, unmanaged: undefined, 'kube-apiserver': undefined, ingress: undefined, none: undefined,
};

/** Why each Cilium field the lab does not enforce is left out. */
const UNMODELLED: Record<string, string> = {
  nodeSelector: 'host policies (the lab has no host firewall)',
  enableDefaultDeny: 'the lab always enforces a direction that has rules',
  log: 'policy logging',
  fromRequires: 'requirements', toRequires: 'requirements',
  fromNodes: 'node selectors', toNodes: 'node selectors',
  fromGroups: 'cloud groups', toGroups: 'cloud groups',
  toServices: 'service selectors', toFQDNs: 'DNS-based policy',
  icmps: 'ICMP rules (the policy map keys TCP and UDP ports)',
  rules: 'L7 rules (the lab has no proxy)',
  terminatingTLS: 'TLS interception', originatingTLS: 'TLS origination', serverNames: 'SNI matching', listener: 'Envoy listeners',
};

export interface ImportedPolicies {
  policies: Policy[];
  /** Path of each policy's rule in the file (`documents[0].spec`), by index of `policies`. */
  origins: string[];
  issues: TopologyIssue[];
  warnings: TopologyIssue[];
}

type Data = Record<string, unknown>;
const isMapping = (v: unknown): v is Data => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Parses a policies file: one or more YAML documents, each a CNP, a CCNP or a List of them. */
export function parseCiliumPolicies(text: string): ImportedPolicies {
  const out: ImportedPolicies = { policies: [], origins: [], issues: [], warnings: [] };
  const deep = tooDeep(text);
  if (deep) return { ...out, issues: [{ path: '', message: `${deep.where}: nesting deeper than ${MAX_NESTING} levels` }] };
  const docs = parseAllDocuments(text, {
    prettyErrors: false,
    merge: false,
    uniqueKeys: (a, b) => a === b || (isScalar(a) && isScalar(b) && String((a as ParsedNode & { value: unknown }).value) === String((b as ParsedNode & { value: unknown }).value)),
    logLevel: 'error',
  });
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, i) => {
    for (const error of doc.errors) out.issues.push({ path: `documents[${i}]`, message: error.message });
  });
  if (out.issues.length > 0) return out;
  list.forEach((doc, i) => {
    let data: unknown;
    try {
      data = doc.toJS();
    } catch (error) {
      return void out.issues.push({ path: `documents[${i}]`, message: (error as Error).message });
    }
    if (data === null || data === undefined) return; // an empty document between two "---"
    readDocument(out, `documents[${i}]`, data);
  });
  if (out.policies.length === 0 && out.issues.length === 0) out.issues.push({ path: '', message: 'no CiliumNetworkPolicy in the file' });
  qualifyRepeatedNames(out);
  return out;
}

/** Each imported policy's Kubernetes namespace (undefined: clusterwide), by policy object. */
const policyNamespace = new WeakMap<Policy, string | undefined>();

/**
 * A cluster may hold CNPs of one name in several namespaces (a policy is
 * namespace/name there); the lab's policy names are one flat set. Those of a
 * repeated name become <name>.<namespace> (clusterwide ones keep theirs), with
 * a warning, so a paste from `kubectl get cnp -A -o yaml` reads as it is.
 */
function qualifyRepeatedNames(out: ImportedPolicies): void {
  const byName = new Map<string, number[]>();
  out.policies.forEach((p, i) => byName.set(p.name, [...(byName.get(p.name) ?? []), i]));
  for (const [name, indexes] of byName) {
    const namespaces = new Set(indexes.map((i) => policyNamespace.get(out.policies[i]!)));
    if (indexes.length < 2 || namespaces.size < 2) continue;
    for (const i of indexes) {
      const ns = policyNamespace.get(out.policies[i]!);
      if (ns === undefined) continue;
      const renamed = { ...out.policies[i]!, name: `${name}.${ns}` };
      out.policies[i] = renamed;
      out.warnings.push({ path: out.origins[i]!, message: `"${name}" is in several namespaces: named "${renamed.name}" in the lab` });
    }
  }
}

function readDocument(out: ImportedPolicies, at: string, data: unknown): void {
  const report = (path: string, message: string): void => void out.issues.push({ path, message });
  if (!isMapping(data)) return report(at, 'expected a mapping (a Kubernetes object)');
  const kind = data.kind;
  if (typeof kind === 'string' && LIST_KINDS.has(kind)) {
    if (!Array.isArray(data.items)) return report(joinPath(at, 'items'), data.items === undefined ? 'required' : 'expected a list');
    data.items.forEach((item, j) => readDocument(out, `${at}.items[${j}]`, item));
    return;
  }
  if (kind !== CNP_KIND && kind !== CCNP_KIND) {
    return report(joinPath(at, 'kind'), kind === undefined ? 'required' : `${JSON.stringify(kind)}: only ${CNP_KIND}, ${CCNP_KIND} and List are read`);
  }
  if (data.apiVersion !== CNP_API_VERSION) report(joinPath(at, 'apiVersion'), data.apiVersion === undefined ? 'required' : `expected ${CNP_API_VERSION}, got ${JSON.stringify(data.apiVersion)}`);
  unknownKeys(report, at, data, ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status']);
  const metadata = data.metadata;
  const metaAt = joinPath(at, 'metadata');
  if (!isMapping(metadata)) return report(metaAt, metadata === undefined ? 'required' : 'expected a mapping');
  const name = metadata.name;
  if (typeof name !== 'string') report(joinPath(metaAt, 'name'), name === undefined ? 'required' : 'expected a string');
  // kubectl puts a namespaced object without one in "default"; a clusterwide policy has none.
  let namespace: string | undefined;
  if (kind === CNP_KIND) {
    namespace = metadata.namespace === undefined ? 'default' : typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
    if (namespace === undefined) report(joinPath(metaAt, 'namespace'), 'expected a string');
  } else if (metadata.namespace !== undefined) {
    report(joinPath(metaAt, 'namespace'), `a ${CCNP_KIND} has no namespace`);
  }
  const rules: [string, unknown][] = [];
  if (data.spec !== undefined) rules.push([joinPath(at, 'spec'), data.spec]);
  if (data.specs !== undefined) {
    if (!Array.isArray(data.specs)) report(joinPath(at, 'specs'), 'expected a list');
    else data.specs.forEach((rule, k) => rules.push([`${at}.specs[${k}]`, rule]));
  }
  if (rules.length === 0) return report(at, 'needs spec or specs');
  const ctx: Ctx = { report, warn: (path, message) => void out.warnings.push({ path, message }), namespace };
  rules.forEach(([ruleAt, rule], k) => {
    const policy = readRule(ctx, ruleAt, rule);
    if (!policy || typeof name !== 'string') return;
    const named = { ...policy, name: rules.length === 1 ? name : `${name}-${k}` };
    policyNamespace.set(named, namespace);
    out.policies.push(named);
    out.origins.push(ruleAt);
  });
}

interface Ctx {
  report: (path: string, message: string) => void;
  warn: (path: string, message: string) => void;
  /** The policy's namespace; undefined for a clusterwide policy. */
  namespace: string | undefined;
}

function unknownKeys(report: Ctx['report'], at: string, data: Data, known: string[]): void {
  for (const key of Object.keys(data)) {
    if (known.includes(key)) continue;
    const why = UNMODELLED[key];
    report(joinPath(at, key), why ? `${NOT_MODELLED}: ${why}` : `unknown key "${key}"`);
  }
}

function readList<T>(ctx: Ctx, at: string, value: unknown, item: (at: string, v: unknown) => T | undefined): T[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) return void ctx.report(at, 'expected a list');
  const items = value.map((v, i) => item(`${at}[${i}]`, v));
  return items.every((v) => v !== undefined) ? (items as T[]) : undefined;
}

function readRule(ctx: Ctx, at: string, rule: unknown): Omit<Policy, 'name'> | undefined {
  if (!isMapping(rule)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, rule, ['endpointSelector', 'ingress', 'egress', 'ingressDeny', 'egressDeny', 'labels', 'description']);
  const selAt = joinPath(at, 'endpointSelector');
  if (rule.endpointSelector === undefined) {
    if (rule.nodeSelector === undefined) ctx.report(selAt, 'required');
    return undefined;
  }
  const endpointSelector = readSelector(ctx, selAt, rule.endpointSelector, 'subject');
  const ingress = readList(ctx, joinPath(at, 'ingress'), rule.ingress, (a, v) => readPeerRule(ctx, a, v, 'from', true));
  const egress = readList(ctx, joinPath(at, 'egress'), rule.egress, (a, v) => readPeerRule(ctx, a, v, 'to', true));
  const ingressDeny = readList(ctx, joinPath(at, 'ingressDeny'), rule.ingressDeny, (a, v) => readPeerRule(ctx, a, v, 'from', false));
  const egressDeny = readList(ctx, joinPath(at, 'egressDeny'), rule.egressDeny, (a, v) => readPeerRule(ctx, a, v, 'to', false));
  if (!endpointSelector) return undefined;
  const policy: Omit<Policy, 'name'> = { endpointSelector };
  if (ingress) policy.ingress = ingress as IngressRule[];
  if (egress) policy.egress = egress.map(toEgress);
  if (ingressDeny) policy.ingressDeny = ingressDeny as IngressRule[];
  if (egressDeny) policy.egressDeny = egressDeny.map(toEgress);
  return policy;
}

/** Rules are read in their ingress spelling; egress renames the peer fields. */
function toEgress(rule: IngressRule): EgressRule {
  const { fromEndpoints, fromEntities, fromCIDR, ...rest } = rule;
  return { toEndpoints: fromEndpoints, ...(fromEntities ? { toEntities: fromEntities } : {}), ...(fromCIDR ? { toCIDR: fromCIDR } : {}), ...rest };
}

function readPeerRule(ctx: Ctx, at: string, rule: unknown, dir: 'from' | 'to', allow: boolean): IngressRule | undefined {
  if (!isMapping(rule)) return void ctx.report(at, 'expected a mapping');
  const f = (name: string) => `${dir}${name}`;
  const known = [f('Endpoints'), f('Entities'), f('CIDR'), f('CIDRSet'), 'toPorts', ...(allow ? ['authentication'] : [])];
  unknownKeys(ctx.report, at, rule, known);
  let ok = true;
  const need = <T>(v: T | undefined, present: boolean) => {
    if (present && v === undefined) ok = false;
    return v;
  };
  const endpoints = need(readList(ctx, joinPath(at, f('Endpoints')), rule[f('Endpoints')], (a, v) => readSelector(ctx, a, v, 'peer')), rule[f('Endpoints')] != null);
  const entities = need(readList(ctx, joinPath(at, f('Entities')), rule[f('Entities')], (a, v) => readEntity(ctx, a, v)), rule[f('Entities')] != null);
  const cidrs = need(readList(ctx, joinPath(at, f('CIDR')), rule[f('CIDR')], (a, v) => (typeof v === 'string' ? v : void ctx.report(a, 'expected a string'))), rule[f('CIDR')] != null);
  const cidrSet = need(readList(ctx, joinPath(at, f('CIDRSet')), rule[f('CIDRSet')], (a, v) => readCidrRule(ctx, a, v)), rule[f('CIDRSet')] != null);
  const toPorts = need(readList(ctx, joinPath(at, 'toPorts'), rule.toPorts, (a, v) => readPortRule(ctx, a, v)), rule.toPorts != null);
  const authentication = allow ? need(readAuthentication(ctx, joinPath(at, 'authentication'), rule.authentication), rule.authentication !== undefined) : undefined;
  if (!ok) return undefined;
  const allCidrs = [...(cidrs ?? []), ...(cidrSet ?? [])];
  return {
    fromEndpoints: endpoints ?? [],
    ...(entities ? { fromEntities: entities } : {}),
    ...(allCidrs.length > 0 || cidrs || cidrSet ? { fromCIDR: allCidrs } : {}),
    toPorts: toPorts ?? [],
    ...(authentication ? { authentication } : {}),
  };
}

function readEntity(ctx: Ctx, at: string, value: unknown): Entity | undefined {
  if (typeof value !== 'string') return void ctx.report(at, 'expected a string');
  if (!Object.hasOwn(ENTITIES, value)) return void ctx.report(at, `"${value}" is not one of Cilium's entities (${Object.keys(ENTITIES).join(', ')})`);
  const entity = ENTITIES[value];
  if (!entity) ctx.report(at, `${NOT_MODELLED}: entity "${value}" (the lab has world, cluster, host, remote-node and all)`);
  return entity;
}

function readCidrRule(ctx: Ctx, at: string, value: unknown): string | undefined {
  if (!isMapping(value)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, value, ['cidr', 'except']);
  if (value.cidrGroupRef !== undefined) ctx.report(joinPath(at, 'cidrGroupRef'), `${NOT_MODELLED}: CiliumCIDRGroups`);
  if (value.except !== undefined) return void ctx.report(joinPath(at, 'except'), `${NOT_MODELLED}: CIDR exceptions (the lab's ipcache holds no CIDR identities)`);
  if (typeof value.cidr !== 'string') return void ctx.report(joinPath(at, 'cidr'), value.cidr === undefined ? 'required' : 'expected a string');
  return value.cidr;
}

function readAuthentication(ctx: Ctx, at: string, value: unknown): Authentication | undefined {
  if (value === undefined) return undefined;
  if (!isMapping(value)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, value, ['mode']);
  const modes = ['disabled', 'required', 'test-always-fail'];
  if (typeof value.mode !== 'string' || !modes.includes(value.mode)) {
    return void ctx.report(joinPath(at, 'mode'), value.mode === undefined ? 'required' : `must be one of ${modes.map((m) => `"${m}"`).join(', ')} (got ${JSON.stringify(value.mode)})`);
  }
  return { mode: value.mode as Authentication['mode'] };
}

function readPortRule(ctx: Ctx, at: string, value: unknown): PortRule | undefined {
  if (!isMapping(value)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, value, ['ports']);
  const ports = readList(ctx, joinPath(at, 'ports'), value.ports, (a, v) => readPort(ctx, a, v));
  if (ports === undefined && value.ports != null) return undefined;
  // Cilium: toPorts without ports is every port.
  return { ports: ports ?? [] };
}

function readPort(ctx: Ctx, at: string, value: unknown): PortProtocol | undefined {
  if (!isMapping(value)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, value, ['port', 'endPort', 'protocol']);
  let ok = true;
  const fail = (path: string, message: string) => {
    ctx.report(path, message);
    ok = false;
  };
  const raw = value.port ?? 0; // Cilium: an omitted port is every port
  let port = 0;
  if (typeof raw === 'number' && Number.isInteger(raw)) port = raw;
  else if (typeof raw === 'string' && /^[0-9]+$/.test(raw)) port = Number(raw);
  else if (typeof raw === 'string') fail(joinPath(at, 'port'), `${NOT_MODELLED}: named port "${raw}" (pods in the lab declare no container ports)`);
  else fail(joinPath(at, 'port'), 'expected a port number such as 8080 or "8080"');
  const endPort = value.endPort;
  if (endPort !== undefined && (typeof endPort !== 'number' || !Number.isInteger(endPort))) fail(joinPath(at, 'endPort'), 'expected an integer');
  const protocol = value.protocol ?? 'ANY';
  if (protocol === 'SCTP' || protocol === 'ICMP' || protocol === 'ICMPv6') fail(joinPath(at, 'protocol'), `${NOT_MODELLED}: protocol ${protocol} (the lab's policy map keys TCP and UDP)`);
  else if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'ANY') fail(joinPath(at, 'protocol'), `must be one of "TCP", "UDP", "SCTP", "ANY" (got ${JSON.stringify(protocol)})`);
  if (!ok) return undefined;
  return { port, ...(endPort !== undefined ? { endPort: endPort as number } : {}), protocol: protocol as PortProtocol['protocol'] };
}

/** Label-key sources a selector may name (Cilium's `k8s:` for pod labels, `any:` for any source). */
const POD_SOURCES = ['k8s:', 'any:'];

function readSelector(ctx: Ctx, at: string, value: unknown, role: 'subject' | 'peer'): Selector | undefined {
  if (!isMapping(value)) return void ctx.report(at, 'expected a mapping');
  unknownKeys(ctx.report, at, value, ['matchLabels', 'matchExpressions']);
  let ok = true;
  const key = (path: string, raw: string): string | undefined => {
    const source = POD_SOURCES.find((s) => raw.startsWith(s));
    const bare = source ? raw.slice(source.length) : raw;
    if (bare.startsWith('reserved:')) {
      ctx.report(path, `${NOT_MODELLED}: "${raw}" as a label (write ${role === 'peer' ? 'fromEntities/toEntities' : 'a pod selector'} instead)`);
      ok = false;
      return undefined;
    }
    if (/^[a-z0-9-]+:/.test(bare)) {
      ctx.report(path, `${NOT_MODELLED}: label source "${bare.slice(0, bare.indexOf(':'))}" (pods have k8s labels only)`);
      ok = false;
      return undefined;
    }
    return bare;
  };
  const matchLabels: Labels = Object.create(null);
  const labelsAt = joinPath(at, 'matchLabels');
  if (value.matchLabels != null) {
    if (!isMapping(value.matchLabels)) return void ctx.report(labelsAt, 'expected a mapping');
    for (const [raw, v] of Object.entries(value.matchLabels)) {
      const k = key(labelsAt, raw);
      if (typeof v !== 'string') {
        ctx.report(joinPath(labelsAt, raw), `expected a string, got ${JSON.stringify(v)}${typeof v === 'number' || typeof v === 'boolean' ? ' (quote it)' : ''}`);
        ok = false;
      } else if (k !== undefined) matchLabels[k] = v;
    }
  }
  const matchExpressions = readList(ctx, joinPath(at, 'matchExpressions'), value.matchExpressions, (a, v): SelectorRequirement | undefined => {
    if (!isMapping(v)) return void ctx.report(a, 'expected a mapping');
    unknownKeys(ctx.report, a, v, ['key', 'operator', 'values']);
    if (typeof v.key !== 'string') return void ctx.report(joinPath(a, 'key'), v.key === undefined ? 'required' : 'expected a string');
    const k = key(joinPath(a, 'key'), v.key);
    const operators = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
    if (typeof v.operator !== 'string' || !operators.includes(v.operator)) {
      return void ctx.report(joinPath(a, 'operator'), v.operator === undefined ? 'required' : `must be one of ${operators.map((o) => `"${o}"`).join(', ')} (got ${JSON.stringify(v.operator)})`);
    }
    const values = v.values == null ? undefined : Array.isArray(v.values) && v.values.every((x) => typeof x === 'string') ? (v.values as string[]) : undefined;
    if (v.values != null && values === undefined) return void ctx.report(joinPath(a, 'values'), 'expected a list of strings');
    if (k === undefined) return undefined;
    return { key: k, operator: v.operator as SelectorRequirement['operator'], ...(values ? { values } : {}) };
  });
  if (!ok || (value.matchExpressions != null && !matchExpressions)) return undefined;
  const selector: Selector = { matchLabels: { ...matchLabels }, ...(matchExpressions?.length ? { matchExpressions } : {}) };
  const empty = Object.keys(selector.matchLabels).length === 0 && !selector.matchExpressions;
  if (role === 'subject' && empty) ctx.warn(at, 'selects every pod' + (ctx.namespace ? ` in namespace "${ctx.namespace}"` : ' of the cluster'));
  return ctx.namespace === undefined ? selector : inNamespace(selector, ctx.namespace, role);
}

const namesNamespace = (s: Selector) => Object.hasOwn(s.matchLabels, NAMESPACE_LABEL) || (s.matchExpressions ?? []).some((e) => e.key === NAMESPACE_LABEL);

/**
 * A namespaced policy selects its subjects in its namespace, and peers there
 * too unless the peer selector names a namespace itself (as Cilium's parser adds the label).
 */
function inNamespace(selector: Selector, namespace: string, role: 'subject' | 'peer'): Selector {
  if (role === 'peer' && namesNamespace(selector)) return selector;
  return { ...selector, matchLabels: { ...selector.matchLabels, [NAMESPACE_LABEL]: namespace } };
}

/**
 * Adds the documents' policies to a topology and checks them with the
 * topology's rules. Issues of the imported policies carry their path in the
 * file; "selects no pod" is a warning for them, as in Cilium.
 */
export function withImportedPolicies(topology: Topology, imported: ImportedPolicies): { topology?: Topology; issues: TopologyIssue[]; warnings: TopologyIssue[] } {
  const inline = topology.policies.length;
  const merged: Topology = { ...topology, policies: [...topology.policies, ...imported.policies] };
  const issues = [...imported.issues];
  const warnings = [...imported.warnings];
  for (const issue of validateTopology(merged)) {
    const m = /^policies\[(\d+)\](.*)$/.exec(issue.path);
    const index = m ? Number(m[1]) : -1;
    if (index < inline) {
      issues.push({ ...issue, path: `topology: ${issue.path}` });
      continue;
    }
    const path = `${imported.origins[index - inline]}${m![2]!.replace(/^\.name$/, '')}`;
    const moved = { path: m![2] === '.name' ? path.replace(/(\.spec|\.specs\[\d+\])$/, '.metadata.name') : path, message: issue.message };
    (issue.message === 'selects no pod' ? warnings : issues).push(moved);
  }
  return issues.length === 0 ? { topology: merged, issues, warnings } : { issues, warnings };
}

/** Policies files added to a topology: the result, or every problem as `FILE: path: message` lines. */
export async function loadPolicyFiles(topology: Topology, files: readonly string[]): Promise<{ topology?: Topology; problems: string[]; warnings: string[] }> {
  const { readFile } = await import('node:fs/promises');
  const all: ImportedPolicies = { policies: [], origins: [], issues: [], warnings: [] };
  const tag = (file: string, issues: TopologyIssue[]) => issues.map((i) => ({ path: i.path ? `${file}: ${i.path}` : file, message: i.message }));
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      all.issues.push({ path: file, message: `cannot read: ${(error as Error).message}` });
      continue;
    }
    const one = parseCiliumPolicies(text);
    all.policies.push(...one.policies);
    all.origins.push(...one.origins.map((o) => `${file}: ${o}`));
    all.issues.push(...tag(file, one.issues));
    all.warnings.push(...tag(file, one.warnings));
  }
  const result = withImportedPolicies(topology, all);
  const lines = (issues: TopologyIssue[]) => issues.map((i) => `${i.path}: ${i.message}`);
  return { ...(result.topology ? { topology: result.topology } : {}), problems: lines(result.issues), warnings: lines(result.warnings) };
}

// A topology → Kubernetes manifests for the same experiment on a real
// cluster with Cilium's mutual authentication: Namespaces, ServiceAccounts,
// Pods (labels as in the lab, one lab node per cluster node through a
// nodeSelector), the policies as cilium.io/v2 documents, Helm values that
// match the routing and encryption modes, and a README of the checks.
// Pure data: the CLI writes the files.
import { stringify } from 'yaml';

import { AUTH_PORT } from '../abi/generated.ts';

import { CCNP_KIND, CNP_API_VERSION, CNP_KIND } from './cnp.ts';
import type { EgressRule, IngressRule, Pod, Policy, PortRule, Selector, Topology } from './model.ts';
import { NAMESPACE_LABEL, podLabels, selectorMatches } from './validate.ts';

/** Label a cluster node carries to receive the pods of lab node N. */
export const NODE_LABEL = 'mtless-lab/node';
/** A small server that answers on the ports the policies name (HTTP on TCP, echo on UDP). */
export const POD_IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.52';

const docs = (objects: object[]) => objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');

const portsOf = (rules: PortRule[]) => rules.flatMap((r) => r.ports.map((p) => ({
  port: String(p.port), ...(p.endPort !== undefined ? { endPort: p.endPort } : {}), protocol: p.protocol,
})));

const selector = (s: Selector) => ({
  ...(Object.keys(s.matchLabels).length > 0 ? { matchLabels: { ...s.matchLabels } } : {}),
  ...(s.matchExpressions?.length ? { matchExpressions: s.matchExpressions.map((e) => ({ ...e })) } : {}),
});

/**
 * A lab policy without a namespace is cluster-wide: a
 * CiliumClusterwideNetworkPolicy. One whose endpointSelector pins a
 * namespace becomes a CiliumNetworkPolicy there; its peers without a
 * namespace keep selecting every namespace through an Exists requirement
 * (Cilium scopes a namespaced policy's peers to its namespace otherwise).
 */
export function policyDocument(policy: Policy): object {
  const namespace = policy.endpointSelector.matchLabels[NAMESPACE_LABEL];
  const peer = (s: Selector): object => {
    if (namespace === undefined || Object.hasOwn(s.matchLabels, NAMESPACE_LABEL) || (s.matchExpressions ?? []).some((e) => e.key === NAMESPACE_LABEL)) return selector(s);
    return selector({ ...s, matchExpressions: [...(s.matchExpressions ?? []), { key: NAMESPACE_LABEL, operator: 'Exists' }] });
  };
  const rule = (r: IngressRule | EgressRule) => {
    const from = 'fromEndpoints' in r;
    const endpoints = from ? r.fromEndpoints : r.toEndpoints;
    const entities = from ? r.fromEntities : r.toEntities;
    const cidrs = from ? r.fromCIDR : r.toCIDR;
    const dir = from ? 'from' : 'to';
    return {
      ...(endpoints.length > 0 ? { [`${dir}Endpoints`]: endpoints.map(peer) } : {}),
      ...(entities?.length ? { [`${dir}Entities`]: [...entities] } : {}),
      ...(cidrs?.length ? { [`${dir}CIDR`]: [...cidrs] } : {}),
      ...(r.toPorts.length > 0 ? { toPorts: r.toPorts.map((p) => ({ ports: portsOf([p]) })) } : {}),
      ...('authentication' in r && r.authentication ? { authentication: { mode: r.authentication.mode } } : {}),
    };
  };
  const spec = {
    endpointSelector: selector(policy.endpointSelector),
    ...(policy.ingress ? { ingress: policy.ingress.map(rule) } : {}),
    ...(policy.ingressDeny ? { ingressDeny: policy.ingressDeny.map(rule) } : {}),
    ...(policy.egress ? { egress: policy.egress.map(rule) } : {}),
    ...(policy.egressDeny ? { egressDeny: policy.egressDeny.map(rule) } : {}),
  };
  return namespace === undefined
    ? { apiVersion: CNP_API_VERSION, kind: CCNP_KIND, metadata: { name: policy.name }, spec }
    : { apiVersion: CNP_API_VERSION, kind: CNP_KIND, metadata: { name: policy.name, namespace }, spec };
}

/** Cilium's Helm values for the topology's modes, with mutual auth and the SPIRE the chart installs. */
export function helmValues(topology: Topology): object {
  const native = topology.routing === 'native';
  const encryption = topology.encryption.mode === 'none' ? { enabled: false } : {
    enabled: true,
    type: topology.encryption.mode,
    ...(topology.encryption.strict ? { strictMode: { enabled: true, cidr: topology.addressing.podCIDR } } : {}),
  };
  return {
    authentication: { mutual: { spire: { enabled: true, install: { enabled: true } } } },
    routingMode: topology.routing,
    ...(native ? { autoDirectNodeRoutes: true, ipv4NativeRoutingCIDR: topology.addressing.podCIDR } : { tunnelProtocol: 'vxlan' }),
    encryption,
    // The lab's tunnel + WireGuard mode is Cilium's wireguard-encapsulate agent option.
    ...(!native && topology.encryption.mode === 'wireguard' ? { extraConfig: { 'wireguard-encapsulate': 'true' } } : {}),
    hubble: { enabled: true, relay: { enabled: true } },
  };
}

/** The TCP and UDP ports the policies allow into a pod's labels' selectors, for its server. */
function serverArgs(topology: Topology, pod: Pod): string[] {
  const labels = podLabels(pod);
  const ports = topology.policies.filter((p) => selectorMatches(p.endpointSelector, labels)).flatMap((p) => (p.ingress ?? []).flatMap((r) => r.toPorts.flatMap((t) => t.ports)));
  const tcp = ports.find((p) => p.protocol !== 'UDP' && p.port !== 0)?.port ?? 8080;
  const udp = ports.find((p) => p.protocol !== 'TCP' && p.port !== 0 && p.port !== tcp)?.port;
  return ['netexec', `--http-port=${tcp}`, ...(udp !== undefined ? [`--udp-port=${udp}`] : [])];
}

/** Every file of the export, by name. */
export function exportKubernetes(topology: Topology): Map<string, string> {
  const pods = topology.nodes.flatMap((node) => node.pods.map((pod) => ({ node: node.name, pod })));
  const namespaces = [...new Set(pods.map((p) => p.pod.namespace))].filter((ns) => ns !== 'default').sort();
  const accounts = [...new Set(pods.filter((p) => p.pod.serviceAccount !== 'default').map((p) => `${p.pod.namespace}/${p.pod.serviceAccount}`))].sort();
  const files = new Map<string, string>();
  const header = (what: string) => `# ${what} of the mtless-lab topology "${topology.name}" (mtless export k8s)\n`;
  files.set('00-namespaces.yaml', header('Namespaces and service accounts') + docs([
    ...namespaces.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })),
    ...accounts.map((a) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: a.split('/')[1], namespace: a.split('/')[0] } })),
  ]));
  files.set('10-pods.yaml', header('Pods') + docs(pods.map(({ node, pod }) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, namespace: pod.namespace, labels: { ...pod.labels } },
    spec: {
      serviceAccountName: pod.serviceAccount,
      nodeSelector: { [NODE_LABEL]: node },
      containers: [{ name: 'app', image: POD_IMAGE, args: serverArgs(topology, pod) }],
    },
  }))));
  if (topology.policies.length > 0) files.set('20-policies.yaml', header('Policies') + docs(topology.policies.map(policyDocument)));
  files.set('cilium-values.yaml', header('Helm values for Cilium') + stringify(helmValues(topology), { lineWidth: 0 }));
  files.set('README.md', readme(topology));
  return files;
}

function readme(topology: Topology): string {
  const nodes = topology.nodes.map((n, i) => `kubectl label node <node-${i + 1}> ${NODE_LABEL}=${n.name}`).join('\n');
  const pod = topology.nodes.flatMap((n) => n.pods)[0];
  return `# ${topology.name} on a real cluster

Written by \`mtless export k8s\` from the lab topology "${topology.name}" (${topology.routing} routing,
encryption ${topology.encryption.mode}${topology.encryption.strict ? ', strict mode' : ''}). One lab node is one cluster node.

\`\`\`sh
helm repo add cilium https://helm.cilium.io/
helm install cilium cilium/cilium -n kube-system -f cilium-values.yaml
${nodes}
kubectl apply -f 00-namespaces.yaml -f 10-pods.yaml${topology.policies.length > 0 ? ' -f 20-policies.yaml' : ''}
\`\`\`

The lab's checks, on the cluster:

\`\`\`sh
# the first packet of a flow that needs auth, dropped with "Authentication required" (189)
hubble observe --verdict DROPPED --type drop
# the auth map: one entry per (local identity, remote identity, remote node, auth type)
kubectl -n kube-system exec ds/cilium -- cilium-dbg bpf auth list
# the handshake between the agents (port ${AUTH_PORT}) and the pod traffic on the node
tcpdump -ni any 'tcp port ${AUTH_PORT} or net ${topology.addressing.podCIDR}'
${pod ? `# a connection from inside a pod\nkubectl -n ${pod.namespace} exec ${pod.name} -- /agnhost connect <server-ip>:8080 --timeout 5s\n` : ''}\`\`\`

Pod IPs come from the cluster's IPAM, not from the topology; policies select by labels, so they do not depend on them.
`;
}

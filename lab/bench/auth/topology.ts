// The auth benchmark's generated lab: C client pods on n1, S server pods on
// n2, every pod its own identity, and one policy that makes every server
// require authentication from every client on one TCP port. Pure.
import { DEFAULT_ADDRESSING, type Topology } from '../../topology/model.ts';

export const AUTH_LAB = 'bench-auth';
export const AUTH_PORT_DEFAULT = 8080;

/** c1…cC on n1 and s1…sS on n2, each its own identity; every server requires auth from every client on `port`. */
export function benchAuthTopology(clients: number, servers: number, port = AUTH_PORT_DEFAULT, name = AUTH_LAB): Topology {
  const pod = (kind: 'client' | 'server', i: number) => ({
    name: `${kind[0]}${i}`,
    namespace: 'default',
    serviceAccount: 'default',
    labels: { app: `bench-${kind}`, [kind]: `${kind[0]}${i}` },
  });
  return {
    name,
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    nodes: [
      { name: 'n1', pods: Array.from({ length: clients }, (_, i) => pod('client', i + 1)) },
      { name: 'n2', pods: Array.from({ length: servers }, (_, i) => pod('server', i + 1)) },
    ],
    policies: [
      {
        name: 'servers-require-auth',
        endpointSelector: { matchLabels: { app: 'bench-server' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'bench-client' } }],
            toPorts: [{ ports: [{ port, protocol: 'TCP' }] }],
            authentication: { mode: 'required' },
          },
        ],
      },
    ],
  };
}

/** Every (client, server) pair, ordered so consecutive attempts change both ends. */
export function pairOrder(clients: number, servers: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let c = 0; c < clients; c++) for (let s = 0; s < servers; s++) pairs.push([c, s]);
  const diag = ([c, s]: [number, number]) => (((s - c) % servers) + servers) % servers;
  return pairs.sort((a, b) => diag(a) - diag(b) || a[0] - b[0]);
}

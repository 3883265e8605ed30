// The modes benchmark's labs: one per mode of the C6 matrix plus the floor,
// the same pods and policy in each, only routing, encryption and who
// authenticates differ. Pure.
//
//   n1: client (app=client), pair-1 … pair-K (app=client, pair=k: a new
//       identity each, for the time to first byte of a new pair)
//   n2: server (app=server)
//   policy: app=client → app=server on the echo, sockperf and iperf3 ports,
//           `authentication: required` unless the mode authenticates
//           otherwise (the mesh) or not at all (the floor).
import { DEFAULT_ADDRESSING, type Encryption, type Pod, type Topology } from '../../topology/model.ts';
import { IPERF_PORT, SOCKPERF_PORT } from '../pod-server.ts';

export type BenchMode = 'floor' | 'native' | 'native-wireguard' | 'tunnel' | 'tunnel-wireguard' | 'per-connection-mtls';

export const MODES_LAB = 'bench-modes';
/** The echo server the timed connections reach (lab/apps/echo.c). */
export const ECHO_PORT = 8080;

export interface ModeSpec {
  mode: BenchMode;
  /** Suffix of the mode's lab name (bench-modes-<suffix>). */
  suffix: string;
  /** The shipped topology whose routing and encryption the mode takes (as the confusion-matrix scenario does). */
  topology: string;
  /** Cilium's mutual auth on the policy. */
  auth: boolean;
  /** Per-connection mTLS through the node proxies (lab/mesh). */
  mesh: boolean;
}

/** The floor first: plain native routing, no encryption, no auth. */
export const MODE_SPECS: readonly ModeSpec[] = [
  { mode: 'floor', suffix: 'floor', topology: 'topologies/two-node.yaml', auth: false, mesh: false },
  { mode: 'native', suffix: 'nat', topology: 'topologies/two-node-auth.yaml', auth: true, mesh: false },
  { mode: 'native-wireguard', suffix: 'nwg', topology: 'topologies/two-node-wireguard.yaml', auth: true, mesh: false },
  { mode: 'tunnel', suffix: 'tun', topology: 'topologies/two-node-tunnel.yaml', auth: true, mesh: false },
  { mode: 'tunnel-wireguard', suffix: 'twg', topology: 'topologies/two-node-tunnel-wireguard.yaml', auth: true, mesh: false },
  { mode: 'per-connection-mtls', suffix: 'mtls', topology: 'topologies/mesh.yaml', auth: false, mesh: true },
];

export const pairPod = (k: number) => `pair-${k}`;

/**
 * A mode's lab. `shipped` gives routing and encryption (from the mode's
 * shipped topology); every pod's service account is its name, so the mesh
 * tells the pairs apart (the Cilium modes ignore it).
 */
export function modeTopology(spec: ModeSpec, shipped: { routing: Topology['routing']; encryption: Encryption }, pairs: number, name: string): Topology {
  const pod = (podName: string, labels: Record<string, string>): Pod => ({ name: podName, namespace: 'default', serviceAccount: podName, labels });
  return {
    name,
    routing: shipped.routing,
    encryption: { ...shipped.encryption },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    nodes: [
      { name: 'n1', pods: [pod('client', { app: 'client' }), ...Array.from({ length: pairs }, (_, i) => pod(pairPod(i + 1), { app: 'client', pair: String(i + 1) }))] },
      { name: 'n2', pods: [pod('server', { app: 'server' })] },
    ],
    policies: [
      {
        name: 'server-admits-client',
        endpointSelector: { matchLabels: { app: 'server' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'client' } }],
            toPorts: [{ ports: [ECHO_PORT, SOCKPERF_PORT, IPERF_PORT].map((port) => ({ port, protocol: 'TCP' as const })) }],
            ...(spec.auth ? { authentication: { mode: 'required' as const } } : {}),
          },
        ],
      },
    ],
  };
}

// What `mtless up` hands each node agent: a JSON file in the lab's state
// directory. Secrets live in files beside it (mode 0600), never in argv.
import { readFile } from 'node:fs/promises';
import { stateDir } from '../core/names.ts';

export interface AgentConfig {
  lab: string;
  node: string;
  /** This node's underlay address: where the auth server listens (port 4250). */
  underlayIp: string;
  /** https://<control-plane-ip>:9443 */
  controlUrl: string;
  /** The CA certificate: trust bundle for SVIDs and for the control plane. */
  trustBundleFile: string;
  /** The node credential (mutual TLS to the control plane). */
  nodeCertFile: string;
  nodeKeyFile: string;
  /** NSS key log of every handshake, for captures. */
  keyLogFile: string;
  /** Auth-map garbage collection interval (Cilium: 5 min). */
  gcIntervalMs: number;
  /** Renew an SVID once this fraction of its lifetime has passed. */
  rotateAtFraction: number;
  /** Set when the lab runs WireGuard: the agent makes the node's key, publishes it and configures the peers. */
  wireguard?: { encapsulate: boolean };
}


export async function readAgentConfig(path: string): Promise<AgentConfig> {
  return JSON.parse(await readFile(path, 'utf8')) as AgentConfig;
}

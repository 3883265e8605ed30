// The lab's daemons: long-lived Node processes, one per (role, node), each
// started from its entry script with its config file from the state
// directory. `up`, `restart` and the mesh start them from this table; a
// daemon is known by its role and node (the control plane's node is "cp",
// which a lab node may be called too: the role tells them apart).
import { agentConfigFile, controlConfigFile, controlNetns, nodeNetns, proxyConfigFile, relayConfigFile } from './names.ts';

export interface DaemonKind {
  /** The role part of its process tag and log file name. */
  role: string;
  /** Entry point, relative to the checkout. */
  script: string;
  /** Its only argument: the config file it reads at start. */
  configFile: (lab: string, node: string) => string;
  /** The namespace it runs in. */
  netns: (lab: string, node: string) => string;
}

/** The node name of the control plane's process, tag and log. */
export const CONTROL_PLANE_NODE = 'cp';

export const AGENT: DaemonKind = {
  role: 'agent',
  script: 'lab/agent/main.ts',
  configFile: agentConfigFile,
  netns: nodeNetns,
};

export const CONTROL_PLANE: DaemonKind = {
  role: 'control-plane',
  script: 'lab/control/main.ts',
  configFile: (lab) => controlConfigFile(lab),
  netns: (lab) => controlNetns(lab),
};

export const MESH_PROXY: DaemonKind = {
  role: 'mesh-proxy',
  script: 'lab/mesh/proxy.ts',
  configFile: proxyConfigFile,
  netns: nodeNetns,
};

/**
 * The lab's flow relay (like hubble-relay): the one reader of every node's
 * cilium_events, merging them with the agents' auth events for every
 * `mtless observe` and scenario. One per lab, on the control plane's node
 * ("cp"), started by `up` after the agents.
 */
export const FLOW_RELAY: DaemonKind = {
  role: 'relay',
  script: 'lab/observe/relay-main.ts',
  configFile: (lab) => relayConfigFile(lab),
  netns: (lab) => controlNetns(lab),
};

export const DAEMONS: readonly DaemonKind[] = [AGENT, CONTROL_PLANE, MESH_PROXY, FLOW_RELAY];

export function daemonKind(role: string): DaemonKind | undefined {
  return DAEMONS.find((d) => d.role === role);
}

/** A daemon of a lab: what restart and the logs are keyed by. */
export interface DaemonKey {
  role: string;
  node: string;
}

// The whole lab: the kernel build of up.ts, then the datapath on every pod
// veth, the control plane with its CA, and one agent per node.
import 'reflect-metadata';
import { mkdir, writeFile } from 'node:fs/promises';
import { podLabels, type Topology } from '../topology/model.ts';
import { noteLabOpening } from './open-labs.ts';
import { upLab, type UpOptions } from './up.ts';
import type { LabPlan } from '../core/plan.ts';
import { writeState, type LabState } from '../core/state.ts';
import { startLabDaemon, waitForLogLine } from '../kernel/daemon.ts';
import { AGENT, CONTROL_PLANE, CONTROL_PLANE_NODE } from '../core/daemons.ts';
import { allocateIdentities, type IdentityAllocation } from '../policy/identity.ts';
import { attachEndpoints, loadNodeDatapath, readIfindexes, type PolicyMode } from '../datapath/load.ts';
import { compileNodeState, writeNodeState } from '../datapath/state.ts';
import { MapWriter } from '../datapath/map-writer.ts';
import { createCa, saveCa, issueNodeCredential, type Ca } from '../spiffe/ca.ts';
import { type ControlConfig } from '../control/config.ts';
import { CONTROL_PLANE_NAME } from '../control/server.ts';
import { CONTROL_PORT } from '../abi/generated.ts';
import { type AgentConfig } from '../agent/config.ts';
import { DEFAULT_SVID_TTL_MS } from '../spiffe/ca.ts';
import { SOCKMAP_STEP } from '../sockmap/load.ts';
import { WIREGUARD_DEVICES_STEP, WIREGUARD_STEP } from '../wireguard/wireguard.ts';
import { WIREGUARD_PEERS_STEP } from './wireguard-keys.ts';
import { encapsulated } from '../tunnel/encapsulate.ts';
import { TUNNEL_STEP } from '../tunnel/tunnel.ts';
import { STRICT_STEP } from '../wireguard/strict.ts';
import { RELAY_STEP } from '../observe/daemon.ts';
import { agentDir, keyLogFile } from '../core/names.ts';
import { controlDir, controlSocket } from '../core/names.ts';
import { type ExtraStep } from '../core/steps.ts';

export interface LabOptions extends UpOptions {
  /** Start the control plane and node agents (default). Without them, auth entries are written by hand (`mtless auth`). */
  agents?: boolean;
  svidTtlMs?: number;
  /** Auth-map GC interval of the agents (Cilium: 5 min). */
  gcIntervalMs?: number;
  policyMode?: PolicyMode;
  /** Another BPF object than bpf/build/datapath.o (tests use a broken one). */
  datapathObject?: string;
}

/** What a valid topology may ask for that this lab cannot build (yet, or on this kernel). */
export function unsupported(topology: Topology): string[] {
  const problems: string[] = [];
  if (topology.encryption.mode === 'ipsec') {
    problems.push('encryption.mode "ipsec" is unavailable: this kernel has no ESP/xfrm AEAD support (see `mtless doctor`); use "none"');
  }
  return problems;
}

export async function upWithDatapath(topology: Topology, opts: LabOptions): Promise<LabPlan> {
  const problems = unsupported(topology);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  noteLabOpening(opts.name ?? topology.name);
  const identities = allocateIdentities(topology);
  let ca: Ca | undefined;
  const steps: ExtraStep[] = [{ name: 'datapath', run: (plan, state) => installDatapath(plan, state, identities, opts) }];
  // After the datapath: the overlay programs reuse its pinned ipcache and lxc maps.
  if (topology.routing === 'tunnel') steps.push(TUNNEL_STEP);
  // After the tunnel: with both, WireGuard carries the VXLAN packets (lab/tunnel/encapsulate.ts).
  // With agents, each agent makes its node's key and takes its peers from the control plane; without, `up` sets them.
  const wireguard = topology.encryption.mode === 'wireguard';
  if (wireguard) steps.push(opts.agents === false ? WIREGUARD_STEP : WIREGUARD_DEVICES_STEP);
  // After the datapath (strict.o reuses all of its pinned maps) and after WireGuard.
  if (topology.encryption.mode === 'wireguard' && topology.encryption.strict) steps.push(STRICT_STEP);
  if (topology.sockmap) steps.push(SOCKMAP_STEP);
  if (opts.agents !== false) {
    steps.push(
      { name: 'control', run: async (plan, state) => { ca = await startControlPlane(plan, state, identities, opts); } },
      { name: 'agents', run: (plan, state) => startAgents(plan, state, ca!, opts) },
      ...(wireguard ? [WIREGUARD_PEERS_STEP] : []),
    );
  }
  // Last: the flow relay reads every node's events from here on and tails the agents' logs.
  steps.push(RELAY_STEP);
  return upLab(topology, { ...opts, extraSteps: [...steps, ...(opts.extraSteps ?? [])] });
}

/** Loads one datapath object per node, attaches it to every pod veth, and fills the maps from the topology. */
async function installDatapath(plan: LabPlan, state: LabState, identities: IdentityAllocation, opts: LabOptions): Promise<void> {
  for (const p of state.pods) p.identity = identities.byPod.get(p.name);
  await writeState(state);
  // One map writer for the lab's first fill (four dumps and a batch per node
  // otherwise, each a bpftool start), closed at once: it holds the maps open.
  const writer = new MapWriter();
  try {
    await allOrFirstError(
      plan.nodes.map(async (n) => {
        const dp = await loadNodeDatapath(plan.lab, n.name, { policyMode: opts.policyMode, objectPath: opts.datapathObject });
        // Maps first: a veth the programs do not know yet is dropped (fail-closed).
        const ifindexes = await readIfindexes(n.netns);
        await writeNodeState(plan.lab, n.name, compileNodeState(plan, n.name, identities), ifindexes, { io: writer });
        await attachEndpoints(n.netns, n.pods.map((p) => p.lxc), dp.progPins);
      }),
    );
  } finally {
    writer.close();
  }
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
}

/** The CA (its key stays in the control plane's state, mode 0600) and the control-plane process. */
async function startControlPlane(plan: LabPlan, state: LabState, identities: IdentityAllocation, opts: LabOptions): Promise<Ca> {
  const dir = controlDir(plan.lab);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa();
  await saveCa(ca, `${dir}/ca.key.pem`);
  await writeFile(`${dir}/ca.pem`, ca.certPem);
  const cred = await issueNodeCredential(ca, CONTROL_PLANE_NAME);
  await writePrivate(`${dir}/server.pem`, cred.certPem);
  await writePrivate(`${dir}/server.key.pem`, cred.keyPem!);
  const config: ControlConfig = {
    lab: plan.lab,
    host: plan.controlIp,
    caFile: `${dir}/ca.key.pem`,
    certFile: `${dir}/server.pem`,
    keyFile: `${dir}/server.key.pem`,
    adminSocket: controlSocket(plan.lab),
    svidTtlMs: opts.svidTtlMs ?? DEFAULT_SVID_TTL_MS,
    nodes: plan.nodes.map((n) => ({ name: n.name, id: n.id, underlayIp: n.underlayIp, mgmtIp: n.mgmtIp, podCidr: n.podCidr })),
    endpoints: plan.nodes.flatMap((n) =>
      n.pods.map((p) => ({ pod: p.name, node: n.name, ip: p.ip, labels: podLabels(p.spec), identity: identities.byPod.get(p.name)! })),
    ),
    identities: identities.identities.map((i) => ({ id: i.id, labels: i.labels })),
    policies: plan.topology.policies,
  };
  await writePrivate(CONTROL_PLANE.configFile(plan.lab, CONTROL_PLANE_NODE), JSON.stringify(config, null, 2));
  const proc = await startLabDaemon(plan.lab, CONTROL_PLANE, CONTROL_PLANE_NODE);
  state.processes.push(proc);
  await writeState(state);
  return ca;
}

/** One agent per node, each with its node credential for the control plane. */
async function startAgents(plan: LabPlan, state: LabState, ca: Ca, opts: LabOptions): Promise<void> {
  await allOrFirstError(
    plan.nodes.map(async (n) => {
      const dir = agentDir(plan.lab, n.name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const cred = await issueNodeCredential(ca, n.name);
      await writePrivate(`${dir}/node.pem`, cred.certPem);
      await writePrivate(`${dir}/node.key.pem`, cred.keyPem!);
      await writeFile(`${dir}/ca.pem`, ca.certPem);
      const config: AgentConfig = {
        lab: plan.lab,
        node: n.name,
        underlayIp: n.underlayIp,
        controlUrl: `https://${plan.controlIp}:${CONTROL_PORT}`,
        trustBundleFile: `${dir}/ca.pem`,
        nodeCertFile: `${dir}/node.pem`,
        nodeKeyFile: `${dir}/node.key.pem`,
        keyLogFile: keyLogFile(plan.lab),
        gcIntervalMs: opts.gcIntervalMs ?? 5 * 60_000,
        rotateAtFraction: 2 / 3,
        ...(plan.topology.encryption.mode === 'wireguard' ? { wireguard: { encapsulate: encapsulated(plan.topology) } } : {}),
      };
      await writePrivate(AGENT.configFile(plan.lab, n.name), JSON.stringify(config, null, 2));
      const proc = await startLabDaemon(plan.lab, AGENT, n.name);
      state.processes.push(proc);
      // Up means ready: the agent has synced its maps and holds its SVIDs.
      await waitForLogLine(proc.logFile!, '"event":"ready"', proc.pid, 20_000, `agent on ${n.name}`, proc.logOffset);
    }),
  );
  await writeState(state);
}

/**
 * Like Promise.all, but waits for every branch before rethrowing the first
 * error: rollback must not run while a sibling is still creating things.
 */
async function allOrFirstError(work: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(work);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

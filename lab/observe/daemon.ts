// Starting a lab's flow relay: as a step of `up` after the agents (so their
// logs exist to tail), or on demand for a lab brought up before it had one.
import { mkdir, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { CONTROL_PLANE_NODE, FLOW_RELAY } from '../core/daemons.ts';
import { relayDir, relaySocket } from '../core/names.ts';
import { isAlive } from '../core/processes.ts';
import { readState, withStateLock, writeState, type LabState, type ProcessState } from '../core/state.ts';
import type { ExtraStep } from '../core/steps.ts';
import type { Topology } from '../topology/model.ts';
import { startLabDaemon } from '../kernel/daemon.ts';
import { DEFAULT_RING_SIZE, DEFAULT_SORT_WINDOW_MS, type RelayConfig } from './relay.ts';

/** The relay's process runs on the control plane's node: its tag and log are "relay-cp". */
export const RELAY_NODE = CONTROL_PLANE_NODE;

export async function startRelay(state: LabState, topology?: Topology): Promise<ProcessState> {
  const cfg: RelayConfig = {
    lab: state.lab,
    nodes: state.nodes.map((n) => n.name),
    socket: relaySocket(state.lab),
    ringSize: DEFAULT_RING_SIZE,
    sortWindowMs: DEFAULT_SORT_WINDOW_MS,
    ...(topology ? { topology } : {}),
  };
  await mkdir(relayDir(state.lab), { recursive: true, mode: 0o700 });
  await writeFile(FLOW_RELAY.configFile(state.lab, RELAY_NODE), JSON.stringify(cfg, null, 2), { mode: 0o600 });
  return startLabDaemon(state.lab, FLOW_RELAY, RELAY_NODE);
}

/** `up`'s step: the relay reads every node's cilium_events from here on. */
export const RELAY_STEP: ExtraStep = {
  name: 'relay',
  run: async (plan, state) => {
    state.processes.push(await startRelay(state, plan.topology));
    await writeState(state);
  },
};

/** True when something answers on the relay's socket. */
export function relayAnswers(lab: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(relaySocket(lab));
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts the relay of a lab that has none running (brought up before it
 * existed, or its relay died), under the state lock so that two observers
 * starting at once start one relay.
 */
export async function ensureRelay(lab: string): Promise<void> {
  if (await relayAnswers(lab)) return;
  await withStateLock(lab, async () => {
    if (await relayAnswers(lab)) return;
    const state = await readState(lab);
    if (!state) throw new Error(`no lab named "${lab}"`);
    const old = state.processes.find((p) => p.role === FLOW_RELAY.role && p.node === RELAY_NODE);
    if (old && isAlive(old.pid)) throw new Error(`the flow relay of lab "${lab}" (pid ${old.pid}) runs but does not answer; see \`mtless logs ${lab} ${RELAY_NODE}\``);
    const proc = await startRelay(state);
    state.processes = [...state.processes.filter((p) => p !== old), proc];
    await writeState(state);
  });
}

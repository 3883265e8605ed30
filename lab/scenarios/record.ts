// What a scenario run leaves beside its captures for the report: the lab as it
// was (nodes, pods with identities, devices), every flow event, and the lines
// of every daemon log. Written before the lab goes down, because the state and
// logs under /run/mtless-lab/<lab>/ go with it. The report (lab/report) draws
// its pictures from this file and the capture, never from constants.
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LabPlan } from '../core/plan.ts';
import type { LabState, PodState } from '../core/state.ts';
import { wgIfname } from '../core/names.ts';
import { VXLAN_IFNAME } from '../tunnel/tunnel.ts';
import type { FlowEvent } from '../abi/generated.ts';

export const RUN_RECORD_FILE = 'run.json';
/** Lines kept per daemon log: enough for every auth event of a scenario, bounded for a flood. */
export const RECORD_LOG_LINES = 5000;

export type RecordedFlow = Omit<FlowEvent, 'timestamp'> & { node: string; /** Unix-epoch ns, as text (a bigint). */ timestamp: string };

export interface RecordedPod {
  name: string;
  node: string;
  ip: string;
  lxc: string;
  identity?: number;
  labels: Record<string, string>;
  namespace?: string;
  serviceAccount?: string;
  /** Added or deleted while the scenario ran (not in the topology file, or gone at its end). */
  runtime?: 'added' | 'deleted';
}

export interface RecordedNode {
  name: string;
  id: number;
  underlayIp: string;
  mgmtIp: string;
  podCidr: string;
  /** Devices besides eth0 and mgmt0 that carry pod traffic: the VXLAN or WireGuard device. */
  devices: { name: string; kind: 'vxlan' | 'wireguard' }[];
}

export interface RunRecord {
  version: 1;
  scenario: string;
  lab: string;
  topologyFile: string;
  routing: 'native' | 'tunnel';
  encryption: { mode: string; strict?: boolean };
  sockmap: boolean;
  underlayCidr: string;
  mgmtCidr: string;
  podCidr: string;
  controlIp: string;
  nodes: RecordedNode[];
  pods: RecordedPod[];
  flows: RecordedFlow[];
  /** Per daemon (`<role>-<node>`, e.g. `agent-n2`, `control-plane-cp`): its JSON log lines. */
  logs: Record<string, Record<string, unknown>[]>;
}

/** Pods of the plan, with identities from the state read after `up` and at the end; run-time pods marked. */
export function recordedPods(plan: LabPlan, atStart: PodState[], atEnd: PodState[]): RecordedPod[] {
  const planned = plan.nodes.flatMap((n) => n.pods);
  const byName = new Map<string, RecordedPod>();
  for (const p of planned) {
    byName.set(p.name, { name: p.name, node: p.node, ip: p.ip, lxc: p.lxc, labels: { ...p.spec.labels }, namespace: p.spec.namespace, serviceAccount: p.spec.serviceAccount });
  }
  for (const s of [...atStart, ...atEnd]) {
    const r = byName.get(s.name);
    if (r) r.identity = s.identity ?? r.identity;
    else byName.set(s.name, { name: s.name, node: s.node, ip: s.ip, lxc: s.lxc, identity: s.identity, labels: { ...s.labels }, runtime: 'added' });
  }
  const ended = new Set(atEnd.map((p) => p.name));
  for (const r of byName.values()) if (!ended.has(r.name) && atEnd.length > 0) r.runtime = 'deleted';
  return [...byName.values()];
}

export function buildRecord(o: { scenario: string; topologyFile: string; plan: LabPlan; atStart: LabState; atEnd?: LabState; flows: (FlowEvent & { node: string })[]; logs: RunRecord['logs'] }): RunRecord {
  const t = o.plan.topology;
  const devices = (node: string): RecordedNode['devices'] => [
    ...(t.routing === 'tunnel' ? [{ name: VXLAN_IFNAME, kind: 'vxlan' as const }] : []),
    ...(t.encryption.mode === 'wireguard' ? [{ name: wgIfname(o.plan.lab, node), kind: 'wireguard' as const }] : []),
  ];
  return {
    version: 1,
    scenario: o.scenario,
    lab: o.plan.lab,
    topologyFile: o.topologyFile,
    routing: t.routing,
    encryption: { mode: t.encryption.mode, ...(t.encryption.strict !== undefined ? { strict: t.encryption.strict } : {}) },
    sockmap: t.sockmap,
    underlayCidr: t.addressing.underlayCIDR,
    mgmtCidr: t.addressing.managementCIDR,
    podCidr: t.addressing.podCIDR,
    controlIp: o.plan.controlIp,
    nodes: o.plan.nodes.map((n) => ({ name: n.name, id: n.id, underlayIp: n.underlayIp, mgmtIp: n.mgmtIp, podCidr: n.podCidr, devices: devices(n.name) })),
    pods: recordedPods(o.plan, o.atStart.pods, o.atEnd?.pods ?? []),
    flows: o.flows.map((f) => ({ ...f, timestamp: f.timestamp.toString() })),
    logs: o.logs,
  };
}

/** The JSON lines of every daemon log the state names (the last RECORD_LOG_LINES of each). */
export async function readDaemonLogs(state: LabState): Promise<RunRecord['logs']> {
  const out: RunRecord['logs'] = {};
  await Promise.all(state.processes.filter((p) => p.logFile).map(async (p) => {
    const text = await readFile(p.logFile!, 'utf8').catch(() => '');
    const lines: Record<string, unknown>[] = [];
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a line cut by the log cap: not evidence
      }
    }
    out[`${p.role}-${p.node}`] = lines.slice(-RECORD_LOG_LINES);
  }));
  return out;
}

export async function writeRecord(dir: string, record: RunRecord): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, RUN_RECORD_FILE);
  await writeFile(file, `${JSON.stringify(record)}\n`);
  return file;
}

export async function readRecord(file: string): Promise<RunRecord> {
  const r = JSON.parse(await readFile(file, 'utf8')) as RunRecord;
  if (r.version !== 1) throw new Error(`${file}: run record version ${String(r.version)}, expected 1`);
  return r;
}

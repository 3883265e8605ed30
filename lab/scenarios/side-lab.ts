// Labs a scenario brings up beside its own (to measure several modes side by
// side): bring-up, flow events of every node from before the first packet,
// daemon logs, and teardown in every case.
import { readFile } from 'node:fs/promises';
import { upWithDatapath, type LabOptions } from '../compose/lab.ts';
import { destroyLab } from '../compose/down.ts';
import type { LabPlan } from '../core/plan.ts';
import { readState } from '../core/state.ts';
import { daemonLogFile } from '../core/names.ts';
import { AGENT, CONTROL_PLANE, CONTROL_PLANE_NODE } from '../core/daemons.ts';
import { streamFlows, type EventStream } from '../datapath/events.ts';
import { dumpNodeMap, ipcacheCidr } from '../datapath/maps.ts';
import { sharedDumpIo } from '../datapath/map-writer.ts';
import type { Topology } from '../topology/model.ts';
import { currentRun, type FlowWithNode, type ScenarioContext } from './framework.ts';
import type { Progress } from '../core/progress.ts';

/** What a measurement needs of a lab, whether the scenario's own or a side lab. */
export interface LabHandle {
  lab: string;
  plan: LabPlan;
  /** Flow events of every node so far. */
  flows(): FlowWithNode[];
  /** A pod's IP now (pods come and go during a run). */
  podIp(pod: string): Promise<string>;
  say(text: string): void;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a client that is expected to be refused and stops it once `refused`
 * holds (polled while the client runs). A refusal seen for the first packet
 * and again for its retransmit says all that waiting out the client's own
 * timeout would, and that wait was most of such a step's time. A client
 * that is not refused ends by itself, within its own timeout.
 */
export function untilRefused<T>(start: (signal: AbortSignal) => Promise<T>, refused: () => Promise<boolean> | boolean, everyMs = 25): Promise<T> {
  const stop = new AbortController();
  let ended = false;
  const client = start(stop.signal).finally(() => (ended = true));
  void (async () => {
    while (!ended) {
      if (await Promise.resolve().then(refused).catch(() => false)) return stop.abort();
      await sleep(everyMs);
    }
  })();
  return client;
}

/** Polls `probe` until it gives a value or the deadline passes (then undefined). */
export async function waitUntil<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 20): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await sleep(everyMs);
  }
}

async function podIpOf(lab: string, pod: string): Promise<string> {
  const p = (await readState(lab))?.pods.find((x) => x.name === pod);
  if (!p) throw new Error(`lab "${lab}" has no pod "${pod}"`);
  return p.ip;
}

/** The scenario's own lab as a handle. */
export function ownLab(ctx: ScenarioContext): LabHandle {
  return { lab: ctx.lab, plan: ctx.plan, flows: ctx.flows, podIp: (pod) => podIpOf(ctx.lab, pod), say: ctx.say };
}

/** The run's progress, its steps named after a side lab. */
export function sideProgress(name: string, progress: Progress | undefined): Progress | undefined {
  return progress && ((e) => progress(e.kind === 'start' || e.kind === 'done' ? { ...e, step: `${name}: ${e.step}` } : e));
}

/** Rejects when the signal fires (never, without one). */
function abortedBy(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) reject(new Error('interrupted'));
    signal?.addEventListener('abort', () => reject(new Error('interrupted')), { once: true });
  });
}

/**
 * A lab of its own: up, flows streamed, `fn`, then down (always; kept with the
 * run's --keep). Under a scenario run it shares the run's Ctrl-C: `up` rolls
 * back, `fn` is abandoned and the lab goes down at once.
 */
export async function withSideLab<T>(
  name: string, topology: Topology, opts: Partial<LabOptions>, say: (text: string) => void, fn: (lab: LabHandle) => Promise<T>,
): Promise<T> {
  const run = currentRun();
  const flows: FlowWithNode[] = [];
  const streams: EventStream[] = [];
  try {
    const plan = await upWithDatapath(topology, { name, signal: run?.signal, progress: sideProgress(name, run?.progress), ...opts });
    for (const n of plan.nodes) streams.push(streamFlows(name, n.name, (f) => flows.push({ ...f, node: n.name })));
    await Promise.all(streams.map((s) => s.ready));
    const work = fn({ lab: name, plan, flows: () => [...flows], podIp: (pod) => podIpOf(name, pod), say });
    work.catch(() => undefined); // abandoned on Ctrl-C: it fails against a lab gone
    return await Promise.race([work, abortedBy(run?.signal)]);
  } finally {
    await Promise.all(streams.map((s) => s.stop().catch(() => undefined)));
    if (!run?.keep || run.signal?.aborted) await destroyLab(name);
  }
}

/** A daemon's structured log lines (an agent's, or "cp" for the control plane's), with their time in epoch ms. */
export async function daemonLog(lab: string, node: string): Promise<(Record<string, unknown> & { ms: number })[]> {
  const role = (node === CONTROL_PLANE_NODE ? CONTROL_PLANE : AGENT).role;
  const text = await readFile(daemonLogFile(lab, node, role), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => {
    const line = JSON.parse(l) as Record<string, unknown>;
    return { ...line, ms: Date.parse(String(line.time)) };
  });
}

/** The identity a node's ipcache gives an IP's /32 entry, or undefined without one. */
export async function ipcacheIdentity(lab: string, node: string, ip: string): Promise<number | undefined> {
  // Polled every few ms by the scenarios: through the process's map-batch helper, not a bpftool per poll.
  const rows = await dumpNodeMap(lab, node, 'cilium_ipcache', sharedDumpIo());
  return rows.find((r) => ipcacheCidr(r.key) === `${ip}/32`)?.value.secIdentity;
}

/** A flow event's time in epoch ms. */
export const flowMs = (f: { timestamp: bigint }) => Number(f.timestamp / 1000n) / 1000;

/** ≤ 24 characters (the lab-name rule): the base name, shortened, plus a suffix. */
export function sideLabName(base: string, suffix: string): string {
  return `${base.slice(0, 23 - suffix.length).replace(/-+$/, '')}-${suffix}`;
}

/** A Markdown table (the narrative prints it, the README shows it). */
export function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
}

/** The median of some numbers (undefined for none). */
export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// Scenarios: scripted experiments that bring a lab up, make traffic, and
// check packet-level claims against events, maps and logs. They are the demo
// and the regression tests at once.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { upWithDatapath, type LabOptions } from '../compose/lab.ts';
import { formatDownTime, destroyLab } from '../compose/down.ts';
import type { LabPlan } from '../core/plan.ts';
import { readState } from '../core/state.ts';
import { startCapture } from '../capture/capture.ts';
import { finishCapture, scenarioDir, type CaptureFiles } from '../capture/scenario.ts';
import { dropEventOfFlow } from '../capture/drops.ts';

import { streamFlows, type EventStream } from '../datapath/events.ts';
import { formatFlow } from '../datapath/format.ts';
import { VERDICT_DROPPED, type FlowEvent } from '../abi/generated.ts';
import { loadTopologyFile } from '../topology/validate.ts';
import { step, type Progress } from '../core/progress.ts';
import { daemonLogFile, scenarioLabName } from '../core/names.ts';
import { AGENT, CONTROL_PLANE, CONTROL_PLANE_NODE } from '../core/daemons.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { buildRecord, readDaemonLogs, writeRecord } from './record.ts';

export const REPO = REPO_ROOT;

export interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}

/**
 * `full` (the regression tests, `scenario run`) or `demo` (`mtless demo`):
 * shorter lifetimes and fewer repetitions where a scenario only needs to
 * show a bound. Every check is the same in both.
 */
export type ScenarioProfile = 'full' | 'demo';

/** Where a run may stop for a trainer (`mtless demo --step`): before `up`, before the traffic, before `down`. */
export type PausePoint = 'up' | 'run' | 'down';

export interface ScenarioContext {
  lab: string;
  plan: LabPlan;
  profile: ScenarioProfile;
  /** Records one assertion; never throws, so every check of a run is reported. */
  check(name: string, ok: boolean, detail?: string): boolean;
  /** A line of narrative for the reader. */
  say(text: string): void;
  /** Flow events seen so far on every node (collected from before the first packet). */
  flows(): FlowWithNode[];
  /** Waits (with a deadline) until a flow matching `pred` has been seen. */
  waitForFlow(pred: (f: FlowWithNode) => boolean, timeoutMs?: number): Promise<FlowWithNode | undefined>;
  /** Structured log lines of one node's agent (or "cp"). */
  agentLog(node: string): Promise<Record<string, unknown>[]>;
  /** Waits until an agent log line matches. */
  waitForLog(node: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown> | undefined>;
  podIp(pod: string): string;
  /** What `run` leaves for `checkCapture` (secrets sent, identities seen). */
  memo: Map<string, unknown>;
  /** Measured data of the run (tables' rows), returned as ScenarioResult.measurements (`--json`). */
  measurements: Record<string, unknown>;
  /** "n1/client" for a pod IP. */
  resolve(ip: string): string | undefined;
}

export type FlowWithNode = FlowEvent & { node: string };

export interface Scenario {
  name: string;
  summary: string;
  /** The claims (C1–C9, see README) it gives evidence for. */
  claims: string[];
  topology: string;
  options?: Partial<LabOptions>;
  /** Lab options of the demo profile, over `options` (e.g. shorter SVIDs). */
  demoOptions?: Partial<LabOptions>;
  /** Links recorded while `run` runs, into captures/<lab>/<scenario>/ or the run's --out DIR (see lab/capture). */
  captureLinks?: string[];
  run(ctx: ScenarioContext): Promise<void>;
  /** Packet-level checks on the finished capture (secrets embedded, drops commented). */
  checkCapture?(ctx: ScenarioContext, files: CaptureFiles): Promise<void>;
}

export interface ScenarioResult {
  scenario: string;
  lab: string;
  checks: Check[];
  narrative: string[];
  ok: boolean;
  error?: string;
  durationMs: number;
  /** The scenario's merged capture, when it records one. */
  capture?: string;
  /** What the scenario measured (e.g. `matrix`, `window`: arrays of rows), when it measures. */
  measurements?: Record<string, unknown>;
  /** run.json beside its captures (lab/scenarios/record.ts): the lab, flow events and daemon logs, for the report. */
  record?: string;
}

/** What a side lab (lab/scenarios/side-lab.ts) takes from the scenario run it belongs to. */
export interface RunScope {
  lab: string;
  signal?: AbortSignal;
  progress?: Progress;
  keep?: boolean;
  profile: ScenarioProfile;
}
const scope = new AsyncLocalStorage<RunScope>();
/** The scenario run the caller is part of, if any. */
export const currentRun = (): RunScope | undefined => scope.getStore();

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function runScenario(
  scenario: Scenario,
  opts: {
    lab?: string; progress?: Progress; onLine?: (line: string) => void; keep?: boolean; signal?: AbortSignal; profile?: ScenarioProfile;
    /** Called at each pause point (`mtless demo --step`); the run goes on when it resolves. */
    pause?: (point: PausePoint, lab: string) => Promise<void>;
  } = {},
): Promise<ScenarioResult> {
  const lab = opts.lab ?? scenarioLabName(scenario.name);
  const profile = opts.profile ?? 'full';
  return scope.run({ lab, signal: opts.signal, progress: opts.progress, keep: opts.keep, profile }, () => runInScope(scenario, lab, profile, opts));
}

async function runInScope(
  scenario: Scenario, lab: string, profile: ScenarioProfile,
  opts: { progress?: Progress; onLine?: (line: string) => void; keep?: boolean; signal?: AbortSignal; pause?: (point: PausePoint, lab: string) => Promise<void> },
): Promise<ScenarioResult> {
  const started = performance.now();
  const checks: Check[] = [];
  const narrative: string[] = [];
  const emit = (line: string) => {
    narrative.push(line);
    opts.onLine?.(line);
  };
  const topology = await loadTopologyFile(resolve(REPO, scenario.topology));
  const flows: FlowWithNode[] = [];
  const streams: EventStream[] = [];
  let error: string | undefined;
  let capture: string | undefined;
  const measurements: Record<string, unknown> = {};
  let record: string | undefined;
  let recordOf: (() => Promise<void>) | undefined;
  try {
    await opts.pause?.('up', lab);
    const plan = await upWithDatapath(topology, {
      name: lab, topologyFile: scenario.topology, progress: opts.progress, signal: opts.signal, ...scenario.options, ...(profile === 'demo' ? scenario.demoOptions : {}),
    });
    const state = (await readState(lab))!;
    const names = new Map<string, string>(state.pods.map((p) => [p.ip, `${p.node}/${p.name}`]));
    const resolveIp = (ip: string) => names.get(ip);
    for (const n of plan.nodes) {
      const s = streamFlows(lab, n.name, (f) => flows.push({ ...f, node: n.name }));
      streams.push(s);
    }
    await Promise.all(streams.map((s) => s.ready));
    // Written before `down` removes the state and logs it is made of.
    recordOf = async () => {
      const atEnd = await readState(lab);
      record = await writeRecord(scenarioDir(lab, scenario.name), buildRecord({
        scenario: scenario.name, topologyFile: scenario.topology, plan, atStart: state, atEnd, flows, logs: await readDaemonLogs(atEnd ?? state),
      }));
    };
    const readLog = async (node: string) => {
      const role = (node === CONTROL_PLANE_NODE ? CONTROL_PLANE : AGENT).role;
      const text = await readFile(daemonLogFile(lab, node, role), 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    };
    const ctx: ScenarioContext = {
      lab,
      plan,
      profile,
      check(name, ok, detail) {
        checks.push({ name, ok, detail });
        emit(`  ${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ` (${detail})` : ''}`);
        return ok;
      },
      say: (text) => emit(text),
      flows: () => [...flows],
      // The defaults only end a broken run: events and log lines usually arrive in milliseconds.
      waitForFlow: (pred, timeoutMs = 15_000) => until(() => flows.find(pred), timeoutMs),
      agentLog: readLog,
      waitForLog: (node, pred, timeoutMs = 15_000) => until(async () => (await readLog(node)).find(pred), timeoutMs),
      podIp: (pod) => {
        const p = state.pods.find((x) => x.name === pod);
        if (!p) throw new Error(`no pod ${pod}`);
        return p.ip;
      },
      resolve: resolveIp,
      memo: new Map(),
      measurements,
    };
    emit(`scenario ${scenario.name}: ${scenario.summary}`);
    await Promise.race([opts.pause?.('run', lab), aborted(opts.signal)]);
    const handle = scenario.captureLinks ? await startCapture(state, scenario.captureLinks, scenarioDir(lab, scenario.name)) : undefined;
    let runError: unknown;
    try {
      // Ctrl-C ends the run at once; the capture is still flushed and the lab torn down below.
      const running = scenario.run(ctx);
      running.catch(() => undefined); // after an interrupt it may still fail, against a lab gone
      await step(opts.progress, 'run', () => Promise.race([running, aborted(opts.signal)]));
    } catch (e) {
      runError = e;
    }
    if (handle) {
      // Always stopped and flushed, also when the run failed; drops become packet comments,
      // and the lab's key logs are embedded by the capture itself.
      const files = await step(opts.progress, 'capture', () => finishCapture(handle, {
        comments: [`mtless-lab scenario "${scenario.name}" on lab "${lab}" (topology ${scenario.topology}): ${scenario.summary}`,
          `claims: ${scenario.claims.join(', ')}`,
          runError ? `FAILED: ${(runError as Error).message}` : 'run completed (packet checks follow; see `mtless scenario run` output)'],
        drops: flows.filter((f) => f.verdict === VERDICT_DROPPED).map((f) => dropEventOfFlow(f, f.node, state, handle.links.map((l) => l.name))),
        interrupted: runError !== undefined,
      }));
      capture = files.merged;
      emit(`capture: ${files.merged} (${files.packets} packets; open it in Wireshark)`);
      if (!runError && scenario.checkCapture) await step(opts.progress, 'packet checks', () => scenario.checkCapture!(ctx, files));
    }
    if (runError) throw runError;
    emit('flows seen:');
    for (const f of flows) emit(`  ${formatFlow(f, { resolve: resolveIp })}`);
  } catch (e) {
    error = (e as Error).message;
    emit(`  ERROR ${error}`);
  } finally {
    await Promise.all(streams.map((s) => s.stop().catch(() => undefined)));
    await recordOf?.().catch((e: Error) => emit(`  (no run record: ${e.message})`));
    // Ctrl-C takes the lab down even with --keep.
    if (!opts.keep || opts.signal?.aborted) {
      if (!opts.signal?.aborted) await opts.pause?.('down', lab).catch(() => undefined);
      const down = await step(opts.progress, 'down', () => destroyLab(lab));
      const t = down.phasesMs;
      // A slow down: say where the time went.
      if (t.processes + t.namespaces + t.programs + t.rest > 2000) opts.progress?.({ kind: 'info', message: `down ${formatDownTime(t)}` });
    }
  }
  const ok = !error && checks.length > 0 && checks.every((c) => c.ok);
  return {
    scenario: scenario.name, lab, checks, narrative, ok, error, durationMs: performance.now() - started, capture, record,
    ...(Object.keys(measurements).length > 0 ? { measurements } : {}),
  };
}

/** Rejects when the signal fires (never, without one). */
function aborted(signal?: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) reject(new Error('interrupted'));
    signal?.addEventListener('abort', () => reject(new Error('interrupted')));
  });
}

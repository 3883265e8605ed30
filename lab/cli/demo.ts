// `mtless demo`: the scenarios that show the claims (all, or `--only`), side
// by side under their own lab names, in the demo profile (short lifetimes and
// delays where a scenario only shows a bound). One line per step with its
// time, which scenarios are running, then the claims table with the evidence
// of each, and the time from the first `up` to the last `down`. Everything is
// torn down on success, failure and Ctrl-C (exit 130), unless --keep.
import { setMaxListeners } from 'node:events';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { runScenario, type PausePoint, type ScenarioResult } from '../scenarios/framework.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { CLAIM_IDS, CLAIM_TEXT, claimRows, labsOf, parseClaimList, scenariosFor, stepGuide, type ClaimId, type ClaimRow } from '../scenarios/demo-plan.ts';
import { destroyLab } from '../compose/down.ts';
import { openLabs } from '../compose/open-labs.ts';
import { readState } from '../core/state.ts';
import { scenarioLabName } from '../core/names.ts';
import type { ProgressEvent } from '../core/progress.ts';
import { CAPTURES_ROOT, setOutputRoot } from '../capture/scenario.ts';
import { writeReport } from '../report/html.ts';
import { isRoot, UsageError, type Values } from './command.ts';
import { runOptions } from './run-options.ts';
import { listenForInterrupt } from '../core/interrupt.ts';

/** Scenarios running at once: on 2 vCPUs more only stretches every bring-up (measured, README). */
export const DEMO_JOBS = 4;
/** After Ctrl-C: how long the scenarios may take to take their own labs down before the rest is removed here. */
const TEARDOWN_GRACE_MS = 20_000;

export interface DemoOptions {
  claims: ClaimId[];
  scenarios: string[];
  step: boolean;
  keep: boolean;
  prefix?: string;
  out?: string;
  jobs: number;
}

/** The demo's options, checked before anything runs. */
export function demoOptions(v: Values, env: NodeJS.ProcessEnv = process.env): DemoOptions {
  const { prefix, out } = runOptions(v);
  let claims: ClaimId[] = [...CLAIM_IDS];
  if (v.only !== undefined) {
    try {
      claims = parseClaimList(String(v.only));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const step = v.step === true;
  // A measurement knob (README: Tests), not an option: the default is what the demo is measured with.
  const jobs = step ? 1 : Number(env.MTLAB_DEMO_JOBS ?? DEMO_JOBS);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`MTLAB_DEMO_JOBS: expected a whole number ≥ 1, got "${env.MTLAB_DEMO_JOBS}"`);
  return { claims, scenarios: scenariosFor(claims), step, keep: v.keep === true, prefix, out, jobs };
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const out = (line: string) => process.stdout.write(`${line}\n`);

/** CPU seconds of this process and the children it has waited for (every lab tool and daemon it started). */
function cpuSeconds(): number {
  const self = process.resourceUsage();
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  // After the command name: field 16 cutime and 17 cstime are the 14th and 15th here (clock ticks, 100 a second).
  const children = (Number(fields[13]) + Number(fields[14])) / 100;
  return (self.userCPUTime + self.systemCPUTime) / 1e6 + children;
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/** Waits for Enter on the terminal; rejects on Ctrl-C. */
function enter(signal: AbortSignal): Promise<void> {
  return new Promise((resolvePause, reject) => {
    const rl = createInterface({ input: process.stdin });
    const onAbort = () => {
      rl.close();
      reject(new Error('interrupted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    rl.once('line', () => {
      signal.removeEventListener('abort', onAbort);
      rl.close();
      resolvePause();
    });
  });
}

export function formatClaims(rows: ClaimRow[]): string[] {
  const lines = ['claims:'];
  for (const r of rows) {
    lines.push(`  ${r.claim.padEnd(4)} ${r.ok ? 'PASS' : 'FAIL'}  ${r.scenario.padEnd(20)} ${r.held}/${r.total} checks  ${CLAIM_TEXT[r.claim]}`);
    for (const p of r.problems) lines.push(`         ! ${p}`);
    for (const e of r.evidence) lines.push(`         ${e}`);
  }
  return lines;
}

export async function runDemo(o: DemoOptions): Promise<number> {
  if (!isRoot()) throw Object.assign(new Error('mtless demo needs root: it builds real labs (run it with sudo)'), { exitCode: 1 });
  if (o.step && !process.stdin.isTTY) {
    throw new UsageError('--step waits for Enter at each step, but stdin is not a terminal: run it from a terminal, or drop --step');
  }
  const labs = o.scenarios.flatMap((s) => labsOf(s, o.prefix));
  const inUse = (await Promise.all(labs.map(async (l) => ((await readState(l)) ? l : undefined)))).filter(Boolean);
  if (inUse.length > 0) throw new UsageError(`lab(s) already up: ${inUse.join(', ')} (take them down with mtless down NAME, or use --name PREFIX)`);

  const startedAt = new Date();
  const dir = resolve(o.out ?? join(CAPTURES_ROOT, `${o.prefix ?? 'demo'}-${stamp(startedAt)}`));
  await mkdir(dir, { recursive: true });
  setOutputRoot(dir);
  out(`demo: claims ${o.claims.join(', ')} → ${o.scenarios.length} scenario(s), ${labs.length} lab(s), ${Math.min(o.jobs, o.scenarios.length)} at a time (demo profile); output in ${dir}`);

  const abort = new AbortController();
  // Every lab's up and every scenario listens on this one signal (15 labs, 8
  // scenarios): more than Node's default of 10 listeners, on purpose.
  setMaxListeners(100, abort.signal);
  const onSignal = () => {
    process.stderr.write('\ninterrupted: stopping the scenarios and tearing their labs down…\n');
    abort.abort();
  };
  const stopListening = listenForInterrupt(onSignal);

  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  let firstUp: number | undefined;
  let lastDown: number | undefined;
  const results: ScenarioResult[] = [];
  const running = new Set<string>();
  const queue = [...o.scenarios];
  const at = () => `${secs(performance.now() - t0).padStart(7)}`;

  const pause = async (scenario: string, point: PausePoint, lab: string) => {
    if (!o.step) return;
    for (const l of stepGuide(scenario, lab)[point]) out(`  ${l}`);
    process.stdout.write('  [Enter] ');
    await enter(abort.signal);
  };

  const runOne = async (name: string) => {
    const lab = scenarioLabName(name, o.prefix);
    running.add(name);
    firstUp ??= performance.now();
    out(`${at()}  start  ${name} (${SCENARIOS[name]!.claims.join(', ')}) on ${labsOf(name, o.prefix).join(', ')}; running: ${[...running].join(', ')}`);
    const progress = (e: ProgressEvent) => {
      if (e.kind === 'done') out(`${at()}    [${name}] ${e.step.padEnd(28)} ${e.ms.toFixed(0).padStart(6)} ms`);
      else if (e.kind !== 'start') out(`${at()}    [${name}] ${e.message}`);
    };
    const r = await runScenario(SCENARIOS[name]!, {
      lab, signal: abort.signal, keep: o.keep, profile: 'demo', progress,
      // Trainers see the whole narrative; side by side, only what failed.
      onLine: (l) => (o.step || process.env.MTLAB_DEMO_TRACE || /^ {2}(FAIL|ERROR) /.test(l) ? out(o.step ? l : `${at()}    [${name}] ${l.trim()}`) : undefined),
      pause: (point, l) => pause(name, point, l),
    });
    lastDown = performance.now();
    results.push(r);
    running.delete(name);
    const failed = r.checks.filter((c) => !c.ok).length;
    out(`${at()}  ${r.ok ? 'PASSED' : 'FAILED'} ${name}: ${r.checks.length - failed}/${r.checks.length} checks in ${secs(r.durationMs)}${r.error ? `, error: ${r.error}` : ''}; running: ${[...running].join(', ') || 'none'}`);
  };

  let error: unknown;
  try {
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined && !abort.signal.aborted; name = queue.shift()) await runOne(name);
    };
    await Promise.all(Array.from({ length: Math.min(o.jobs, o.scenarios.length) }, worker));
  } catch (e) {
    error = e;
  } finally {
    stopListening();
  }
  if (abort.signal.aborted || error || !o.keep) await sweep(abort.signal.aborted);
  if (abort.signal.aborted) {
    out(`interrupted after ${secs(performance.now() - t0)}: every lab of the run is down`);
    process.exit(130);
  }
  if (error) throw error;

  const wallMs = (lastDown ?? performance.now()) - (firstUp ?? t0);
  const cpu = cpuSeconds() - cpu0;
  const rows = claimRows(o.claims, results);
  out('');
  for (const l of formatClaims(rows)) out(l);
  out('');
  const passed = rows.filter((r) => r.ok).length;
  out(`demo: ${passed}/${rows.length} claims PASS, ${results.filter((r) => r.ok).length}/${results.length} scenarios passed; first up → last down ${secs(wallMs)} (goal ≤ 60 s${wallMs > 60_000 ? `: missed by ${secs(wallMs - 60_000)}` : ''}); CPU ${cpu.toFixed(0)} s (user+sys of the run's processes)`);
  const reportFile = join(dir, 'report.html');
  const r0 = performance.now();
  await writeReport(results, reportFile, startedAt);
  out(`report: ${reportFile} (written in ${secs(performance.now() - r0)}${o.keep ? '' : ', after the last down'})`);
  if (o.keep) {
    const kept = openLabs();
    out(`labs kept up: ${kept.join(', ') || 'none'}`);
    if (kept.length > 0) out(`take them down with: ${kept.map((l) => `mtless down ${l}`).join(' && ')}`);
  }
  return rows.every((r) => r.ok) && results.every((r) => r.ok) ? 0 : 1;
}

/**
 * Every lab this process opened and did not take down: after Ctrl-C the
 * scenarios first get a grace period to go down on their own.
 */
async function sweep(interrupted: boolean): Promise<void> {
  const deadline = Date.now() + (interrupted ? TEARDOWN_GRACE_MS : 0);
  while (openLabs().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const lab of openLabs()) {
    out(`  down ${lab} (left by its scenario)`);
    await destroyLab(lab).catch((e: Error) => out(`  down ${lab} failed: ${e.message}`));
  }
}

// Runs named scenarios one after another, prints each verdict, writes the
// HTML report, and tears down on Ctrl-C (exit 130).
import { runScenario, type ScenarioResult } from '../scenarios/framework.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { isRoot } from '../kernel/preflight.ts';
import { UsageError } from './command.ts';
import { printProgress } from './print.ts';
import { writeReport } from '../report/html.ts';
import { outputRootDir, setOutputRoot } from '../capture/scenario.ts';
import { writeJunit } from '../report/junit.ts';
import { scenarioLabName } from '../core/names.ts';
import type { RunOptions } from './run-options.ts';
import { listenForInterrupt } from '../core/interrupt.ts';

export async function runNamed(names: string[], opts: RunOptions & { keep?: boolean; json?: boolean; junit?: string }): Promise<number> {
  if (!isRoot()) throw new Error('scenarios need root: they build real labs (run with sudo)');
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.map((n) => `"${n}"`).join(', ')} (valid: ${Object.keys(SCENARIOS).join(', ')})`);
  // Captures and the report go to --out DIR instead of captures/.
  if (opts.out) setOutputRoot(opts.out);
  const results: ScenarioResult[] = [];
  const startedAt = new Date();
  // Ctrl-C: the running scenario stops, flushes its capture and tears its lab down.
  const abort = new AbortController();
  const onSignal = () => {
    process.stderr.write('\ninterrupted: stopping the scenario and tearing its lab down…\n');
    abort.abort();
  };
  const stopListening = listenForInterrupt(onSignal);
  for (const name of names) {
    if (abort.signal.aborted) break;
    const r = await runScenario(SCENARIOS[name]!, {
      lab: scenarioLabName(name, opts.prefix),
      signal: abort.signal,
      keep: opts.keep,
      progress: opts.json ? undefined : printProgress,
      onLine: opts.json ? undefined : (l) => console.log(l),
    });
    results.push(r);
    if (!opts.json) {
      const failed = r.checks.filter((c) => !c.ok).length;
      console.log(`${r.ok ? 'PASSED' : 'FAILED'} ${name}: ${r.checks.length - failed}/${r.checks.length} checks in ${(r.durationMs / 1000).toFixed(1)} s${r.error ? `, error: ${r.error}` : ''}`);
    }
  }
  stopListening();
  if (results.length > 0) {
    const file = `${outputRootDir()}/report.html`;
    await writeReport(results, file, startedAt);
    if (!opts.json) console.log(`report: ${file}`);
    if (opts.junit) {
      await writeJunit(results, opts.junit, startedAt);
      if (!opts.json) console.log(`junit: ${opts.junit}`);
    }
  }
  if (opts.json) console.log(JSON.stringify(results, null, 2));
  // An interrupted scenario may leave timers of its apps behind: the lab is down, so exit now.
  if (abort.signal.aborted) process.exit(130);
  return results.every((r) => r.ok) ? 0 : 1;
}

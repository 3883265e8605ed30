// JUnit XML of a `mtless scenario run --junit FILE`, for CI systems: one
// testsuite per scenario, one testcase per check, a failed check's evidence
// (its detail) as the failure message, an error that ended the run as an
// <error> case. Pure but for the write.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ScenarioResult } from '../scenarios/framework.ts';

// XML 1.0 allows neither control characters (other than tab and newlines) nor unescaped markup.
const xml = (s: string) => s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
const seconds = (ms: number) => (ms / 1000).toFixed(3);

interface Case {
  name: string;
  failure?: { message: string; body: string };
  error?: string;
}

function casesOf(r: ScenarioResult): Case[] {
  const evidence = (detail?: string) => [detail ?? '(no detail recorded)', r.capture ? `capture: ${r.capture}` : ''].filter(Boolean).join('\n');
  const cases: Case[] = r.checks.map((c) => (c.ok ? { name: c.name } : { name: c.name, failure: { message: c.detail ?? 'check failed', body: evidence(c.detail) } }));
  if (r.error) cases.push({ name: 'scenario ran to the end', error: r.error });
  // The framework fails a run without checks; so does CI.
  if (r.checks.length === 0 && !r.error) cases.push({ name: 'scenario made at least one check', failure: { message: 'no checks were made', body: evidence() } });
  return cases;
}

export function junitXml(results: ScenarioResult[], startedAt: Date): string {
  const suites = results.map((r) => {
    const cases = casesOf(r);
    const failures = cases.filter((c) => c.failure).length;
    const errors = cases.filter((c) => c.error).length;
    const body = cases.map((c) => {
      const open = `    <testcase classname="mtless.scenario.${xml(r.scenario)}" name="${xml(c.name)}"`;
      if (c.failure) return `${open}>\n      <failure message="${xml(c.failure.message)}" type="check">${xml(c.failure.body)}</failure>\n    </testcase>`;
      if (c.error) return `${open}>\n      <error message="${xml(c.error)}" type="error">${xml(c.error)}</error>\n    </testcase>`;
      return `${open}/>`;
    });
    return [
      `  <testsuite name="${xml(r.scenario)}" tests="${cases.length}" failures="${failures}" errors="${errors}" skipped="0" time="${seconds(r.durationMs)}" timestamp="${startedAt.toISOString().replace(/\.\d+Z$/, '')}">`,
      `    <properties><property name="lab" value="${xml(r.lab)}"/>${r.capture ? `<property name="capture" value="${xml(r.capture)}"/>` : ''}</properties>`,
      ...body,
      `    <system-out>${xml(r.narrative.join('\n'))}</system-out>`,
      '  </testsuite>',
    ].join('\n');
  });
  const all = results.map(casesOf).flat();
  const total = results.reduce((s, r) => s + r.durationMs, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="mtless scenario run" tests="${all.length}" failures="${all.filter((c) => c.failure).length}" errors="${all.filter((c) => c.error).length}" time="${seconds(total)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

export async function writeJunit(results: ScenarioResult[], file: string, startedAt: Date): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, junitXml(results, startedAt));
}

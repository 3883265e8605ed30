// One HTML page per run (`mtless scenario run`, `mtless demo`): the claims with
// their verdicts, and per scenario its topology, a ladder diagram per flow,
// the C6 matrix and the C10 window where measured, its checks, flow log and
// captures (each with how to open it and the display filters of its
// evidence); then the latest benchmark ratios. Self-contained: inline CSS and
// SVG, no script, no external resource, so it opens from disk or a CI
// artifact. Every picture is drawn from the run's own files (run.json, the
// captures), see gather.ts; this module only renders.
import { writeFile } from 'node:fs/promises';
import { relative, dirname } from 'node:path';
import type { ScenarioResult } from '../scenarios/framework.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import type { MatrixRow } from '../scenarios/confusion-matrix.ts';
import type { WindowRow } from '../scenarios/exposure-window.ts';
import { AUTH_PORT, HBONE_PORT, VXLAN_PORT, WG_PORT } from '../abi/generated.ts';
import { esc } from './svg.ts';
import { ladderLegend, renderLadder } from './ladder.ts';
import { renderTopology } from './topology-svg.ts';
import { goalsTable, matrixLegend, renderMatrix, renderRatioBars, renderWindowPlot } from './charts.ts';
import { gatherEvidence, type ReportEvidence } from './gather.ts';
import { CLAIM_TEXT } from '../scenarios/claims.ts';

export { esc };

/** The lab's claims, in the words of the demo's claims table. */
export const CLAIMS: Record<string, string> = CLAIM_TEXT;

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.pass{color:#176b1f;font-weight:600}.fail{color:#b00020;font-weight:700}.detail{color:#555;font-weight:400}
ul.checks{list-style:none;padding-left:0}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}
section{border-top:2px solid #ddd;margin-top:2em}figure{margin:1em 0;overflow-x:auto}figcaption{color:#444;font-size:13px;margin:.3em 0}
svg text{font:12px system-ui,sans-serif;fill:#222}svg text.b{font-weight:600}svg text.s{font-size:11px;fill:#444}
svg text.lane-label{font-weight:600}svg text.lane-sub{font-size:11px;fill:#555}svg text.time{font:11px ui-monospace,monospace;fill:#555}
svg text.lbl{font-size:12px}.legend{font-size:12px;color:#444}code{background:#f3f3f3;padding:0 3px}
table.captures td:first-child{white-space:nowrap}table.goals td:nth-child(3){white-space:nowrap}
`;

function rel(reportFile: string, file: string): string {
  return relative(dirname(reportFile), file);
}

function capturesTable(reportFile: string, ev: ReportEvidence, scenario: string): string {
  const caps = ev.captures.filter((c) => c.scenario === scenario);
  if (caps.length === 0) return '';
  const rows = caps.map((c) => {
    const href = rel(reportFile, c.file);
    const filters = c.filters.length > 0
      ? `<ul>${c.filters.map((f) => `<li><code>${esc(f.filter)}</code> <span class="detail">${esc(f.shows)}</span></li>`).join('')}</ul>`
      : '<span class="detail">no evidence filter recorded</span>';
    return `<tr><td><a href="${esc(href)}">${esc(href)}</a><br><span class="detail">${esc(c.what)}</span></td><td><code>mtless wireshark ${esc(href)}</code><br><span class="detail">or <code>wireshark -C mtless-lab ${esc(href)}</code>, <code>mtless tshark ${esc(href)} -Y FILTER</code></span></td><td>${filters}</td></tr>`;
  }).join('\n');
  return `<h3>Captures</h3>
<p class="detail">Interfaces named for the links, the lab's TLS and WireGuard secrets embedded, drops as packet comments. Paths are relative to this report's folder. The lab's profile decodes ${AUTH_PORT} and ${HBONE_PORT} as TLS and ${VXLAN_PORT} as VXLAN (<code>mtless wireshark-profile --install</code>).</p>
<table class="captures"><tr><th>file</th><th>open with</th><th>display filters of its evidence</th></tr>
${rows}
</table>`;
}

function pictures(reportFile: string, r: ScenarioResult, ev: ReportEvidence): string {
  const out: string[] = [];
  const rec = ev.records[r.scenario];
  if (rec) {
    out.push(`<figure class="topology-figure">${renderTopology(rec)}<figcaption>Topology of lab <code>${esc(rec.lab)}</code> (${esc(rec.topologyFile)}): ${esc(rec.routing)} routing, encryption ${esc(rec.encryption.mode)}; pods with labels and identities as the control plane allocated them; the tc programs on each pod's lxc veth; dashed: pods added or deleted during the run. From <a href="${esc(rel(reportFile, ev.recordFiles[r.scenario]!))}">run.json</a>.</figcaption></figure>`);
  }
  const ladders = ev.ladders[r.scenario] ?? [];
  if (ladders.length > 0) {
    out.push(`<h3>Flows, as the capture, the flow events and the agents' logs saw them</h3>${ladderLegend()}`);
    for (const l of ladders) {
      out.push(`<figure class="ladder-figure" id="${esc(l.id)}">${renderLadder(l)}<figcaption>${esc(l.title)}. Times from the capture's frame timestamps, the datapath's flow events and the agents' log lines (one wall clock); hover an arrow for its evidence.</figcaption></figure>`);
    }
  }
  const matrix = r.measurements?.matrix as MatrixRow[] | undefined;
  if (Array.isArray(matrix) && matrix.length > 0) {
    out.push(`<h3>Identity confusion by mode (C6), measured in this run</h3><figure class="matrix-figure">${renderMatrix(matrix)}<figcaption>One row per mode, each measured in its own lab side by side.</figcaption></figure>${matrixLegend()}`);
  }
  const window = r.measurements?.window as WindowRow[] | undefined;
  if (Array.isArray(window) && window.length > 0) {
    out.push(`<h3>Exposure window (C10), measured in this run</h3><figure class="window-figure">${renderWindowPlot(window)}<figcaption>W: from the control plane's log of the delete to the intruder's last admitted SYN at the server's node (its flow events). Plotted: every case with a delay D; the partitioned cases (no delay, the window ended by the heal or the entry's expiry) are in the table.</figcaption></figure>
<table><tr><th>case</th><th>D ms</th><th>W ms</th><th>admitted / attempts</th><th>ended by</th></tr>${window.map((w) =>
      `<tr><td>${esc(w.case)}</td><td>${w.delayMs}</td><td>${w.windowMs}</td><td>${w.admitted} / ${w.attempts}</td><td>${esc(w.boundBy)}${w.boundMs !== undefined ? ` at +${w.boundMs} ms` : ''}</td></tr>`).join('')}</table>`);
  }
  return out.join('\n');
}

function benchSection(reportFile: string, ev: ReportEvidence): string {
  const b = ev.bench;
  if (!b || (b.ratios.length === 0 && b.goals.length === 0)) {
    return `<section id="bench"><h2>Benchmarks</h2><p>No benchmark report found under <code>${esc(b?.dir ?? 'captures/bench')}</code>: run <code>mtless bench all --json --out captures/bench</code> (or one benchmark, <code>mtless bench auth --out captures/bench</code>) and the next report draws it.</p></section>`;
  }
  return `<section id="bench"><h2>Benchmarks</h2>
<p>From ${b.files.map((f) => `<a href="${esc(rel(reportFile, f.file))}">${esc(rel(reportFile, f.file))}</a> (${esc(f.at)})`).join(', ')}. Ratios to the floor measured side by side in the same run, on a log scale from the floor (1×): green better and orange worse than the floor where the report says which way is better (time lower, throughput higher), blue where it does not; hover a bar for its value.</p>
${b.ratios.length > 0 ? `<figure class="bench-figure">${renderRatioBars(b.ratios)}</figure>` : ''}
${b.goals.length > 0 ? goalsTable(b.goals) : ''}
</section>`;
}

const EMPTY: ReportEvidence = { records: {}, recordFiles: {}, ladders: {}, captures: [], problems: [] };

export function renderReport(results: ScenarioResult[], reportFile: string, startedAt: Date, ev: ReportEvidence = EMPTY): string {
  const claims = [...new Set(results.flatMap((r) => SCENARIOS[r.scenario]?.claims ?? []))].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  const matrix = claims.map((c) => {
    const rs = results.filter((r) => SCENARIOS[r.scenario]?.claims.includes(c));
    const ok = rs.every((r) => r.ok);
    return `<tr><td>${c}</td><td>${esc(CLAIMS[c] ?? '')}</td><td>${rs.map((r) => `<a href="#${r.scenario}">${r.scenario}</a>`).join(', ')}</td>` +
      `<td class="${ok ? 'pass' : 'fail'}">${ok ? 'holds' : 'FAILED'}</td></tr>`;
  }).join('\n');
  const sections = results.map((r) => {
    const s = SCENARIOS[r.scenario];
    const capture = r.capture ? `<p>Capture: <a href="${esc(rel(reportFile, r.capture))}">${esc(rel(reportFile, r.capture))}</a> (named interfaces, TLS/WireGuard secrets embedded, drops as packet comments)</p>` : '';
    const checks = r.checks.map((c) => `<li class="${c.ok ? 'pass' : 'fail'}">${c.ok ? 'PASS' : 'FAIL'} ${esc(c.name)}${c.detail ? ` <span class="detail">(${esc(c.detail)})</span>` : ''}</li>`).join('\n');
    return `<section id="${r.scenario}">
<h2>${esc(r.scenario)} <span class="${r.ok ? 'pass' : 'fail'}">${r.ok ? 'PASSED' : 'FAILED'}</span></h2>
<p>${esc(s?.summary ?? '')}</p>
<p>Claims: ${(s?.claims ?? []).join(', ')} · topology <code>${esc(s?.topology ?? '')}</code> · lab <code>${esc(r.lab)}</code> · ${(r.durationMs / 1000).toFixed(1)} s${r.error ? ` · error: ${esc(r.error)}` : ''}</p>
${capture}
${pictures(reportFile, r, ev)}
<h3>Checks</h3>
<ul class="checks">${checks}</ul>
${capturesTable(reportFile, ev, r.scenario)}
<details><summary>Narrative and flow log</summary><pre>${esc(r.narrative.join('\n'))}</pre></details>
</section>`;
  }).join('\n');
  const problems = ev.problems.length > 0 ? `<p class="fail">Not drawn: ${ev.problems.map((p) => esc(p)).join('; ')}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mtless-lab report ${esc(startedAt.toISOString())}</title>
<style>${CSS}</style></head><body>
<h1>mtless-lab scenario report</h1>
<p>Run started ${esc(startedAt.toISOString())}: ${results.filter((r) => r.ok).length} of ${results.length} scenarios passed, ${results.reduce((n, r) => n + r.checks.filter((c) => c.ok).length, 0)} of ${results.reduce((n, r) => n + r.checks.length, 0)} checks held.</p>
${problems}
<h2>Claims</h2>
<table><tr><th>claim</th><th>what</th><th>scenarios</th><th>verdict</th></tr>
${matrix}
</table>
${sections}
${ev === EMPTY ? '' : benchSection(reportFile, ev)}
</body></html>
`;
}

/** Gathers the run's evidence (run.json, tshark over its captures, the latest benchmarks) and writes the page. */
export async function writeReport(results: ScenarioResult[], reportFile: string, startedAt: Date): Promise<void> {
  const ev = await gatherEvidence(results, startedAt);
  await writeFile(reportFile, renderReport(results, reportFile, startedAt, ev));
}

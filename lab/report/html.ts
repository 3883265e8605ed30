// One HTML page per `mtless scenario run`: the claims, a verdict matrix, each
// scenario's checks and narrative (flow log included), and links to its
// captures. Self-contained (inline CSS), so it opens from disk or a CI artifact.
import { writeFile } from 'node:fs/promises';
import { relative, dirname } from 'node:path';
import type { ScenarioResult } from '../scenarios/framework.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { AUTH_PORT, WG_PORT } from '../abi/generated.ts';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The lab's claims, as the scenarios name them (README: What the scenarios show). */
const CLAIMS: Record<string, string> = {
  C1: 'the first packet of an unauthenticated flow is dropped (189); TCP recovers on SYN retransmit, UDP loses it',
  C2: `the handshake runs between node agents (TLS 1.3, ${AUTH_PORT}, SPIFFE), not between pods, and closes at once`,
  C3: 'after the handshake the payload crosses the underlay in plaintext',
  C4: `WireGuard: only UDP ${WG_PORT} on the underlay; same-node unencrypted; keys per node`,
  C5: 'identity confusion through a stale ipcache and IP reuse (native routing)',
  C6: 'which modes stop identity confusion',
  C7: 'per-connection mTLS keeps payload encrypted and is not fooled by IP reuse',
  C8: 'sockmap carries same-node payload past the veths',
  C9: 'an auth entry outlives its flow until certificate expiry; rotation, revocation, GC',
};

export function renderReport(results: ScenarioResult[], reportFile: string, startedAt: Date): string {
  const claims = [...new Set(results.flatMap((r) => SCENARIOS[r.scenario]?.claims ?? []))].sort();
  const matrix = claims.map((c) => {
    const rs = results.filter((r) => SCENARIOS[r.scenario]?.claims.includes(c));
    const ok = rs.every((r) => r.ok);
    return `<tr><td>${c}</td><td>${esc(CLAIMS[c] ?? '')}</td><td>${rs.map((r) => `<a href="#${r.scenario}">${r.scenario}</a>`).join(', ')}</td>` +
      `<td class="${ok ? 'pass' : 'fail'}">${ok ? 'holds' : 'FAILED'}</td></tr>`;
  }).join('\n');
  const sections = results.map((r) => {
    const s = SCENARIOS[r.scenario];
    const capture = r.capture ? `<p>Capture: <a href="${esc(relative(dirname(reportFile), r.capture))}">${esc(relative(dirname(reportFile), r.capture))}</a> (named interfaces, TLS/WireGuard secrets embedded, drops as packet comments)</p>` : '';
    const checks = r.checks.map((c) => `<li class="${c.ok ? 'pass' : 'fail'}">${c.ok ? 'PASS' : 'FAIL'} ${esc(c.name)}${c.detail ? ` <span class="detail">(${esc(c.detail)})</span>` : ''}</li>`).join('\n');
    return `<section id="${r.scenario}">
<h2>${esc(r.scenario)} <span class="${r.ok ? 'pass' : 'fail'}">${r.ok ? 'PASSED' : 'FAILED'}</span></h2>
<p>${esc(s?.summary ?? '')}</p>
<p>Claims: ${(s?.claims ?? []).join(', ')} · topology <code>${esc(s?.topology ?? '')}</code> · lab <code>${esc(r.lab)}</code> · ${(r.durationMs / 1000).toFixed(1)} s${r.error ? ` · error: ${esc(r.error)}` : ''}</p>
${capture}
<ul class="checks">${checks}</ul>
<details><summary>Narrative and flow log</summary><pre>${esc(r.narrative.join('\n'))}</pre></details>
</section>`;
  }).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mtless-lab report ${esc(startedAt.toISOString())}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.pass{color:#176b1f;font-weight:600}.fail{color:#b00020;font-weight:700}.detail{color:#555;font-weight:400}
ul.checks{list-style:none;padding-left:0}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}
section{border-top:2px solid #ddd;margin-top:2em}
</style></head><body>
<h1>mtless-lab scenario report</h1>
<p>Run started ${esc(startedAt.toISOString())}: ${results.filter((r) => r.ok).length} of ${results.length} scenarios passed, ${results.reduce((n, r) => n + r.checks.filter((c) => c.ok).length, 0)} of ${results.reduce((n, r) => n + r.checks.length, 0)} checks held.</p>
<h2>Claims</h2>
<table><tr><th>claim</th><th>what</th><th>scenarios</th><th>verdict</th></tr>
${matrix}
</table>
${sections}
</body></html>
`;
}

export async function writeReport(results: ScenarioResult[], reportFile: string, startedAt: Date): Promise<void> {
  await writeFile(reportFile, renderReport(results, reportFile, startedAt));
}

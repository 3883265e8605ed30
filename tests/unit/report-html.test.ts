// The HTML report: verdicts per claim, checks escaped, captures linked relatively.
import t from 'tap';
import { renderReport } from '../../lab/report/html.ts';
import type { ScenarioResult } from '../../lab/scenarios/framework.ts';

const result = (scenario: string, ok: boolean): ScenarioResult => ({
  scenario, lab: `sc-${scenario}`, ok, durationMs: 1234,
  checks: [{ name: 'first SYN <dropped> & signalled', ok: true }, { name: 'payload arrives', ok, detail: ok ? undefined : 'timed out' }],
  narrative: ['scenario start', '  PASS  something'],
  capture: `/repo/captures/sc-${scenario}/${scenario}/merged.pcapng`,
});

t.test('report page', async (t) => {
  const html = renderReport([result('mtless-basic', true), result('identity-confusion', false)], '/repo/captures/report.html', new Date('2026-11-22T10:00:00Z'));
  t.match(html, /1 of 2 scenarios passed, 3 of 4 checks held/);
  t.match(html, /<td>C1<\/td>.*<a href="#mtless-basic">mtless-basic<\/a><\/td><td class="pass">holds<\/td>/);
  t.match(html, /<td>C5<\/td>.*<td class="fail">FAILED<\/td>/);
  t.match(html, /first SYN &lt;dropped&gt; &amp; signalled/, 'check names are escaped');
  t.match(html, /<a href="sc-mtless-basic\/mtless-basic\/merged\.pcapng">/, 'captures are linked relative to the report');
  t.match(html, /payload arrives <span class="detail">\(timed out\)<\/span>/);
});

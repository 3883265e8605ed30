// The exposure-window scenario (claim C10) as a regression test: the window
// table from n2's flow events in every case, every check holding, the rows
// under measurements.window, and all three labs torn down.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { DELAYS_MS, exposureLabs, exposureWindow, type WindowRow } from '../../lab/scenarios/exposure-window.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('exposure-window', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-window';
  const labs = [lab, ...Object.values(exposureLabs(lab))];
  try {
    const r = await runScenario(exposureWindow, { lab });
    t.notOk(r.error, `no error: ${r.error ?? ''}`);
    t.ok(r.checks.length >= 12, `${r.checks.length} checks ran`);
    for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
    const rows = r.measurements?.window as WindowRow[] | undefined;
    t.ok(Array.isArray(rows), 'the rows are under measurements.window');
    t.equal(rows?.length, DELAYS_MS.length + 4, 'one row per case: each D, reuse held back, tunnel, heal, expiry');
    for (const row of rows ?? []) {
      for (const k of ['delayMs', 'reuseDelayMs', 'mode', 'windowMs', 'admitted', 'attempts'] as const) t.ok(row[k] !== undefined, `${row.case}: has ${k}`);
    }
    const table = r.narrative.filter((l) => l.trim().startsWith('|'));
    t.equal(table.length, 2 + (rows?.length ?? 0), 'the table is printed: header, rule, one line per case');
    t.comment(table.join('\n'));
    // How long it took is reported, not judged: a busy machine is slower.
    t.comment(`the scenario took ${Math.round(r.durationMs / 1000)} s`);
  } finally {
    for (const l of labs) await destroyLab(l);
  }
  for (const l of labs) t.same(await labLeftovers(l), [], `${l}: torn down`);
});

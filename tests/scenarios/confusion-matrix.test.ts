// The confusion-matrix scenario (claim C6) as a regression test: five modes
// side by side, every cell measured (rows under measurements.matrix, each with
// its evidence), every check holding, and every lab torn down.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { confusionMatrix, MATRIX_MODES, matrixLabs, type MatrixRow } from '../../lab/scenarios/confusion-matrix.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('confusion-matrix', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-matrix';
  const labs = [lab, ...Object.values(matrixLabs(lab))];
  t.equal(new Set(labs).size, MATRIX_MODES.length, 'one lab per mode, names unique');
  try {
    const r = await runScenario(confusionMatrix, { lab });
    t.notOk(r.error, `no error: ${r.error ?? ''}`);
    t.ok(r.checks.length >= 20, `${r.checks.length} checks ran`);
    for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
    const rows = r.measurements?.matrix as MatrixRow[] | undefined;
    t.same(rows?.map((x) => x.mode), MATRIX_MODES.map((m) => m.mode), 'measurements.matrix: one row per mode, in order');
    for (const row of rows ?? []) {
      for (const [cell, ev] of Object.entries(row.evidence)) t.ok(ev.length > 0, `${row.mode}: evidence for ${cell}`);
      t.ok(typeof row.newConnectionExtraMs.newPair === 'number' && typeof row.newConnectionExtraMs.samePair === 'number', `${row.mode}: extra ms measured`);
    }
    const table = r.narrative.filter((l) => l.trim().startsWith('|'));
    t.equal(table.length, 2 + MATRIX_MODES.length, 'the matrix is printed: header, rule, one row per mode');
    t.comment(table.join('\n'));
    t.comment(`took ${Math.round(r.durationMs / 1000)} s`);
  } finally {
    for (const l of labs) await destroyLab(l);
  }
  for (const l of labs) t.same(await labLeftovers(l), [], `${l}: torn down`);
});

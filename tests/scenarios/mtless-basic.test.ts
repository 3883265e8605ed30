// The mtless-basic scenario as a regression test: every check must hold.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { mtlessBasic } from '../../lab/scenarios/mtless-basic.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('mtless-basic', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-mtless';
  const r = await runScenario(mtlessBasic, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 19, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
});

// The sockmap scenario (claim C8) as a regression test: every check must hold.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { offLabName, sockmapScenario } from '../../lab/scenarios/sockmap.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('sockmap', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-sockmap';
  const r = await runScenario(sockmapScenario, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 31, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
  t.same(await labLeftovers(offLabName(lab)), [], 'and its sockmap-off twin');
});

// The identity-confusion scenario (claim C5, native routing) as a regression test.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { identityConfusion } from '../../lab/scenarios/identity-confusion.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('identity-confusion', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-confusion';
  const r = await runScenario(identityConfusion, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 7, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
});

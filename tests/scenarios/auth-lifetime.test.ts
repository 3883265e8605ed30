// The auth-lifetime scenario (claim C9) as a regression test: an auth entry
// outlives its flow until the earlier SVID NotAfter, rotation moves that
// window, GC removes entries no policy requires, revocation removes the rest.
// It runs with 30 s SVIDs and a 2 s GC interval, so it takes about 30 s.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { authLifetime } from '../../lab/scenarios/auth-lifetime.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('auth-lifetime', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-lifetime';
  const r = await runScenario(authLifetime, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 18, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.ok(r.narrative.some((l) => /auth map n2 @ t\+/.test(l)), 'the narrative carries the auth-map dumps over time');
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
});

// The identity-confusion scenario (claim C5, native routing) as a regression
// test; its capture files carry the key log and their drop comments, and
// decrypt the 4250 handshake with the lab's profile.
import t from 'tap';
import { dirname } from 'node:path';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { identityConfusion } from '../../lab/scenarios/identity-confusion.ts';
import { checkScenarioCaptures } from '../helpers/captures.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('identity-confusion', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-confusion';
  const r = await runScenario(identityConfusion, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 7, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
  await t.test('its capture files, plain tshark and -C mtless-lab', async (t) => {
    // The client's first SYN to the server is dropped (189) before the agents' handshake.
    await checkScenarioCaptures(t, dirname(r.capture!), { secrets: 1, minDrops: 1, spiffeIds: [], minIds: 2, authPort: true });
  });
});

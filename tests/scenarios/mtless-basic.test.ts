// The mtless-basic scenario as a regression test: every check must hold, and
// every file it captured opens right in Wireshark's tools (plain and with the
// lab's profile: secrets, drop comments, the 4250 handshake's SPIFFE IDs).
import t from 'tap';
import { dirname } from 'node:path';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { mtlessBasic } from '../../lab/scenarios/mtless-basic.ts';
import { checkScenarioCaptures } from '../helpers/captures.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('mtless-basic', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-mtless';
  const r = await runScenario(mtlessBasic, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 19, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
  // The identities of the cross-node handshake, as the scenario's own check found them.
  const ids = r.checks.find((c) => /handshake decrypts/.test(c.name))?.detail?.match(/spiffe:\/\/spiffe\.cilium\/identity\/\d+/g) ?? [];
  t.equal(ids.length, 2, `the handshake's two SPIFFE IDs: ${ids.join(', ')}`);
  await t.test('its capture files, plain tshark and -C mtless-lab', async (t) => {
    await checkScenarioCaptures(t, dirname(r.capture!), { secrets: 1, minDrops: 1, spiffeIds: ids, authPort: true });
  });
});

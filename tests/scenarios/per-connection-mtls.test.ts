// The per-connection mTLS scenario (claim C7, the Istio-ambient contrast) as a regression test.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { perConnectionMtls } from '../../lab/scenarios/per-connection-mtls.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('per-connection-mtls', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-mesh';
  const r = await runScenario(perConnectionMtls, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 14, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down (proxies by tag, nft tables with the node namespaces)');
});

// The per-connection mTLS scenario (claim C7, the Istio-ambient contrast) as a
// regression test; its capture files carry the lab's key log and, with the
// lab's profile, show the workloads' certificates of the HBONE tunnels.
import t from 'tap';
import { dirname } from 'node:path';
import { workloadSpiffeId } from '../../lab/mesh/config.ts';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { perConnectionMtls } from '../../lab/scenarios/per-connection-mtls.ts';
import { checkScenarioCaptures } from '../helpers/captures.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('per-connection-mtls', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-mesh';
  const r = await runScenario(perConnectionMtls, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 14, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down (proxies by tag, nft tables with the node namespaces)');
  await t.test('its capture files, plain tshark and -C mtless-lab', async (t) => {
    // No datapath drops here (the no_bypass chains are nftables'); the tunnels are on 15008, not 4250.
    await checkScenarioCaptures(t, dirname(r.capture!), {
      secrets: 1, minDrops: 0, authPort: false,
      spiffeIds: ['client', 'server', 'intruder'].map((sa) => workloadSpiffeId('default', sa)),
    });
  });
});

// The wireguard scenario (claim C4) as a regression test: every check must
// hold, and every capture file carries both secrets blocks (TLS key log,
// WireGuard keys) and its drop comments, and decrypts the 4250 handshake with
// the lab's profile.
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { unsupported } from '../../lab/compose/lab.ts';
import { wgIfname } from '../../lab/core/names.ts';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { wireguardScenario } from '../../lab/scenarios/wireguard.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { WG_SOCKET_DIR } from '../../lab/wireguard/wireguard.ts';
import { checkScenarioCaptures } from '../helpers/captures.ts';
import { labLeftovers, needsRoot, REPO } from '../helpers/kernel.ts';

const topology = await loadTopologyFile(resolve(REPO, wireguardScenario.topology));
const refused = unsupported(topology);
const skip = needsRoot || (refused.length > 0 ? `lab/core/lab.ts refuses this topology: ${refused.join('; ')}` : false);

t.test('wireguard', { skip }, async (t) => {
  const lab = 't-sc-wireguard';
  const r = await runScenario(wireguardScenario, { lab });
  t.notOk(r.error, `no error: ${r.error ?? ''}`);
  t.ok(r.checks.length >= 22, `${r.checks.length} checks ran`);
  for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
  t.same(await labLeftovers(lab), [], 'the scenario tore its lab down');
  const socks = (await readdir(WG_SOCKET_DIR).catch(() => [] as string[])).filter((f) => ['n1', 'n2'].some((n) => f === `${wgIfname(lab, n)}.sock`));
  t.same(socks, [], `no WireGuard socket of the lab in ${WG_SOCKET_DIR}`);
  await t.test('its capture files, plain tshark and -C mtless-lab', async (t) => {
    // Handshakes client -> server and other -> server: at least two workload identities.
    await checkScenarioCaptures(t, dirname(r.capture!), { secrets: 2, minDrops: 1, spiffeIds: [], minIds: 2, authPort: true });
  });
});

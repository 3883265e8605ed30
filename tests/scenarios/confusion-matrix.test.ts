// The confusion-matrix scenario (claim C6) as a regression test: five modes
// side by side, every cell measured (rows under measurements.matrix, each with
// its evidence), every check holding, and every lab torn down. Each mode's
// capture files open right in Wireshark's tools: secrets blocks (two with
// WireGuard), drop comments per file, the 4250 handshake decrypted to SPIFFE
// IDs with the lab's profile (HBONE's certificates for the mesh), and in
// tunnel mode the VNIs, which only the profile decodes.
import t from 'tap';
import { dirname } from 'node:path';
import { workloadSpiffeId } from '../../lab/mesh/config.ts';
import { checkScenarioCaptures } from '../helpers/captures.ts';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { confusionMatrix, MATRIX_MODES, matrixLabs, PAIRS, type MatrixRow } from '../../lab/scenarios/confusion-matrix.ts';
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
    for (const row of rows ?? []) {
      await t.test(`${row.mode}: its capture files, plain tshark and -C mtless-lab`, async (t) => {
        const mesh = row.mode === 'per-connection-mtls';
        await checkScenarioCaptures(t, dirname(row.capture!), {
          secrets: row.mode.includes('wireguard') ? 2 : 1,
          // The first SYN of each new pair that needs auth is dropped (189); the mesh has no datapath auth.
          minDrops: mesh ? 0 : PAIRS,
          authPort: !mesh,
          spiffeIds: mesh ? ['client', 'server'].map((sa) => workloadSpiffeId('default', sa)) : [`spiffe://spiffe.cilium/identity/${row.clientIdentity}`],
          minIds: 2,
          // Tunnel + WireGuard: the VXLAN packets are inside WireGuard on the underlay.
          ...(row.mode === 'tunnel' ? { vnis: [String(row.clientIdentity)] } : {}),
        });
      });
    }
  } finally {
    for (const l of labs) await destroyLab(l);
  }
  for (const l of labs) t.same(await labLeftovers(l), [], `${l}: torn down`);
});

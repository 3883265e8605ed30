// The confusion-matrix scenario (claim C6) as a regression test: identity
// confusion measured in native routing, tunnel mode and native + WireGuard,
// each in its own lab, every lab torn down.
import t from 'tap';
import { runScenario } from '../../lab/scenarios/framework.ts';
import { confusionMatrix } from '../../lab/scenarios/confusion-matrix.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { labLeftovers, needsRoot } from '../helpers/kernel.ts';

t.test('confusion-matrix', { skip: needsRoot }, async (t) => {
  const lab = 't-sc-matrix';
  // runScenario derives the other modes' labs from this name.
  const others = [`${lab}-tun`, `${lab}-wg`];
  try {
    const r = await runScenario(confusionMatrix, { lab });
    t.notOk(r.error, `no error: ${r.error ?? ''}`);
    t.ok(r.checks.length >= 8, `${r.checks.length} checks ran`);
    for (const c of r.checks) t.ok(c.ok, `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
    const table = r.narrative.filter((l) => l.trim().startsWith('|'));
    t.equal(table.length, 2 + 3, 'the matrix is printed: header, rule, one row per mode');
    t.match(table.find((l) => l.includes('native routing')) ?? '', /YES \(confused\)/, 'native row: confused');
    t.match(table.find((l) => l.includes('tunnel')) ?? '', /DROPPED \(133\).*\| no /, 'tunnel row: denied (133)');
    t.comment(table.join('\n'));
  } finally {
    for (const l of [lab, ...others]) await destroyLab(l);
  }
  for (const l of [lab, ...others]) t.same(await labLeftovers(l), [], `${l}: torn down`);
});

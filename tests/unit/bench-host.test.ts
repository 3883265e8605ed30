// CPU load from /proc/stat (lab/bench/host.ts): the parsing and the
// fractions between two samples; pure, no root.
import t from 'tap';
import { busyFraction, idleFraction, parseCpuLine } from '../../lab/bench/host.ts';

// The first lines of a real /proc/stat (2 CPUs): user nice system idle iowait irq softirq steal guest guest_nice.
const STAT = `cpu  29117 22 10921 1224399 1262 0 1076 0 0 0
cpu0 14501 10 5431 612353 640 0 811 0 0 0
cpu1 14616 12 5490 612046 622 0 265 0 0 0
intr 2542310 0 9 0 0 0 0 0 0 0 0
`;

t.test('the all-CPU line: idle = idle + iowait, total = every field', async (t) => {
  t.same(parseCpuLine(STAT), { idle: 1224399 + 1262, total: 29117 + 22 + 10921 + 1224399 + 1262 + 1076 });
});

t.test('busy and idle fractions between two samples', async (t) => {
  const a = { idle: 1000, total: 2000 };
  t.equal(busyFraction(a, { idle: 1150, total: 2200 }), 0.25, '50 of 200 ticks busy');
  t.equal(idleFraction(a, { idle: 1150, total: 2200 }), 0.75);
  t.equal(busyFraction(a, { idle: 1000, total: 2100 }), 1, 'no idle tick: fully busy');
  t.equal(busyFraction(a, a), 0, 'no tick passed: counts as quiet');
  t.equal(idleFraction(a, a), 1);
});

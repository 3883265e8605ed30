// Order statistics of the benchmarks: pure, no root.
import t from 'tap';
import { distribution, formatSummary, max, median, min, ratios, summarize } from '../../lab/bench/stats.ts';

t.test('min, median and max of odd and even samples', async (t) => {
  t.equal(min([3, 1, 2]), 1);
  t.equal(max([3, 1, 2]), 3);
  t.equal(median([3, 1, 2]), 2, 'odd count: the middle value');
  t.equal(median([4, 1, 3, 2]), 2.5, 'even count: mean of the two middle values');
  t.equal(median([7]), 7);
  t.equal(median([10, 2, 33]), 10, 'sorted numerically, not as strings');
});

t.test('inputs are left unsorted', async (t) => {
  const xs = [5, 1, 4];
  median(xs);
  t.same(xs, [5, 1, 4]);
});

t.test('empty and non-finite samples are errors', async (t) => {
  t.throws(() => min([]), RangeError);
  t.throws(() => median([]), RangeError);
  t.throws(() => max([]), RangeError);
  t.throws(() => median([1, Number.NaN]), RangeError);
  t.throws(() => summarize([Infinity]), RangeError);
});

t.test('summarize', async (t) => {
  t.same(summarize([30, 10, 20, 40]), { min: 10, median: 25, max: 40, n: 4 });
});

t.test('per-run ratios pair runs by index', async (t) => {
  t.same(ratios([10, 20, 30], [5, 10, 10]), [2, 2, 3]);
  t.throws(() => ratios([1, 2], [1]), RangeError, 'lengths must match');
  t.throws(() => ratios([1], [0]), RangeError, 'no division by zero');
});

t.test('formatSummary', async (t) => {
  t.equal(formatSummary({ min: 1.234, median: 2.5, max: 10, n: 3 }, 1), '1.2 / 2.5 / 10.0');
  t.equal(formatSummary({ min: 1.4, median: 2.6, max: 10, n: 3 }), '1 / 3 / 10');
});

t.test('distribution: nearest-rank percentiles', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted on purpose
  t.same(distribution(hundred), { n: 100, min: 1, p50: 50, p90: 90, p99: 99, max: 100 }, 'p99 of 100 values is the 99th smallest');
  t.same(distribution([7]), { n: 1, min: 7, p50: 7, p90: 7, p99: 7, max: 7 });
  t.same(distribution([3, 1, 2]), { n: 3, min: 1, p50: 2, p90: 3, p99: 3, max: 3 }, 'ranks round up');
  t.equal(distribution([]), undefined, 'no values, no distribution');
  const xs = [5, 1, 4];
  distribution(xs);
  t.same(xs, [5, 1, 4], 'input left unsorted');
});

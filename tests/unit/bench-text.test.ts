// Plain-text pieces of the benchmarks' reports (lab/bench/text.ts).
import t from 'tap';
import { columnWidths, formatNotes, indent, signed, table } from '../../lab/bench/text.ts';

t.test('table: left-aligned columns, the last one unpadded, trailing spaces cut', async (t) => {
  const rows = [['size', 'builder', 'up ms'], ['2×2 = 4', 'lab', '226.9'], ['', 'mininet', 'n/a'], ['', '', '']];
  t.same(columnWidths(rows), [7, 7, 5]);
  t.same(table(rows), ['size     builder  up ms', '2×2 = 4  lab      226.9', '         mininet  n/a', '']);
});

t.test('table: right-aligned number columns', async (t) => {
  const rows = [['ms', 'n', 'p50'], ['drop → entry', '100', '4.2'], ['handshake', '99', '12.5']];
  t.same(table(rows, { alignRight: (c) => c > 0 }), ['ms              n   p50', 'drop → entry  100   4.2', 'handshake      99  12.5']);
});

t.test('signed numbers, indented blocks, notes', async (t) => {
  t.equal(signed(21.04), '+21.0');
  t.equal(signed(-0.44), '-0.4');
  t.equal(signed(0), '+0.0');
  t.equal(signed(1.234, 2), '+1.23');
  t.equal(indent('a\nb'), '  a\n  b');
  t.same(formatNotes([]), []);
  t.same(formatNotes(['one', 'two']), ['notes:', '  one', '  two']);
});

// Plain-text pieces of the benchmarks' reports: aligned tables, signed
// numbers, indented blocks, the notes section. Pure.

export function columnWidths(rows: string[][]): number[] {
  return rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
}

/**
 * Rows as aligned lines, two spaces between columns. Columns are left-aligned
 * (the last one unpadded) unless `alignRight(column)` says otherwise;
 * trailing spaces are cut.
 */
export function table(rows: string[][], opts: { alignRight?: (column: number) => boolean } = {}): string[] {
  const widths = columnWidths(rows);
  const right = opts.alignRight ?? (() => false);
  return rows.map((r) =>
    r.map((cell, c) => (right(c) ? cell.padStart(widths[c]!) : c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

/** `+1.2` / `-0.4`: a difference with its sign. */
export const signed = (x: number, decimals = 1) => `${x >= 0 ? '+' : ''}${x.toFixed(decimals)}`;

export function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n');
}

/** `notes:` and one indented line per note; nothing when there are none. */
export function formatNotes(notes: readonly string[]): string[] {
  return notes.length > 0 ? ['notes:', ...notes.map((n) => `  ${n}`)] : [];
}

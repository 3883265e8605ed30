// Text for people: aligned tables with headers, and colour on a terminal only
// (NO_COLOR or a pipe turns it off), as containerlab and cilium-dbg print.

/** Aligned columns: the first row is the header. */
export function table(rows: string[][], indent = ''): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => (indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).trimEnd());
}

const useColour = (stream: NodeJS.WriteStream) => stream.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';

/** Red for DROPPED / FAIL / DEAD, green for FORWARDED / PASS, on a terminal only. */
export function colourVerdicts(text: string, stream: NodeJS.WriteStream = process.stdout): string {
  if (!useColour(stream)) return text;
  return text
    .replace(/\b(DROPPED|FAILED|FAIL|DEAD|MISSED)\b/g, '\x1b[31m$1\x1b[0m')
    .replace(/\b(FORWARDED|PASSED|PASS)\b/g, '\x1b[32m$1\x1b[0m');
}

/** "in 41m 3s" / "expired 5s ago": time left until `at`. */
export function timeLeft(at: Date, now = Date.now()): string {
  const ms = at.getTime() - now;
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s >= 3600 ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
  return ms > 0 ? `in ${text}` : `expired ${text} ago`;
}

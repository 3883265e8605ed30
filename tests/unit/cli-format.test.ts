// The CLI's pure text helpers: aligned tables with headers, colour only on a
// terminal, time left, and the log merge of `mtless logs`.
import t from 'tap';
import { colourVerdicts, table, timeLeft } from '../../lab/cli/format.ts';
import { logLines, mergeByTime } from '../../lab/cli/commands/logs.ts';

t.test('table: columns aligned under the header, no trailing blanks', async (t) => {
  t.same(table([['SRC IDENTITY', 'AUTH TYPE'], ['256 (client)', 'spire'], ['1', '']]), ['SRC IDENTITY  AUTH TYPE', '256 (client)  spire', '1'.padEnd(12)]
    .map((l) => l.trimEnd()));
});

t.test('colour only on a terminal without NO_COLOR', async (t) => {
  const tty = { isTTY: true } as NodeJS.WriteStream;
  const pipe = { isTTY: false } as NodeJS.WriteStream;
  const saved = process.env.NO_COLOR;
  delete process.env.NO_COLOR;
  try {
    t.equal(colourVerdicts('x DROPPED y', pipe), 'x DROPPED y', 'a pipe gets plain text');
    t.equal(colourVerdicts('x DROPPED y FORWARDED', tty), 'x \x1b[31mDROPPED\x1b[0m y \x1b[32mFORWARDED\x1b[0m');
    process.env.NO_COLOR = '1';
    t.equal(colourVerdicts('x DROPPED y', tty), 'x DROPPED y', 'NO_COLOR wins');
  } finally {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  }
});

t.test('timeLeft', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(timeLeft(new Date(now + 41 * 60_000 + 3000), now), 'in 41m3s');
  t.equal(timeLeft(new Date(now + 2 * 3600_000 + 5 * 60_000), now), 'in 2h5m');
  t.equal(timeLeft(new Date(now - 5000), now), 'expired 5s ago');
});

t.test('logs: JSON lines only (unless raw), merged by their time', async (t) => {
  const agent = '{"time":"2026-01-01T00:00:01.000Z","node":"n1","event":"ready"}\nREADY\n{"time":"2026-01-01T00:00:03.000Z","node":"n1","event":"auth-completed"}\n';
  const cp = '{"time":"2026-01-01T00:00:02.000Z","node":"cp","event":"watch"}\nnot json\n';
  const merged = mergeByTime([logLines(agent), logLines(cp)]);
  t.same(merged.map((l) => JSON.parse(l).event), ['ready', 'watch', 'auth-completed'], 'every line parses as JSON, in time order');
  const raw = mergeByTime([logLines(agent, true), logLines(cp, true)]);
  t.ok(raw.includes('READY') && raw.includes('not json'), 'raw keeps the other lines');
  t.equal(raw.indexOf('READY'), raw.indexOf(merged[0]!) + 1, 'a line without a time stays after the line before it');
});

// The daemons' log limits (lab/core/log.ts): the repeat limiter on a fake
// clock, and the size cap on a real file opened as the launcher opens a
// daemon's stdout (append mode).
import t from 'tap';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLog, RepeatLimiter } from '../../lab/core/log.ts';
import { rotatedLogFile } from '../../lab/core/names.ts';

function limiter(windowMs = 1000) {
  let now = 10_000;
  const reports: { key: string; count: number; first: number; last: number }[] = [];
  const l = new RepeatLimiter({ windowMs, now: () => now, onSuppressed: (key, count, first, last) => reports.push({ key, count, first, last }) });
  return { l, reports, at: (ms: number) => (now = ms) };
}

t.test('the first event of a key per window passes, the rest are counted', async (t) => {
  const { l, reports, at } = limiter();
  t.equal(l.admit('a'), true, 'first a');
  at(10_100);
  t.equal(l.admit('a'), false);
  t.equal(l.admit('b'), true, 'another key has its own window');
  at(10_900);
  t.equal(l.admit('a'), false);
  l.flush();
  t.same(reports, [], 'no summary while the window lasts');
  at(11_000);
  l.flush();
  t.same(reports, [{ key: 'a', count: 2, first: 10_100, last: 10_900 }], "a's summary once its second has passed; b held nothing back");
  t.equal(l.admit('a'), true, 'a new window lets one through again');
  t.equal(l.windowStart('a'), 11_000, 'the window starts at the time of the event it let through (its line carries that time)');
  t.equal(l.windowStart('b'), 10_100);
  t.equal(l.windowStart('c'), undefined, 'no window for a key never seen');
});

t.test('the next event reports an ended window even before a flush', async (t) => {
  const { l, reports, at } = limiter();
  l.admit('x');
  at(10_500);
  l.admit('x');
  l.admit('x');
  at(12_000);
  t.equal(l.admit('x'), true);
  t.same(reports, [{ key: 'x', count: 2, first: 10_500, last: 10_500 }]);
});

t.test('flush(all) reports windows still open (shutdown)', async (t) => {
  const { l, reports } = limiter();
  l.admit('y');
  l.admit('y');
  l.flush(true);
  t.same(reports.map((r) => [r.key, r.count]), [['y', 1]]);
  l.flush(true);
  t.equal(reports.length, 1, 'reported once');
});

t.test('a flood costs lines by its duration, and every event is logged or counted', async (t) => {
  const { l, reports, at } = limiter();
  let logged = 0;
  const events = 20_000;
  for (let i = 0; i < events; i++) {
    const ms = 10_000 + Math.floor((i * 5000) / events); // 5 s of flood, two reasons
    at(ms);
    if (l.admit(i % 2 ? 'handshake-failed' : 'unknown-sni')) logged++;
    if (i % 400 === 0) l.flush(); // the owner's timer
  }
  at(20_000);
  l.flush();
  t.equal(logged + reports.reduce((n, r) => n + r.count, 0), events, 'nothing lost');
  t.ok(logged <= 2 * 5, `${logged} lines logged: one per reason per second`);
  t.ok(reports.length <= 2 * 5, `${reports.length} summaries`);
});

t.test('the log file stays under its cap and keeps one previous copy', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mtless-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'agent-n1.log');
  const fd = openSync(file, 'a'); // as startDetached opens a daemon's stdout
  t.teardown(() => closeSync(fd));
  const cap = 4096;
  const log = jsonLog('agent', 'n1', { fd, capBytes: cap });
  let largest = 0;
  for (let seq = 0; seq < 1000; seq++) {
    log('auth-serve-failed', { seq, reason: 'handshake-failed' });
    largest = Math.max(largest, statSync(file).size);
  }
  t.ok(largest <= cap, `after every one of 1000 lines the file is under the cap (largest ${largest} B of ${cap})`);
  const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number });
  const live = lines(file);
  const copy = lines(rotatedLogFile(file));
  t.ok(statSync(rotatedLogFile(file)).size <= cap, 'the copy is under the cap too');
  t.equal(live.at(-1)?.seq, 999, 'the live file ends with the last line');
  t.equal(copy.at(-1)!.seq + 1, live[0]!.seq, 'the copy ends where the live file starts: no line lost or split at the rotation');
  t.same(live.map((l) => l.seq), live.map((_, i) => live[0]!.seq + i), 'whole lines, in order');
});

t.test('a line longer than the cap is still written whole', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mtless-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.log');
  const fd = openSync(file, 'a');
  t.teardown(() => closeSync(fd));
  const log = jsonLog('agent', 'n1', { fd, capBytes: 64 });
  log('big', { pad: 'x'.repeat(200) });
  log('big', { pad: 'y'.repeat(200) });
  const text = readFileSync(file, 'utf8');
  t.match(text, /^\{.*"pad":"y+"\}\n$/, 'the live file holds the last line, whole');
});

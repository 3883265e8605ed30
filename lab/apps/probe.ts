// A pod app that keeps trying new TCP connections, for exposure windows:
// one new connection every --interval ms (not waiting for the previous one),
// at most --count of them and none started after --duration ms. Each attempt
// sends TEXT-<i> and waits for the echo, at most --attempt-timeout ms: below
// TCP's initial RTO (1 s), so a dropped SYN is never retransmitted and every
// attempt is exactly one SYN on the wire.
//
//   probe.ts HOST PORT TEXT [--interval MS] [--count N] [--duration MS] [--attempt-timeout MS]
//            [--stop-after-failures K] [--sequential] [--wait-for-address MS]
//
// --sequential: each attempt starts --interval ms after the previous one
// finished (timed connections one after the other, in one process).
//
// --stop-after-failures K: once some attempt succeeded, K failed attempts in a
// row (by attempt number) end the probing early: the window has closed.
//
// SIGTERM ends the probing: no attempt starts after it, the ones under way
// finish, and the output closes as usual (exit 0), so that a caller can end
// the probe on a signal of its own (the window seen to close).
//
// --wait-for-address MS: print {"ready":true} at once, then wait (at most MS)
// until the namespace has an IPv4 address other than loopback, and only then
// start probing, with --duration counted from there. So the probe can be
// started in a pod's namespace before the pod exists, and the time a Node
// process takes to start is never part of an experiment's window.
//
// Prints one JSON line per finished attempt:
//   {"attempt":3,"sport":41234,"startedAt":1718000000123.4,"ok":true,"ms":2.1}
// then {"done":true,"attempts":N,"ok":K}. Exit 0 (whatever the outcomes).
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';

const [host, portText, text, ...rest] = process.argv.slice(2);

function option(name: string, fallback: number): number {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? Number(rest[i + 1]) : fallback;
}

function fail(msg: string): never {
  process.stderr.write(`probe: ${msg}\n`);
  process.exit(2);
}

const port = Number(portText);
if (!host || !port || text === undefined) fail('usage: probe.ts HOST PORT TEXT [--interval MS] [--count N] [--duration MS] [--attempt-timeout MS]');
const interval = option('interval', 50);
const count = option('count', 20);
const duration = option('duration', 1000);
const attemptTimeout = option('attempt-timeout', 400);
const stopAfterFailures = option('stop-after-failures', 0);
const sequential = rest.includes('--sequential');
const waitForAddress = option('wait-for-address', 0);
if (!(interval > 0 && count > 0 && duration > 0 && attemptTimeout > 0)) fail('interval, count, duration and attempt-timeout must be positive');

let started = 0;
let finished = 0;
let okCount = 0;
/** No attempt will start any more (count or duration reached). */
let closed = false;
/** Outcome by attempt number, for --stop-after-failures. */
const outcomes: boolean[] = [];

/** Some attempt succeeded, and the last K attempts (all finished) failed. */
function windowClosed(): boolean {
  if (stopAfterFailures <= 0 || !outcomes.includes(true)) return false;
  const last = outcomes.lastIndexOf(true);
  let run = 0;
  for (let i = last + 1; i < outcomes.length && outcomes[i] === false; i++) run++;
  return run >= stopAfterFailures;
}
let begin = performance.now();

function attempt(i: number): void {
  const startedAt = performance.timeOrigin + performance.now();
  const t0 = performance.now();
  const payload = `${text}-${i}`;
  const sock = connect({ host, port });
  let done = false;
  let got = '';
  const finish = (ok: boolean, error?: string) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    // The local port is known from the connect() syscall on, also for a SYN that got no answer.
    const sport = sock.localPort;
    sock.destroy();
    if (ok) okCount++;
    outcomes[i] = ok;
    process.stdout.write(JSON.stringify({ attempt: i, sport, startedAt, ok, ms: Math.round((performance.now() - t0) * 100) / 100, ...(error ? { error } : {}) }) + '\n');
    if (++finished === started && closed) end();
    else if (sequential) setTimeout(tick, interval);
  };
  const timer = setTimeout(() => finish(false, 'timeout'), attemptTimeout);
  sock.on('connect', () => sock.write(payload));
  sock.on('data', (d) => {
    got += d.toString();
    if (got.length >= payload.length) finish(got === payload);
  });
  sock.on('error', (e) => finish(false, e.message));
  sock.on('close', () => finish(false, 'closed'));
}

function end(): void {
  process.stdout.write(JSON.stringify({ done: true, attempts: started, ok: okCount }) + '\n');
  process.exit(0);
}

const tick = () => {
  if (closed || started >= count || performance.now() - begin >= duration || windowClosed()) {
    closed = true;
    if (finished === started) end();
    return;
  }
  attempt(started++);
  if (!sequential) setTimeout(tick, Math.max(0, begin + started * interval - performance.now()));
};

process.on('SIGTERM', () => {
  closed = true;
  if (finished === started) end();
});

const hasAddress = () => Object.values(networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv4' && !a.internal));

if (waitForAddress > 0) {
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  const waitStart = performance.now();
  const poll = setInterval(() => {
    if (hasAddress()) {
      clearInterval(poll);
      begin = performance.now();
      tick();
    } else if (performance.now() - waitStart > waitForAddress) {
      fail(`no IPv4 address in this namespace after ${waitForAddress} ms`);
    }
  }, 2);
} else {
  tick();
}

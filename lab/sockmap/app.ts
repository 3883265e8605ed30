// A TCP echo pair for the sockmap scenario, steppable from outside so that
// policy can change between two messages of one connection. Started by
// appArgv() through spawnInPod (pod namespace + node cgroup).
//
//   app.ts serve PORT [--host ADDR]
//       listens on ADDR (default 0.0.0.0; "::" is dual-stack, so IPv4 peers
//       get IPv4-mapped AF_INET6 sockets); "READY <port>"; per connection "ACCEPT <peer>"; one "RECV <n> <text>"
//       per read, echoed back with one write; "EOF <total bytes>" at the end
//   app.ts send HOST PORT [--step] [--timeout MS] [--hold] MSG…
//       "CONNECTED <local port>"; per message one write, "SENT <msg>", then
//       "ECHO <msg>" when its echo is complete or "NOECHO <msg>" after MS;
//       echoes that come later print "LATE <text>". With --step, every
//       message after the first waits for SIGUSR2 ("WAIT" first). Then the
//       client closes ("CLOSED"), or with --hold waits for SIGUSR2 first.
//
// Messages must not contain newlines (one line per event). Each message is
// one write(), i.e. one sendmsg and one run of the sk_msg program.
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { nodeScriptArgv } from '../kernel/node-script.ts';

/** argv that runs this app (for spawnInPod). */
export function appArgv(args: string[]): string[] {
  return nodeScriptArgv('lab/sockmap/app.ts', args);
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function serve(port: number, host: string): void {
  createServer((sock) => {
    let total = 0;
    out(`ACCEPT ${sock.remoteAddress}:${sock.remotePort}`);
    sock.on('data', (d) => {
      total += d.length;
      out(`RECV ${d.length} ${d.toString()}`);
      sock.write(d);
    });
    sock.on('end', () => {
      out(`EOF ${total}`);
      sock.end();
    });
    sock.on('error', (e) => out(`ERROR ${e.message}`));
  }).listen(port, host, () => out(`READY ${port}`));
}

function send(host: string, port: number, msgs: string[], opts: { step: boolean; timeoutMs: number; hold: boolean }): void {
  let nextSignal: (() => void) | undefined;
  process.on('SIGUSR2', () => {
    const go = nextSignal;
    nextSignal = undefined;
    go?.();
  });
  const signalled = () =>
    new Promise<void>((resolve) => {
      nextSignal = resolve;
      out('WAIT');
    });

  let received = '';
  let expected = 0;
  let wake: (() => void) | undefined;
  const sock = connect({ host, port });
  sock.on('error', (e) => {
    out(`ERROR ${e.message}`);
    process.exit(1);
  });
  sock.on('data', (d) => {
    received += d.toString();
    wake?.();
  });

  const echoed = (timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (received.length < expected) return;
        clearTimeout(timer);
        wake = undefined;
        resolve(true);
      };
      const timer = setTimeout(() => {
        wake = () => {
          if (received.length >= expected) out(`LATE ${received.slice(-Math.min(received.length, 200))}`);
        };
        resolve(false);
      }, timeoutMs);
      wake = check;
      check();
    });

  sock.on('connect', async () => {
    out(`CONNECTED ${sock.localPort}`);
    for (const [i, msg] of msgs.entries()) {
      if (opts.step && i > 0) await signalled();
      expected += Buffer.byteLength(msg);
      sock.write(msg);
      out(`SENT ${msg}`);
      out((await echoed(opts.timeoutMs)) ? `ECHO ${msg}` : `NOECHO ${msg}`);
    }
    if (opts.hold) await signalled();
    sock.end();
    sock.on('close', () => {
      out('CLOSED');
      process.exit(0);
    });
  });
}

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
if (isMain) {
  const [mode, ...rest] = process.argv.slice(2);
  const flag = (name: string) => {
    const i = rest.indexOf(`--${name}`);
    if (i < 0) return false;
    rest.splice(i, 1);
    return true;
  };
  const value = (name: string, fallback: number) => {
    const i = rest.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = Number(rest[i + 1]);
    rest.splice(i, 2);
    return v;
  };
  if (mode === 'serve') {
    const i = rest.indexOf('--host');
    const host = i >= 0 ? rest.splice(i, 2)[1]! : '0.0.0.0';
    serve(Number(rest[0]), host);
  }
  else if (mode === 'send') {
    const step = flag('step');
    const hold = flag('hold');
    const timeoutMs = value('timeout', 3000);
    const [host, port, ...msgs] = rest;
    if (!host || !Number(port) || msgs.length === 0) {
      process.stderr.write('usage: app.ts send HOST PORT [--step] [--hold] [--timeout MS] MSG…\n');
      process.exit(2);
    }
    send(host, Number(port), msgs, { step, timeoutMs, hold });
  } else {
    process.stderr.write('usage: app.ts serve PORT [--host ADDR] | app.ts send HOST PORT [--step] [--hold] [--timeout MS] MSG…\n');
    process.exit(2);
  }
}

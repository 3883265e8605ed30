// A tiny real application for pods: a TCP/UDP echo server and a client.
// Run inside a pod namespace (mtless exec NAME/POD -- node --import tsx lab/apps/echo.ts …).
//
//   echo.ts serve tcp|udp PORT          prints "READY tcp 8080" once listening,
//                                        then one "RECV <peer> <text>" line per message
//   echo.ts send tcp|udp HOST PORT TEXT [--timeout MS] [--count N]
//                                        prints "ECHO <text>" per reply; exit 0 when
//                                        every message was echoed, 1 otherwise
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

const [mode, proto, ...rest] = process.argv.slice(2);

function fail(msg: string): never {
  process.stderr.write(`echo: ${msg}\n`);
  process.exit(2);
}

function option(name: string, fallback: number): number {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? Number(rest[i + 1]) : fallback;
}

if (mode === 'serve') {
  const port = Number(rest[0]);
  if (!port) fail('serve: missing PORT');
  if (proto === 'tcp') {
    createServer((sock) => {
      sock.on('data', (d) => {
        process.stdout.write(`RECV ${sock.remoteAddress}:${sock.remotePort} ${d.toString().trim()}\n`);
        sock.write(d);
      });
      sock.on('error', () => undefined);
    }).listen(port, '0.0.0.0', () => process.stdout.write(`READY tcp ${port}\n`));
  } else if (proto === 'udp') {
    const s = createSocket('udp4');
    s.on('message', (d, r) => {
      process.stdout.write(`RECV ${r.address}:${r.port} ${d.toString().trim()}\n`);
      s.send(d, r.port, r.address);
    });
    s.bind(port, '0.0.0.0', () => process.stdout.write(`READY udp ${port}\n`));
  } else fail('serve: protocol must be tcp or udp');
} else if (mode === 'send') {
  const [host, portText, text] = rest;
  const port = Number(portText);
  if (!host || !port || text === undefined) fail('send: expected HOST PORT TEXT');
  const timeout = option('timeout', 5000);
  const count = option('count', 1);
  setTimeout(() => {
    process.stderr.write(`echo: timed out after ${timeout} ms\n`);
    process.exit(1);
  }, timeout).unref();
  if (proto === 'tcp') {
    const sock = connect({ host, port }, () => sock.write(text));
    let got = '';
    sock.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        process.stdout.write(`ECHO ${got}\n`);
        sock.end();
        process.exit(0);
      }
    });
    sock.on('error', (e) => {
      process.stderr.write(`echo: ${e.message}\n`);
      process.exit(1);
    });
  } else if (proto === 'udp') {
    // UDP has no retransmit: each datagram is sent once, 100 ms apart, and the
    // client reports how many came back.
    const s = createSocket('udp4');
    let echoed = 0;
    s.on('message', (d) => {
      echoed++;
      process.stdout.write(`ECHO ${d.toString()}\n`);
      if (echoed === count) process.exit(0);
    });
    let sent = 0;
    const sendOne = () => {
      s.send(`${text}${count > 1 ? `-${sent}` : ''}`, port, host);
      if (++sent < count) setTimeout(sendOne, 100);
    };
    sendOne();
  } else fail('send: protocol must be tcp or udp');
} else {
  fail('usage: echo.ts serve tcp|udp PORT | echo.ts send tcp|udp HOST PORT TEXT [--timeout MS] [--count N]');
}

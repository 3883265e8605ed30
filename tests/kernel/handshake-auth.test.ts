// Cilium's mutual-auth handshake on loopback: success and its expiration,
// every fault with exactly one reason (and a server that keeps serving),
// interoperability with openssl s_client / s_server, the TLS key log (and a
// capture that it decrypts), and the handshake's cost.
import t from 'tap';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthError, authenticate, startAuthServer, type AuthFailure, type AuthServer, type CertAndKey, type ServerErrorEvent, type ServerHandshakeEvent } from '../../lab/agent/handshake.ts';
import { run } from '../../lab/kernel/run.ts';
import { certNotAfter, createCa, generateSvidKey, issueSvid, spiffeIdOf, type Ca, type IssueOptions } from '../../lab/spiffe/ca.ts';
import { needsRoot } from '../helpers/kernel.ts';
import { spawn } from '../../lab/kernel/spawn.ts';

/** The subtest handle tap passes to callbacks. */
type T = Parameters<Parameters<typeof t.test>[0]>[0];

const HOST = '127.0.0.1';
const ca = await createCa();
const otherCa = await createCa();
const dir = await mkdtemp(join(tmpdir(), 't-handshake-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** An SVID whose key was generated "on the node"; the CA only saw the public key. */
async function svid(issuer: Ca, identity: number, opts: Omit<IssueOptions, 'publicKey'> = {}): Promise<CertAndKey> {
  const key = await generateSvidKey();
  const s = await issueSvid(issuer, identity, { ...opts, publicKey: key.publicKeyPem });
  return { certPem: s.certPem, keyPem: key.keyPem };
}

// The server node holds these (identity -> SVID); 301..305 are broken on purpose.
const SERVER = 300;
const serverSvids = new Map<number, CertAndKey>([
  [300, await svid(ca, 300, { ttlMs: 3600_000 })],
  [301, await svid(otherCa, 301)],
  [302, await svid(ca, 302, { faultForTests: { expired: true } })],
  [303, await svid(ca, 303, { faultForTests: { uriSans: [spiffeIdOf(999)] } })],
  [304, await svid(ca, 304, { faultForTests: { uriSans: [spiffeIdOf(304), spiffeIdOf(305)] } })],
  [305, await svid(ca, 305, { faultForTests: { uriSans: [] } })],
  [306, await svid(ca, 306, { ttlMs: 10 * 60_000 })],
  [307, { certPem: (await svid(ca, 307)).certPem, keyPem: (await generateSvidKey()).keyPem }], // key does not match
]);
// The client node's SVIDs.
const CLIENT = 400;
const client400 = await svid(ca, 400, { ttlMs: 30 * 60_000 });
const clientOtherCa = await svid(otherCa, 401);
const clientExpired = await svid(ca, 402, { faultForTests: { expired: true } });

/** Collects a callback's events; next() waits for a matching one (no sleeps). */
function recorder<E>() {
  const seen: E[] = [];
  const waiting: { match: (e: E) => boolean; resolve: (e: E) => void }[] = [];
  return {
    seen,
    push(e: E) {
      seen.push(e);
      for (const w of [...waiting]) if (w.match(e)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(e);
      }
    },
    /** The first event (from index `from` on) that matches, within the deadline. */
    next(match: (e: E) => boolean, from = 0, deadlineMs = 15_000): Promise<E> {
      const hit = seen.slice(from).find(match);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${deadlineMs} ms; seen: ${JSON.stringify(seen.slice(from))}`)), deadlineMs);
        waiting.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
  };
}

const handshakes = recorder<ServerHandshakeEvent>();
const errors = recorder<ServerErrorEvent>();
const serverKeyLog = join(dir, 'server-keylog.txt');
const server: AuthServer = await startAuthServer({
  host: HOST,
  port: 0,
  getCertificate: (id) => serverSvids.get(id),
  trustBundlePem: ca.certPem,
  keyLogFile: serverKeyLog,
  onHandshake: (e) => handshakes.push(e),
  onError: (e) => errors.push(e),
});
t.teardown(() => server.close());
const PORT = server.address.port;

const auth = (over: Partial<Parameters<typeof authenticate>[0]> = {}) =>
  authenticate({ remoteNodeIp: HOST, port: PORT, localIdentity: CLIENT, remoteIdentity: SERVER, localCert: client400, trustBundlePem: ca.certPem, ...over });

/** The attempt fails, with exactly the expected reason. */
async function failsWith(t: T, reason: AuthFailure, attempt: Promise<unknown>): Promise<AuthError> {
  const err = await attempt.then(
    (r) => {
      throw new Error(`expected failure (${reason}), got success ${JSON.stringify(r)}`);
    },
    (e: unknown) => e,
  );
  t.type(err, AuthError, 'an AuthError');
  t.equal((err as AuthError).reason, reason, `reason: ${(err as Error).message}`);
  return err as AuthError;
}

/** The server still completes a good handshake. */
async function stillServes(t: T) {
  const r = await auth();
  t.ok(r.expiration instanceof Date, 'the server keeps serving the next good handshake');
}

t.test('a good handshake: expiration is the earlier NotAfter of the two SVIDs', async (t) => {
  const from = handshakes.seen.length;
  const r = await auth(); // client SVID 30 min, server SVID 1 h
  t.equal(r.expiration.getTime(), certNotAfter(client400.certPem).getTime(), 'the client SVID expires first: its NotAfter');
  t.equal(r.peerNotAfter.getTime(), certNotAfter(serverSvids.get(300)!.certPem).getTime());
  t.equal(r.peerSpiffeId, 'spiffe://spiffe.cilium/identity/300');
  const e = await handshakes.next(() => true, from);
  t.equal(e.sni, '300.spiffe.cilium', 'the server saw the SNI');
  t.equal(e.localIdentity, 300, 'and chose the SVID of identity 300');
  t.equal(e.peerSpiffeId, 'spiffe://spiffe.cilium/identity/400', 'and logged the client\'s SPIFFE id');
  t.equal(e.peerIdentity, 400);

  const r2 = await auth({ remoteIdentity: 306 }); // server SVID 10 min
  t.equal(r2.expiration.getTime(), certNotAfter(serverSvids.get(306)!.certPem).getTime(), 'the server SVID expires first: its NotAfter');
  t.ok(r2.expiration < r2.localNotAfter);
});

t.test('faults: no success, one clear reason, and the server keeps serving', async (t) => {
  const cases: { name: string; reason: AuthFailure; over: Partial<Parameters<typeof authenticate>[0]>; server?: ServerErrorEvent['reason'] }[] = [
    { name: 'peer certificate from another CA', reason: 'untrusted-ca', over: { remoteIdentity: 301 } },
    { name: 'peer certificate expired', reason: 'expired', over: { remoteIdentity: 302 } },
    { name: 'peer presents the wrong SPIFFE id', reason: 'wrong-spiffe-id', over: { remoteIdentity: 303 } },
    { name: 'peer certificate with two URI SANs', reason: 'multiple-uri-sans', over: { remoteIdentity: 304 } },
    { name: 'peer certificate without URI SAN', reason: 'no-uri-san', over: { remoteIdentity: 305 } },
    { name: 'unknown SNI (no SVID for that identity on the peer)', reason: 'handshake-aborted', over: { remoteIdentity: 777 }, server: 'unknown-sni' },
    { name: 'the peer\'s SVID for that identity is broken (key mismatch)', reason: 'handshake-aborted', over: { remoteIdentity: 307 }, server: 'certificate-unavailable' },
    { name: 'our certificate from another CA', reason: 'rejected-by-peer', over: { localIdentity: 401, localCert: clientOtherCa }, server: 'client-certificate-untrusted' },
    { name: 'our certificate expired', reason: 'rejected-by-peer', over: { localIdentity: 402, localCert: clientExpired }, server: 'client-certificate-expired' },
    { name: 'a trust bundle that does not hold the peer\'s CA', reason: 'untrusted-ca', over: { trustBundlePem: otherCa.certPem } },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const from = errors.seen.length;
      const err = await failsWith(t, c.reason, auth(c.over));
      t.notMatch(err.message, /undefined|\[object/, 'the message reads well');
      if (c.server) {
        const e = await errors.next((e) => e.reason === c.server, from);
        t.pass(`server reported ${e.reason}: ${e.message}`);
      }
      await stillServes(t);
    });
  }
  t.match(errors.seen.find((e) => e.reason === 'unknown-sni')?.message ?? '', /777\.spiffe\.cilium/, 'the server names the unknown SNI');
});

t.test('peer down: connection refused', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, HOST, r));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const err = await failsWith(t, 'connection-refused', auth({ port: freePort }));
  t.match(err.message, /nothing listens/);
});

t.test('timeouts', async (t) => {
  await t.test('handshake: the peer accepts TCP but never speaks TLS', async (t) => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, HOST, r));
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const started = performance.now();
    const err = await failsWith(t, 'timeout', auth({ port: (silent.address() as net.AddressInfo).port, timeoutMs: 300 }));
    t.match(err.message, /TLS handshake/);
    t.ok(performance.now() - started < 2000, 'gives up near the deadline');
  });

  const python = await run(['python3', '-c', 'pass'], { okCodes: [] }).then(() => true, () => false);
  await t.test('dial: SYNs go unanswered (a full accept queue)', { skip: python ? false : 'needs python3 for a listener that never accepts' }, async (t) => {
    // listen(0) and never accept: the kernel queues one connection and then drops SYNs.
    const proc = spawn(['python3', '-c', "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(600)"]);
    t.teardown(async () => {
      proc.kill();
      await proc.catch(() => undefined);
    });
    const [chunk] = (await once(proc.stdout!, 'data')) as [Buffer];
    const port = Number(String(chunk).trim());
    const fillers: net.Socket[] = [];
    t.teardown(() => fillers.forEach((s) => s.destroy()));
    // Fill the queue until connects stall: two in a row, each for longer than
    // any loopback connect takes on a loaded machine (a dropped SYN waits 1 s
    // for its retransmit, and that one is dropped too), so that a slow connect
    // is not mistaken for a full queue.
    let stalls = 0;
    while (stalls < 2) {
      const s = net.connect(port, HOST);
      s.on('error', () => undefined); // reset when the listener goes away
      fillers.push(s);
      const stalled = await Promise.race([once(s, 'connect').then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 1000))]);
      stalls = stalled ? stalls + 1 : 0;
    }
    const err = await failsWith(t, 'timeout', auth({ port, timeoutMs: 300 }));
    t.match(err.message, /TCP connect/);
  });
});

t.test('the server survives garbage and early closes', async (t) => {
  const from = errors.seen.length;
  const junk = net.connect(PORT, HOST, () => junk.write('GET / HTTP/1.0\r\n\r\n'));
  junk.on('error', () => undefined);
  await once(junk, 'close');
  await errors.next((e) => e.reason === 'handshake-failed', from);
  const early = net.connect(PORT, HOST, () => early.destroy());
  await once(early, 'close');
  await stillServes(t);
});

t.test('SVID rotation: the server picks up a new certificate', async (t) => {
  const old = serverSvids.get(306)!;
  const fresh = await svid(ca, 306, { ttlMs: 20 * 60_000 });
  serverSvids.set(306, fresh);
  t.teardown(() => void serverSvids.set(306, old));
  const r = await auth({ remoteIdentity: 306 });
  t.equal(r.peerNotAfter.getTime(), certNotAfter(fresh.certPem).getTime());
});

t.test('openssl s_client against the server', async (t) => {
  const files = {
    ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key'),
    otherCert: join(dir, 'other.pem'), otherKey: join(dir, 'other.key'),
  };
  await writeFile(files.ca, ca.certPem);
  await writeFile(files.cert, client400.certPem);
  await writeFile(files.key, client400.keyPem, { mode: 0o600 });
  await writeFile(files.otherCert, clientOtherCa.certPem);
  await writeFile(files.otherKey, clientOtherCa.keyPem, { mode: 0o600 });
  const sClient = (sni: string, cert: string | null = files.cert, key = files.key, version = '-tls1_3') =>
    run(['openssl', 's_client', '-connect', `${HOST}:${PORT}`, version, '-servername', sni, ...(cert ? ['-cert', cert, '-key', key] : []), '-CAfile', files.ca, '-verify_return_error'], { okCodes: [1, 104], timeout: 10_000 }); // 104: s_client exits with the errno of a reset

  await t.test('a good client completes TLS 1.3 and is logged with its SPIFFE id', async (t) => {
    const from = handshakes.seen.length;
    const r = await sClient('300.spiffe.cilium');
    t.equal(r.exitCode, 0, 'exit 0');
    t.match(r.stdout, /^New, TLSv1\.3, Cipher is|Protocol\s*:\s*TLSv1\.3/m, 'TLSv1.3');
    t.match(r.stdout, /Verify return code: 0 \(ok\)/, 'our SVID verifies against the CA for openssl too');
    const e = await handshakes.next((e) => e.peerIdentity === 400, from);
    t.equal(e.sni, '300.spiffe.cilium');
  });

  await t.test('an unknown SNI is rejected during the handshake', async (t) => {
    const from = errors.seen.length;
    const r = await sClient('999.spiffe.cilium');
    t.equal(r.exitCode, 1, 'exit 1');
    t.match(r.stdout + r.stderr, /alert handshake failure|alert number 40/);
    t.match(r.stdout, /no peer certificate available/, 'no certificate was presented');
    await errors.next((e) => e.reason === 'unknown-sni' && e.sni === '999.spiffe.cilium', from);
  });

  await t.test('a client with a wrong identity (another CA) is refused', async (t) => {
    const from = errors.seen.length;
    const okFrom = handshakes.seen.length;
    await sClient('300.spiffe.cilium', files.otherCert, files.otherKey);
    await errors.next((e) => e.reason === 'client-certificate-untrusted', from);
    t.equal(handshakes.seen.slice(okFrom).filter((e) => e.peerIdentity === 401).length, 0, 'never logged as a good handshake');
  });

  await t.test('a client without a certificate is refused', async (t) => {
    const from = errors.seen.length;
    await sClient('300.spiffe.cilium', null);
    await errors.next((e) => e.reason === 'no-client-certificate', from);
  });

  await t.test('TLS 1.2 is refused', async (t) => {
    const r = await sClient('300.spiffe.cilium', files.cert, files.key, '-tls1_2');
    t.equal(r.exitCode, 1);
    t.match(r.stdout + r.stderr, /protocol version|alert number 70/);
  });
  await stillServes(t);
});

t.test('authenticate() against openssl s_server', async (t) => {
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  await writeFile(files.ca, ca.certPem);
  await writeFile(files.cert, serverSvids.get(300)!.certPem);
  await writeFile(files.key, serverSvids.get(300)!.keyPem, { mode: 0o600 });
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, HOST, r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  // stdin stays open: s_server quits at EOF on stdin.
  const proc = execa('openssl', ['s_server', '-accept', `${HOST}:${port}`, '-tls1_3', '-cert', files.cert, '-key', files.key, '-CAfile', files.ca, '-Verify', '1', '-verify_return_error', '-naccept', '1'], { stdin: 'pipe', buffer: false, reject: false });
  t.teardown(async () => {
    proc.kill();
    await proc.catch(() => undefined);
  });
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => (out += d));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('ACCEPT')) resolve();
    });
    proc.on('exit', () => reject(new Error(`s_server exited: ${out}`)));
  });
  const r = await auth({ port });
  t.equal(r.peerSpiffeId, spiffeIdOf(300), 'openssl served our SVID; we verified it by hand');
  const done = await proc;
  t.equal(done.exitCode, 0, 's_server (-naccept 1) finished cleanly after our close');
  t.match(out, /CIPHER is TLS_AES_(128|256)_GCM_SHA(256|384)|CIPHER is TLS_CHACHA20/, 'a TLS 1.3 cipher suite');
  t.match(out, /^Client certificate$/m, 's_server received our client certificate');
  t.match(out, /^depth=0 C = US, O = SPIRE\s+verify return:1$/m, 'and verified it against the CA');
});

t.test('key log: NSS lines for every handshake, mode 0600', async (t) => {
  const clientKeyLog = join(dir, 'client-keylog.txt');
  await auth({ keyLogFile: clientKeyLog });
  const text = await readFile(clientKeyLog, 'utf8');
  for (const label of ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0', 'EXPORTER_SECRET']) {
    t.match(text, new RegExp(`^${label} [0-9a-f]{64} [0-9a-f]{64,96}$`, 'm'), label);
  }
  t.equal((await stat(clientKeyLog)).mode & 0o777, 0o600, 'secrets are private');
  const clientRandom = /^CLIENT_HANDSHAKE_TRAFFIC_SECRET ([0-9a-f]{64})/m.exec(text)![1]!;
  t.match(await readFile(serverKeyLog, 'utf8'), clientRandom, 'the server logged the same handshake');
  t.equal((await stat(serverKeyLog)).mode & 0o777, 0o600);
});

t.test('a capture of the handshake decrypts with the key log', { skip: needsRoot }, async (t) => {
  const pcap = join(dir, 'hs.pcap');
  const keylog = join(dir, 'capture-keylog.txt');
  // --print alongside -w: each packet also appears on stdout, so we can wait for the last one.
  const dump = spawn(['tcpdump', '-i', 'lo', '-n', '-l', '-U', '--immediate-mode', '--print', '-w', pcap, 'tcp', 'port', String(PORT)]);
  let err = '';
  let printed = '';
  const bothFins = new Promise<void>((resolve) => {
    dump.stdout!.on('data', (d: Buffer) => {
      printed += d;
      if ((printed.match(/Flags \[F/g) ?? []).length >= 2) resolve();
    });
  });
  await new Promise<void>((resolve, reject) => {
    dump.stderr!.on('data', (d: Buffer) => {
      err += d;
      if (err.includes('listening on')) resolve();
    });
    dump.on('exit', () => reject(new Error(`tcpdump exited: ${err}`)));
  });
  await auth({ keyLogFile: keylog });
  await Promise.race([bothFins, new Promise((_, reject) => setTimeout(() => reject(new Error(`tcpdump did not see both FINs:\n${printed}`)), 15_000))]);
  dump.kill('SIGINT');
  await dump;
  const fields = ['-T', 'fields', '-e', 'x509ce.uniformResourceIdentifier', '-d', `tcp.port==${PORT},tls`, '-Y', 'tls.handshake.type == 11'];
  const clear = await run(['tshark', '-r', pcap, '-o', `tls.keylog_file:${keylog}`, ...fields]);
  t.match(clear.stdout, /spiffe:\/\/spiffe\.cilium\/identity\/300/, 'the server\'s Certificate message decrypts');
  t.match(clear.stdout, /spiffe:\/\/spiffe\.cilium\/identity\/400/, 'the client\'s Certificate message decrypts');
  const opaque = await run(['tshark', '-r', pcap, ...fields]);
  t.equal(opaque.stdout.trim(), '', 'without the key log, TLS 1.3 hides both certificates');
  const appData = await run(['tshark', '-r', pcap, '-o', `tls.keylog_file:${keylog}`, '-d', `tcp.port==${PORT},tls`, '-Y', 'tls.app_data', '-T', 'fields', '-e', 'frame.number']);
  t.equal(appData.stdout.trim(), '', 'no application data crossed the wire');
});

// Measured and printed, never asserted on: how long a handshake takes belongs to
// `mtless bench auth`, which compares it to a floor of the same run.
t.test('handshake time', async (t) => {
  const n = 50;
  for (let i = 0; i < 5; i++) await auth(); // warm up
  const client: number[] = [];
  const from = handshakes.seen.length;
  for (let i = 0; i < n; i++) client.push((await auth()).durationMs);
  const serverSide = handshakes.seen.slice(from).map((e) => e.durationMs);
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
  t.comment(`authenticate() on loopback, ${n} sequential handshakes: p50 ${pct(client, 0.5).toFixed(2)} ms, p90 ${pct(client, 0.9).toFixed(2)} ms, min ${Math.min(...client).toFixed(2)} ms (dial + TLS 1.3 + verification + close)`);
  t.comment(`server side (accept -> handshake done): p50 ${pct(serverSide, 0.5).toFixed(2)} ms`);
  t.equal(client.length, n, 'every handshake completed');
  t.ok(client.every((ms) => Number.isFinite(ms) && ms > 0), 'each with a measured duration');
});

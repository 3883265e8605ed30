// The SPIRE stand-in: SPIFFE ids, the CA, X.509-SVIDs, node credentials and
// the CA file. Pure crypto and a temp dir: no root.
import t from 'tap';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  caFromPem, caToPem, certNotAfter, createCa, createCsr, DEFAULT_SVID_TTL_MS, generateSvidKey, issueNodeCredential, issueSvid,
  loadCa, parseSniIdentity, parseSpiffeIdentity, readCert, saveCa, sniOf, spiffeIdOf,
} from '../../lab/spiffe/ca.ts';

const ca = await createCa();
const key = await generateSvidKey();

/** Node's own parser, independent of the library that wrote the certificate. */
const nodeUris = (pem: string) => (new X509Certificate(pem).subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
const near = (a: Date, b: number, slackMs = 2000) => Math.abs(a.getTime() - b) <= slackMs;

t.test('SPIFFE ids and SNI names', async (t) => {
  t.equal(spiffeIdOf(300), 'spiffe://spiffe.cilium/identity/300');
  t.equal(parseSpiffeIdentity('spiffe://spiffe.cilium/identity/300'), 300);
  t.equal(parseSpiffeIdentity(spiffeIdOf(0xffff_ffff)), 0xffff_ffff, 'u32 max');
  for (const bad of [
    'spiffe://spiffe.cilium/identity/0', 'spiffe://spiffe.cilium/identity/0300', 'spiffe://spiffe.cilium/identity/4294967296',
    'spiffe://other.domain/identity/300', 'spiffe://spiffe.cilium/identity/300/x', 'spiffe://spiffe.cilium/node/300',
    'https://spiffe.cilium/identity/300', 'spiffe://spiffeXcilium/identity/300', '',
  ]) t.equal(parseSpiffeIdentity(bad), undefined, `rejects "${bad}"`);
  t.equal(sniOf(300), '300.spiffe.cilium');
  t.equal(parseSniIdentity('300.spiffe.cilium'), 300);
  for (const bad of ['spiffe.cilium', '0.spiffe.cilium', 'x.spiffe.cilium', '300.spiffe.cilium.evil', '300.spiffeXcilium', '300']) t.equal(parseSniIdentity(bad), undefined, `rejects SNI "${bad}"`);
  for (const bad of [0, -1, 1.5, 2 ** 32, NaN]) t.throws(() => spiffeIdOf(bad), RangeError, `identity ${bad} is refused`);
});

t.test('the CA: self-signed ECDSA P-256, a CA, named by its trust domain', async (t) => {
  const c = new X509Certificate(ca.certPem);
  t.ok(c.ca, 'basicConstraints cA');
  t.ok(c.verify(c.publicKey), 'self-signed');
  t.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.same(nodeUris(ca.certPem), ['spiffe://spiffe.cilium']);
  t.equal(ca.trustDomain, 'spiffe.cilium');
  t.ok(near(ca.notAfter, Date.now() + 24 * 3600_000), 'default TTL 24 h');
  const short = await createCa({ trustDomain: 'lab.example', ttlMs: 60_000 });
  t.ok(near(short.notAfter, Date.now() + 60_000), 'ttlMs is honoured');
  t.same(nodeUris(short.certPem), ['spiffe://lab.example']);
  await t.rejects(createCa({ ttlMs: 0 }), RangeError);
});

t.test('an SVID has exactly one URI SAN, the identity\'s SPIFFE id, and chains to the CA', async (t) => {
  const svid = await issueSvid(ca, 300, { publicKey: key.publicKeyPem });
  t.equal(svid.spiffeId, 'spiffe://spiffe.cilium/identity/300');
  t.same(nodeUris(svid.certPem), ['spiffe://spiffe.cilium/identity/300'], 'node:crypto sees one URI SAN');
  t.same(readCert(svid.certPem).uris, [svid.spiffeId], 'and so does readCert');
  t.notMatch(new X509Certificate(svid.certPem).subjectAltName ?? '', /DNS:|IP Address:|email:/, 'no other SAN kinds');
  const c = new X509Certificate(svid.certPem);
  t.notOk(c.ca, 'a leaf');
  t.ok(c.checkIssued(new X509Certificate(ca.certPem)), 'issued by the CA');
  t.ok(c.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the CA key');
  t.ok(c.checkPrivateKey(createPrivateKey(key.keyPem)), 'certifies the node\'s own key');
  t.same(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'EKU serverAuth + clientAuth (both roles of the handshake)');
});

t.test('TTL and NotAfter', async (t) => {
  const now = Date.now();
  const def = await issueSvid(ca, 300, { publicKey: key.publicKey });
  t.ok(near(def.notAfter, now + DEFAULT_SVID_TTL_MS), 'default 1 h, SPIRE\'s default');
  t.ok(def.notBefore.getTime() <= now - 9000, 'NotBefore is backdated against clock skew');
  const short = await issueSvid(ca, 300, { publicKey: key.publicKey, ttlMs: 30 * 60_000 });
  t.ok(near(short.notAfter, now + 30 * 60_000), '30 min');
  t.equal(certNotAfter(short.certPem).getTime(), short.notAfter.getTime(), 'certNotAfter reads it back');
  t.equal(certNotAfter(short.certPem).getTime(), new Date(new X509Certificate(short.certPem).validTo).getTime(), 'and agrees with node:crypto');
  t.equal(short.notAfter.getTime() % 1000, 0, 'X.509 time has second resolution');
  const later = new Date(now + 3600_000);
  const fixed = await issueSvid(ca, 300, { publicKey: key.publicKey, notBefore: later, ttlMs: 60_000 });
  t.ok(near(fixed.notBefore, later.getTime(), 1000) && near(fixed.notAfter, later.getTime() + 60_000, 1000), 'notBefore + ttlMs');
  const capped = await issueSvid(ca, 300, { publicKey: key.publicKey, ttlMs: 365 * 24 * 3600_000 });
  t.equal(capped.notAfter.getTime(), ca.notAfter.getTime(), 'never outlives the CA');
});

t.test('issuing takes only a public key: CryptoKey, SPKI PEM or a CSR with proof of possession', async (t) => {
  const viaCsr = await issueSvid(ca, 301, { publicKey: await createCsr(key, 'spiffe://spiffe.cilium/identity/999') });
  t.same(nodeUris(viaCsr.certPem), [spiffeIdOf(301)], 'the CA decides the identity, not the CSR');
  t.ok(new X509Certificate(viaCsr.certPem).checkPrivateKey(createPrivateKey(key.keyPem)));
  const csr = await createCsr(key);
  const b64 = csr.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const der = Buffer.from(b64, 'base64');
  der.writeUInt8(der.at(-5)! ^ 0xff, der.length - 5); // corrupt the signature
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await t.rejects(issueSvid(ca, 301, { publicKey: tampered }), /signature|CSR|parse|ASN/i, 'a CSR that does not verify is refused');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  await t.rejects(issueSvid(ca, 301, { publicKey: rsa }), /P-256/, 'RSA is refused');
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  await t.rejects(issueSvid(ca, 301, { publicKey: p384 }), /P-256/, 'P-384 is refused');
  await t.rejects(issueSvid(ca, 301, { publicKey: key.keyPem }), /public key must be/, 'a private key is not a public key');
  t.equal(createPublicKey(key.keyPem).export({ type: 'spki', format: 'pem' }), key.publicKeyPem, 'generateSvidKey\'s halves belong together');
});

t.test('fault certificates for tests: expired, no / wrong / two URI SANs, another CA', async (t) => {
  const expired = await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { expired: true } });
  t.ok(expired.notAfter.getTime() < Date.now(), 'expired');
  const none = await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { uriSans: [] } });
  t.same(nodeUris(none.certPem), [], 'no URI SAN');
  t.equal(new X509Certificate(none.certPem).subjectAltName, undefined, 'no SAN extension at all');
  const wrong = await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { uriSans: [spiffeIdOf(999)] } });
  t.same(nodeUris(wrong.certPem), [spiffeIdOf(999)]);
  const two = await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { uriSans: [spiffeIdOf(300), spiffeIdOf(301)] } });
  t.same(nodeUris(two.certPem), [spiffeIdOf(300), spiffeIdOf(301)]);
  t.same(readCert(two.certPem).uris, [spiffeIdOf(300), spiffeIdOf(301)]);
  const other = await createCa();
  const foreign = await issueSvid(other, 300, { publicKey: key.publicKey });
  t.notOk(new X509Certificate(foreign.certPem).verify(new X509Certificate(ca.certPem).publicKey), 'another CA\'s SVID does not verify against ours');
});

t.test('node credentials', async (t) => {
  const bootstrap = await issueNodeCredential(ca, 'n1');
  t.same(nodeUris(bootstrap.certPem), ['spiffe://spiffe.cilium/node/n1']);
  t.ok(bootstrap.keyPem && new X509Certificate(bootstrap.certPem).checkPrivateKey(createPrivateKey(bootstrap.keyPem)), 'generated key returned when none was given');
  const own = await issueNodeCredential(ca, 'node-2', { publicKey: key.publicKeyPem, ttlMs: 60_000 });
  t.equal(own.keyPem, undefined, 'no key leaves the CA when the node sent its public key');
  t.ok(near(own.notAfter, Date.now() + 60_000));
  t.same(nodeUris(own.certPem), ['spiffe://spiffe.cilium/node/node-2']);
  await t.rejects(issueNodeCredential(ca, 'a/b'), RangeError);
  await t.rejects(issueNodeCredential(ca, '..'), RangeError);
});

t.test('PEM round trip and the CA file (mode 0600)', async (t) => {
  const back = await caFromPem(caToPem(ca));
  t.equal(back.certPem, ca.certPem);
  t.equal(back.trustDomain, 'spiffe.cilium');
  t.equal(back.notAfter.getTime(), ca.notAfter.getTime());
  const svid = await issueSvid(back, 300, { publicKey: key.publicKey });
  t.ok(new X509Certificate(svid.certPem).verify(new X509Certificate(ca.certPem).publicKey), 'the imported CA signs with the same key');
  const other = await createCa();
  await t.rejects(caFromPem(ca.certPem + other.keyPem), /does not match/, 'a key from another CA is refused');
  await t.rejects(caFromPem(ca.certPem), /PRIVATE KEY/, 'a certificate alone is not a CA');
  await t.rejects(caFromPem(svid.certPem + key.keyPem), /not a CA/, 'a leaf is not a CA');

  const dir = await mkdtemp(join(tmpdir(), 't-spiffe-ca-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'ca.pem');
  const umask = process.umask(0); // the file must be private even when the umask is not
  try {
    await saveCa(ca, file);
  } finally {
    process.umask(umask);
  }
  t.equal((await stat(file)).mode & 0o777, 0o600, 'written with mode 0600');
  await saveCa(ca, file);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'still 0600 when replaced');
  t.equal((await loadCa(file)).certPem, ca.certPem, 'loads back');
  await chmod(file, 0o644);
  await t.rejects(loadCa(file), /mode 0644/, 'a CA file others can read is refused');
});

t.test('issuing cost', async (t) => {
  const n = 50;
  const started = performance.now();
  for (let i = 0; i < n; i++) await issueSvid(ca, 1000 + i, { publicKey: key.publicKey });
  const perLeaf = (performance.now() - started) / n;
  t.comment(`issueSvid: ${perLeaf.toFixed(2)} ms per leaf (mean of ${n})`);
  t.ok(perLeaf < 100, 'well under 100 ms per leaf');
});

// The handshake's fast DER reader agrees with node:crypto and @peculiar/x509,
// and fails loudly on malformed input.
import t from 'tap';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { createCa, generateSvidKey, issueNodeCredential, issueSvid, spiffeIdOf } from '../../lab/spiffe/ca.ts';
import { pemToDer, readCertDer } from '../../lab/spiffe/der.ts';

const ca = await createCa({ ttlMs: 40 * 365 * 24 * 3600_000 }); // reaches past 2049: GeneralizedTime
const key = await generateSvidKey();

t.test('agrees with node:crypto and @peculiar/x509 on every kind of certificate we make', async (t) => {
  const certs = {
    ca: ca.certPem,
    svid: (await issueSvid(ca, 300, { publicKey: key.publicKey })).certPem,
    expired: (await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { expired: true } })).certPem,
    none: (await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { uriSans: [] } })).certPem,
    two: (await issueSvid(ca, 300, { publicKey: key.publicKey, faultForTests: { uriSans: [spiffeIdOf(300), spiffeIdOf(301)] } })).certPem,
    generalizedTime: (await issueSvid(ca, 300, { publicKey: key.publicKey, notBefore: new Date('2055-03-04T05:06:07Z'), ttlMs: 3600_000 })).certPem,
    node: (await issueNodeCredential(ca, 'n1')).certPem,
  };
  for (const [name, pem] of Object.entries(certs)) {
    const facts = readCertDer(pemToDer(pem));
    const node = new X509Certificate(pem);
    const lib = new x509.X509Certificate(pem);
    t.equal(facts.notAfter.getTime(), new Date(node.validTo).getTime(), `${name}: notAfter`);
    t.equal(facts.notBefore.getTime(), lib.notBefore.getTime(), `${name}: notBefore`);
    const nodeUris = (node.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
    t.same(facts.uris, nodeUris, `${name}: URI SANs ${JSON.stringify(facts.uris)}`);
  }
  t.equal(readCertDer(pemToDer(certs.generalizedTime)).notBefore.toISOString(), '2055-03-04T05:06:07.000Z', 'GeneralizedTime after 2049');
});

t.test('malformed input throws instead of guessing', async (t) => {
  const der = pemToDer((await issueSvid(ca, 300, { publicKey: key.publicKey })).certPem);
  t.throws(() => readCertDer(der.subarray(0, der.length - 10)), /DER/, 'truncated');
  t.throws(() => readCertDer(Buffer.from([0x02, 0x01, 0x00])), /SEQUENCE/, 'not a SEQUENCE');
  t.throws(() => readCertDer(Buffer.alloc(0)), /DER/, 'empty');
  t.throws(() => pemToDer('-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n'), /CERTIFICATE/);
});

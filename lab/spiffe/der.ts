// A minimal DER reader for the two things the handshake judges on every
// connection: the URI SANs and the validity of an X.509 certificate.
// @peculiar/x509 parses a certificate in ~2 ms; this walk takes microseconds.
// It reads, never verifies: the chain is OpenSSL's job.

interface Tlv {
  tag: number;
  /** Start and end of the value. */
  start: number;
  end: number;
  /** End of the whole element (= end). */
  next: number;
}

function readTlv(b: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error(`DER: truncated element at ${at}`);
  const tag = b[at]!;
  if ((tag & 0x1f) === 0x1f) throw new Error(`DER: multi-byte tags are not used in certificates (at ${at})`);
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error(`DER: bad length form at ${at}`);
    if (start + n > limit) throw new Error(`DER: truncated length at ${at}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new Error(`DER: element at ${at} overruns its container`);
  return { tag, start, end, next: end };
}

/** The children of a constructed element. */
function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const c = readTlv(b, at, parent.end);
    out.push(c);
    at = c.next;
  }
  return out;
}

const SEQUENCE = 0x30;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;
const OID = 0x06;
const BOOLEAN = 0x01;
const OCTET_STRING = 0x04;
const EXTENSIONS = 0xa3; // [3] EXPLICIT
const URI_NAME = 0x86; // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String
const SAN_OID = [0x55, 0x1d, 0x11]; // 2.5.29.17

const ascii = (b: Uint8Array, t: Tlv) => Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start).toString('latin1');

function readTime(b: Uint8Array, t: Tlv): Date {
  const s = ascii(b, t);
  const m = t.tag === UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw new Error(`DER: unsupported time "${s}"`);
  let year = Number(m[1]);
  if (t.tag === UTC_TIME) year += year < 50 ? 2000 : 1900; // RFC 5280 4.1.2.5.1
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

export interface DerCertFacts {
  notBefore: Date;
  notAfter: Date;
  /** URI SANs in order, from every SAN extension (a duplicate extension cannot hide one). */
  uris: string[];
}

export function readCertDer(der: Uint8Array): DerCertFacts {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== SEQUENCE) throw new Error('DER: a certificate is a SEQUENCE');
  const tbs = children(der, cert)[0];
  if (!tbs || tbs.tag !== SEQUENCE) throw new Error('DER: no tbsCertificate');
  const f = children(der, tbs);
  const base = f[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  const validity = f[base + 3];
  if (!validity || validity.tag !== SEQUENCE) throw new Error('DER: no validity');
  const [nb, na] = children(der, validity);
  if (!nb || !na) throw new Error('DER: validity needs two times');
  const uris: string[] = [];
  const extWrap = f.slice(base + 6).find((x) => x.tag === EXTENSIONS);
  if (extWrap) {
    const seq = children(der, extWrap)[0];
    if (!seq || seq.tag !== SEQUENCE) throw new Error('DER: bad extensions');
    for (const ext of children(der, seq)) {
      const parts = children(der, ext);
      const oid = parts[0];
      if (oid?.tag !== OID || oid.end - oid.start !== SAN_OID.length || SAN_OID.some((v, i) => der[oid.start + i] !== v)) continue;
      const value = parts[1]?.tag === BOOLEAN ? parts[2] : parts[1];
      if (!value || value.tag !== OCTET_STRING) throw new Error('DER: bad SAN extension');
      const names = readTlv(der, value.start, value.end);
      if (names.tag !== SEQUENCE) throw new Error('DER: SAN is not a SEQUENCE');
      for (const n of children(der, names)) if (n.tag === URI_NAME) uris.push(ascii(der, n));
    }
  }
  return { notBefore: readTime(der, nb), notAfter: readTime(der, na), uris };
}

/** DER of the first CERTIFICATE block of a PEM text. */
export function pemToDer(pem: string): Buffer {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error('no CERTIFICATE block in PEM');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

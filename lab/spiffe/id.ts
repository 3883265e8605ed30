// SPIFFE ids and SNI names of Cilium identities. Pure: no crypto, no I/O.
// Cilium: SPIFFE id `spiffe://<trust domain>/identity/<id>`, SNI `<id>.<trust domain>`.

export const TRUST_DOMAIN = 'spiffe.cilium';

/** The mesh's trust domain (Istio's default): workload ids `spiffe://cluster.local/ns/<ns>/sa/<sa>`, from the mesh's own CA. */
export const MESH_TRUST_DOMAIN = 'cluster.local';

/** Cilium's NumericIdentity is a u32; 0 is invalid. */
export const MAX_IDENTITY = 0xffff_ffff;

/** SPIFFE path segments: letters, digits, '.', '-', '_' (and never '.' or '..' alone). */
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;

export function isIdentity(id: number): boolean {
  return Number.isInteger(id) && id > 0 && id <= MAX_IDENTITY;
}

function assertIdentity(id: number): void {
  if (!isIdentity(id)) throw new RangeError(`not a security identity: ${id} (expected an integer in 1..${MAX_IDENTITY})`);
}

function assertTrustDomain(td: string): void {
  if (!TRUST_DOMAIN_RE.test(td)) throw new RangeError(`not a SPIFFE trust domain: "${td}"`);
}

/** `spiffe://spiffe.cilium/identity/<id>` */
export function spiffeIdOf(identity: number, trustDomain = TRUST_DOMAIN): string {
  assertIdentity(identity);
  assertTrustDomain(trustDomain);
  return `spiffe://${trustDomain}/identity/${identity}`;
}

/** `spiffe://spiffe.cilium/node/<name>`: the id of a node agent towards the control plane. */
export function nodeSpiffeIdOf(nodeName: string, trustDomain = TRUST_DOMAIN): string {
  if (!SEGMENT_RE.test(nodeName) || nodeName === '.' || nodeName === '..') throw new RangeError(`node name "${nodeName}" is not a SPIFFE path segment`);
  assertTrustDomain(trustDomain);
  return `spiffe://${trustDomain}/node/${nodeName}`;
}

export function trustDomainId(trustDomain = TRUST_DOMAIN): string {
  assertTrustDomain(trustDomain);
  return `spiffe://${trustDomain}`;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The identity in a SPIFFE id of the form above; undefined for anything else (no leading zeros, no other paths). */
export function parseSpiffeIdentity(uri: string, trustDomain = TRUST_DOMAIN): number | undefined {
  const m = new RegExp(`^spiffe://${escapeRe(trustDomain)}/identity/([1-9][0-9]{0,9})$`).exec(uri);
  const id = m ? Number(m[1]) : NaN;
  return isIdentity(id) ? id : undefined;
}

/** `<id>.spiffe.cilium`: the SNI a client sends to ask for the remote identity's certificate. */
export function sniOf(identity: number, trustDomain = TRUST_DOMAIN): string {
  assertIdentity(identity);
  assertTrustDomain(trustDomain);
  return `${identity}.${trustDomain}`;
}

/** The identity named by an SNI of the form above; undefined for anything else. */
export function parseSniIdentity(sni: string, trustDomain = TRUST_DOMAIN): number | undefined {
  const m = new RegExp(`^([1-9][0-9]{0,9})\\.${escapeRe(trustDomain)}$`).exec(sni);
  const id = m ? Number(m[1]) : NaN;
  return isIdentity(id) ? id : undefined;
}

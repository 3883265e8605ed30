// IPv4 addresses and ranges as unsigned 32-bit numbers (the lab is IPv4-only).
// Pure: used by validation, the address plan and `mtless pod add`.

export interface Cidr {
  /** The address as written, as an unsigned 32-bit number (host bits included). */
  base: number;
  prefix: number;
}

/** Dotted-quad IPv4 → unsigned 32-bit number; undefined if malformed (leading zeros too: they read as octal elsewhere). */
export function parseIPv4(text: string): number | undefined {
  const octets = text.split('.');
  if (octets.length !== 4 || !octets.every((o) => /^(0|[1-9][0-9]{0,2})$/.test(o) && Number(o) <= 255)) return undefined;
  return octets.reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function formatIPv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join('.');
}

/** `a.b.c.d/n` → {base, prefix}; `base` keeps any host bits, so callers can complain about them. */
export function parseCIDR(text: string): Cidr | undefined {
  const match = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text);
  const base = match ? parseIPv4(match[1]!) : undefined;
  const prefix = Number(match?.[2]);
  return base === undefined || prefix > 32 ? undefined : { base, prefix };
}

export const cidrSize = (cidr: Cidr) => 2 ** (32 - cidr.prefix);
export const formatCIDR = (cidr: Cidr) => `${formatIPv4(cidr.base)}/${cidr.prefix}`;

/** The /24 of `podCIDR` that node number `nodeIndex` (0-based, in file order) owns. */
export function nodePodCIDR(podCIDR: string, nodeIndex: number): string {
  const cidr = parseCIDR(podCIDR);
  if (!cidr || cidr.prefix > 24 || nodeIndex < 0 || nodeIndex >= 2 ** (24 - cidr.prefix)) {
    throw new RangeError(`no /24 number ${nodeIndex} in ${podCIDR}`);
  }
  return `${formatIPv4(cidr.base - (cidr.base % cidrSize(cidr)) + nodeIndex * 256)}/24`;
}


/** The range with its host bits cleared. */
export function networkOf(cidr: Cidr): Cidr {
  return { base: cidr.base - (cidr.base % cidrSize(cidr)), prefix: cidr.prefix };
}

/** Host address number `index` of a range (1 = the first usable one). */
export function hostAddress(cidr: Cidr, index: number): string {
  return formatIPv4(networkOf(cidr).base + index);
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const n = parseIPv4(ip);
  const net = networkOf(cidr);
  return n !== undefined && n >= net.base && n < net.base + cidrSize(cidr);
}

/** parseCIDR for text that validation has already accepted. */
export function mustParseCIDR(text: string): Cidr {
  const cidr = parseCIDR(text);
  if (!cidr) throw new Error(`not an IPv4 CIDR: "${text}"`);
  return cidr;
}

/** Special-purpose IPv4 blocks (RFC 6890) that no lab network can use: the kernel refuses them as gateways, or gives them other meanings. */
export const UNUSABLE_RANGES: readonly { cidr: Cidr; text: string; what: string }[] = [
  ['0.0.0.0/8', 'this network'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
].map(([text, what]) => ({ cidr: mustParseCIDR(text!), text: text!, what: what! }));

/** True when the two ranges share an address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const x = networkOf(a);
  const y = networkOf(b);
  return x.base < y.base + cidrSize(y) && y.base < x.base + cidrSize(x);
}

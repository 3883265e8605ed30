// Small IPv4 helpers (the lab is IPv4-only).

export function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: "${ip}"`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  base: number;
  prefix: number;
}

export function parseCidr(cidr: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: "${cidr}"`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw new Error(`prefix length out of range: "${cidr}"`);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return { base: (ipToInt(m[1]!) & mask) >>> 0, prefix };
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= c.base && n < c.base + cidrSize(c);
}

export const formatCidr = (c: Cidr) => `${intToIp(c.base)}/${c.prefix}`;

/** Host address number `index` inside the range (index 1 = first usable). */
export const hostAddress = (c: Cidr, index: number) => intToIp(c.base + index);

// Questions about a capture, answered by tshark (the ground truth), for tests
// and scenarios. Each function is one tshark pass (~165 ms) or two in
// parallel; countMany() answers many counts in one pass.
//
// `iface` selects a link of a merged file (frame.interface_name). tshark then
// reads that link alone: Wireshark 4.0 keys TCP conversations without the
// interface, so in a merged file the copy of a segment on the second link is
// a "retransmission" whose TLS is not dissected (measured: handshake messages
// missing on one link or the other). Frame numbers still refer to `file`.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUTH_PORT } from '../abi/generated.ts';
import { readCapture, writeCapture } from './pcapng.ts';
import { dfString, onInterface, tsharkCounts, tsharkFields, captureInfo, type DissectOptions, type FileInfo } from './tshark.ts';

export { captureInfo, dfString, onInterface, type FileInfo, type DissectOptions };

export interface QueryOptions extends DissectOptions {
  /** Only frames of this link (interface name in a merged file). */
  iface?: string;
}

export class CaptureAssertionError extends Error {
  override name = 'CaptureAssertionError';
}

interface Scope {
  /** The file tshark reads: `file` itself, or a temporary copy holding one link. */
  file: string;
  /** Frame number in the scoped file → frame number in the caller's file. */
  frame: (n: number) => number;
}

/** Runs `fn` on the link `iface` alone (see the top of this file); on `file` as it is without `iface`. */
async function onLink<T>(file: string, iface: string | undefined, fn: (scope: Scope) => Promise<T>): Promise<T> {
  if (iface === undefined) return fn({ file, frame: (n) => n });
  const capture = readCapture(await readFile(file));
  const ids = capture.interfaces.flatMap((i, id) => (i.name === iface ? [id] : []));
  if (ids.length === 0) {
    throw new CaptureAssertionError(`${file} has no interface "${iface}" (it has: ${capture.interfaces.map((i) => i.name ?? '(unnamed)').join(', ')})`);
  }
  if (capture.interfaces.length === 1) return fn({ file, frame: (n) => n });
  const original: number[] = [];
  const packets = capture.packets.filter((p, i) => ids.includes(p.interfaceId) && original.push(i + 1));
  const remap = new Map(ids.map((id, k) => [id, k]));
  const dir = await mkdtemp(join(tmpdir(), 'mtless-link-'));
  try {
    const one = join(dir, 'link.pcapng');
    await writeFile(one, writeCapture({
      ...capture,
      interfaces: ids.map((id) => capture.interfaces[id]!),
      packets: packets.map((p) => ({ ...p, interfaceId: remap.get(p.interfaceId)! })),
    }));
    return await fn({ file: one, frame: (n) => original[n - 1] ?? n });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Frames matching a display filter. */
export async function countPackets(file: string, filter: string, opts: QueryOptions = {}): Promise<number> {
  return onLink(file, opts.iface, async ({ file }) => (await tsharkCounts(file, [filter], opts))[0]!);
}

/** Many counts in one tshark pass: `{syn: 'tcp.flags.syn == 1 && …', …}` → `{syn: 3, …}`. */
export async function countMany<K extends string>(file: string, filters: Record<K, string>, opts: QueryOptions = {}): Promise<Record<K, number>> {
  const keys = Object.keys(filters) as K[];
  const counts = await onLink(file, opts.iface, ({ file }) => tsharkCounts(file, keys.map((k) => filters[k]), opts));
  return Object.fromEntries(keys.map((k, i) => [k, counts[i]!])) as Record<K, number>;
}

/** The display filter for "this text is in a TCP or UDP payload, unencrypted". */
export function plaintextFilter(text: string): string {
  const s = dfString(text);
  return `tcp.payload contains ${s} || udp.payload contains ${s}`;
}

/** Whether `text` crosses the link in plaintext (in some TCP or UDP payload). */
export async function payloadContains(file: string, text: string, opts: QueryOptions = {}): Promise<boolean> {
  return (await countPackets(file, plaintextFilter(text), opts)) > 0;
}

export interface OnlyProtocolResult {
  ok: boolean;
  /** Frames on the link. */
  total: number;
  /** Up to 10 frames that do not match, with their protocol stacks. */
  offending: { frame: number; protocols: string }[];
  offendingCount: number;
}

/** Whether everything on a link matches `filter` (e.g. only `wg`, or only `tls || tcp.len == 0`). Empty links are ok. */
export async function onlyProtocol(file: string, iface: string, filter: string, opts: DissectOptions = {}): Promise<OnlyProtocolResult> {
  return onLink(file, iface, async (scope) => {
    const [[total], rows] = await Promise.all([
      tsharkCounts(scope.file, ['frame'], opts),
      tsharkFields(scope.file, `!(${filter})`, ['frame.number', 'frame.protocols'], opts),
    ]);
    return {
      ok: rows.length === 0,
      total: total!,
      offendingCount: rows.length,
      offending: rows.slice(0, 10).map((r) => ({ frame: scope.frame(Number(r['frame.number']![0])), protocols: r['frame.protocols']![0] ?? '' })),
    };
  });
}

/** Seconds from the first frame matching `filterA` to the first matching `filterB`; throws if either matches nothing. */
export async function timeBetween(file: string, filterA: string, filterB: string, opts: QueryOptions = {}): Promise<number> {
  return onLink(file, opts.iface, async (scope) => {
    const first = async (filter: string) => {
      const rows = await tsharkFields(scope.file, filter, ['frame.time_epoch'], opts);
      if (rows.length === 0) throw new CaptureAssertionError(`no frame in ${file} matches ${onInterface(filter, opts.iface)}`);
      return rows[0]!['frame.time_epoch']![0]!;
    };
    const [a, b] = await Promise.all([first(filterA), first(filterB)]);
    return secondsBetween(a, b);
  });
}

/** Exact difference of two tshark epoch times ("sec.nanoseconds"), in seconds. */
function secondsBetween(a: string, b: string): number {
  const ns = (t: string) => {
    const [s, f = ''] = t.split('.');
    return BigInt(s!) * 1_000_000_000n + BigInt((f + '000000000').slice(0, 9));
  };
  return Number(ns(b) - ns(a)) / 1e9;
}

export interface TlsCertificates {
  /** Every URI SAN seen in a Certificate message (SPIFFE IDs), in order, without repeats. */
  uris: string[];
  /** Per Certificate message: its frame and the URI SANs of its certificates. */
  certificates: { frame: number; uris: string[] }[];
}

/**
 * The URI SANs of the certificates in TLS handshakes on `port`. TLS 1.3
 * encrypts Certificate messages: this needs the key log, embedded in the
 * file (embedSecrets) or given as `keylog`. No certificates found = none
 * decrypted or none sent.
 */
export async function tlsCertificateUriSans(file: string, opts: { port?: number; keylog?: string; iface?: string } = {}): Promise<TlsCertificates> {
  return onLink(file, opts.iface, async (scope) => {
    const rows = await tsharkFields(scope.file, 'tls.handshake.type == 11', ['frame.number', 'x509ce.uniformResourceIdentifier'], {
      tlsPort: opts.port ?? AUTH_PORT, keylog: opts.keylog,
    });
    const certificates = rows.map((r) => ({ frame: scope.frame(Number(r['frame.number']![0])), uris: r['x509ce.uniformResourceIdentifier']! }));
    return { certificates, uris: [...new Set(certificates.flatMap((c) => c.uris))] };
  });
}

/** Fields of each matching frame; a field that occurs several times (stacked layers) is joined with ",". */
export async function frames(file: string, filter: string, fields: string[], opts: QueryOptions = {}): Promise<Record<string, string>[]> {
  return onLink(file, opts.iface, async (scope) => {
    const rows = await tsharkFields(scope.file, filter, fields, opts);
    return rows.map((r) => Object.fromEntries(fields.map((f) => [f, f === 'frame.number' ? String(scope.frame(Number(r[f]![0]))) : r[f]!.join(',')])));
  });
}

/** Interface names of a file, in order (capinfos). */
export async function interfaceNames(file: string): Promise<string[]> {
  return (await captureInfo(file)).interfaces.map((i) => i.name ?? '');
}

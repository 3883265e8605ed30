// tshark and capinfos behind a few typed calls. Each tshark run costs about
// 0.4 CPU s of start-up, so callers batch: many counts go through one
// io,stat pass, many fields through one -T fields pass. Counts, and fields
// whose text sharkd gives exactly, go to a long-lived sharkd instead
// (sharkd.ts) unless MTLAB_DISSECT says otherwise:
//   sharkd (default)  sharkd answers what it can; tshark the rest
//   tshark            tshark answers everything
//   both              both answer what sharkd can, and a difference is an
//                     error (the test suite runs so: every such answer a
//                     test asks for is held against tshark's)
import { readFile } from 'node:fs/promises';
import { run } from '../kernel/run.ts';
import { readCapture } from './pcapng.ts';
import { sharkdCounts, sharkdFields } from './sharkd.ts';

export interface DissectOptions {
  /** Decode this TCP port as TLS (`-d tcp.port==N,tls`): Cilium's auth port 4250 is not a TLS port to Wireshark. */
  tlsPort?: number;
  /** A TLS key log to decrypt with, when its secrets are not embedded in the file. */
  keylog?: string;
  /** Extra `-d` decode-as rules, e.g. `udp.port==51871,wg`. */
  decodeAs?: string[];
}

/** The `-d` rules of a question: the TLS port's, then its own. */
function decodeAsRules(opts: DissectOptions): string[] {
  return [...(opts.tlsPort !== undefined ? [`tcp.port==${opts.tlsPort},tls`] : []), ...(opts.decodeAs ?? [])];
}

function dissectArgs(opts: DissectOptions): string[] {
  return [...decodeAsRules(opts).flatMap((d) => ['-d', d]), ...(opts.keylog ? ['-o', `tls.keylog_file:${opts.keylog}`] : [])];
}

/** A display-filter string literal: quotes, backslashes and non-ASCII bytes escaped. */
export function dfString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    // Commas too: io,stat splits its filter list on them, even inside quotes.
    out += byte >= 0x20 && byte < 0x7f && c !== '"' && c !== '\\' && c !== ',' ? c : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

/** Restricts a filter to one interface of a (merged) capture. */
export function onInterface(filter: string, iface?: string): string {
  return iface === undefined ? filter : `(${filter}) && frame.interface_name == ${dfString(iface)}`;
}

// tshark escapes these in field values; a field's occurrences are joined by
// the aggregator, which cannot occur in any value we read.
const AGGREGATOR = '\x1f';
function unescapeField(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r' })[c] ?? c);
}

/**
 * One row per matching frame: each field's occurrences (several for stacked
 * layers or repeated options). sharkd answers when it can give tshark's exact
 * text for every field (sharkd.ts), under the same MTLAB_DISSECT rules as counts.
 */
export async function tsharkFields(file: string, filter: string, fields: string[], opts: DissectOptions = {}): Promise<Record<string, string[]>[]> {
  return answer(
    () => sharkdFields(file, filter, fields, { decodeAs: decodeAsRules(opts), keylog: opts.keylog }),
    () => tsharkOnlyFields(file, filter, fields, opts),
    // Field questions sharkd cannot give exactly are tshark's by design: only the others are compared.
    { differences: (fast, truth) => {
      if (JSON.stringify(fast) === JSON.stringify(truth)) return undefined;
      const at = truth.findIndex((row, i) => JSON.stringify(row) !== JSON.stringify(fast[i]));
      return `sharkd and tshark give different fields in ${file} (${JSON.stringify(opts)}) for ${filter}: ${fast.length} and ${truth.length} rows; row ${at}: sharkd ${JSON.stringify(fast[at])}, tshark ${JSON.stringify(truth[at])}`;
    } });
}

async function tsharkOnlyFields(file: string, filter: string, fields: string[], opts: DissectOptions): Promise<Record<string, string[]>[]> {
  const r = await run([
    'tshark', '-n', '-r', file, ...dissectArgs(opts), '-Y', filter, '-T', 'fields',
    '-E', 'separator=/t', '-E', 'occurrence=a', '-E', `aggregator=${AGGREGATOR}`, '-E', 'quote=n',
    ...fields.flatMap((f) => ['-e', f]),
  ]);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((line) => {
    const cols = line.split('\t');
    return Object.fromEntries(fields.map((f, i) => [f, cols[i] ? cols[i]!.split(AGGREGATOR).map(unescapeField) : []]));
  });
}

export type DissectEngine = 'sharkd' | 'tshark' | 'both';

export function dissectEngine(env: NodeJS.ProcessEnv = process.env): DissectEngine {
  const v = env.MTLAB_DISSECT ?? 'sharkd';
  if (v === 'sharkd' || v === 'tshark' || v === 'both') return v;
  throw new Error(`MTLAB_DISSECT=${v}: expected sharkd, tshark or both`);
}

/** sharkd's and tshark's answers differ (or sharkd gave none): the question, the file and both answers. */
export class DissectMismatchError extends Error {
  override name = 'DissectMismatchError';
}

/**
 * sharkd's answer or tshark's, as MTLAB_DISSECT says (see the top of this
 * file). A question sharkd refuses (a filter it cannot parse, a file it
 * cannot read) goes to tshark, whose error message says why. `missing`:
 * under `both`, sharkd must have answered, and this says what it did not.
 */
async function answer<T>(
  fast: () => Promise<T | undefined>, slow: () => Promise<T>, check: { missing?: string; differences: (fast: T, truth: T) => string | undefined },
): Promise<T> {
  const engine = dissectEngine();
  if (engine === 'tshark') return slow();
  const quick = await fast().catch(() => undefined);
  if (engine === 'sharkd' && quick !== undefined) return quick;
  const truth = await slow();
  if (engine === 'both') {
    if (quick === undefined) {
      if (check.missing) throw new DissectMismatchError(check.missing);
    } else {
      const differ = check.differences(quick, truth);
      if (differ) throw new DissectMismatchError(differ);
    }
  }
  return truth;
}

/** Frame counts for many display filters: sharkd, or one tshark io,stat pass (see the top of this file). */
export async function tsharkCounts(file: string, filters: string[], opts: DissectOptions = {}): Promise<number[]> {
  if (filters.length === 0) return [];
  return answer(
    () => sharkdCounts(file, filters, { decodeAs: decodeAsRules(opts), keylog: opts.keylog }),
    () => tsharkOnlyCounts(file, filters, opts),
    { missing: `sharkd could not answer for ${file} (${JSON.stringify(opts)}): ${filters.join(' | ')}`, differences: (fast, truth) => {
      const differ = filters.flatMap((f, i) => (fast[i] === truth[i] ? [] : [`${f}: sharkd ${fast[i]}, tshark ${truth[i]}`]));
      return differ.length > 0 ? `sharkd and tshark count differently in ${file} (${JSON.stringify(opts)}): ${differ.join('; ')}` : undefined;
    } });
}

async function tsharkOnlyCounts(file: string, filters: string[], opts: DissectOptions): Promise<number[]> {
  // io,stat splits its argument on commas; such filters get a pass of their own.
  const batched = filters.filter((f) => !f.includes(','));
  const alone = filters.filter((f) => f.includes(','));
  const [batch, ...single] = await Promise.all([
    batched.length > 0 ? ioStatCounts(file, batched, opts) : Promise.resolve([]),
    ...alone.map(async (f) => (await tsharkOnlyFields(file, f, ['frame.number'], opts)).length),
  ]);
  const counts = new Map<string, number>();
  batched.forEach((f, i) => counts.set(f, (batch as number[])[i]!));
  alone.forEach((f, i) => counts.set(f, single[i] as number));
  return filters.map((f) => counts.get(f)!);
}

async function ioStatCounts(file: string, filters: string[], opts: DissectOptions): Promise<number[]> {
  const r = await run(['tshark', '-n', '-r', file, ...dissectArgs(opts), '-q', '-z', `io,stat,0,${filters.join(',')}`]);
  // The one data row: "| 0.000 <> 0.033 |      3 |   294 |      1 |    98 |".
  const row = r.stdout.split('\n').find((l) => /^\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|/.test(l) || /^\|\s*Dur\s*\|/.test(l));
  if (!row) {
    if (!/\| Interval\s+\|/.test(r.stdout)) throw new Error(`cannot read tshark io,stat output for ${file}:\n${r.stdout}`);
    // No row when the capture spans no time: an empty file, but also one
    // packet, or several with one timestamp. Then count filter by filter.
    if (readCapture(await readFile(file)).packets.length === 0) return filters.map(() => 0);
    return Promise.all(filters.map(async (f) => (await tsharkOnlyFields(file, f, ['frame.number'], opts)).length));
  }
  const cells = row.split('|').map((c) => c.trim()).filter((c) => c.length > 0).slice(1);
  // Cells come in pairs per filter: frames, bytes.
  const counts = filters.map((_, i) => Number(cells[i * 2]));
  if (counts.some((n) => !Number.isInteger(n))) throw new Error(`cannot read tshark io,stat row "${row}"`);
  return counts;
}

export interface InterfaceInfo {
  name?: string;
  description?: string;
  encapsulation?: string;
  packets?: number;
}

export interface FileInfo {
  fileType: string;
  packets: number;
  interfaces: InterfaceInfo[];
  comments: string[];
  /** Decryption Secrets Blocks (embedded key logs). */
  secrets: number;
}

/** What capinfos makes of a file: it opens, its type, packets, named interfaces, capture comments and embedded secrets. */
export async function captureInfo(file: string): Promise<FileInfo> {
  const r = await run(['capinfos', '-t', '-c', '-I', '-k', '-D', file]);
  const info: FileInfo = { fileType: '', packets: 0, interfaces: [], comments: [], secrets: 0 };
  let current: InterfaceInfo | undefined;
  for (const line of r.stdout.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^File type:\s+(.*)$/.exec(line))) info.fileType = m[1]!;
    else if ((m = /^Number of packets:\s+(\d+)/.exec(line))) info.packets = Number(m[1]);
    else if ((m = /^Capture comment:\s*(.*)$/.exec(line))) info.comments.push(m[1]!);
    else if ((m = /^Number of decryption secrets in file:\s+(\d+)/.exec(line))) info.secrets = Number(m[1]);
    else if (/^Interface #\d+ info:/.test(line)) info.interfaces.push((current = {}));
    else if (current && (m = /^\s+Name = (.*)$/.exec(line))) current.name = m[1]!;
    else if (current && (m = /^\s+Description = (.*)$/.exec(line))) current.description = m[1]!;
    else if (current && (m = /^\s+Encapsulation = (.*)$/.exec(line))) current.encapsulation = m[1]!;
    else if (current && (m = /^\s+Number of packets = (\d+)$/.exec(line))) current.packets = Number(m[1]);
  }
  return info;
}

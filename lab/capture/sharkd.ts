// Frame counts and simple fields from sharkd, Wireshark's dissection engine
// as a long-lived process (Debian's wireshark-common, the package tshark
// itself depends on). A tshark run spends about 0.4 CPU s starting up,
// registering every dissector, before it reads a frame; a busy demo asked
// 93 such questions. One sharkd per set of dissect options pays that once, then
// answers `load` + `frames` in milliseconds. tshark.ts decides when it is
// used, and in `both` mode holds every answer against tshark's.
//
// Two things of sharkd 4.0 shape this module:
// - it caches a filter's result by the filter's text and keeps the cache
//   across loads, so the same text on the next file answers for the last one
//   (measured: 91 frames where the file has 87). Each load therefore gets
//   its own spelling of every filter (leading spaces, which the filter
//   grammar ignores), and a process is retired after MAX_LOADS loads;
// - it takes decode-as rules only from a configuration folder
//   (decode_as_entries), not from the command line: each option set gets a
//   temporary folder (WIRESHARK_CONFIG_DIR), removed when this process exits.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ResultPromise } from '../kernel/spawn.ts';
import { decodeAsEntryLine, LAB_DECODE_AS } from './profile.ts';

/** What to dissect with: the same meaning as tshark's `-d` rules and `-o tls.keylog_file`. */
export interface SharkdConfig {
  /** `tcp.port==4250,tls` rules. */
  decodeAs: readonly string[];
  keylog?: string;
}

/** The Decode As names of the lab's dissectors (tls → TLS …), from the lab's own profile table. */
const DECODE_AS_SHOWN = new Map(LAB_DECODE_AS.map((d) => [d.dissector, d.shown]));

/** decode_as_entries lines for tshark `-d` rules; undefined when a rule cannot be written there (then tshark answers). */
export function decodeAsEntries(rules: readonly string[]): string[] | undefined {
  const lines: string[] = [];
  for (const rule of rules) {
    const m = /^(tcp\.port|udp\.port)==(\d+),([a-z0-9_.]+)$/.exec(rule);
    const shown = m ? DECODE_AS_SHOWN.get(m[3]!) : undefined;
    if (!m || !shown) return undefined;
    lines.push(decodeAsEntryLine({ table: m[1] as 'tcp.port' | 'udp.port', port: Number(m[2]), shown }));
  }
  return lines;
}

/** A process is retired after this many loads: every load lengthens its filters' spelling by one space. */
const MAX_LOADS = 64;
/** Processes per option set: the demo's four scenarios rarely ask at the same moment. */
const MAX_PER_CONFIG = 2;

interface Waiting {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

class SharkdProcess {
  private readonly child: ResultPromise;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private buffered = '';
  private stderr = '';
  private dead?: Error;
  /** Jobs queued or running; a job is one load and its questions. */
  queued = 0;
  private loads = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(configDir: string) {
    this.child = spawn(['sharkd', '-'], { stdin: 'pipe', env: { WIRESHARK_CONFIG_DIR: configDir } });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    this.child.stdin!.on('error', () => {}); // a dead sharkd is reported through `dead`
    void this.child.then((r) => this.fail(new Error(`sharkd exited (${r.exitCode ?? r.signal}): ${this.stderr.trim().split('\n').at(-1) ?? ''}`)));
    this.idle(true);
  }

  get retired(): boolean {
    return this.dead !== undefined || this.loads + this.queued >= MAX_LOADS;
  }

  /** Frame counts of `filters` on `file`, as one job (nothing else loads in between). */
  count(file: string, filters: readonly string[]): Promise<number[]> {
    return this.job(file, (pad) => Promise.all(filters.map(async (f) => (await this.frameList(pad + f, ['frame.number'])).length)));
  }

  /** The `columns` (custom columns, every occurrence) of each frame matching `filter`, as one job. */
  columns(file: string, filter: string, columns: readonly string[]): Promise<string[][]> {
    return this.job(file, (pad) => this.frameList(pad + filter, columns));
  }

  private async frameList(filter: string, columns: readonly string[]): Promise<string[][]> {
    const a = await this.call('frames', { filter, ...Object.fromEntries(columns.map((c, i) => [`column${i}`, `${c}:0`])) });
    if (!Array.isArray(a)) throw new Error(`sharkd: no frame list for filter ${filter.trim()}`);
    return (a as { c: string[] }[]).map((row) => row.c);
  }

  /** Loads `file` and runs `ask` on it; `ask` gets this load's filter prefix (see the top of this file). */
  private job<T>(file: string, ask: (pad: string) => Promise<T>): Promise<T> {
    this.queued++;
    const job = this.chain.then(async () => {
      this.idle(false);
      try {
        const pad = ' '.repeat(++this.loads);
        await this.call('load', { file });
        return await ask(pad);
      } finally {
        this.queued--;
        if (this.queued === 0) this.idle(true);
      }
    });
    this.chain = job.catch(() => {});
    return job;
  }

  close(): void {
    this.child.stdin?.end();
  }

  private call(method: string, params: Record<string, unknown>): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdin!.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    });
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const answer = JSON.parse(line) as { id: number; result?: unknown; error?: { code: number; message: string } };
      const w = this.waiting.get(answer.id);
      if (!w) continue;
      this.waiting.delete(answer.id);
      if (answer.error) w.reject(new Error(`sharkd: ${answer.error.message} (${answer.error.code})`));
      else w.resolve(answer.result);
    }
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const w of this.waiting.values()) w.reject(this.dead);
    this.waiting.clear();
  }

  /** Idle, the child and its pipes do not keep this process alive (a CLI run exits when its work is done). */
  private idle(isIdle: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as ({ ref?: () => void; unref?: () => void } | null)[]) {
      if (isIdle) h?.unref?.();
      else h?.ref?.();
    }
  }
}

interface Pool {
  configDir: string;
  processes: SharkdProcess[];
}

const pools = new Map<string, Pool>();
let exitHook = false;

function poolFor(config: SharkdConfig, entries: string[]): Pool {
  const key = JSON.stringify([entries, config.keylog ?? '']);
  let pool = pools.get(key);
  if (!pool) {
    const configDir = mkdtempSync(join(tmpdir(), 'mtless-sharkd-'));
    writeFileSync(join(configDir, 'decode_as_entries'), entries.map((l) => l + '\n').join(''));
    // No colouring rules: sharkd colours every frame it loads, and the answers never need it.
    writeFileSync(join(configDir, 'colorfilters'), '');
    // No name resolution, as tshark -n: columns show numbers, never names.
    writeFileSync(join(configDir, 'preferences'), ['nameres.mac_name: FALSE', 'nameres.network_name: FALSE', 'nameres.transport_name: FALSE',
      ...(config.keylog ? [`tls.keylog_file: ${config.keylog}`] : [])].map((l) => l + '\n').join(''));
    pool = { configDir, processes: [] };
    pools.set(key, pool);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', closeSharkd);
    }
  }
  return pool;
}

/** Stops every sharkd and removes their configuration folders (also run when this process exits). */
export function closeSharkd(): void {
  for (const pool of pools.values()) {
    for (const p of pool.processes) p.close();
    rmSync(pool.configDir, { recursive: true, force: true });
  }
  pools.clear();
}

function processFor(config: SharkdConfig): SharkdProcess | undefined {
  const entries = decodeAsEntries(config.decodeAs);
  if (!entries) return undefined;
  const pool = poolFor(config, entries);
  for (const p of pool.processes) if (p.retired && p.queued === 0) p.close();
  pool.processes = pool.processes.filter((p) => !p.retired || p.queued > 0);
  let proc = pool.processes.filter((p) => !p.retired).sort((a, b) => a.queued - b.queued)[0];
  if (!proc || (proc.queued > 0 && pool.processes.filter((p) => !p.retired).length < MAX_PER_CONFIG)) {
    proc = new SharkdProcess(pool.configDir);
    pool.processes.push(proc);
  }
  return proc;
}

/**
 * Frame counts for `filters` on `file`, or undefined when sharkd cannot
 * answer this question (a decode-as rule it cannot take); throws on a
 * sharkd error (a filter it refuses, a file it cannot open).
 */
export async function sharkdCounts(file: string, filters: readonly string[], config: SharkdConfig): Promise<number[] | undefined> {
  return processFor(config)?.count(file, filters);
}

/**
 * Fields whose custom-column text is exactly tshark's `-T fields` text
 * (numbers, addresses, epoch times; with name resolution off): the column
 * joins a field's occurrences with "," as the lab's aggregator splits them.
 * Checked against tshark on real captures (MTLAB_DISSECT=both); any other
 * field is tshark's to answer.
 */
const COLUMN_FIELDS = new Set(['frame.number', 'frame.time_epoch', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst',
  'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport', 'tcp.stream', 'tcp.len', 'udp.length']);
/** Text fields that occur once per frame: exact as long as the text holds no "," or "\\". */
const COLUMN_TEXT_FIELDS = new Set(['frame.protocols', 'frame.interface_name']);
/**
 * Fields whose column shows a name where tshark prints a number: the name is
 * turned back into tshark's text through this table, and a name the table
 * lacks sends the question to tshark. Booleans show "Set"/"Not set"
 * (tshark: 1/0); ip.proto shows the protocol's name (tshark: its number).
 */
const SET_NOT_SET = { Set: '1', 'Not set': '0' };
const COLUMN_NAMED_FIELDS: Record<string, Record<string, string>> = {
  'tcp.flags.syn': SET_NOT_SET, 'tcp.flags.ack': SET_NOT_SET, 'tcp.flags.fin': SET_NOT_SET,
  'tcp.flags.reset': SET_NOT_SET, 'tcp.flags.push': SET_NOT_SET,
  'ip.proto': { ICMP: '1', TCP: '6', UDP: '17' },
};

/**
 * `-T fields` rows (each field's occurrences) from sharkd, or undefined when
 * sharkd cannot give tshark's exact text for them (a field outside the
 * lists above, a text with a "," in it, a name outside its table, a
 * decode-as rule it cannot take).
 */
export async function sharkdFields(file: string, filter: string, fields: readonly string[], config: SharkdConfig): Promise<Record<string, string[]>[] | undefined> {
  if (!fields.every((f) => COLUMN_FIELDS.has(f) || COLUMN_TEXT_FIELDS.has(f) || f in COLUMN_NAMED_FIELDS)) return undefined;
  const rows = await processFor(config)?.columns(file, filter, fields);
  if (!rows) return undefined;
  if (rows.some((c) => fields.some((f, i) => COLUMN_TEXT_FIELDS.has(f) && /[,\\]/.test(c[i] ?? '')))) return undefined;
  const answer: Record<string, string[]>[] = [];
  for (const c of rows) {
    const row: Record<string, string[]> = {};
    for (const [i, f] of fields.entries()) {
      const texts = c[i] ? c[i]!.split(',') : [];
      const names = COLUMN_NAMED_FIELDS[f];
      const values = names ? texts.map((t) => names[t]) : texts;
      if (values.some((v) => v === undefined)) return undefined;
      row[f] = values as string[];
    }
    answer.push(row);
  }
  return answer;
}

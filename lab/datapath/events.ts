// Reading the perf arrays (cilium_signals, cilium_events) through
// bpf/build/perf-reader, which prints one line per record. Facts that shape
// this code (kernel-notes.md and measured here):
// - Only one reader per perf array works: each reader puts its own perf fds
//   into the array's per-CPU slots, replacing the previous reader's. This
//   module refuses a second reader of the same pin within one process.
// - A record written while no reader is attached is lost (the BPF side's
//   bpf_perf_event_output fails with ENOENT), so wait for `ready` (the
//   reader's first line, once every CPU's buffer is in the array) before
//   sending the packets that should produce events.
// - Records are padded to 8 bytes (a 16-byte signal_msg arrives as 20
//   bytes): decoders read their struct's size and ignore the rest.
// - Before the reader, `bpftool -j map event_pipe` did this job: one JSON
//   array that grew forever, written through unbuffered stdio a few bytes at
//   a time, and a record's closing brace only once the next record began.
//   JsonObjectStream (below) cut records out of it; bpftool's batch mode
//   still writes that way for the map writer.
// - So a lab's flow relay (lab/observe, started by `up`) is the one reader
//   of every node's cilium_events, and streamFlows subscribes to it (its
//   raw record feed, below) when the lab has one: any number of scenario
//   readers and `mtless observe`s then see the same records.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { perfReaderClaimFile, relaySocket, stateDir } from '../core/names.ts';
import { isAlive } from '../core/processes.ts';
import { builtProgram } from '../core/repo.ts';

import { decodeFlowEvent, decodeSignalMsg, type FlowEvent, type SignalMsg } from '../abi/generated.ts';
import { mapPin } from './maps.ts';
import { spawn } from '../kernel/spawn.ts';

/** One record of a perf array. */
export interface PerfRecord {
  /** CPU whose buffer held the record. */
  cpu: number;
  /** The bytes the program sent (padded). Absent for a "lost" record. */
  data?: Buffer;
  /** Records the kernel dropped because the buffer was full. */
  lost?: number;
}

/**
 * Cuts complete top-level `{…}` objects out of a growing JSON array.
 *
 * bpftool's JSON writer prints an object's closing brace lazily, together
 * with the separator of the *next* record ("},{"), so a record would wait in
 * the pipe until another one arrives. At the end of each chunk, a record
 * whose last field is complete is therefore closed by hand and emitted at
 * once (`complete` decides when it is whole); its real brace is skipped later.
 */
export class JsonObjectStream {
  private pending = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private emittedEarly = false;
  /** Open arrays of the current record: no value of the record can end inside one. */
  private arrays = 0;

  constructor(
    private readonly onObject: (value: unknown) => void,
    private readonly complete: (value: Record<string, unknown>) => boolean = () => false,
  ) {}

  push(chunk: string): void {
    for (const c of chunk) {
      if (this.depth > 0) this.pending += c;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"' && this.depth > 0) this.inString = true;
      else if (c === '[' && this.depth > 0) this.arrays++;
      else if (c === ']' && this.depth > 0) this.arrays--;
      else if (c === '{') {
        if (this.depth === 0) {
          this.pending = '{';
          this.emittedEarly = false;
          this.arrays = 0;
        }
        this.depth++;
      } else if (c === '}' && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          const text = this.pending;
          this.pending = '';
          if (!this.emittedEarly) this.onObject(JSON.parse(text));
        }
      }
    }
    this.tryEarly();
  }

  private tryEarly(): void {
    // Inside an array (a record's `data` bytes, which bpftool writes a few at a time) nothing can be whole yet.
    if (this.depth !== 1 || this.arrays > 0 || this.inString || this.emittedEarly) return;
    const text = this.pending.trimEnd();
    // A value can end in ] } a digit, a quote or a literal (null/true/false).
    if (!/[\]}\d"le]$/.test(text)) return;
    let value: unknown;
    try {
      value = JSON.parse(text + '}');
    } catch {
      return; // not a whole record yet
    }
    if (this.complete(value as Record<string, unknown>)) {
      this.emittedEarly = true;
      this.onObject(value);
    }
  }
}

export interface EventStream {
  /** Resolves once the reader has attached to every CPU; rejects if it fails to. */
  readonly ready: Promise<void>;
  /** Stops the reader and waits for its last records; rethrows the first error of the callback. */
  stop(): Promise<void>;
  /** Records the kernel reported lost so far. */
  readonly lost: number;
}

/** Perf arrays this process is reading: a second reader would silently steal the first one's events. */
const activeReaders = new Set<string>();

/** How long the reader may take to attach to every CPU. */
const READY_TIMEOUT_MS = 10_000;

/** One line of perf-reader: `CPU HEX` or `CPU lost N` (pure). */
export function parseReaderLine(line: string): PerfRecord | undefined {
  const [cpu, second, third] = line.split(' ');
  if (cpu === undefined || second === undefined || !/^\d+$/.test(cpu)) return undefined;
  if (second === 'lost' && third !== undefined) return { cpu: Number(cpu), lost: Number(third) };
  if (third === undefined && /^([0-9a-f]{2})*$/.test(second)) return { cpu: Number(cpu), data: Buffer.from(second, 'hex') };
  return undefined;
}

/**
 * Streams every record of the perf array pinned at `pinPath` to `onRecord`
 * until stop(). Await `ready` before causing the events.
 */
export function streamEvents(pinPath: string, onRecord: (record: PerfRecord) => void, opts: { batchMs?: number } = {}): EventStream {
  if (activeReaders.has(pinPath)) {
    throw new Error(`${pinPath} already has a reader in this process (a perf array serves only one reader)`);
  }
  const reader = builtProgram('perf-reader');
  activeReaders.add(pinPath);

  const child = spawn([reader, pinPath, ...(opts.batchMs ? [String(opts.batchMs)] : [])]);
  let lost = 0;
  let stderr = '';
  let exited = false;
  // A throwing callback must not become an uncaught exception in a stream
  // handler: keep the first error and raise it from stop().
  let failure: unknown;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ready.catch(() => {}); // callers that never await `ready` must not crash the process
  const timer = setTimeout(() => settle.reject(new Error(`perf-reader on ${pinPath} not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
  timer.unref();
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    let start = 0;
    let nl;
    while ((nl = pending.indexOf('\n', start)) >= 0) {
      const line = pending.slice(start, nl);
      start = nl + 1;
      if (line === 'ready') {
        clearTimeout(timer);
        settle.resolve();
        continue;
      }
      const record = parseReaderLine(line);
      if (!record) {
        failure ??= new Error(`perf-reader on ${pinPath} printed an unexpected line: ${line.slice(0, 80)}`);
        continue;
      }
      if (record.lost) lost += record.lost;
      try {
        onRecord(record);
      } catch (error) {
        failure ??= error;
      }
    }
    pending = pending.slice(start);
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const done = child.then(() => {
    exited = true;
    clearTimeout(timer);
    activeReaders.delete(pinPath);
    settle.reject(new Error(`perf-reader on ${pinPath} exited: ${stderr.trim() || 'no message'}`));
  });

  return {
    ready,
    get lost() {
      return lost;
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await done;
      if (failure !== undefined) throw failure;
    },
  };
}

export interface ReadOptions {
  /** Runs once the reader is ready (send the packets here). */
  during?: () => Promise<unknown>;
  /** Stop as soon as this many records have arrived. */
  count?: number;
  /** Give up waiting for `count` after this long (default 2000 ms). */
  timeoutMs?: number;
  /** Without `count`: keep reading this long after `during` (default 100 ms). */
  settleMs?: number;
}

/** Collects the data records of a perf array around `during()`. */
export async function readEvents(pinPath: string, opts: ReadOptions = {}): Promise<Buffer[]> {
  const records: Buffer[] = [];
  let wake: () => void = () => {};
  const enough = new Promise<void>((resolve) => (wake = resolve));
  const stream = streamEvents(pinPath, (record) => {
    if (!record.data) return;
    records.push(record.data);
    if (opts.count !== undefined && records.length >= opts.count) wake();
  });
  try {
    await stream.ready;
    await opts.during?.();
    const wait = opts.count !== undefined ? (opts.timeoutMs ?? 2000) : (opts.settleMs ?? 100);
    const timer = new Promise<void>((resolve) => setTimeout(resolve, wait));
    await (opts.count !== undefined ? Promise.race([enough, timer]) : timer);
  } finally {
    await stream.stop();
  }
  return records;
}

// ---- typed wrappers --------------------------------------------------------------

/** Streams a node's auth signals. */
export function streamSignals(lab: string, node: string, onSignal: (signal: SignalMsg) => void): EventStream {
  return withReaderClaim(lab, node, 'cilium_signals', () =>
    streamEvents(mapPin(lab, node, 'cilium_signals'), (r) => r.data && onSignal(decodeSignalMsg(r.data))));
}

/**
 * Streams a node's flow events: through the lab's flow relay when it has
 * one, else straight from the perf array (a lab brought up without the
 * relay, a BPF_PROG_RUN test).
 */
export function streamFlows(lab: string, node: string, onFlow: (flow: FlowEvent) => void): EventStream {
  const onRecord = (r: PerfRecord) => r.data && onFlow(decodeFlowEvent(r.data));
  if (!existsSync(relaySocket(lab))) return streamFlowRecords(lab, node, onRecord);
  // A relay that died leaves its socket file: read directly then.
  return streamFromRelay(relaySocket(lab), node, onRecord, () => streamFlowRecords(lab, node, onRecord));
}

/**
 * Flow records come in batches, at most FLOW_BATCH_MS late (perf-reader's
 * BATCH_MS): a record that woke its reader at once woke it, the relay and
 * the relay's subscribers at the moment the same drop's signal woke the
 * agent (drop → signal p50 0.46 ms batched, ~1.0 ms not: `mtless bench auth`).
 * The relay's sort window (200 ms) is longer; signals are never batched.
 */
export const FLOW_BATCH_MS = 50;

/** A node's cilium_events records, read directly: the relay's own reader (it holds the claim). */
export function streamFlowRecords(lab: string, node: string, onRecord: (record: PerfRecord) => void): EventStream {
  return withReaderClaim(lab, node, 'cilium_events', () => streamEvents(mapPin(lab, node, 'cilium_events'), onRecord, { batchMs: FLOW_BATCH_MS }));
}

// ---- the relay's raw record feed -------------------------------------------------

/** What a subscriber of the feed sends: one line. */
export interface RecordFeedRequest {
  records: { node: string };
}

/**
 * What the relay answers, one JSON line each: `ready` once the subscription
 * holds (records from then on are delivered), then each record as it
 * arrives, or an error.
 */
export type RecordFeedLine =
  | { ready: true }
  | { cpu: number; data: string /* hex */ }
  | { cpu: number; lost: number }
  | { error: string };

export const recordToFeedLine = (r: PerfRecord): RecordFeedLine =>
  r.data ? { cpu: r.cpu, data: r.data.toString('hex') } : { cpu: r.cpu, lost: r.lost ?? 0 };

/**
 * Subscribes to the relay's records of one node. stop() half-closes the
 * connection and waits for the relay to close its end, so records it has
 * already sent are all delivered.
 */
function streamFromRelay(socketPath: string, node: string, onRecord: (record: PerfRecord) => void, fallback: () => EventStream): EventStream {
  let lost = 0;
  let failure: unknown;
  let delegate: EventStream | undefined;
  let connected = false;
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ready.catch(() => {});
  const socket = createConnection(socketPath);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('connect', () => {
    connected = true;
    socket.write(`${JSON.stringify({ records: { node } } satisfies RecordFeedRequest)}\n`);
  });
  socket.on('data', (chunk: string) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>;
      pending = pending.slice(nl + 1);
      if (line.ready) settle.resolve();
      else if (typeof line.error === 'string') settle.reject(new Error(`flow relay: ${line.error}`));
      else {
        const record: PerfRecord = { cpu: Number(line.cpu ?? -1), ...(typeof line.data === 'string' ? { data: Buffer.from(line.data, 'hex') } : {}), ...(typeof line.lost === 'number' ? { lost: line.lost } : {}) };
        if (record.lost) lost += record.lost;
        try {
          onRecord(record);
        } catch (error) {
          failure ??= error;
        }
      }
    }
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    if (!connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')) {
      try {
        delegate = fallback();
        delegate.ready.then(settle.resolve, settle.reject);
      } catch (error) {
        settle.reject(error as Error);
      }
    } else settle.reject(e);
  });
  void closed.then(() => delegate || settle.reject(new Error(`the flow relay closed the feed of ${node} before it was ready`)));
  return {
    ready,
    get lost() {
      return delegate ? delegate.lost : lost;
    },
    async stop() {
      if (delegate) return delegate.stop();
      socket.end();
      await closed;
      if (failure !== undefined) throw failure;
    },
  };
}

/**
 * A second reader of a perf array silently takes the events from the first
 * (and leaves it with none once it exits), across processes too. A claim file
 * in the lab's state directory turns that into a clear error.
 */
function withReaderClaim(lab: string, node: string, map: string, start: () => EventStream): EventStream {
  const dir = stateDir(lab);
  if (!existsSync(dir)) return start(); // not a lab made by `up` (e.g. a BPF_PROG_RUN test)
  const claim = perfReaderClaimFile(lab, node, map);
  try {
    writeFileSync(claim, String(process.pid), { flag: 'wx' });
  } catch {
    const holder = Number(readFileSync(claim, 'utf8'));
    if (holder !== process.pid && isAlive(holder)) {
      throw new Error(`${map} of ${lab}/${node} is already being read by process ${holder}; a perf array serves one reader (stop it first)`);
    }
    writeFileSync(claim, String(process.pid));
  }
  let stream: EventStream;
  try {
    stream = start();
  } catch (e) {
    rmSync(claim, { force: true });
    throw e;
  }
  return {
    ready: stream.ready,
    get lost() {
      return stream.lost;
    },
    stop: () => stream.stop().finally(() => rmSync(claim, { force: true })),
  };
}

export async function readSignals(lab: string, node: string, opts: ReadOptions = {}): Promise<SignalMsg[]> {
  return (await readEvents(mapPin(lab, node, 'cilium_signals'), opts)).map((b) => decodeSignalMsg(b));
}

export async function readFlows(lab: string, node: string, opts: ReadOptions = {}): Promise<FlowEvent[]> {
  return (await readEvents(mapPin(lab, node, 'cilium_events'), opts)).map((b) => decodeFlowEvent(b));
}

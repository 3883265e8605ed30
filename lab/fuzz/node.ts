// A throwaway node for the fuzzers: one network namespace with a few veths
// (their ifindexes stand for pods' lxc devices, as in
// tests/kernel/bpf-prog-run.test.ts), the node's datapath loaded and pinned,
// readers on its perf arrays, and a way to run many cases at once.
//
// A group of cases is ONE `bpftool batch` process pinned to one CPU: for
// every case its map writes, its program run(s), the dumps that show what
// the program left behind, the deletes that put the maps back, a look at
// cilium_metrics, and a sentinel run. The sentinel is a packet at a device
// of its own that always drops with 189 and signals, carrying the case's
// sequence number in skb->mark (hence in the event's source identity and the
// signal's remote identity). BPF_PROG_RUN emits perf records on the calling
// CPU's buffer, read in order, so each case's flow events and signals are
// exactly the records between its sentinel and the previous one. Cases never
// write the sentinel's keys (generate.ts keeps 198.18.0.0/15 and
// RESERVED_IDENTITY out of them).
//
// Metrics: a full dump of cilium_metrics costs ~0.6 ms in bpftool, more than
// the rest of a case. Every counter the datapath can touch is created (at
// 0) up front, so a case reads just the counter it should move (a lookup);
// one dump at the end of the group must then show no other counter moved.
// If one did, or a case moved its own counter by more or less than it
// should, the group runs again with a full dump per case, which says which
// case moved what.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labBpffsDir, nodeNetns } from '../core/names.ts';
import { run } from '../kernel/run.ts';
import { applyBatch, bytesFromJson, hexArgs, opLine, type MapOp } from '../datapath/bpftool.ts';
import { streamFlows, streamSignals, type EventStream } from '../datapath/events.ts';
import { buildDatapath, clockOffsetNs, loadNodeDatapath, readIfindexes, writeRuntimeConfig } from '../datapath/load.ts';
import { identityToMark } from '../datapath/mark.ts';
import { mapPin, progPin } from '../datapath/maps.ts';
import { skbContext, SKB_CTX_SIZE } from '../datapath/progrun.ts';
import {
  AUTH_TYPE_SPIRE,
  DIR_INGRESS,
  DIR_EGRESS,
  DROP_POLICY_AUTH_REQUIRED,
  DROP_REASON_TEXT,
  ENDPOINT_KEY_IPV4,
  EP_F_INGRESS_ENFORCED,
  IDENTITY_WORLD,
  IPCACHE_PREFIX_BITS_BEFORE_IP,
  IPPROTO_UDP,
  METRICS_KEY_CODEC,
  METRICS_VALUE_CODEC,
  encodeEndpointInfo,
  encodeEndpointKey,
  encodeMetricsKey,
  encodeMetricsValue,
  encodeIpcacheKey,
  encodePolicyEntry,
  encodePolicyKey,
  encodeRemoteEndpointInfo,
  type EndpointInfo,
  type FlowEvent,
  type IpcacheKey,
  type MapName,
  type PolicyEntry,
  type PolicyKey,
  type RemoteEndpointInfo,
  type SignalMsg,
} from '../abi/generated.ts';
import type { Window } from './compare.ts';
import { RESERVED_IDENTITY, TIME_MARGIN_NS } from './generate.ts';
import type { Clock, DatapathMaps, Entry, MetricsIncrement } from './model.ts';
import { buildFrame } from './packet.ts';

/** Every batch runs on this CPU (see the header comment). */
export const FUZZ_CPU = 0;
/** Sentinel sequence numbers go round after this many (more than a group's cases). */
const SENTINEL_SEQS = 4096;
/** The wait for a group's last sentinel records: a generous bound that only ends a broken run. */
const SENTINEL_TIMEOUT_MS = 30_000;

const SENTINEL_IP = '198.18.255.1';
const SENTINEL_PEER_IP = '198.18.255.2';
const ip16 = (ip: string) => Buffer.concat([Buffer.from(ip.split('.').map(Number)), Buffer.alloc(12)]);

/** Files a group's commands read (packets, contexts): added while building, written before the batch runs. */
export class FileSink {
  readonly files: [string, Buffer][] = [];
  constructor(private readonly dir: string) {}
  private byContent = new Map<string, string>();
  add(data: Buffer): string {
    const path = join(this.dir, String(this.files.length));
    this.files.push([path, data]);
    return path;
  }
  /** A path for the kernel to write (ctx_out); the item's result carries its bytes. */
  output(): string {
    const path = join(this.dir, `out-${this.outputs.length}`);
    this.outputs.push(path);
    return path;
  }
  readonly outputs: string[] = [];
  /** The same file for the same bytes (contexts repeat within a group). */
  shared(data: Buffer): string {
    const hex = data.toString('hex');
    let path = this.byContent.get(hex);
    if (!path) this.byContent.set(hex, (path = this.add(data)));
    return path;
  }
}

export type GroupBuilder<T> = (k: number, now: Clock, files: FileSink) => GroupItem<T>;

interface Span {
  from: number;
  to: number;
  metrics: number;
  seq: number;
}

export interface PreparedGroup<T> {
  dir: string;
  now: Clock;
  items: GroupItem<T>[];
  lines: string[];
  spans: Span[];
  dumpsAt: number;
  batchFile: string;
  lookups: boolean;
  count: number;
  build: GroupBuilder<T>;
  /** Each item's output files. */
  outputs: string[][];
}

/** One case of a group: its bpftool commands (without "bpftool"), and whatever the caller needs back. */
export interface GroupItem<T> {
  lines: string[];
  tag: T;
  /**
   * The counter the case should move, and by how much (read with a lookup),
   * or 'none' when it should move none (nothing read; the group's final dump
   * checks it); without it, cilium_metrics is dumped after the case.
   */
  metricsKey?: MetricsIncrement | 'none';
}

export interface ItemResult<T> {
  tag: T;
  /** The JSON output of each of the item's lines, in order. */
  outputs: unknown[];
  /** What the kernel wrote to the item's output files (FileSink.output()), in order. */
  written: Buffer[];
  flows: FlowEvent[];
  signals: SignalMsg[];
  /** Counters of cilium_metrics that changed during the item. */
  metrics: MetricsIncrement[];
}

export interface GroupResult<T> {
  items: ItemResult<T>[];
  window: Window;
  /** Map entries a group left behind (deleted again); non-empty only after a mismatch. */
  leftovers: string[];
}

/** A command of the batch failed: bpftool stops there. */
export class BatchError extends Error {
  constructor(message: string, readonly itemIndex: number | undefined) {
    super(message);
    this.name = 'BatchError';
  }
}

interface DumpRecord {
  key: (string | number)[];
  value?: (string | number)[];
  values?: { cpu: number; value: (string | number)[] }[];
}

/** Decodes the output of a `map dump` line. */
export function decodeDump<K, V>(output: unknown, key: { decode: (b: Buffer) => K }, value: { decode: (b: Buffer) => V }): Entry<K, V>[] {
  return ((output ?? []) as DumpRecord[]).map((r) => ({ key: key.decode(bytesFromJson(r.key)), value: value.decode(bytesFromJson(r.value ?? [])) }));
}

export interface FuzzNodeOptions {
  /** The throwaway lab's name (its namespace and pin folder are removed before and after). */
  lab: string;
  /** Devices cases may use (besides lo and the sentinel's). */
  devices?: number;
}

const NODE = 'n1';
const CLEANED_MAPS: MapName[] = ['cilium_lxc', 'cilium_ipcache', 'cilium_node_map', 'cilium_policy', 'cilium_auth_map', 'cilium_ct4'];

export class FuzzNode {
  readonly node = NODE;
  readonly netns: string;
  /** Unix ns - monotonic ns, as written to the runtime config. */
  unixOffsetNs = 0n;
  /** ifindexes cases may use. */
  ifindexes: number[] = [];
  sentinelIfindex = 0;
  private flows: FlowEvent[] = [];
  private signals: SignalMsg[] = [];
  private streams: EventStream[] = [];
  private tmp = '';
  private seq = 0;
  private baseline = new Map<string, { packets: bigint; bytes: bigint }>();
  private sentinelFrame: Buffer = Buffer.alloc(0);
  private sentinelPacketFile = '';
  private sentinelKeys = new Set<string>();
  private waiters: (() => void)[] = [];
  /** Counters created up front (hex keys), which a lookup can read. */
  private countersKnown = new Set<string>();
  private sentinelContexts = new Set<number>();

  private constructor(readonly lab: string) {
    this.netns = nodeNetns(lab, NODE);
  }

  static async create(opts: FuzzNodeOptions): Promise<FuzzNode> {
    const n = new FuzzNode(opts.lab);
    try {
      await n.setUp(opts.devices ?? 4);
    } catch (error) {
      await n.close();
      throw error;
    }
    return n;
  }

  /** The sentinel's map entries: an endpoint that requires auth from everyone, and its peer's ipcache entry. */
  sentinelMaps(): Pick<DatapathMaps, 'endpoints' | 'ipcache' | 'policy'> {
    const endpoint: Entry<number, EndpointInfo> = { key: this.sentinelIfindex, value: { secIdentity: RESERVED_IDENTITY, ipv4: SENTINEL_IP, flags: EP_F_INGRESS_ENFORCED } };
    const ipcache: Entry<IpcacheKey, RemoteEndpointInfo> = {
      key: { prefixlen: IPCACHE_PREFIX_BITS_BEFORE_IP + 32, clusterId: 0, family: ENDPOINT_KEY_IPV4, ip: ip16(SENTINEL_PEER_IP) },
      value: { secIdentity: IDENTITY_WORLD, tunnelEndpoint: Buffer.alloc(16), key: 0, flags: 0 },
    };
    const policy: Entry<PolicyKey, PolicyEntry> = {
      key: { epIfindex: this.sentinelIfindex, secLabel: 0, dport: 0, protocol: 0, direction: DIR_INGRESS },
      value: { flags: 0, authType: AUTH_TYPE_SPIRE, packets: 0n, bytes: 0n },
    };
    return { endpoints: [endpoint], ipcache: [ipcache], policy: [policy] };
  }

  private async setUp(devices: number): Promise<void> {
    await this.removeLeftovers();
    await buildDatapath();
    await run(['ip', 'netns', 'add', this.netns]);
    // veth pairs: ends fz0..fzN; the last one is the sentinel's.
    const names = Array.from({ length: devices + 1 + ((devices + 1) % 2) }, (_, i) => `fz${i}`);
    for (let i = 0; i < names.length; i += 2) await run(['ip', 'link', 'add', names[i]!, 'type', 'veth', 'peer', 'name', names[i + 1]!], { netns: this.netns });
    const links = await readIfindexes(this.netns);
    const ifindex = (name: string) => links.get(name)!;
    this.ifindexes = names.slice(0, devices).map(ifindex);
    this.sentinelIfindex = ifindex(names[devices]!);
    await loadNodeDatapath(this.lab, NODE);
    this.unixOffsetNs = clockOffsetNs();
    await writeRuntimeConfig(this.lab, NODE, { utimeOffsetNs: this.unixOffsetNs, policyMode: 'per-packet' });

    const s = this.sentinelMaps();
    const ops: MapOp[] = [
      { op: 'update', pin: this.pin('cilium_lxc'), key: encodeEndpointKey({ ifindex: s.endpoints[0]!.key }), value: encodeEndpointInfo(s.endpoints[0]!.value) },
      { op: 'update', pin: this.pin('cilium_ipcache'), key: encodeIpcacheKey(s.ipcache[0]!.key), value: encodeRemoteEndpointInfo(s.ipcache[0]!.value) },
      { op: 'update', pin: this.pin('cilium_policy'), key: encodePolicyKey(s.policy[0]!.key), value: encodePolicyEntry(s.policy[0]!.value) },
    ];
    for (const reason of [0, ...Object.keys(DROP_REASON_TEXT).map(Number)]) {
      for (const dir of [DIR_INGRESS, DIR_EGRESS]) {
        const key = encodeMetricsKey({ reason, dir });
        this.countersKnown.add(key.toString('hex'));
        ops.push({ op: 'update', pin: this.pin('cilium_metrics'), key, value: encodeMetricsValue({ packets: 0n, bytes: 0n }) });
      }
    }
    await applyBatch(ops);
    for (const op of ops) this.sentinelKeys.add(`${op.pin} ${op.key.toString('hex')}`);

    this.tmp = await mkdtemp(join(tmpdir(), 'mtless-fuzz-'));
    this.sentinelFrame = buildFrame({ src: SENTINEL_PEER_IP, dst: SENTINEL_IP, protocol: IPPROTO_UDP, sport: 9, dport: 9 });
    this.sentinelPacketFile = join(this.tmp, 'sentinel');
    await writeFile(this.sentinelPacketFile, this.sentinelFrame);

    const wake = () => {
      for (const w of this.waiters.splice(0)) w();
    };
    this.streams.push(streamFlows(this.lab, NODE, (f) => (this.flows.push(f), wake())));
    this.streams.push(streamSignals(this.lab, NODE, (s) => (this.signals.push(s), wake())));
    await Promise.all(this.streams.map((st) => st.ready));
    this.baseline = await this.readMetrics();
  }

  pin(map: MapName): string {
    return mapPin(this.lab, NODE, map);
  }

  progPin(prog: 'cil_from_container' | 'cil_to_container'): string {
    return progPin(this.lab, NODE, prog);
  }

  clock(): Clock {
    const mono = process.hrtime.bigint();
    return { monoNs: mono, unixNs: mono + this.unixOffsetNs };
  }

  /** `prog run` of a pinned program on a packet file with a ctx file (and where to write ctx_out). */
  static progRunLine(prog: string, packetFile: string, ctxFile: string, ctxOutFile?: string): string {
    const out = ctxOutFile ? ` ctx_out ${ctxOutFile} ctx_size_out ${SKB_CTX_SIZE}` : '';
    return `prog run pinned ${prog} data_in ${packetFile} ctx_in ${ctxFile}${out} repeat 1`;
  }

  static mapLine(op: MapOp): string {
    return opLine(op);
  }

  /**
   * Runs a group of cases in one bpftool batch: `count` items, item k made
   * by `build(k, now, files)`, where `now` is the clock the cases' relative
   * times are made absolute with and `files` takes the files their commands
   * read.
   */
  async runGroup<T>(count: number, build: GroupBuilder<T>): Promise<GroupResult<T>> {
    return this.execute(await this.prepare(count, build));
  }

  /**
   * Builds a group and writes its files, yielding now and then so the event
   * readers keep up: a caller may prepare the next group while the current
   * one runs (see execute()).
   */
  async prepare<T>(count: number, build: GroupBuilder<T>, lookups = true): Promise<PreparedGroup<T>> {
    const dir = await mkdtemp(join(this.tmp, 'g-'));
    const files = new FileSink(dir);
    const now = this.clock();
    const items: GroupItem<T>[] = [];
    const lines: string[] = [];
    const spans: Span[] = [];
    const outputSpans: [number, number][] = [];
    for (let k = 0; k < count; k++) {
      if (k % 25 === 24) await new Promise((resolve) => setImmediate(resolve));
      const outputsFrom = files.outputs.length;
      const item = build(k, now, files);
      items.push(item);
      outputSpans.push([outputsFrom, files.outputs.length]);
      const from = lines.length;
      lines.push(...item.lines);
      const to = lines.length;
      const want = lookups ? item.metricsKey : undefined;
      const counter = want && want !== 'none' ? encodeMetricsKey(want) : undefined;
      let metrics = lines.length;
      if (want === 'none') metrics = -1;
      else if (counter && this.countersKnown.has(counter.toString('hex'))) lines.push(`map lookup pinned ${this.pin('cilium_metrics')} key ${hexArgs(counter).join(' ')}`);
      else lines.push(`map dump pinned ${this.pin('cilium_metrics')}`);
      const seq = this.nextSeq();
      lines.push(FuzzNode.progRunLine(this.progPin('cil_to_container'), this.sentinelPacketFile, await this.sentinelContext(seq)));
      spans.push({ from, to, metrics, seq });
    }
    const dumpsAt = lines.length;
    for (const m of CLEANED_MAPS) lines.push(`map dump pinned ${this.pin(m)}`);
    lines.push(`map dump pinned ${this.pin('cilium_metrics')}`);
    const batchFile = join(dir, 'batch');
    await Promise.all([...files.files.map(([p, d]) => writeFile(p, d)), writeFile(batchFile, lines.join('\n') + '\n')]);
    return { dir, now, items, lines, spans, dumpsAt, batchFile, lookups, count, build, outputs: outputSpans.map(([a, b]) => files.outputs.slice(a, b)) };
  }

  /** Drops a prepared group that will not run. */
  async discard<T>(g: PreparedGroup<T>): Promise<void> {
    await rm(g.dir, { recursive: true, force: true });
  }

  /** Runs a prepared group (once the one before it has finished) and reads what each case left behind. */
  async execute<T>(g: PreparedGroup<T>): Promise<GroupResult<T>> {
    let r: GroupResult<T> & { countersUnaccounted: boolean };
    try {
      r = await this.runBatch(g);
    } finally {
      await rm(g.dir, { recursive: true, force: true });
    }
    if (!r.countersUnaccounted) return r;
    // Some case moved a counter it should not have: run again, dumping all counters after each case.
    return this.execute(await this.prepare(g.count, g.build, false));
  }

  private async runBatch<T>(g: PreparedGroup<T>): Promise<GroupResult<T> & { countersUnaccounted: boolean }> {
    const { items, lines, spans, dumpsAt, now } = g;
    const startMonoNs = process.hrtime.bigint();
    const r = await run(['taskset', '-c', String(FUZZ_CPU), 'bpftool', '-j', 'batch', 'file', g.batchFile], { netns: this.netns, okCodes: 'any', timeout: 600_000 });
    const endMonoNs = process.hrtime.bigint();
    const answers = parseBatchOutput(r.stdout);
    if (r.exitCode !== 0) {
      const failedAt = answers.findIndex((a) => a.output && typeof a.output === 'object' && 'error' in (a.output as object));
      const at = failedAt >= 0 ? failedAt : answers.length;
      const item = spans.findIndex((s) => at < s.to + 2);
      const why = failedAt >= 0 ? String((answers[failedAt]!.output as { error: unknown }).error) : r.stderr.trim();
      await this.flush();
      throw new BatchError(`bpftool batch failed at "${lines[at] ?? '?'}" (case ${item} of the group): ${why}`, item >= 0 ? item : undefined);
    }
    if (endMonoNs - now.monoNs > TIME_MARGIN_NS) {
      await this.flush();
      throw new Error(`a group took ${(Number(endMonoNs - now.monoNs) / 1e9).toFixed(1)} s from its "now", longer than the ${Number(TIME_MARGIN_NS) / 1e9} s its expiry times are kept from it: use smaller groups`);
    }
    const lastSeq = spans[spans.length - 1]?.seq;
    if (lastSeq !== undefined) await this.waitForSentinel(lastSeq);
    const lost = this.streams.reduce((n, s) => n + s.lost, 0);
    if (lost) throw new Error(`${lost} perf records were lost (the readers fell behind): use smaller groups`);

    const flows = this.splitRecords(this.flows.splice(0), spans.map((s) => s.seq), (f) => (f.ifindex === this.sentinelIfindex ? f.srcIdentity : undefined));
    const signals = this.splitRecords(this.signals.splice(0), spans.map((s) => s.seq), (s) =>
      s.auth.localSecLabel === RESERVED_IDENTITY && s.auth.remoteNodeId === 0 ? s.auth.remoteSecLabel : undefined);
    const written = await Promise.all(g.outputs.map((paths) => Promise.all(paths.map((p) => readFile(p)))));
    const results: ItemResult<T>[] = items.map((item, k) => {
      const span = spans[k]!;
      const metrics = span.metrics < 0 ? [] : this.metricsDelta(answers[span.metrics]!.output);
      this.countSentinel();
      return { tag: item.tag, outputs: answers.slice(span.from, span.to).map((a) => a.output), written: written[k]!, flows: flows[k]!, signals: signals[k]!, metrics };
    });
    const leftovers = await this.leftovers(answers.slice(dumpsAt, dumpsAt + CLEANED_MAPS.length).map((a) => a.output));
    // Every counter must be where the cases' own readings and the sentinels
    // left it, and a case that moved its counter by other than it should may
    // have been moved by an earlier case.
    const counters = this.metricsRows(answers[dumpsAt + CLEANED_MAPS.length]!.output);
    const countersUnaccounted = results.some((res, k) => {
      const want = g.lookups ? items[k]!.metricsKey : undefined;
      return want && want !== 'none' && !(res.metrics.length === 1 && res.metrics[0]!.packets === want.packets && res.metrics[0]!.bytes === want.bytes);
    }) || [...counters].some(([k, row]) => {
      const known = this.baseline.get(k) ?? { packets: 0n, bytes: 0n };
      return row.packets !== known.packets || row.bytes !== known.bytes;
    });
    this.baseline = this.sums(counters);
    return { items: results, window: { startMonoNs, endMonoNs, unixOffsetNs: this.unixOffsetNs }, leftovers, countersUnaccounted };
  }

  /** The ctx of sentinel run `seq` (written once, reused every SENTINEL_SEQS sentinels). */
  private async sentinelContext(seq: number): Promise<string> {
    const path = join(this.tmp, `sentinel-ctx-${seq}`);
    if (!this.sentinelContexts.has(seq)) {
      await writeFile(path, skbContext({ ifindex: this.sentinelIfindex, mark: identityToMark(seq) }));
      this.sentinelContexts.add(seq);
    }
    return path;
  }

  private nextSeq(): number {
    this.seq = (this.seq % SENTINEL_SEQS) + 1;
    return this.seq;
  }

  /** Splits records at the sentinels': records before the sentinel of sequence n belong to that case. */
  private splitRecords<R>(records: R[], seqs: number[], sentinelSeq: (r: R) => number | undefined): R[][] {
    const out: R[][] = seqs.map(() => []);
    let k = 0;
    for (const r of records) {
      const seq = sentinelSeq(r);
      if (seq === undefined) {
        if (k >= seqs.length) throw new Error('a perf record arrived after the last sentinel');
        out[k]!.push(r);
        continue;
      }
      if (seq !== seqs[k]) throw new Error(`sentinel ${seq} arrived where ${seqs[k]} was due: records out of order`);
      k++;
    }
    if (k !== seqs.length) throw new Error(`${seqs.length - k} sentinels missing`);
    return out;
  }

  private async waitForSentinel(seq: number): Promise<void> {
    const deadline = Date.now() + SENTINEL_TIMEOUT_MS;
    const seen = () =>
      this.flows.some((f) => f.ifindex === this.sentinelIfindex && f.srcIdentity === seq && f.dropReason === DROP_POLICY_AUTH_REQUIRED) &&
      this.signals.some((s) => s.auth.localSecLabel === RESERVED_IDENTITY && s.auth.remoteSecLabel === seq);
    while (!seen()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the sentinel records of sequence ${seq} did not arrive within ${SENTINEL_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  private metricsRows(output: unknown): Map<string, { reason: number; dir: number; packets: bigint; bytes: bigint }> {
    const rows = new Map<string, { reason: number; dir: number; packets: bigint; bytes: bigint }>();
    for (const r of (output ?? []) as DumpRecord[]) {
      const key = METRICS_KEY_CODEC.decode(bytesFromJson(r.key));
      let packets = 0n;
      let bytes = 0n;
      for (const v of r.values ?? []) {
        const value = METRICS_VALUE_CODEC.decode(bytesFromJson(v.value));
        packets += value.packets;
        bytes += value.bytes;
      }
      rows.set(`${key.reason}/${key.dir}`, { reason: key.reason, dir: key.dir, packets, bytes });
    }
    return rows;
  }

  /** The change of the counters read since they were last read (and the sentinels since then counted). */
  private metricsDelta(output: unknown): MetricsIncrement[] {
    // A lookup answers with one record, a dump with all of them.
    const rows = this.metricsRows(Array.isArray(output) ? output : [output]);
    const delta: MetricsIncrement[] = [];
    for (const [k, row] of rows) {
      const before = this.baseline.get(k) ?? { packets: 0n, bytes: 0n };
      if (row.packets !== before.packets || row.bytes !== before.bytes) {
        delta.push({ reason: row.reason, dir: row.dir, packets: row.packets - before.packets, bytes: row.bytes - before.bytes });
      }
      this.baseline.set(k, { packets: row.packets, bytes: row.bytes });
    }
    return delta;
  }

  /** The sentinel after each case is one more 189 ingress drop. */
  private countSentinel(): void {
    const sentinelKey = `${DROP_POLICY_AUTH_REQUIRED}/${DIR_INGRESS}`;
    const s = this.baseline.get(sentinelKey) ?? { packets: 0n, bytes: 0n };
    this.baseline.set(sentinelKey, { packets: s.packets + 1n, bytes: s.bytes + BigInt(this.sentinelFrame.length) });
  }

  private sums(rows: ReturnType<FuzzNode['metricsRows']>): Map<string, { packets: bigint; bytes: bigint }> {
    return new Map([...rows].map(([k, v]) => [k, { packets: v.packets, bytes: v.bytes }]));
  }

  private async readMetrics(): Promise<Map<string, { packets: bigint; bytes: bigint }>> {
    const r = await run(['bpftool', '-j', 'map', 'dump', 'pinned', this.pin('cilium_metrics')]);
    return this.sums(this.metricsRows(JSON.parse(r.stdout || '[]')));
  }

  /** Entries of the cleaned maps that are not the sentinel's: deleted, and named for the report. */
  private async leftovers(dumps: unknown[]): Promise<string[]> {
    const ops: MapOp[] = [];
    CLEANED_MAPS.forEach((m, i) => {
      const pin = this.pin(m);
      for (const r of (dumps[i] ?? []) as DumpRecord[]) {
        const key = bytesFromJson(r.key);
        if (!this.sentinelKeys.has(`${pin} ${key.toString('hex')}`)) ops.push({ op: 'delete', pin, key });
      }
    });
    await applyBatch(ops);
    return ops.map((o) => `${o.pin.split('/').pop()} ${o.key.toString('hex')}`);
  }

  /**
   * After a failed batch: every map back to the sentinel's entries only, the
   * records the batch raised drained (a lone sentinel closes them), the
   * counters read afresh.
   */
  async flush(): Promise<string[]> {
    const dumps = [];
    for (const m of CLEANED_MAPS) dumps.push(JSON.parse((await run(['bpftool', '-j', 'map', 'dump', 'pinned', this.pin(m)])).stdout || '[]'));
    const left = await this.leftovers(dumps);
    const seq = this.nextSeq();
    await run(['taskset', '-c', String(FUZZ_CPU), 'bpftool', ...FuzzNode.progRunLine(this.progPin('cil_to_container'), this.sentinelPacketFile, await this.sentinelContext(seq)).split(' ')], { netns: this.netns });
    await this.waitForSentinel(seq);
    this.flows.splice(0);
    this.signals.splice(0);
    this.baseline = await this.readMetrics();
    return left;
  }

  private async removeLeftovers(): Promise<void> {
    await rm(labBpffsDir(this.lab), { recursive: true, force: true });
    await run(['ip', 'netns', 'del', this.netns], { okCodes: [1] });
  }

  async close(): Promise<void> {
    await Promise.all(this.streams.splice(0).map((s) => s.stop().catch(() => {})));
    if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
    await this.removeLeftovers();
  }
}

/** bpftool -j batch's answers: one array of {command, output}; a failed batch may stop mid-array. */
export function parseBatchOutput(stdout: string): { command: string[]; output: unknown }[] {
  const text = stdout.trim();
  if (!text) return [];
  try {
    return JSON.parse(text) as { command: string[]; output: unknown }[];
  } catch {
    // Cut at the last complete answer.
    for (let end = text.lastIndexOf('},{'); end > 0; end = text.lastIndexOf('},{', end - 1)) {
      try {
        return JSON.parse(text.slice(0, end + 1) + ']') as { command: string[]; output: unknown }[];
      } catch {
        continue;
      }
    }
    return [];
  }
}

// The flow relay: one per lab, like hubble-relay in front of the nodes'
// Hubble servers. A perf array serves one reader, so the relay is that
// reader for every node's cilium_events; it names the ends of each flow
// (pods, namespaces, identity labels) from the control plane's snapshot,
// tails the agents' logs for their auth events, merges everything by time,
// keeps the last events of each node in a ring (--since, --last), and
// serves any number of observers on a unix socket (lab/observe/protocol.ts),
// as well as the raw record feed that streamFlows reads
// (lab/datapath/events.ts), so scenarios and `mtless observe` see the same
// records at the same time.
import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { decodeFlowEvent } from '../abi/generated.ts';
import { controlState } from '../control/client.ts';
import type { ClusterSnapshot } from '../control/registry.ts';
import { daemonLogFile, relayDir, stateFile } from '../core/names.ts';
import { AGENT } from '../core/daemons.ts';
import type { Log } from '../core/log.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { readState } from '../core/state.ts';
import { recordToFeedLine, streamFlowRecords, type EventStream, type PerfRecord, type RecordFeedRequest } from '../datapath/events.ts';
import type { Topology } from '../topology/model.ts';
import { mergeByTime, Ring, SortBuffer } from './buffers.ts';
import { Directory, snapshotFromTopology } from './directory.ts';
import { matchesAny, selectHistory } from './filter.ts';
import { authEvent, eventTimeNs, flowEvent, lostEvent, type ObservedEvent } from './hubble.ts';
import type { ObserveRequest, RelayControl } from './protocol.ts';

export interface RelayConfig {
  lab: string;
  nodes: string[];
  socket: string;
  /** Events kept per node (Hubble's default buffer holds 4095 flows). */
  ringSize: number;
  /** How long an event waits for earlier ones from other nodes (hubble-relay's sort buffer drain timeout). */
  sortWindowMs: number;
  /** The lab's topology: names pods and policies when there is no control plane (up --no-agents). */
  topology?: Topology;
}

export const DEFAULT_RING_SIZE = 4095;
export const DEFAULT_SORT_WINDOW_MS = 200;

/**
 * The agent logs are read LOG_SETTLE_MS after inotify says they grew
 * (fs.watch), and every LOG_POLL_MS in case a watch is lost (a log
 * replaced); the sorter is drained when its oldest event's window ends,
 * not every 20 ms. An agent logs auth-requested as its handshake starts:
 * the settle time moves the relay's reads (eight file operations on
 * libuv's threads) after the handshake, and one read takes both of its
 * lines. It is far inside the sort window, so the order holds. (A lab
 * without a relay authenticated ~0.2 floors faster in `mtless bench auth`;
 * most of that was the flow records' wake-ups, see FLOW_BATCH_MS.)
 * Timers that fired every 20 and 50 ms cost each idle relay about 1 % of a CPU.
 */
const LOG_SETTLE_MS = 25;
const LOG_POLL_MS = 500;
const SNAPSHOT_REFRESH_MS = 1000;
/**
 * The snapshot is fetched again only while the lab's state file has changed
 * in the last few seconds (pods come and go through it), and every 10 s
 * regardless: a fetch every second kept the relay and the control plane
 * busy in every idle lab (measured: 1.4 % and 1.0 % of a CPU).
 */
const SNAPSHOT_AFTER_CHANGE_MS = 3000;
const SNAPSHOT_FALLBACK_MS = 10_000;
/** A subscriber this far behind is cut off rather than grow the relay's memory. */
const MAX_BACKLOG_BYTES = 32 * 1024 * 1024;

interface Entry {
  timeNs: bigint;
  node: string;
  event: ObservedEvent;
  line: string;
}

interface Observer {
  socket: Socket;
  request: ObserveRequest['observe'];
}

/** Reads a growing log file from where it was when the relay started; a truncated file is read again from its start. */
class LogTail {
  private offset = -1;
  private partial = '';

  constructor(private readonly file: string) {}

  async read(): Promise<string[]> {
    const size = await stat(this.file).then((s) => s.size, () => -1);
    if (size < 0) return [];
    if (this.offset < 0) {
      this.offset = size;
      return [];
    }
    if (size < this.offset) {
      this.offset = 0;
      this.partial = '';
    }
    if (size === this.offset) return [];
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const text = this.partial + buf.subarray(0, bytesRead).toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      return lines;
    } finally {
      await fh.close();
    }
  }
}

export class FlowRelay {
  private directory?: Directory;
  private readonly rings = new Map<string, Ring<Entry>>();
  private readonly sorter: SortBuffer<Entry>;
  private readonly readers: EventStream[] = [];
  private readonly tails = new Map<string, LogTail>();
  private readonly observers = new Set<Observer>();
  private readonly feeds = new Map<string, Set<Socket>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly watchers: FSWatcher[] = [];
  private drainTimer?: NodeJS.Timeout;
  private settleTimer?: NodeJS.Timeout;
  /** A log grew while it was being read: read again at once. */
  private tailAgain = false;
  private server?: Server;
  private topology?: Topology | null;
  private refreshing?: Promise<void>;
  private lastRefresh = 0;
  private tailing = false;

  constructor(private readonly cfg: RelayConfig, private readonly log: Log) {
    this.sorter = new SortBuffer<Entry>(cfg.sortWindowMs);
    for (const node of cfg.nodes) {
      this.rings.set(node, new Ring<Entry>(cfg.ringSize));
      this.feeds.set(node, new Set());
      this.tails.set(node, new LogTail(daemonLogFile(cfg.lab, node, AGENT.role)));
    }
  }

  async start(): Promise<void> {
    await this.refreshDirectory();
    for (const node of this.cfg.nodes) this.readers.push(streamFlowRecords(this.cfg.lab, node, (r) => this.onRecord(node, r)));
    await Promise.all(this.readers.map((r) => r.ready));
    await this.readLogs(); // the starting offsets: only what the agents log from now on
    await mkdir(relayDir(this.cfg.lab), { recursive: true, mode: 0o700 });
    await rm(this.cfg.socket, { force: true });
    this.server = createServer((socket) => this.onConnection(socket));
    await new Promise<void>((resolveListen, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.cfg.socket, () => resolveListen());
    });
    for (const node of this.cfg.nodes) {
      try {
        const w = watch(daemonLogFile(this.cfg.lab, node, AGENT.role), { persistent: false }, () => this.readLogsSoon());
        w.on('error', () => w.close());
        this.watchers.push(w);
      } catch {
        // no log yet: the poll reads it
      }
    }
    this.timers.push(setInterval(() => void this.readLogs(), LOG_POLL_MS));
    this.timers.push(setInterval(() => void this.refreshIfChanged(), SNAPSHOT_REFRESH_MS));
    this.log('started', { nodes: this.cfg.nodes, socket: this.cfg.socket, ringSize: this.cfg.ringSize });
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const w of this.watchers) w.close();
    clearTimeout(this.drainTimer);
    clearTimeout(this.settleTimer);
    await Promise.all(this.readers.map((r) => r.stop().catch(() => undefined)));
    this.emit(this.sorter.flush());
    for (const o of this.observers) o.socket.end();
    for (const set of this.feeds.values()) for (const s of set) s.end();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await rm(this.cfg.socket, { force: true });
  }

  // ---- sources ----------------------------------------------------------------------

  private onRecord(node: string, record: PerfRecord): void {
    const feed = this.feeds.get(node);
    if (feed && feed.size > 0) {
      const text = `${JSON.stringify(recordToFeedLine(record))}\n`;
      for (const s of feed) this.send(s, text);
    }
    if (!this.directory) return;
    let event: ObservedEvent;
    if (record.data) {
      const flow = decodeFlowEvent(record.data);
      event = flowEvent(flow, node, this.directory, randomUUID());
      // A pod the snapshot does not know yet (just added): look again soon.
      if (!this.directory.pod(flow.saddr) || !this.directory.pod(flow.daddr)) void this.refreshDirectory(200);
    } else {
      event = lostEvent(record.lost ?? 0, record.cpu, node, BigInt(Date.now()) * 1_000_000n);
    }
    this.add(node, event);
  }

  /** One read of the logs LOG_SETTLE_MS from now, however many changes come before it. */
  private readLogsSoon(): void {
    if (this.settleTimer) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.readLogs();
    }, LOG_SETTLE_MS);
  }

  private async readLogs(): Promise<void> {
    if (this.tailing) {
      this.tailAgain = true;
      return;
    }
    this.tailing = true;
    try {
      for (const [node, tail] of this.tails) {
        for (const text of await tail.read().catch(() => [])) {
          if (!text.startsWith('{') || !this.directory) continue;
          let line: Record<string, unknown>;
          try {
            line = JSON.parse(text) as Record<string, unknown>;
          } catch {
            continue;
          }
          const event = authEvent(line, node, this.directory);
          if (event) this.add(node, event);
        }
      }
    } finally {
      this.tailing = false;
      if (this.tailAgain) {
        this.tailAgain = false;
        void this.readLogs();
      }
    }
  }

  private add(node: string, event: ObservedEvent): void {
    this.sorter.push({ timeNs: eventTimeNs(event), node, event, line: `${JSON.stringify(event)}\n` }, Date.now());
    this.scheduleDrain();
  }

  /** A timer for the moment the oldest waiting event may go out (none while the sorter is empty). */
  private scheduleDrain(): void {
    const due = this.sorter.nextDueMs();
    if (this.drainTimer || due === undefined) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      this.drain();
      this.scheduleDrain();
    }, Math.max(0, due - Date.now()) + 1);
  }

  private stateChangedAt = 0;
  private stateMtimeMs = -1;

  private async refreshIfChanged(): Promise<void> {
    const mtime = await stat(stateFile(this.cfg.lab)).then((st) => st.mtimeMs, () => -1);
    if (mtime !== this.stateMtimeMs) {
      this.stateMtimeMs = mtime;
      this.stateChangedAt = Date.now();
    }
    const sinceChange = Date.now() - this.stateChangedAt;
    if (sinceChange <= SNAPSHOT_AFTER_CHANGE_MS || Date.now() - this.lastRefresh >= SNAPSHOT_FALLBACK_MS) await this.refreshDirectory();
  }

  /** The control plane's snapshot names pods; a lab without one is named from its state and topology. */
  private refreshDirectory(minAgeMs = 0): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.lastRefresh < minAgeMs) return Promise.resolve();
    this.refreshing = (async () => {
      try {
        this.directory = new Directory(await this.snapshot(), this.cfg.lab);
      } catch (e) {
        this.log('snapshot-failed', { error: (e as Error).message });
      } finally {
        this.lastRefresh = Date.now();
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private async snapshot(): Promise<ClusterSnapshot> {
    try {
      return (await controlState(this.cfg.lab)).snapshot;
    } catch {
      const state = await readState(this.cfg.lab);
      if (!state) throw new Error(`lab ${this.cfg.lab} has no state file`);
      if (this.topology === undefined && this.cfg.topology) this.topology = this.cfg.topology;
      if (this.topology === undefined) {
        const file = state.topologyFile;
        // Loaded only here: the YAML and zod parsers cost every relay start a third of a CPU second.
        const { loadTopologyFile } = await import('../topology/validate.ts');
        this.topology = file ? await loadTopologyFile(isAbsolute(file) ? file : resolve(REPO_ROOT, file)).catch(() => null) : null;
      }
      return snapshotFromTopology(this.topology ?? undefined, state);
    }
  }

  // ---- merging and serving ------------------------------------------------------------

  private drain(): void {
    this.emit(this.sorter.drain(Date.now()));
  }

  private emit(entries: Entry[]): void {
    for (const entry of entries) {
      this.rings.get(entry.node)?.push(entry);
      for (const o of this.observers) if (this.wants(o.request, entry)) this.send(o.socket, entry.line);
    }
  }

  private wants(req: ObserveRequest['observe'], entry: Entry): boolean {
    if (req.until !== undefined && Number(entry.timeNs / 1_000_000n) > req.until) return false;
    return matchesAny(entry.event, req.filters);
  }

  private send(socket: Socket, text: string): void {
    if (socket.destroyed) return;
    if (socket.writableLength > MAX_BACKLOG_BYTES) {
      this.log('subscriber-too-slow', { backlogBytes: socket.writableLength });
      socket.destroy();
      return;
    }
    socket.write(text);
  }

  private onConnection(socket: Socket): void {
    let pending = '';
    let subscribed = false;
    socket.setEncoding('utf8');
    socket.on('error', () => undefined); // a subscriber that went away
    socket.on('data', (chunk: string) => {
      if (subscribed) return;
      pending += chunk;
      const nl = pending.indexOf('\n');
      if (nl < 0) return;
      subscribed = true;
      try {
        this.subscribe(socket, JSON.parse(pending.slice(0, nl)) as Partial<ObserveRequest & RecordFeedRequest>);
      } catch (e) {
        socket.end(`${JSON.stringify({ relay: 'error', message: (e as Error).message } satisfies RelayControl)}\n`);
      }
    });
  }

  private subscribe(socket: Socket, request: Partial<ObserveRequest & RecordFeedRequest>): void {
    if (request.records) {
      const feed = this.feeds.get(request.records.node);
      if (!feed) throw new Error(`no node "${request.records.node}" in lab ${this.cfg.lab} (nodes: ${this.cfg.nodes.join(', ')})`);
      feed.add(socket);
      const leave = () => feed.delete(socket);
      socket.on('close', leave);
      // The subscriber half-closes to stop: everything sent so far reaches it, then the relay closes.
      socket.on('end', () => {
        leave();
        socket.end();
      });
      socket.write(`${JSON.stringify({ ready: true })}\n`);
      return;
    }
    const req = request.observe;
    if (!req || !Array.isArray(req.filters)) throw new Error('expected {"observe": {...}} or {"records": {"node": ...}}');
    // History and registration in one turn of the event loop: nothing is missed or sent twice.
    const all = mergeByTime([...this.rings.values()].map((r) => r.toArray())).filter((e) => matchesAny(e.event, req.filters));
    const history = selectHistory(all, (e) => Number(e.timeNs / 1_000_000n), req);
    for (const e of history) this.send(socket, e.line);
    this.send(socket, `${JSON.stringify({ relay: 'caught_up' } satisfies RelayControl)}\n`);
    if (!req.follow) {
      socket.end();
      return;
    }
    const observer: Observer = { socket, request: req };
    this.observers.add(observer);
    socket.on('close', () => this.observers.delete(observer));
    socket.on('end', () => {
      this.observers.delete(observer);
      socket.end();
    });
  }
}

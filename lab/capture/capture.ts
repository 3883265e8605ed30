// Packet captures of a lab's links: one tcpdump per tap, inside the tap's
// namespace, tagged so `mtless down` stops it.
//
// Why tcpdump and not dumpcap: dumpcap has no immediate mode, so libpcap
// hands it packets in blocks every ~250 ms and a stop loses the last block
// (measured: 3 pings then SIGINT within 100 ms gave 0 of 6 packets; tcpdump
// --immediate-mode -U gave 6 of 6 every time). pcapng comes from our own
// writer, which also names the interfaces.
//
// Why the file is checked at stop: tcpdump ignores write errors (on a full
// disk it exits 0, says "6 packets captured" and leaves an empty file), so
// every file must hold as many packets as tcpdump says it captured.
//
// Why stop() waits before SIGINT: on SIGINT libpcap breaks its loop and drops
// what is still unread in the ring. A tcpdump that lags (a busy machine) then
// loses the end of the scenario (measured: it lost 1 of 10 packets, once 9 of 10).
// So stop() first waits until every tcpdump sits idle in poll(): its ring is
// empty, everything that came before the stop has been written.
import { mkdir, open, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import { keyLogFile, processTag, wgKeyLogFile } from '../core/names.ts';
import { TAG_ENV } from '../core/processes.ts';
import { readState, type LabState } from '../core/state.ts';
import { linkFileName, resolveLinks, type CaptureLink, type Tap } from './links.ts';
import {
  encodeInterface, encodePacket, encodeSecrets, encodeSectionHeader, mergeCaptures, readCapture, writeCapture,
  PcapStreamReader, SECRETS_TLS_KEYLOG, SECRETS_WIREGUARD, type DecryptionSecrets, type PacketCapture,
} from './pcapng.ts';
import { PROFILE_HINT } from './profile.ts';
import { embedInCapture, labSecrets, noSecrets, type CaptureSecrets, type KeyLogs } from './secrets.ts';
import { spawn, type ResultPromise } from '../kernel/spawn.ts';

export const CAPTURE_ROLE = 'capture';
const RAW_DIR = '.raw';

export interface CaptureOptions {
  /** How long each tap may take to report "listening". Default 10 s. */
  readyTimeoutMs?: number;
  /** How long each tap may take to flush and exit after SIGINT. Default 5 s. */
  stopTimeoutMs?: number;
  /** How long stop() waits for each tcpdump to catch up (idle in poll) before SIGINT. Default 3 s. */
  drainTimeoutMs?: number;
  /** Kernel ring per tap, KiB. tcpdump's 2 MiB holds only a few full-size frames (a burst overflows it). Default 8 MiB. */
  bufferKiB?: number;
  /** Bytes kept per packet. Default: whole packets. */
  snapLen?: number;
  /** A libpcap capture filter applied on every tap (e.g. "not arp"). */
  filter?: string;
  /** Called as soon as a tap dies mid-capture (stop() reports it too). */
  onFailure?: (failure: CaptureFailure) => void;
  /**
   * Embed the lab's own secrets (its TLS key log and WireGuard keys, see
   * secrets.ts) in every file, read when the capture stops; a stream gets
   * them as they appear. Default true.
   */
  secrets?: boolean;
}

export interface CaptureFailure {
  link: string;
  device: string;
  netns: string;
  reason: string;
}

/** A link's capture that stopped cleanly and was checked. */
export interface LinkCaptureFile {
  link: string;
  description: string;
  file: string;
  packets: number;
}

export interface CaptureResult {
  lab: string;
  dir: string;
  startedAt: Date;
  stoppedAt: Date;
  links: LinkCaptureFile[];
  /** What each link's file embeds (and says so in its section comment). */
  secrets: CaptureSecrets;
}

export class CaptureError extends Error {
  override name = 'CaptureError';
  constructor(readonly failures: CaptureFailure[], readonly result?: CaptureResult, what = 'capture failed') {
    super(`${what}: ${failures.map((f) => `link ${f.link} (${f.device} in ${f.netns}): ${f.reason}`).join('; ')}`);
  }
}

export interface StopOptions {
  /**
   * Stopping because of SIGINT/SIGTERM: a tap that already exited cleanly
   * (signalled too, e.g. by a shell that signals the whole job) is then fine,
   * not "died early". The tcpdumps run in their own session, so a terminal's
   * Ctrl-C does not reach them.
   */
  interrupted?: boolean;
}

export interface CaptureHandle {
  lab: string;
  dir: string;
  links: CaptureLink[];
  startedAt: Date;
  /** Taps that died so far (stop() reports them too). */
  failures(): CaptureFailure[];
  /** Stops every tap (SIGINT: they flush), checks each file, writes one pcapng per link. Idempotent. */
  stop(opts?: StopOptions): Promise<CaptureResult>;
  /** The tcpdump processes, for tests that need to kill one. */
  pids(): { link: string; device: string; pid: number }[];
}

// ---- one tcpdump ------------------------------------------------------------------

interface TcpdumpSummary {
  captured?: number;
  /** What the kernel queued for the socket: more than `captured` means tcpdump stopped before reading them. */
  received?: number;
  dropped?: number;
}

class TapProcess {
  stderr = '';
  exit?: { code?: number; signal?: string };
  stopRequested = false;
  readonly exited: Promise<void>;
  private listeners: (() => void)[] = [];
  private stdoutChunks: Buffer[] = [];
  private stdoutHandler?: (chunk: Buffer) => void;

  constructor(readonly link: CaptureLink, readonly tap: Tap, readonly output: string, readonly proc: ResultPromise) {
    // Listen at once: awaiting the subprocess makes execa resume its stdout,
    // and the pcap file header (written before "listening on") would be lost.
    proc.stdout?.on('data', (d: Buffer) => (this.stdoutHandler ? this.stdoutHandler(d) : this.stdoutChunks.push(d)));
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      for (const l of this.listeners) l();
    });
    this.exited = proc.then((r) => {
      this.exit = { code: r.exitCode, signal: r.signal };
      for (const l of this.listeners) l();
    }, (e: Error) => {
      this.exit = { signal: `error: ${e.message}` };
      for (const l of this.listeners) l();
    });
  }

  static start(lab: string, link: CaptureLink, tap: Tap, output: string, opts: CaptureOptions): TapProcess {
    const argv = [
      // Own session: a terminal's Ctrl-C reaches only us, and stop() ends the capture in order.
      'setsid',
      'tcpdump',
      '-Z', 'root', // no switch to user tcpdump: files are root's like every lab file, in any directory
      '--immediate-mode', '-U', // each packet reaches the file at once, so a stop loses nothing
      '-p', // no promiscuous mode: a capture must not change how the bridge forwards
      '-n', '-i', tap.device,
      '-B', String(opts.bufferKiB ?? 8192),
      ...(tap.direction === 'inout' ? [] : ['-Q', tap.direction]),
      '--time-stamp-precision=nano',
      ...(opts.snapLen ? ['-s', String(opts.snapLen)] : []),
      '-w', output,
      ...(opts.filter ? [opts.filter] : []),
    ];
    const proc = spawn(argv, { netns: tap.netns, env: { [TAG_ENV]: processTag(lab, link.owner, CAPTURE_ROLE) } });
    return new TapProcess(link, tap, output, proc);
  }

  /** Hands stdout (tcpdump -w -) to `handler`, starting with what arrived before. */
  onStdout(handler: (chunk: Buffer) => void): void {
    this.stdoutHandler = handler;
    for (const c of this.stdoutChunks.splice(0)) handler(c);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private until(test: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (!test()) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        resolve(ok);
      };
      this.listeners.push(check);
      check();
    });
  }

  /** Resolves once tcpdump says "listening on": from then on, every packet on the device is captured. */
  async ready(timeoutMs: number): Promise<void> {
    const listening = () => /listening on /.test(this.stderr);
    await this.until(() => listening() || this.exit !== undefined, timeoutMs);
    if (listening() && !this.exit) return;
    if (this.exit) throw new Error(`tcpdump exited before it was ready (${describeExit(this.exit)}): ${lastLines(this.stderr)}`);
    throw new Error(`tcpdump not ready after ${timeoutMs} ms: ${lastLines(this.stderr) || 'no output'}`);
  }

  /**
   * Resolves true once tcpdump is seen blocked in poll() (its ring is empty:
   * everything queued so far is written), false at the deadline, undefined
   * when this kernel or architecture cannot tell.
   */
  async drain(timeoutMs: number): Promise<boolean | undefined> {
    const pid = this.pid;
    if (pid === undefined || POLL_SYSCALLS === undefined) return undefined;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit) return false;
      let syscall: string;
      let stat: string;
      try {
        [syscall, stat] = await Promise.all([readFile(`/proc/${pid}/syscall`, 'utf8'), readFile(`/proc/${pid}/stat`, 'utf8')]);
      } catch {
        return undefined; // gone meanwhile, or no /proc/PID/syscall on this kernel
      }
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      // "7 0x…" while blocked in poll; "running" or state R while it works.
      if (state === 'S' && POLL_SYSCALLS.has(syscall.split(' ')[0]!)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** SIGINT (tcpdump flushes and prints its counts), SIGKILL after the deadline. */
  async stop(timeoutMs: number): Promise<'stopped' | 'killed'> {
    if (this.exit) return 'stopped';
    this.stopRequested = true;
    this.proc.kill('SIGINT');
    if (await this.until(() => this.exit !== undefined, timeoutMs)) {
      await this.exited;
      return 'stopped';
    }
    this.proc.kill('SIGKILL');
    await this.exited;
    return 'killed';
  }

  summary(): TcpdumpSummary {
    const num = (re: RegExp) => {
      const m = re.exec(this.stderr);
      return m ? Number(m[1]) : undefined;
    };
    return { captured: num(/(\d+) packets? captured/), received: num(/(\d+) packets? received by filter/), dropped: num(/(\d+) packets? dropped by kernel/) };
  }

  /** Why this tap's capture cannot be trusted, or undefined when it ended well and holds `packets` packets. */
  verdict(packets: number | undefined, opts: StopOptions, killed: boolean, drained: boolean | undefined, readError?: string): string | undefined {
    const exit = this.exit;
    if (killed) return `did not stop within the deadline after SIGINT and was killed; its file may be incomplete`;
    if (!exit) return 'still running';
    const early = !this.stopRequested;
    const clean = exit.code === 0 && !exit.signal;
    if (early && !(clean && opts.interrupted)) return earlyExit(exit, this.stderr);
    if (!clean) return `tcpdump failed (${describeExit(exit)}): ${lastLines(this.stderr)}`;
    const s = this.summary();
    if (s.captured === undefined) return `tcpdump printed no packet count: ${lastLines(this.stderr)}`;
    if (packets === undefined) return `tcpdump captured ${s.captured} packets but its output is unreadable (${readError ?? 'unknown error'}): disk full or a write error, which tcpdump does not report`;
    if (packets !== s.captured) {
      return `tcpdump captured ${s.captured} packets but its output holds ${packets} (disk full or a write error, which tcpdump does not report)`;
    }
    if (s.dropped) return `the kernel dropped ${s.dropped} packets (ring full: raise bufferKiB): the capture is incomplete`;
    if (drained !== true && !early) {
      // Not seen caught up before SIGINT. Both directions: the kernel's count tells. One
      // direction (-Q): the kernel counts both, libpcap filters, so nothing proves the file whole.
      if (drained === false && this.tap.direction !== 'inout') return `tcpdump had not caught up when stopped (not idle within the drain deadline): packets may be missing`;
      if (this.tap.direction === 'inout' && s.received !== undefined && s.received > s.captured) {
        return `tcpdump was stopped before it read ${s.received - s.captured} of the ${s.received} packets the kernel queued for it: the capture is incomplete`;
      }
    }
    return undefined;
  }
}

/** Syscalls tcpdump blocks in while waiting for packets (libpcap polls its ring), by architecture. */
const POLL_SYSCALLS: Set<string> | undefined = { x64: new Set(['7', '271']), arm64: new Set(['73']) }[process.arch as string];

/** Waits until every tap has caught up, then stops them all; per tap: drained?, stopped or killed. */
async function drainAndStop(taps: TapProcess[], opts: CaptureOptions): Promise<{ drained: boolean | undefined; outcome: 'stopped' | 'killed' }[]> {
  const drained = await Promise.all(taps.map((t) => t.drain(opts.drainTimeoutMs ?? 3000)));
  const outcomes = await Promise.all(taps.map((t) => t.stop(opts.stopTimeoutMs ?? 5000)));
  return taps.map((_, i) => ({ drained: drained[i]!, outcome: outcomes[i]! }));
}

/** A tap that ended before stop(): exit 0 means someone signalled it (tcpdump exits 0 on SIGINT/SIGTERM). */
function earlyExit(exit: { code?: number; signal?: string }, stderr: string): string {
  if (exit.code === 0 && !exit.signal) return 'tcpdump was stopped from outside during the capture (SIGINT or SIGTERM, e.g. `mtless down`)';
  const why = lastLines(stderr.replace(/^\d+ packets? (captured|received by filter|dropped by kernel)$/gm, ''));
  return `tcpdump exited during the capture (${describeExit(exit)})${why ? `: ${why}` : ''}`;
}

function describeExit(exit: { code?: number; signal?: string }): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

function lastLines(text: string, n = 3): string {
  // tshark and tcpdump chatter that says nothing about the failure
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !/^Running as user|listening on /.test(l)).slice(-n).join(' | ');
}

// ---- starting -----------------------------------------------------------------------

async function labState(lab: string | LabState): Promise<LabState> {
  if (typeof lab !== 'string') return lab;
  const state = await readState(lab);
  if (!state) throw new Error(`no lab named "${lab}" (see \`mtless status\`)`);
  return state;
}

/** Where a tap's tcpdump writes (pcap) until stop() turns the link's taps into one pcapng. */
export function rawTapFile(outDir: string, link: CaptureLink, tap: Tap): string {
  return join(outDir, RAW_DIR, `${linkFileName(link.name).replace(/\.pcapng$/, '')}.${tap.device}.${tap.direction}.pcap`);
}

/** Starts every tap, waits until all are listening; if any fails, stops the others and throws naming it. */
async function startTaps(lab: string, links: CaptureLink[], output: (link: CaptureLink, tap: Tap) => string, opts: CaptureOptions): Promise<TapProcess[]> {
  const taps = links.flatMap((link) => link.taps.map((tap) => TapProcess.start(lab, link, tap, output(link, tap), opts)));
  const results = await Promise.allSettled(taps.map((t) => t.ready(opts.readyTimeoutMs ?? 10_000)));
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [failureOf(taps[i]!, (r.reason as Error).message)] : []));
  if (failures.length > 0) {
    await Promise.all(taps.map((t) => t.stop(opts.stopTimeoutMs ?? 5000)));
    throw new CaptureError(failures, undefined, 'capture did not start');
  }
  return taps;
}

function failureOf(t: TapProcess, reason: string): CaptureFailure {
  return { link: t.link.name, device: `${t.tap.device}${t.tap.direction === 'inout' ? '' : ` (${t.tap.direction})`}`, netns: t.tap.netns, reason };
}

/** Reports a tap that dies while the capture runs, as soon as it happens. */
function watchForDeaths(taps: TapProcess[], failures: CaptureFailure[], opts: CaptureOptions): void {
  for (const t of taps) {
    void t.exited.then(() => {
      if (t.stopRequested) return;
      const f = failureOf(t, earlyExit(t.exit!, t.stderr));
      failures.push(f);
      opts.onFailure?.(f);
    });
  }
}

/**
 * Captures `links` of a lab into `outDir`: one pcapng per link, named for
 * the link, written when stop() is called. Resolves once every tap listens.
 */
export async function startCapture(lab: string | LabState, links: (string | CaptureLink)[], outDir: string, opts: CaptureOptions = {}): Promise<CaptureHandle> {
  const state = await labState(lab);
  const resolved = resolveLinks(state, links);
  if (resolved.length === 0) throw new Error('no links to capture');
  const rawDir = join(outDir, RAW_DIR);
  await mkdir(rawDir, { recursive: true });
  // A stale file from an earlier run must never pass for this run's result.
  await Promise.all(resolved.map((l) => rm(join(outDir, linkFileName(l.name)), { force: true })));

  // tcpdump truncates its raw file when it opens it.
  const raw = resolved.flatMap((l) => l.taps.map((t) => rawTapFile(outDir, l, t)));
  const taps = await startTaps(state.lab, resolved, (l, t) => rawTapFile(outDir, l, t), opts).catch(async (e: unknown) => {
    await Promise.all(raw.map((f) => rm(f, { force: true })));
    await rmdir(rawDir).catch(() => undefined);
    throw e;
  });
  const startedAt = new Date();
  const live: CaptureFailure[] = [];
  watchForDeaths(taps, live, opts);

  let stopping: Promise<CaptureResult> | undefined;
  return {
    lab: state.lab,
    dir: outDir,
    links: resolved,
    startedAt,
    failures: () => [...live],
    pids: () => taps.map((t) => ({ link: t.link.name, device: t.tap.device, pid: t.pid ?? -1 })),
    stop: (stopOpts = {}) => (stopping ??= stopFileCapture(state, resolved, taps, outDir, startedAt, opts, stopOpts)),
  };
}

async function stopFileCapture(
  state: LabState, links: CaptureLink[], taps: TapProcess[], outDir: string, startedAt: Date, opts: CaptureOptions, stopOpts: StopOptions,
): Promise<CaptureResult> {
  const ends = await drainAndStop(taps, opts);
  const stoppedAt = new Date();
  const failures: CaptureFailure[] = [];
  // Read after the last packet: the key log then holds every handshake the files show.
  const secrets = opts.secrets === false ? noSecrets() : await labSecrets(state);
  const result: CaptureResult = { lab: state.lab, dir: outDir, startedAt, stoppedAt, links: [], secrets };

  for (const link of links) {
    const mine = taps.map((t, i) => ({ t, killed: ends[i]!.outcome === 'killed', drained: ends[i]!.drained })).filter(({ t }) => t.link === link);
    const captures: PacketCapture[] = [];
    let ok = true;
    for (const { t, killed, drained } of mine) {
      let capture: PacketCapture | undefined;
      let readError: string | undefined;
      try {
        // Only a regular file: tcpdump may have written through a link to a device (reading /dev/full never ends).
        if (!(await stat(t.output)).isFile()) throw new Error(`${t.output} is not a regular file`);
        capture = readCapture(await readFile(t.output));
      } catch (e) {
        readError = (e as Error).message;
      }
      const why = t.verdict(capture?.packets.length, stopOpts, killed, drained, readError);
      if (why) {
        failures.push(failureOf(t, `${why} [raw file kept: ${t.output}]`));
        ok = false;
      } else captures.push(capture!);
    }
    if (!ok) continue;

    const file = join(outDir, linkFileName(link.name));
    const merged = mergeCaptures(captures.map((capture) => ({ capture, name: link.name, description: link.description })), {
      comments: [`link ${link.name} of lab "${state.lab}": ${link.description}`, `captured ${startedAt.toISOString()} to ${stoppedAt.toISOString()} by mtless-lab (tcpdump)`, PROFILE_HINT],
      application: 'mtless-lab (tcpdump --immediate-mode)',
    });
    embedInCapture(merged, secrets);
    try {
      await writeFile(file, writeCapture(merged));
    } catch (e) {
      failures.push({ link: link.name, device: '-', netns: '-', reason: `cannot write ${file}: ${(e as Error).message}` });
      continue;
    }
    await Promise.all(mine.map(({ t }) => rm(t.output, { force: true })));
    result.links.push({ link: link.name, description: link.description, file, packets: merged.packets.length });
  }
  await rmdir(join(outDir, RAW_DIR)).catch(() => undefined); // only when empty: failed links keep theirs
  if (failures.length > 0) throw new CaptureError(failures, result);
  return result;
}

// ---- streaming ------------------------------------------------------------------------

export interface CaptureStream {
  links: CaptureLink[];
  failures(): CaptureFailure[];
  /** Resolves when the reader goes away (e.g. Wireshark closed: EPIPE). */
  closed: Promise<void>;
  /** Stops every tap and checks that every packet tcpdump captured was written out. Idempotent. */
  stop(opts?: StopOptions): Promise<{ packets: Record<string, number> }>;
}

/**
 * How far a stream runs behind the wire. Two reasons: each tap's tcpdump
 * hands over its packets on its own schedule, so packets of one link's taps
 * (a bridge's ports) arrive out of order, and Wireshark then takes a segment
 * for a retransmission and stops dissecting its TLS (measured: the 4250
 * handshake showed as "ACKed unseen segment"); and a handshake's key must be
 * in the stream before its packets.
 */
export const STREAM_LAG_MS = 250;
const STREAM_FLUSH_MS = 25;

/**
 * A key log as it grows: each poll returns the complete lines added since
 * the last one. A file that is not there yet is simply empty.
 */
class KeyLogFollower {
  private offset = 0;
  constructor(readonly file: string, readonly type: number) {}

  async poll(): Promise<DecryptionSecrets | undefined> {
    const size = await stat(this.file).then((s) => s.size, () => 0);
    if (size < this.offset) this.offset = 0; // rewritten from scratch
    if (size === this.offset) return undefined;
    let fresh: Buffer;
    const fh = await open(this.file, 'r').catch(() => undefined);
    if (!fh) return undefined; // gone meanwhile (the lab went down)
    try {
      fresh = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(fresh, 0, fresh.length, this.offset);
      fresh = fresh.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    const end = fresh.lastIndexOf(0x0a) + 1; // a line still being written waits for the next poll
    if (end === 0) return undefined;
    this.offset += end;
    return { type: this.type, data: fresh.subarray(0, end) };
  }
}

/**
 * Streams a live pcapng to `out` (e.g. stdout for `| wireshark -k -i -`):
 * one section, one interface per link (named for the link, written when its
 * first packet arrives), packets as they arrive from any link.
 *
 * Packets go out in timestamp order, STREAM_LAG_MS behind the wire. With
 * secrets (the default), the lab's key logs and `keylogs` go into the stream
 * as Decryption Secrets Blocks, and new key log lines as they appear, always
 * before the packets that follow them: Wireshark decrypts a packet only if
 * its key came earlier in the stream.
 */
export async function streamCapture(
  lab: string | LabState, links: (string | CaptureLink)[], out: Writable, opts: CaptureOptions & { comment?: string; keylogs?: KeyLogs } = {},
): Promise<CaptureStream> {
  const state = await labState(lab);
  const resolved = resolveLinks(state, links);
  if (resolved.length === 0) throw new Error('no links to capture');

  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  let outOpen = true;
  out.on('error', () => {
    outOpen = false; // EPIPE: the reader is gone
    closedResolve();
  });
  out.on('close', () => {
    outOpen = false;
    closedResolve();
  });
  const write = (b: Buffer) => {
    if (outOpen) out.write(b);
  };

  const withSecrets = opts.secrets !== false || Boolean(opts.keylogs?.tls || opts.keylogs?.wg);
  const followers = [
    ...(opts.secrets === false ? [] : [new KeyLogFollower(keyLogFile(state.lab), SECRETS_TLS_KEYLOG), new KeyLogFollower(wgKeyLogFile(state.lab), SECRETS_WIREGUARD)]),
    ...(opts.keylogs?.tls ? [new KeyLogFollower(opts.keylogs.tls, SECRETS_TLS_KEYLOG)] : []),
    ...(opts.keylogs?.wg ? [new KeyLogFollower(opts.keylogs.wg, SECRETS_WIREGUARD)] : []),
  ];
  const secretsNow = opts.secrets === false ? noSecrets() : await labSecrets(state);

  const taps = await startTaps(state.lab, resolved, () => '-', opts);
  write(encodeSectionHeader({
    comments: [
      `live capture of lab "${state.lab}": ${resolved.map((l) => l.name).join(', ')}`,
      ...(opts.comment ? [opts.comment] : []),
      ...secretsNow.comments,
      ...followers.map((f) => `key log followed live: ${f.file}`),
    ],
    application: 'mtless-lab (tcpdump --immediate-mode)',
  }));

  // Packets wait in `queue`, in timestamp order, for the lag; before each flush, new key log lines go out first.
  const queue: { at: number; ts: bigint; block: Buffer }[] = [];
  let flushing: Promise<void> = Promise.resolve();
  const flush = (all: boolean) => (flushing = flushing.then(async () => {
    for (const f of followers) {
      // A key log that cannot be read means fewer secrets, never a lost packet.
      const secret = await f.poll().catch(() => undefined);
      if (secret) write(encodeSecrets(secret));
    }
    // The head waits its full lag even when packets behind it waited longer: they are later on the wire.
    const cutoff = all ? Infinity : performance.now() - STREAM_LAG_MS;
    let n = 0;
    while (n < queue.length && queue[n]!.at <= cutoff) n++;
    for (const q of queue.splice(0, n)) write(q.block);
  }));
  const flushTimer = setInterval(() => void flush(false), STREAM_FLUSH_MS).unref();
  if (withSecrets) await flush(false); // the key logs as they are, before any packet
  const writePacket = (ts: bigint, block: Buffer) => {
    let i = queue.length;
    while (i > 0 && queue[i - 1]!.ts > ts) i--;
    queue.splice(i, 0, { at: performance.now(), ts, block });
  };

  // Interface ids in the stream, per link and link type (taps of one bridge share one).
  const ids = new Map<string, number>();
  const readers = new Map<TapProcess, PcapStreamReader>();
  const parseErrors = new Map<TapProcess, string>();
  let nextId = 0;
  for (const t of taps) {
    const reader = new PcapStreamReader();
    readers.set(t, reader);
    t.onStdout((chunk) => {
      if (parseErrors.has(t)) return;
      try {
        const packets = reader.push(chunk);
        if (!reader.header) return;
        const key = `${t.link.name}\0${reader.header.linkType}`;
        let id = ids.get(key);
        if (id === undefined) {
          const sameLink = [...ids.keys()].some((k) => k.startsWith(`${t.link.name}\0`));
          id = nextId++;
          ids.set(key, id);
          write(encodeInterface({
            linkType: reader.header.linkType, snapLen: reader.header.snapLen, options: [],
            name: sameLink ? `${t.link.name} (${t.tap.device})` : t.link.name, description: t.link.description,
          }));
        }
        for (const p of packets) writePacket(p.timestampNs, encodePacket({ ...p, interfaceId: id }));
      } catch (e) {
        parseErrors.set(t, (e as Error).message);
      }
    });
  }
  const live: CaptureFailure[] = [];
  watchForDeaths(taps, live, opts);

  let stopping: Promise<{ packets: Record<string, number> }> | undefined;
  const stop = async (stopOpts: StopOptions = {}) => {
    const ends = await drainAndStop(taps, opts);
    // Wait for each tap's stdout to drain into the writer before judging counts.
    await Promise.all(taps.map((t) => (t.proc.stdout ? finished(t.proc.stdout).catch(() => undefined) : undefined)));
    clearInterval(flushTimer);
    await flush(true);
    const failures: CaptureFailure[] = [];
    const packets: Record<string, number> = {};
    taps.forEach((t, i) => {
      const reader = readers.get(t)!;
      packets[t.link.name] = (packets[t.link.name] ?? 0) + reader.packets;
      const parseError = parseErrors.get(t) ?? (reader.leftover > 0 ? `stream ended inside a record (${reader.leftover} bytes)` : undefined);
      const why = t.verdict(parseError ? undefined : reader.packets, stopOpts, ends[i]!.outcome === 'killed', ends[i]!.drained, parseError);
      if (why) failures.push(failureOf(t, why));
    });
    if (failures.length > 0) throw new CaptureError(failures);
    return { packets };
  };
  return {
    links: resolved,
    failures: () => [...live],
    closed,
    stop: (o) => (stopping ??= stop(o)),
  };
}

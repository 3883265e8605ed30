// The node agent's log as the auth benchmark reads it: one JSON object per
// line (lab/core/log.ts), of which it uses
//   svid-received   {identity}                      an SVID for a local identity
//   auth-requested  {key, at}                       the signal reached the agent
//   auth-completed  {key, at, writtenAt, totalMs, handshakeMs}
//                                                   the auth entry is written:
//                                                   writtenAt (Unix ms) when the
//                                                   kernel had it, by the map
//                                                   writer's clock (absent with
//                                                   bpftool as the writer)
//   auth-failed     {key, reason}
// each with `time` (ISO, ms resolution); `at` is Unix ms to the microsecond
// (older agents: absent, `time` is used). Keys are
// localSecLabel:remoteSecLabel:remoteNodeId:authType.
import { closeSync, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { daemonLogFile } from '../../core/names.ts';
import type { AuthKey } from '../../abi/generated.ts';

export type AgentLogLine = Record<string, unknown> & { event?: string; key?: string; time?: string };

/** The JSON lines of a log; others (READY, a line cut by a concurrent write) are skipped. */
export function parseAgentLog(text: string): AgentLogLine[] {
  const lines: AgentLogLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as AgentLogLine);
    } catch {
      /* a line cut by a concurrent write */
    }
  }
  return lines;
}

/** The agent's log on `node` so far ([] before it exists). */
export async function readAgentLog(lab: string, node: string): Promise<AgentLogLine[]> {
  return parseAgentLog(await readFile(daemonLogFile(lab, node, 'agent'), 'utf8').catch(() => ''));
}

/** Identities the agent holds an SVID for. */
export function svidIdentities(log: readonly AgentLogLine[]): Set<number> {
  return new Set(log.filter((l) => l.event === 'svid-received').map((l) => Number(l.identity)));
}

/** auth-failed lines counted by reason. */
export function failureCounts(log: readonly AgentLogLine[]): Record<string, number> {
  const failures: Record<string, number> = {};
  for (const l of log) if (l.event === 'auth-failed') failures[String(l.reason)] = (failures[String(l.reason)] ?? 0) + 1;
  return failures;
}

/** What the agent logged about one key: its first request and completion. */
export interface KeyAuth {
  /** Unix ms of the first auth-requested line. */
  requestedAt?: number;
  /** Unix ms of the first auth-completed line. */
  completedAt?: number;
  /** Unix ms at which the kernel had that entry (its writtenAt), when logged. */
  writtenAt?: number;
  /** The agent's own signal → entry time, ms. */
  totalMs?: number;
  handshakeMs?: number;
  /** auth-failed reasons, in log order. */
  failures: string[];
}

/** Unix ms of a line: `at` when the agent wrote it, else `time`. */
export function lineTime(l: AgentLogLine | undefined): number | undefined {
  if (typeof l?.at === 'number') return l.at;
  return l?.time ? Date.parse(l.time) : undefined;
}

/** What the agent logged about `key`, from Unix ms `since` on (a round of the benchmark). */
export function keyAuth(log: readonly AgentLogLine[], key: string, since = -Infinity): KeyAuth {
  log = log.filter((l) => l.key === key && (lineTime(l) ?? -Infinity) >= since);
  const requested = log.find((l) => l.event === 'auth-requested');
  const completed = log.find((l) => l.event === 'auth-completed');
  const at = lineTime;
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return {
    requestedAt: at(requested),
    completedAt: at(completed),
    writtenAt: num(completed?.writtenAt),
    totalMs: num(completed?.totalMs),
    handshakeMs: num(completed?.handshakeMs),
    failures: log.filter((l) => l.event === 'auth-failed' && l.key === key).map((l) => String(l.reason)),
  };
}

/** A key as the agent logs it, `local:remote:node:type`, back into an auth-map key. */
export function parseAuthKeyText(text: string): AuthKey {
  const parts = text.split(':').map(Number);
  if (parts.length !== 4 || !parts.every((n) => Number.isInteger(n) && n >= 0)) throw new Error(`not an auth key (local:remote:node:type): ${text}`);
  const [localSecLabel, remoteSecLabel, remoteNodeId, authType] = parts as [number, number, number, number];
  return { localSecLabel, remoteSecLabel, remoteNodeId, authType };
}

/**
 * Follows a growing agent log from where it is now: each read() returns the
 * JSON lines appended since the last (a partial last line waits for the
 * next read). The benchmark waits on it for a pair's completion without
 * parsing the whole log again, and sleeps in grown() until inotify says the
 * file changed: a poll every 2 ms woke the benchmark ~100 times during each
 * handshake it was timing, on the same CPUs as the agents.
 */
export class AgentLogTail {
  private offset = 0;
  private rest = '';
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private changed = false;

  private constructor(private readonly file: string) {}

  static open(lab: string, node: string): Promise<AgentLogTail> {
    return AgentLogTail.openFile(daemonLogFile(lab, node, 'agent'));
  }

  static async openFile(file: string): Promise<AgentLogTail> {
    const t = new AgentLogTail(file);
    t.offset = (await stat(t.file).catch(() => ({ size: 0 }))).size;
    return t;
  }

  /**
   * Resolves when the file has changed since the last call (inotify), or
   * after `maxMs` regardless: a watch set up before the file existed, or on
   * a file since replaced, sees nothing, and the caller reads anyway.
   */
  grown(maxMs: number): Promise<void> {
    if (!this.watcher) {
      try {
        this.watcher = watch(this.file, { persistent: false }, () => {
          this.changed = true;
          this.wake?.();
        });
        this.watcher.on('error', () => this.close());
      } catch {
        /* no file yet: the timeout alone */
      }
    }
    if (this.changed) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, maxMs);
      function done(this: void) {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        this.changed = false;
        done();
      };
    });
  }

  /** Stops the watch (a tail that is only read() needs no close). */
  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.wake?.();
  }

  /**
   * Synchronous calls on a small file in /run (memory): four syscalls on
   * this thread, where the promise API made each a hop through libuv's
   * thread pool, waking a thread per call while the agents worked.
   */
  async read(): Promise<AgentLogLine[]> {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return [];
    }
    try {
      const { size } = fstatSync(fd);
      if (size < this.offset) this.offset = 0; // capped and truncated: start over
      if (size === this.offset) return [];
      const buf = Buffer.alloc(size - this.offset);
      readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.rest + buf.toString('utf8');
      const cut = text.lastIndexOf('\n') + 1;
      this.rest = text.slice(cut);
      return parseAgentLog(text.slice(0, cut));
    } finally {
      closeSync(fd);
    }
  }
}

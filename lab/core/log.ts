// The lab's daemons (agent, control plane, flow relay) log one JSON object
// per line on stdout, which their launcher sends to the daemon log file in
// the lab's state directory (read by `mtless logs`).
//
// The log is capped: before a line would take the file past LOG_CAP_BYTES,
// the file is copied to <log>.1 (replacing the copy before) and truncated,
// so a daemon holds at most twice the cap in /run, which is memory. Copy and
// truncate, not rename: the launcher opened the file once, in append mode,
// for the daemon's stdout and stderr, and a rename would leave them writing
// to the copy. Readers by offset see the file shrink and start over at 0.
import { copyFileSync, fstatSync, ftruncateSync, readlinkSync, writeSync } from 'node:fs';
import { rotatedLogFile } from './names.ts';

export type Log = (event: string, fields?: Record<string, unknown>) => void;

/** A daemon log's size limit; its one previous copy holds as much again. */
export const LOG_CAP_BYTES = 1024 * 1024;

export interface JsonLogOptions {
  /** Where the lines go (default stdout). */
  fd?: number;
  capBytes?: number;
}

/** One structured JSON line per event, the file kept under its cap. */
export function jsonLog(component: string, node: string, opts: JsonLogOptions = {}): Log {
  const fd = opts.fd ?? 1;
  const cap = opts.capBytes ?? LOG_CAP_BYTES;
  const file = regularFileOf(fd);
  const write = file ? (s: string) => void writeSync(fd, s) : (s: string) => void process.stdout.write(s);
  return (event, fields = {}) => {
    const line = JSON.stringify({ time: new Date().toISOString(), component, node, event, ...fields }) + '\n';
    if (file) keepUnderCap(fd, file, Buffer.byteLength(line), cap);
    write(line);
  };
}

/** The path of the regular file open on fd, if it is one that still exists (not a terminal or pipe). */
function regularFileOf(fd: number): string | undefined {
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const path = readlinkSync(`/proc/self/fd/${fd}`);
    return path.endsWith(' (deleted)') ? undefined : path;
  } catch {
    return undefined;
  }
}

/**
 * Rotates the file open on fd (in append mode) when `incoming` more bytes
 * would take it past `cap`. Its size is read each time: stderr (a crash
 * trace) and the READY line share the file without passing through here.
 */
export function keepUnderCap(fd: number, file: string, incoming: number, cap: number): void {
  const size = fstatSync(fd).size;
  if (size === 0 || size + incoming <= cap) return;
  copyFileSync(`/proc/self/fd/${fd}`, rotatedLogFile(file));
  ftruncateSync(fd, 0);
}

export interface RepeatLimiterOptions {
  /** One event per key is let through per window. */
  windowMs: number;
  /** Called once a window that held back events has ended: how many, over which span. */
  onSuppressed(key: string, count: number, firstMs: number, lastMs: number): void;
  now?: () => number;
}

/**
 * Rate limit for repeated failures (a flood of refused connections): the
 * first event of a key in a window is logged, the rest are counted and
 * reported in one line once the window has passed (on the key's next event
 * or at flush(), which the owner calls on a timer of about the window).
 */
export class RepeatLimiter {
  private readonly windows = new Map<string, { start: number; suppressed: number; first: number; last: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: RepeatLimiterOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** True: log this event. False: it is counted for the window's summary. */
  admit(key: string): boolean {
    const now = this.now();
    const w = this.windows.get(key);
    if (w && now - w.start < this.opts.windowMs) {
      if (w.suppressed++ === 0) w.first = now;
      w.last = now;
      return false;
    }
    if (w) this.report(key, w);
    this.windows.set(key, { start: now, suppressed: 0, first: now, last: now });
    return true;
  }

  /**
   * When `key`'s window began: the time of the event it let through. Its
   * line carries this time, so that lines are a window apart by their own
   * times too (a clock read a millisecond later for the line made two lines
   * 998 ms apart under load).
   */
  windowStart(key: string): number | undefined {
    return this.windows.get(key)?.start;
  }

  /** Reports and forgets every window that has ended (every window with `all`, at shutdown). */
  flush(all = false): void {
    const now = this.now();
    for (const [key, w] of this.windows) {
      if (!all && now - w.start < this.opts.windowMs) continue;
      this.windows.delete(key);
      this.report(key, w);
    }
  }

  private report(key: string, w: { suppressed: number; first: number; last: number }): void {
    if (w.suppressed > 0) this.opts.onSuppressed(key, w.suppressed, w.first, w.last);
  }
}

// A long-lived writer that takes map updates one line at a time: the node
// agent writes each auth entry in well under a millisecond instead of the
// ~5–10 ms of starting a bpftool process per update (measured by
// `mtless bench auth`). bpf/build/map-batch speaks bpftool's batch lines and
// JSON answers with each pin kept open (one bpf(2) call a line); without it
// (BPF tools not built) a `bpftool -j batch file -` does the same, slower.
// The agent's map syncs go through it too: its dumps and its interface list
// (the helper's `link list`) cost no process per sync.

import { dumpMapRaw, opLine, rawEntries, type DumpRecord, type MapIo, type MapOp } from './bpftool.ts';
import { JsonObjectStream } from './events.ts';
import { spawn, type ResultPromise } from '../kernel/spawn.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';

/** The batch writer built by bpf/Makefile. */
export const MAP_BATCH_HELPER = join(REPO_ROOT, 'bpf', 'build', 'map-batch');

/** argv of the long-lived writer: the helper when built, else bpftool (stdbuf: answers are not held back). */
export function mapWriterArgv(helperExists = existsSync(MAP_BATCH_HELPER)): string[] {
  return helperExists ? [MAP_BATCH_HELPER] : ['stdbuf', '-o0', 'bpftool', '-j', 'batch', 'file', '-'];
}

interface Pending {
  line: string;
  resolve: (output: unknown, doneUnixUs?: number) => void;
  reject: (e: Error) => void;
}


interface Worker {
  child: ResultPromise;
  pending: Pending[];
}

export class MapWriter {
  private worker?: Worker;

  /**
   * `argv`: the writer to run (tests run both); default mapWriterArgv().
   * `idleUnref`: the writer does not keep this process alive while no
   * answer is awaited (a process-wide reader, see sharedDumpIo).
   */
  constructor(argv?: string[], private readonly idleUnref = false) {
    this.argv = argv ?? mapWriterArgv();
    this.isHelper = this.argv[0] === MAP_BATCH_HELPER;
  }

  private readonly argv: string[];
  /** The writer is the lab's helper (which also lists links), not bpftool. */
  private readonly isHelper: boolean;


  /**
   * Applies one change; resolves once the writer has answered for it, with
   * the Unix time (ms) at which the kernel had taken it when the writer is
   * the helper (its `done_unix_us`), undefined with bpftool.
   */
  apply(op: MapOp): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      this.send(opLine(op), (_output, doneUnixUs) => resolve(doneUnixUs === undefined ? undefined : doneUnixUs / 1e3), reject);
    });
  }

  /**
   * Applies the changes in order, every line sent at once (one pipe write,
   * answers read as they come). Like a batch, the writer stops at the first
   * failure; the error names the failing line.
   */
  async applyAll(ops: readonly MapOp[]): Promise<void> {
    await Promise.all(ops.map((op) => this.request(opLine(op))));
  }

  /** Every entry of a (non per-CPU) map, as raw bytes. */
  async dump(pin: string): Promise<{ key: Buffer; value: Buffer }[]> {
    const out = await this.request(`map dump pinned ${pin}`);
    if (!Array.isArray(out)) throw new Error(`map dump of ${pin}: no entries in the answer`);
    return rawEntries(out as DumpRecord[]);
  }

  /**
   * The writer's namespace's interfaces by name (the helper's `link list`);
   * undefined when the writer is bpftool, which cannot list them.
   */
  async ifindexes(): Promise<Map<string, number> | undefined> {
    if (!this.isHelper) return undefined;
    const out = (await this.request('link list')) as { ifname: string; ifindex: number }[];
    return new Map(out.map((l) => [l.ifname, l.ifindex]));
  }

  /** One line; resolves with its answer's output. */
  private request(line: string): Promise<unknown> {
    return new Promise((resolve, reject) => this.send(line, resolve, reject));
  }

  private send(line: string, resolve: Pending['resolve'], reject: Pending['reject']): void {
    const w = this.ensure();
    if (w.pending.length === 0) this.hold(w, true);
    w.pending.push({ line, resolve, reject });
    w.child.stdin!.write(line + '\n');
  }

  /** With idleUnref: the child and its pipes keep the event loop alive only while answers are awaited. */
  private hold(w: Worker, busy: boolean): void {
    if (!this.idleUnref) return;
    for (const h of [w.child, w.child.stdin, w.child.stdout, w.child.stderr] as ({ ref?: () => void; unref?: () => void } | null)[]) {
      if (busy) h?.ref?.();
      else h?.unref?.();
    }
  }

  /** Starts bpftool now, so the first write does not pay for it. */
  start(): void {
    this.ensure();
  }

  close(): void {
    this.worker?.child.stdin?.end();
    this.worker = undefined;
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    // One {"command": …, "output": …} object per line.
    const child = spawn(this.argv, { stdin: 'pipe' });
    const w: Worker = { child, pending: [] };
    const retire = () => {
      if (this.worker === w) this.worker = undefined;
    };
    const parser = new JsonObjectStream(
      (value) => {
        const answer = value as { output?: { error?: string } | unknown[] | null; done_unix_us?: number };
        const p = w.pending.shift();
        if (!p) return;
        if (w.pending.length === 0) this.hold(w, false);
        if (answer.output && typeof answer.output === 'object' && !Array.isArray(answer.output) && answer.output.error) {
          // both end the batch at the first failing command: later writes go to a new one.
          retire();
          child.stdin?.end();
          p.reject(new Error(`bpftool: ${answer.output.error} at: ${p.line}`));
          // Lines after it were never run: their promises fail too, naming the first failure.
          for (const later of w.pending.splice(0)) later.reject(new Error(`not run: an earlier line failed (${answer.output.error})`));
        } else p.resolve(answer.output, typeof answer.done_unix_us === 'number' ? answer.done_unix_us : undefined);
      },
      (v) => 'output' in v,
    );
    let stderr = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => parser.push(chunk));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    void child.then((r) => {
      retire();
      const why = stderr.trim() || `bpftool batch exited (${r.exitCode})`;
      for (const p of w.pending.splice(0)) p.reject(new Error(why));
    });
    this.worker = w;
    return w;
  }
}

/** The process's reader: undefined until first used, null when the helper is not built. */
let sharedReader: MapWriter | null | undefined;

/**
 * Map dumps for a process that polls maps (the scenarios wait on ipcache and
 * auth entries): one map-batch helper per process answers them, where a
 * bpftool process per poll cost a busy demo process seconds of blocked
 * spawns. The helper opens each map for the dump only, so it never keeps a
 * map alive after `down`. bpftool when the helper is not built, or when it
 * refuses (a per-CPU map): then bpftool's answer, or its error, stands.
 */
export function sharedDumpIo(): Pick<MapIo, 'dump'> {
  return {
    dump: async (pin) => {
      if (sharedReader === undefined) sharedReader = existsSync(MAP_BATCH_HELPER) ? new MapWriter([MAP_BATCH_HELPER], true) : null;
      if (!sharedReader) return dumpMapRaw(pin);
      try {
        return await sharedReader.dump(pin);
      } catch {
        return dumpMapRaw(pin);
      }
    },
  };
}

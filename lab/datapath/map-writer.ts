// A long-lived writer that takes map updates one line at a time: the node
// agent writes each auth entry in well under a millisecond instead of the
// ~5–10 ms of starting a bpftool process per update (measured by
// `mtless bench auth`). bpf/build/map-batch speaks bpftool's batch lines and
// JSON answers with each pin kept open (one bpf(2) call a line); without it
// (BPF tools not built) a `bpftool -j batch file -` does the same, slower.

import { opLine, type MapOp } from './bpftool.ts';
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
  resolve: () => void;
  reject: (e: Error) => void;
}

interface Worker {
  child: ResultPromise;
  pending: Pending[];
}

export class MapWriter {
  private worker?: Worker;

  /** `argv`: the writer to run (tests run both); default mapWriterArgv(). */
  constructor(private readonly argv?: string[]) {}

  /** Applies one change; resolves once bpftool has answered for it. */
  apply(op: MapOp): Promise<void> {
    const line = opLine(op);
    return new Promise((resolve, reject) => {
      const w = this.ensure();
      w.pending.push({ line, resolve, reject });
      w.child.stdin!.write(line + '\n');
    });
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
    const child = spawn(this.argv ?? mapWriterArgv(), { stdin: 'pipe' });
    const w: Worker = { child, pending: [] };
    const retire = () => {
      if (this.worker === w) this.worker = undefined;
    };
    const parser = new JsonObjectStream(
      (value) => {
        const answer = value as { output?: { error?: string } | null };
        const p = w.pending.shift();
        if (!p) return;
        if (answer.output && typeof answer.output === 'object' && answer.output.error) {
          // both end the batch at the first failing command: later writes go to a new one.
          retire();
          child.stdin?.end();
          p.reject(new Error(`bpftool: ${answer.output.error} at: ${p.line}`));
        } else p.resolve();
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

// How the CLI shows progress: one line per step, with its time, on stderr.
import type { ProgressEvent } from '../core/progress.ts';

export function printProgress(e: ProgressEvent): void {
  switch (e.kind) {
    case 'start':
      // On a terminal the step shows while it runs; logs get one line per step.
      if (process.stderr.isTTY) process.stderr.write(`  ${e.step.padEnd(12)} …`);
      break;
    case 'done':
      process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}  ${e.step.padEnd(12)} ${e.ms.toFixed(0).padStart(6)} ms\n`);
      break;
    case 'rollback':
      process.stderr.write(`\n  ${e.message}\n`);
      break;
    case 'info':
      process.stderr.write(`  ${e.message}\n`);
      break;
  }
}

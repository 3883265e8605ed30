// The programs' own run time in a live flow: the kernel counts run_time_ns
// and run_cnt per program while run-time statistics are on. bpf/build/bpf-stats
// holds them on (BPF_ENABLE_STATS) for as long as it runs, so they go off
// by themselves even if we die, unlike the kernel.bpf_stats_enabled sysctl.
import { join } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';
import { run } from './run.ts';
import { spawn } from './spawn.ts';

/** Built by `make -C bpf` from bpf/tools/bpf-stats.c. */
export const BPF_STATS_HELPER = join(REPO_ROOT, 'bpf', 'build', 'bpf-stats');

export interface ProgramRunTime {
  runTimeNs: number;
  runs: number;
}

/** run_time_ns and run_cnt of pinned programs, summed (0 while statistics are off). */
export async function programRunTime(pins: readonly string[]): Promise<ProgramRunTime> {
  let runTimeNs = 0;
  let runs = 0;
  for (const pin of pins) {
    const p = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'pinned', pin])).stdout) as { run_time_ns?: number; run_cnt?: number };
    runTimeNs += p.run_time_ns ?? 0;
    runs += p.run_cnt ?? 0;
  }
  return { runTimeNs, runs };
}

/** Runs `body` with run-time statistics on; they go off when it settles. */
export async function withRunTimeStats<T>(body: () => Promise<T>): Promise<T> {
  const child = spawn([BPF_STATS_HELPER], { stdin: 'pipe' });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('enabled')) resolve();
    });
    void child.then((r) => reject(new Error(`${BPF_STATS_HELPER} ended before enabling statistics: ${String(r.stderr ?? '').trim() || `exit ${r.exitCode}`}`)));
  });
  try {
    return await body();
  } finally {
    child.stdin?.end();
    await child;
  }
}

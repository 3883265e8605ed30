// `mtless bench …`: measurements printed as ratios measured side by side in one run.
import { isRoot } from '../kernel/preflight.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';

/**
 * Runs `bench` with an AbortSignal that SIGINT/SIGTERM abort: the benchmark
 * stops between measurements and tears its lab down (in its `finally`). The
 * handlers stay until it returns (removing them early would let execa's
 * signal-exit handler re-raise a later signal and kill us mid-teardown).
 */
async function interruptible<T>(bench: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) return;
    process.stderr.write(`\n${sig}: finishing the current measurement, then tearing the lab down…\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await bench(abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export const BENCH_COMMANDS: Record<string, Command> = {
  bench: {
    options: { runs: { type: 'string' }, json: { type: 'boolean' } },
    run: async ([what], v) => {
      if (!isRoot()) throw new Error('benchmarks need root: they build real labs (run with sudo)');
      const runs = v.runs === undefined ? undefined : Number(v.runs);
      if (runs !== undefined && !(Number.isInteger(runs) && runs > 0)) throw new UsageError('bench: --runs must be a positive integer');
      const log = (line: string) => process.stderr.write(`${line}\n`);
      switch (what) {
        case 'up': {
          const [{ benchUp }, { formatBenchUp }] = await Promise.all([import('../bench/up/run.ts'), import('../bench/up/format.ts')]);
          const report = await benchUp({ runs, log });
          console.log(v.json ? JSON.stringify(report, null, 2) : formatBenchUp(report));
          return 0;
        }
        case 'datapath': {
          const [{ benchDatapath }, { formatBenchDatapath }] = await Promise.all([import('../bench/datapath/run.ts'), import('../bench/datapath/format.ts')]);
          const report = await interruptible((signal) => benchDatapath({ rounds: runs, log, signal }));
          console.log(v.json ? JSON.stringify(report, null, 2) : formatBenchDatapath(report));
          return 0;
        }
        case 'auth': {
          const [{ benchAuth }, { formatBenchAuth }] = await Promise.all([import('../bench/auth/run.ts'), import('../bench/auth/format.ts')]);
          const report = await interruptible((signal) => benchAuth({ log, signal }));
          console.log(v.json ? JSON.stringify(report, null, 2) : formatBenchAuth(report));
          return 0;
        }
        case 'sockmap': {
          const [{ benchSockmap }, { formatSockmapBench }] = await Promise.all([import('../bench/sockmap/run.ts'), import('../bench/sockmap/format.ts')]);
          const report = await benchSockmap({ runs, log });
          console.log(v.json ? JSON.stringify(report, null, 2) : formatSockmapBench(report));
          return 0;
        }
        case 'cli': {
          const [{ benchCli }, { formatBenchCli }] = await Promise.all([import('../bench/cli/run.ts'), import('../bench/cli/format.ts')]);
          const report = await interruptible((signal) => benchCli({ runs, log, signal }));
          console.log(v.json ? JSON.stringify(report, null, 2) : formatBenchCli(report));
          return 0;
        }
        default:
          throw new UsageError(`bench: unknown benchmark "${what ?? ''}" (valid: up, datapath, auth, sockmap, cli)`);
      }
    },
  },
};

// `mtless bench …`: measurements printed as ratios measured side by side in one run.
import { isRoot } from '../kernel/preflight.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { prefixedLabName } from '../core/names.ts';
import { RUN_OPTIONS, runOptions } from './run-options.ts';
import { writeBenchOutput } from './bench-output.ts';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CPU_PROF_ENV } from '../kernel/daemon.ts';
import { listenForInterrupt } from '../core/interrupt.ts';

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
  const stopListening = listenForInterrupt(onSignal);
  try {
    return await bench(abort.signal);
  } finally {
    stopListening();
  }
}

export const BENCH_COMMANDS: Record<string, Command> = {
  bench: {
    options: { runs: { type: 'string' }, json: { type: 'boolean' }, 'cpu-prof': { type: 'string' }, only: { type: 'string' }, sizes: { type: 'string' }, ...RUN_OPTIONS },
    run: async ([what], v) => {
      const { prefix, out } = runOptions(v);
      if (!isRoot()) throw new Error('benchmarks need root: they build real labs (run with sudo)');
      const runs = v.runs === undefined ? undefined : Number(v.runs);
      if (runs !== undefined && !(Number.isInteger(runs) && runs > 0)) throw new UsageError('bench: --runs must be a positive integer');
      if (v.sizes !== undefined && what !== 'up') throw new UsageError('bench: --sizes is for bench up');
      const log = (line: string) => process.stderr.write(`${line}\n`);
      // The lab's daemons (agents, control plane, relay) profiled: DIR/<role>-<node>.cpuprofile when they stop.
      if (typeof v['cpu-prof'] === 'string') {
        const dir = resolve(v['cpu-prof']);
        await mkdir(dir, { recursive: true });
        process.env[CPU_PROF_ENV] = dir;
        log(`daemons profiled into ${dir}`);
      }
      // The report on stdout, and with --out DIR also in DIR/bench-<what>.txt and .json.
      const report = async (data: unknown, text: string) => {
        console.log(v.json ? JSON.stringify(data, null, 2) : text);
        if (out) log(`report: ${(await writeBenchOutput(out, what!, data, text)).join(', ')}`);
        return 0;
      };
      switch (what) {
        case 'all': {
          // One file with every benchmark: captures/bench/bench-all.json (and .txt) unless --out says where.
          const [{ benchAll, BENCH_ALL_ORDER }, { CAPTURES_ROOT }] = await Promise.all([import('../bench/all.ts'), import('../capture/scenario.ts')]);
          const only = typeof v.only === 'string' ? v.only.split(',').map((w) => w.trim()).filter(Boolean) : undefined;
          const bad = only?.filter((w) => !(BENCH_ALL_ORDER as readonly string[]).includes(w)) ?? [];
          if (bad.length > 0) throw new UsageError(`bench all: --only takes ${BENCH_ALL_ORDER.join(', ')}; not: ${bad.join(', ')}`);
          const { file, text } = await interruptible((signal) => benchAll({ runs, log, signal, ...(prefix ? { name: prefix } : {}), ...(only ? { which: only as typeof BENCH_ALL_ORDER[number][] } : {}) }));
          console.log(v.json ? JSON.stringify(file, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) : text);
          log(`report: ${(await writeBenchOutput(out ?? join(CAPTURES_ROOT, 'bench'), 'all', file, text)).join(', ')}`);
          return Object.keys(file.errors).length > 0 ? 1 : 0;
        }
        case 'up': {
          const [{ benchUp }, { formatBenchUp }, { parseBenchSizes }] = await Promise.all([import('../bench/up/run.ts'), import('../bench/up/format.ts'), import('../bench/up/topology.ts')]);
          let sizes;
          try {
            sizes = typeof v.sizes === 'string' ? parseBenchSizes(v.sizes) : undefined;
          } catch (e) {
            throw new UsageError(`bench up: --sizes: ${(e as Error).message}`);
          }
          const result = await benchUp({ runs, log, prefix, ...(sizes ? { sizes } : {}) });
          return report(result, formatBenchUp(result));
        }
        case 'datapath': {
          const [{ benchDatapath, DATAPATH_LAB }, { formatBenchDatapath }] = await Promise.all([import('../bench/datapath/run.ts'), import('../bench/datapath/format.ts')]);
          const result = await interruptible((signal) => benchDatapath({ rounds: runs, log, signal, name: prefixedLabName(prefix, DATAPATH_LAB) }));
          return report(result, formatBenchDatapath(result));
        }
        case 'auth': {
          const [{ benchAuth }, { formatBenchAuth }, { AUTH_LAB }] = await Promise.all([import('../bench/auth/run.ts'), import('../bench/auth/format.ts'), import('../bench/auth/topology.ts')]);
          const result = await interruptible((signal) => benchAuth({ runs, log, signal, name: prefixedLabName(prefix, AUTH_LAB) }));
          return report(result, formatBenchAuth(result));
        }
        case 'sockmap': {
          const [{ benchSockmap, BENCH_SOCKMAP_LAB }, { formatSockmapBench }] = await Promise.all([import('../bench/sockmap/run.ts'), import('../bench/sockmap/format.ts')]);
          const result = await benchSockmap({ runs, log, lab: prefixedLabName(prefix, BENCH_SOCKMAP_LAB) });
          return report(result, formatSockmapBench(result));
        }
        case 'cli': {
          const [{ benchCli }, { formatBenchCli }] = await Promise.all([import('../bench/cli/run.ts'), import('../bench/cli/format.ts')]);
          const result = await interruptible((signal) => benchCli({ runs, log, signal, prefix }));
          return report(result, formatBenchCli(result));
        }
        case 'modes': {
          const [{ benchModes }, { formatBenchModes }, { MODES_LAB }] = await Promise.all([import('../bench/modes/run.ts'), import('../bench/modes/format.ts'), import('../bench/modes/topology.ts')]);
          const result = await interruptible((signal) => benchModes({ rounds: runs, log, signal, name: prefixedLabName(prefix, MODES_LAB) }));
          return report(result, formatBenchModes(result));
        }
        default:
          throw new UsageError(`bench: unknown benchmark "${what ?? ''}" (valid: all, up, datapath, auth, sockmap, cli, modes)`);
      }
    },
  },
};

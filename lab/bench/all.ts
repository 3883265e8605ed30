// `mtless bench all`: every benchmark in turn, one JSON file with all of
// them (each report as its own benchmark writes it: raw samples and
// summaries) and the machine they ran on. The report (lab/report/gather.ts)
// reads that file's benchmark keys; the shape is BenchAllFile.
import { cpus, release, totalmem } from 'node:os';
import type { BenchEntry, BenchRunOptions } from './entry.ts';
import { busyFraction, cpuTimes, loadavg } from './host.ts';
import type { BenchUpReport } from './up/report.ts';
import type { BenchDatapathReport } from './datapath/report.ts';
import type { BenchAuthReport } from './auth/report.ts';
import type { SockmapBenchReport } from './sockmap/report.ts';
import type { CliBenchReport } from './cli/report.ts';
import type { BenchModesReport } from './modes/report.ts';
import { prefixedLabName } from '../core/names.ts';

/** The benchmarks, in the order `bench all` runs them (quick ones first). */
export const BENCH_ALL_ORDER = ['cli', 'auth', 'datapath', 'sockmap', 'modes', 'up'] as const;
export type BenchName = (typeof BENCH_ALL_ORDER)[number];

/**
 * The file `mtless bench all --json` writes (captures/bench/bench-all.json
 * unless --out says otherwise). Each benchmark's report sits under its name
 * (absent when it failed: see `errors`); everything else describes the run.
 */
export interface BenchAllFile {
  kind: 'mtless-bench-all';
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  machine: { kernel: string; cpus: number; cpuModel: string; memoryBytes: number; node: string };
  /** Load averages (1, 5, 15 min) before and after, and the CPUs' busy fraction over the second before the first benchmark. */
  load: { before: string; after: string; busyBefore: number };
  /** The options every benchmark got (`--runs`, `--name`). */
  options: { runs?: number; name?: string };
  /** Which benchmarks ran, in order; which failed and why. */
  ran: BenchName[];
  errors: Partial<Record<BenchName, string>>;
  up?: BenchUpReport;
  datapath?: BenchDatapathReport;
  auth?: BenchAuthReport;
  sockmap?: SockmapBenchReport;
  cli?: CliBenchReport;
  modes?: BenchModesReport;
}

/** The entries (loaded on use: each pulls in its whole benchmark). */
export async function benchEntries(): Promise<Record<BenchName, BenchEntry>> {
  const [up, dp, auth, authTopo, sockmap, cli, modes] = await Promise.all([
    import('./up/run.ts').then(async (m) => ({ ...m, ...(await import('./up/format.ts')) })),
    import('./datapath/run.ts').then(async (m) => ({ ...m, ...(await import('./datapath/format.ts')) })),
    import('./auth/run.ts').then(async (m) => ({ ...m, ...(await import('./auth/format.ts')) })),
    import('./auth/topology.ts'),
    import('./sockmap/run.ts').then(async (m) => ({ ...m, ...(await import('./sockmap/format.ts')) })),
    import('./cli/run.ts').then(async (m) => ({ ...m, ...(await import('./cli/format.ts')) })),
    import('./modes/entry.ts'),
  ]);
  const entry = <R>(e: BenchEntry<R>) => e as unknown as BenchEntry;
  return {
    up: entry<BenchUpReport>({ what: 'up', lab: 'bench-up', run: ({ runs, name, log }) => up.benchUp({ runs, log, prefix: name }), format: up.formatBenchUp }),
    datapath: entry<BenchDatapathReport>({
      what: 'datapath', lab: dp.DATAPATH_LAB, run: ({ runs, name, log, signal }) => dp.benchDatapath({ rounds: runs, log, signal, name: prefixedLabName(name, dp.DATAPATH_LAB) }), format: dp.formatBenchDatapath,
    }),
    auth: entry<BenchAuthReport>({
      what: 'auth', lab: authTopo.AUTH_LAB, run: ({ runs, name, log, signal }) => auth.benchAuth({ runs, log, signal, name: prefixedLabName(name, authTopo.AUTH_LAB) }), format: auth.formatBenchAuth,
    }),
    sockmap: entry<SockmapBenchReport>({
      what: 'sockmap', lab: sockmap.BENCH_SOCKMAP_LAB, run: ({ runs, name, log }) => sockmap.benchSockmap({ runs, log, lab: prefixedLabName(name, sockmap.BENCH_SOCKMAP_LAB) }), format: sockmap.formatSockmapBench,
    }),
    cli: entry<CliBenchReport>({ what: 'cli', lab: 'bench-cli', run: ({ runs, name, log, signal }) => cli.benchCli({ runs, log: log ?? (() => undefined), signal, prefix: name }), format: cli.formatBenchCli }),
    modes: entry(modes.MODES_BENCH),
  };
}

/** The machine, as the file records it. */
export function machineFacts(): BenchAllFile['machine'] {
  return { kernel: release(), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memoryBytes: totalmem(), node: process.version };
}

/** The file, from what ran (pure). */
export function benchAllFile(parts: {
  startedAt: Date; finishedAt: Date; machine: BenchAllFile['machine']; load: BenchAllFile['load']; options: BenchAllFile['options'];
  results: { name: BenchName; report?: unknown; error?: string }[];
}): BenchAllFile {
  const file: BenchAllFile = {
    kind: 'mtless-bench-all', version: 1,
    startedAt: parts.startedAt.toISOString(), finishedAt: parts.finishedAt.toISOString(), durationMs: parts.finishedAt.getTime() - parts.startedAt.getTime(),
    machine: parts.machine, load: parts.load, options: parts.options,
    ran: parts.results.map((r) => r.name), errors: {},
  };
  for (const r of parts.results) {
    if (r.error !== undefined) file.errors[r.name] = r.error;
    else (file as unknown as Record<string, unknown>)[r.name] = r.report;
  }
  return file;
}

/** Runs `which` (default all, in BENCH_ALL_ORDER) one after the other; a failing one is recorded and the rest go on, unless interrupted. */
export async function benchAll(opts: BenchRunOptions & { which?: BenchName[] }): Promise<{ file: BenchAllFile; text: string }> {
  const which = opts.which ?? [...BENCH_ALL_ORDER];
  const entries = await benchEntries();
  const log = opts.log ?? (() => undefined);
  const startedAt = new Date();
  const before = await loadavg();
  const a = await cpuTimes();
  await new Promise((r) => setTimeout(r, 1000));
  const busyBefore = busyFraction(a, await cpuTimes());
  const results: { name: BenchName; report?: unknown; error?: string }[] = [];
  const texts: string[] = [];
  for (const name of which) {
    if (opts.signal?.aborted) break;
    log(`== bench ${name}`);
    try {
      const report = await entries[name].run(opts);
      results.push({ name, report });
      texts.push(`== mtless bench ${name}\n${entries[name].format(report)}`);
    } catch (e) {
      const error = (e as Error).message;
      results.push({ name, error });
      texts.push(`== mtless bench ${name}\nfailed: ${error}`);
      log(`bench ${name} failed: ${error}`);
    }
  }
  const file = benchAllFile({
    startedAt, finishedAt: new Date(), machine: machineFacts(), load: { before, after: await loadavg(), busyBefore },
    options: { ...(opts.runs !== undefined ? { runs: opts.runs } : {}), ...(opts.name !== undefined ? { name: opts.name } : {}) }, results,
  });
  return { file, text: texts.join('\n\n') };
}

// What `mtless bench all` needs of a benchmark: its name, a run with the
// options every benchmark takes, and its text. Each benchmark's report is
// JSON as it is (raw samples, summaries, host), under its `what`.

export interface BenchRunOptions {
  /** The benchmark's repetitions (rounds, runs): its own default when absent. */
  runs?: number;
  /** `--name PREFIX` as given: each benchmark names its labs prefixedLabName(PREFIX, its lab). */
  name?: string;
  /** One line per measurement, for a live view (stderr). */
  log?: (line: string) => void;
  /** Checked between measurements; the benchmark then tears its labs down and throws. */
  signal?: AbortSignal;
}

export interface BenchEntry<R = unknown> {
  /** `mtless bench <what>`; the report's key in bench all's file. */
  what: string;
  /** Its default lab name (or prefix), for --name PREFIX. */
  lab: string;
  run(opts: BenchRunOptions): Promise<R>;
  format(report: R): string;
}

// What the load generators print, read into numbers: sockperf's summary
// (text, on stderr and stdout) and iperf3's JSON report (-J). Pure: the
// benchmarks run the tools and decide what a failure means.

export interface SockperfSummary {
  /** µs; with --full-rtt the round trip, without it half of it (sockperf's "latency"). */
  rttP50Us: number;
  rttAvgUs: number;
  rttP99Us: number;
  /** Round trips sockperf counted in its valid window (0 when it did not say). */
  roundTrips: number;
}

/** One of sockperf's percentile lines (`---> percentile 50.000 =   24.215`), µs. */
export function sockperfPercentile(text: string, percentile: number): number | undefined {
  const m = new RegExp(`percentile ${percentile.toFixed(3).replace('.', '\\.')} =\\s*([\\d.]+)`).exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Parses sockperf's summary ("avg-rtt=…" with --full-rtt, "avg-latency=…" without; percentiles in µs). */
export function parseSockperf(text: string): SockperfSummary {
  const avg = /avg-(?:rtt|latency)=([\d.]+)/.exec(text);
  const p50 = sockperfPercentile(text, 50);
  const p99 = sockperfPercentile(text, 99);
  const count = /\[Valid Duration\][^\n]*ReceivedMessages=(\d+)/.exec(text);
  if (!avg || p50 === undefined || p99 === undefined) throw new Error(`cannot read sockperf's summary:\n${text.trim().split('\n').slice(-12).join('\n')}`);
  return { rttAvgUs: Number(avg[1]), rttP50Us: p50, rttP99Us: p99, roundTrips: count ? Number(count[1]) : 0 };
}

export interface Iperf3Result {
  /** iperf3's own error ("unable to connect to server: …", "the server is busy …"). */
  error?: string;
  /** Receiver side (end.sum_received), Gbit/s; undefined when the report has none. */
  throughputGbps?: number;
  /** Sender side (end.sum_sent); 0 when absent. */
  retransmits: number;
}

interface Iperf3Json {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } };
}

/** iperf3 -J's report, or undefined when `stdout` is not a JSON object (iperf3 died before writing one). */
export function parseIperf3(stdout: string): Iperf3Result | undefined {
  let json: Iperf3Json;
  try {
    json = JSON.parse(stdout) as Iperf3Json;
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const bps = json.end?.sum_received?.bits_per_second;
  return {
    ...(json.error !== undefined ? { error: json.error } : {}),
    ...(typeof bps === 'number' ? { throughputGbps: bps / 1e9 } : {}),
    retransmits: json.end?.sum_sent?.retransmits ?? 0,
  };
}

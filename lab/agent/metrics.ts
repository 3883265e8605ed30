// The node agent's counters, and the Prometheus text format they are served
// in (GET /metrics, metrics-server.ts) and read back from (`mtless metrics`).
// Pure: no I/O.
//
// Names follow Cilium's agent (namespace cilium_):
// - cilium_datapath_signals_handled_total{signal,data,status}: Cilium's own
//   metric (pkg/signal), counted per signal read from cilium_signals. data is
//   the auth type of the signal's key (Cilium's signalAuthKey.String());
//   status "received", or "channel overflow" when the request queue is full.
// - cilium_auth_attempts_total{auth_type,outcome,reason}: the lab's, in
//   Cilium's style (Cilium's auth manager only logs its outcomes): one per
//   authentication the agent ran, outcome success or fail (Cilium's outcome
//   label values), reason the failure's (handshake.ts, auth-handlers.ts).
// - cilium_auth_pending: the lab's gauge, authentications in flight (the
//   lab's request queue, AUTH_QUEUE_MAX).

export type Labels = Record<string, string>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
}

export const SIGNALS_HANDLED: MetricFamily = {
  name: 'cilium_datapath_signals_handled_total',
  type: 'counter',
  help: 'Number of times that the datapath signal handler process was run labeled by signal type, data and completion status',
};
export const AUTH_ATTEMPTS: MetricFamily = {
  name: 'cilium_auth_attempts_total',
  type: 'counter',
  help: 'Authentications run by the agent, labeled by auth type, outcome (success, fail) and the reason of a failure',
};
export const AUTH_PENDING: MetricFamily = {
  name: 'cilium_auth_pending',
  type: 'gauge',
  help: 'Authentications in flight (the request queue, at most AUTH_QUEUE_MAX)',
};
export const AGENT_METRIC_FAMILIES: MetricFamily[] = [SIGNALS_HANDLED, AUTH_ATTEMPTS, AUTH_PENDING];

/** Cilium's statuses of a handled signal (pkg/signal); the lab's agent has no parse errors or muting. */
export type SignalStatus = 'received' | 'channel overflow' | 'unregistered';

/** Cilium's signal names (pkg/signal signalName). */
export const signalName = (text: string | undefined, nr: number): string => (text ? text.replace(/ /g, '_') : `signal_${nr}`);

const seriesKey = (name: string, labels: Labels) => `${name}${renderLabels(labels)}`;

/** Counters and gauges by name and label set, in the order first seen. */
export class MetricSet {
  private readonly series = new Map<string, Sample>();

  constructor(readonly families: MetricFamily[]) {}

  add(family: MetricFamily, labels: Labels, by = 1): void {
    const key = seriesKey(family.name, labels);
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { name: family.name, labels: { ...labels }, value: by });
  }

  set(family: MetricFamily, labels: Labels, value: number): void {
    this.series.set(seriesKey(family.name, labels), { name: family.name, labels: { ...labels }, value });
  }

  samples(): Sample[] {
    return [...this.series.values()].map((s) => ({ ...s, labels: { ...s.labels } }));
  }

  render(): string {
    return renderPrometheus(this.families, this.samples());
  }
}

/** The agent's metrics, named for what it does. */
export class AgentMetrics {
  readonly set = new MetricSet(AGENT_METRIC_FAMILIES);

  constructor() {
    this.set.set(AUTH_PENDING, {}, 0);
  }

  signalHandled(signal: string, data: string, status: SignalStatus): void {
    this.set.add(SIGNALS_HANDLED, { signal, data, status });
  }

  authAttempt(authType: string, outcome: 'success' | 'fail', reason = ''): void {
    this.set.add(AUTH_ATTEMPTS, { auth_type: authType, outcome, ...(reason ? { reason } : {}) });
  }

  pending(n: number): void {
    this.set.set(AUTH_PENDING, {}, n);
  }

  render(): string {
    return this.set.render();
  }
}

// ---- the text format (Prometheus exposition format 0.0.4) --------------------------

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const escapeHelp = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeValue = (s: string) => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** `{a="1",b="2"}`, or nothing without labels (empty values are left out: Prometheus reads them as absent). */
export function renderLabels(labels: Labels): string {
  const parts = Object.entries(labels).filter(([, v]) => v !== '').map(([k, v]) => `${k}="${escapeValue(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function renderNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** Every family with HELP and TYPE, then its samples; a family without samples still says what it is. */
export function renderPrometheus(families: MetricFamily[], samples: Sample[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of samples) if (s.name === f.name) lines.push(`${s.name}${renderLabels(s.labels)} ${renderNumber(s.value)}`);
  }
  return lines.join('\n') + '\n';
}

export interface ParsedMetrics {
  samples: Sample[];
  /** TYPE of each family that declared one. */
  types: Record<string, string>;
  help: Record<string, string>;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses the text format; throws on a malformed line, naming it. */
export function parsePrometheus(text: string): ParsedMetrics {
  const out: ParsedMetrics = { samples: [], types: {}, help: {} };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const fail = (why: string): never => {
      throw new Error(`metrics line ${i + 1}: ${why}: ${raw}`);
    };
    if (line.startsWith('#')) {
      const m = /^#\s*(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (!m) return; // a comment
      if (m[1] === 'TYPE') out.types[m[2]!] = m[3]!;
      else out.help[m[2]!] = m[3]!.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      return;
    }
    const name = NAME_RE.exec(line)?.[0] ?? fail('no metric name');
    // Blanks may separate every token of a line.
    let rest = line.slice(name.length).trimStart();
    const labels: Labels = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      for (;;) {
        rest = rest.trimStart();
        if (rest.startsWith('}')) {
          rest = rest.slice(1);
          break;
        }
        const key = LABEL_NAME_RE.exec(rest)?.[0] ?? fail('bad label name');
        rest = rest.slice(key.length).trimStart();
        if (!rest.startsWith('=')) fail(`label ${key} has no quoted value`);
        rest = rest.slice(1).trimStart();
        if (!rest.startsWith('"')) fail(`label ${key} has no quoted value`);
        rest = rest.slice(1);
        let value = '';
        for (;;) {
          const c = rest[0];
          if (c === undefined) fail(`label ${key}: unterminated value`);
          rest = rest.slice(1);
          if (c === '"') break;
          if (c === '\\') {
            const e = rest[0];
            rest = rest.slice(1);
            value += e === 'n' ? '\n' : e ?? '';
          } else value += c;
        }
        labels[key] = value;
        rest = rest.trimStart();
        if (rest.startsWith(',')) rest = rest.slice(1);
        else if (!rest.startsWith('}')) fail('expected , or } after a label');
      }
    }
    const [valueText, timestamp, extra] = rest.trim().split(/\s+/);
    if (valueText === undefined || valueText === '' || extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) fail('expected a value and an optional timestamp');
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    if (Number.isNaN(value) && valueText !== 'NaN') fail(`not a number: ${valueText}`);
    out.samples.push({ name, labels, value });
  });
  return out;
}

/** The sum of the samples of `name` whose labels include `labels` (0 when none: a counter not yet moved). */
export function sampleValue(samples: Sample[], name: string, labels: Labels = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => (s.labels[k] ?? '') === v))
    .reduce((sum, s) => sum + s.value, 0);
}

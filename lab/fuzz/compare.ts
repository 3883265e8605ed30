// What the kernel did against what the model said, field by field, and the
// printing of a case (map state, packet hex, expected vs actual). Times the
// program writes are checked against the window the batch ran in, which is
// all a caller outside the kernel can know of "now". Pure.
import {
  SIGNAL_AUTH_REQUIRED,
  type AuthKey,
  type Ct4Key,
  type CtEntry,
  type FlowEvent,
  type PolicyEntry,
  type PolicyKey,
  type SignalMsg,
} from '../abi/generated.ts';
import { sameAuthKey, sameCtKey, type DatapathOutcome, type Entry, type FlowFields, type MetricsIncrement, type TimeValue } from './model.ts';

/** When the batch ran: from just before bpftool started to just after it exited. */
export interface Window {
  startMonoNs: bigint;
  endMonoNs: bigint;
  /** Unix ns = monotonic ns + this (the offset the runner wrote to the runtime config). */
  unixOffsetNs: bigint;
}

/** What one program run left behind, as read from the kernel. */
export interface DatapathObservation {
  retval: number;
  flows: FlowEvent[];
  signals: SignalMsg[];
  /** Every counter of cilium_metrics that changed, by how much. */
  metrics: MetricsIncrement[];
  /** The case's cilium_policy entries afterwards. */
  policy: Entry<PolicyKey, PolicyEntry>[];
  /** cilium_ct4 afterwards. */
  ct: Entry<Ct4Key, CtEntry>[];
}

/** JSON with bigints as strings and byte arrays in hex (Buffer's toJSON runs before a replacer sees it). */
const show = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => {
    if (typeof x === 'bigint') return `${x}`;
    if (x && typeof x === 'object' && (x as { type?: unknown }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) return Buffer.from((x as { data: number[] }).data).toString('hex');
    return x;
  });

/** Whether a time the program wrote is one the model allows, given the window its "now" fell in. */
export function timeOk(expected: TimeValue, actual: bigint, w: Window): boolean {
  if (typeof expected === 'bigint') return expected === actual;
  if ('old' in expected) {
    // Kept when the program's now fell in [old - nowPlus, old - nowPlus + within):
    // allowed if that span meets the window; otherwise it wrote now + nowPlus.
    const keptFrom = expected.old - expected.nowPlus;
    if (actual === expected.old) return keptFrom <= w.endMonoNs && keptFrom + expected.within > w.startMonoNs;
    if (actual >= expected.old && actual < expected.old + expected.within) return false;
  }
  return actual >= w.startMonoNs + expected.nowPlus && actual <= w.endMonoNs + expected.nowPlus;
}
const showTime = (t: TimeValue) =>
  typeof t === 'bigint' ? `${t}` : 'old' in t ? `now+${t.nowPlus}, or ${t.old} if that moves it less than ${t.within}` : `now+${t.nowPlus}`;

export const policyKeyText = (k: PolicyKey) => `{ep ${k.epIfindex}, id ${k.secLabel}, port ${k.dport}, proto ${k.protocol}, dir ${k.direction}}`;
export const ctKeyText = (k: Ct4Key) => `{${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport} proto ${k.protocol} scope ${k.scope}}`;
export const authKeyText = (k: AuthKey) => `{local ${k.localSecLabel}, remote ${k.remoteSecLabel}, node ${k.remoteNodeId}, type ${k.authType}}`;

const samePolicyKey = (a: PolicyKey, b: PolicyKey) =>
  a.epIfindex === b.epIfindex && a.secLabel === b.secLabel && a.dport === b.dport && a.protocol === b.protocol && a.direction === b.direction;

/** What every program reports: its verdict, flow event, signal and counter. */
export interface ExpectedReports {
  retval: number;
  flow: FlowFields | null;
  signal: AuthKey | null;
  /** The one counter that moves, or null when none does. */
  metrics: MetricsIncrement | null;
}

export interface ObservedReports {
  retval: number;
  flows: FlowEvent[];
  signals: SignalMsg[];
  metrics: MetricsIncrement[];
}

/** Differences in verdict, flow event, signal and counters, one line each. */
export function compareReports(expected: ExpectedReports, actual: ObservedReports, w: Window): string[] {
  const d: string[] = [];
  if (expected.retval !== actual.retval) d.push(`retval: expected ${expected.retval}, got ${actual.retval}`);

  if (expected.flow === null) {
    if (actual.flows.length) d.push(`flow: expected none, got ${actual.flows.length}: ${show(actual.flows)}`);
  } else if (actual.flows.length !== 1) {
    d.push(`flow: expected one, got ${actual.flows.length}${actual.flows.length ? `: ${show(actual.flows)}` : ''}`);
  } else {
    const got = actual.flows[0]!;
    for (const [field, want] of Object.entries(expected.flow)) {
      const have = (got as unknown as Record<string, unknown>)[field];
      if (have !== want) d.push(`flow.${field}: expected ${show(want)}, got ${show(have)}`);
    }
    const lo = w.startMonoNs + w.unixOffsetNs;
    const hi = w.endMonoNs + w.unixOffsetNs;
    if (got.timestamp < lo || got.timestamp > hi) d.push(`flow.timestamp: ${got.timestamp} outside the run [${lo}, ${hi}]`);
  }

  if (expected.signal === null) {
    if (actual.signals.length) d.push(`signal: expected none, got ${show(actual.signals)}`);
  } else if (actual.signals.length !== 1) {
    d.push(`signal: expected ${authKeyText(expected.signal)}, got ${actual.signals.length ? show(actual.signals) : 'none'}`);
  } else {
    const s = actual.signals[0]!;
    if (s.signalNr !== SIGNAL_AUTH_REQUIRED) d.push(`signal.signalNr: expected ${SIGNAL_AUTH_REQUIRED}, got ${s.signalNr}`);
    if (!sameAuthKey(s.auth, expected.signal)) d.push(`signal.auth: expected ${authKeyText(expected.signal)}, got ${authKeyText(s.auth)}`);
  }

  const want = expected.metrics ? [expected.metrics] : [];
  const same = actual.metrics.length === want.length && want.every((m, i) => {
    const a = actual.metrics[i]!;
    return a.reason === m.reason && a.dir === m.dir && a.packets === m.packets && a.bytes === m.bytes;
  });
  if (!same) d.push(`metrics: expected ${show(want)}, got ${show(actual.metrics)}`);
  return d;
}

/** Differences between the model's outcome and the kernel's, one line each; [] when they agree. */
export function compareDatapath(expected: DatapathOutcome, actual: DatapathObservation, w: Window): string[] {
  const d = compareReports(expected, actual, w);

  for (const e of expected.policy) {
    const a = actual.policy.find((x) => samePolicyKey(x.key, e.key));
    if (!a) d.push(`policy ${policyKeyText(e.key)}: missing`);
    else if (show(a.value) !== show(e.value)) d.push(`policy ${policyKeyText(e.key)}: expected ${show(e.value)}, got ${show(a.value)}`);
  }
  for (const a of actual.policy) if (!expected.policy.some((e) => samePolicyKey(e.key, a.key))) d.push(`policy ${policyKeyText(a.key)}: unexpected ${show(a.value)}`);

  for (const e of expected.ct) {
    const a = actual.ct.find((x) => sameCtKey(x.key, e.key));
    if (!a) {
      d.push(`ct ${ctKeyText(e.key)}: missing`);
      continue;
    }
    const { expires, created, ...rest } = e.value;
    const { expires: aExpires, created: aCreated, ...aRest } = a.value;
    if (show(rest) !== show(aRest)) d.push(`ct ${ctKeyText(e.key)}: expected ${show(rest)}, got ${show(aRest)}`);
    if (!timeOk(expires, aExpires, w)) d.push(`ct ${ctKeyText(e.key)}.expires: expected ${showTime(expires)}, got ${aExpires}`);
    if (!timeOk(created, aCreated, w)) d.push(`ct ${ctKeyText(e.key)}.created: expected ${showTime(created)}, got ${aCreated}`);
    // Written by one ct_create4 with one "now": the difference is exact.
    if (typeof expires !== 'bigint' && typeof created !== 'bigint' && aExpires - aCreated !== expires.nowPlus - created.nowPlus) {
      d.push(`ct ${ctKeyText(e.key)}: expires - created = ${aExpires - aCreated}, expected ${expires.nowPlus - created.nowPlus}`);
    }
  }
  for (const a of actual.ct) if (!expected.ct.some((e) => sameCtKey(e.key, a.key))) d.push(`ct ${ctKeyText(a.key)}: unexpected ${show(a.value)}`);
  return d;
}

/** The field a difference line is about ("flow.dropReason", "retval", "ct"): what the shrinker keeps failing on. */
export function diffFields(diffs: string[]): Set<string> {
  return new Set(diffs.map((l) => /^(\w+(?:\.\w+)?)/.exec(l)?.[1] ?? l));
}

export { show as showValue };

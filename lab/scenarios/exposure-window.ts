// Claim C10: eventual consistency has a measurable exposure window. Native
// routing, NO partition: the control plane delays its updates to the
// server's node n2 by D (`mtless delay`). At t0 an authenticated client pod is
// deleted and at once a pod of a forbidden identity ("intruder") takes its IP
// and tries a new connection to server:8080 every 50 ms. Until n2 applies the
// delayed update its ipcache still names the client, the cached auth entry
// matches, and the intruder is admitted. The window W is read from n2's own
// flow events: the last admitted SYN of the intruder, relative to t0 = the
// control plane's own log time of the delete.
//
//   D ∈ {0, 250, 1000, 3000} ms, reuse at once          W grows with D
//   D = 3000 ms, reuse only once n2 has the update       W = 0
//   tunnel mode, D = 3000 ms, reuse at once              W = 0 (the VNI names the intruder)
//   partitioned, healed after a while                    W lasts until n2 resyncs after the heal
//   partitioned, short SVIDs (--svid-ttl), no heal       W ends at the auth entry's expiry
//
// Three labs side by side: the scenario's own (native, every delay case and
// the heal), a tunnel lab, and a native lab with short SVIDs.
import { resolve } from 'node:path';
import { startProbe, startEchoServer, echoSend, type ProbeAttempt } from '../apps/pod-apps.ts';
import { addPod, deletePod, partitionNode, reusePodIp, stagePod } from '../compose/pods.ts';
import { setDelay } from '../control/client.ts';
import { sharedDumpIo } from '../datapath/map-writer.ts';
import { dumpAuth } from '../datapath/auth.ts';
import { DROP_POLICY, DROP_POLICY_AUTH_REQUIRED, IPPROTO_TCP, OBS_TO_ENDPOINT, TCP_F_ACK, TCP_F_SYN, VERDICT_DROPPED, VERDICT_FORWARDED } from '../abi/generated.ts';
import { CONTROL_PLANE_NODE } from '../core/daemons.ts';
import { loadTopologyFile } from '../topology/validate.ts';
import { REPO, type FlowWithNode, type Scenario, type ScenarioContext, type ScenarioProfile } from './framework.ts';
import {
  daemonLog, flowMs, ipcacheIdentity, markdownTable, ownLab, sideLabName, sleep, waitUntil, withSideLab, type LabHandle,
} from './side-lab.ts';

const PORT = 8080;
const PROBE_INTERVAL_MS = 50;
/** Failed attempts in a row, after some admitted one, that end a probe early (the window has closed). */
const STOP_AFTER_FAILURES = 10;
export const DELAYS_MS = [0, 250, 1000, 3000];
const HELD_DELAY_MS = 3000;
const TUNNEL_DELAY_MS = 3000;
/** The partition is healed this long after t0. */
const HEAL_AFTER_MS = 1500;

/** The cases of a run: the full set (the regression test) or the demo's, fewer and shorter, with the same checks. */
interface WindowProfile {
  delays: number[];
  held: number;
  tunnel: number;
  healAfter: number;
  /** The side labs' cases wait for the native ones (every window measured on a quiet machine), or run at once. */
  sideAfterNative: boolean;
}
const WINDOW_PROFILES: Record<ScenarioProfile, WindowProfile> = {
  full: { delays: DELAYS_MS, held: HELD_DELAY_MS, tunnel: TUNNEL_DELAY_MS, healAfter: HEAL_AFTER_MS, sideAfterNative: true },
  demo: { delays: [0, 1000, 3000], held: 2000, tunnel: 2000, healAfter: 1000, sideAfterNative: false },
};
/** SVID lifetime of the expiry lab: the auth entry then expires within seconds. */
export const SHORT_SVID_TTL_MS = 20_000;
/** The expiry case starts when the entry has this long left (its end is then seconds after t0). */
const MIN_ENTRY_LIFE_MS = 12_000;
/** How much longer than its window's end a probe may run: it stops when the window is seen to close (an idle machine: ~0.2 s after). */
const PROBE_BOUND_MS = 20_000;
/** A bound on waits for the control plane and agents, which usually take milliseconds. */
const SETTLE_MS = 30_000;

export type WindowMode = 'native' | 'tunnel';
export type PartitionCase = 'none' | 'until-heal' | 'until-expiry';

/** One measured case: a row of the window table. */
export interface WindowRow {
  case: string;
  mode: WindowMode;
  /** The control plane's delay of updates to n2 (0 while partitioned). */
  delayMs: number;
  /** From t0 to the intruder's registration (the control plane's endpoint-added log). */
  reuseDelayMs: number;
  /** The IP was reused at once, or only after n2 had the update. */
  reuse: 'at once' | 'after the update';
  partition: PartitionCase;
  /** From t0 to the intruder's last admitted SYN at n2 (0 when none was admitted). */
  windowMs: number;
  /** From t0 to its first admitted SYN. */
  firstAdmittedMs?: number;
  /** Intruder connections n2 admitted (FORWARDED SYNs, distinct source ports). */
  admitted: number;
  /** Connections the intruder tried. */
  attempts: number;
  /** What ends the window, and when (ms after t0): n2's update, its resync after the heal, the auth entry's expiry. */
  boundBy: string;
  boundMs?: number;
  /** The first SYN refused after the window: ms after t0, reason, the identity n2 judged it by. */
  closedAtMs?: number;
  deniedReason?: number;
  deniedAs?: number;
  /** The heal (partition until heal): ms after t0. */
  healMs?: number;
  /**
   * SYNs that contradict the window's end: admitted after n2 logged the update
   * (resync, expiry), or refused before the window could have closed — before
   * t0 + D (the control plane cannot deliver sooner), the heal, the expiry.
   * n2 logs a sync only after its whole map write, so the two bounds differ.
   */
  admittedAfterBound: number;
  refusedBeforeBound: number;
  clientIdentity?: number;
  intruderIdentity?: number;
  lab: string;
  /** Preconditions that did not hold (the row is then not evidence). */
  problems: string[];
}

interface TrialSpec {
  case: string;
  mode: WindowMode;
  client: string;
  intruder: string;
  delayMs: number;
  holdReuse?: boolean;
  partition?: PartitionCase;
  /** The longest the intruder may probe: it stops once the window is seen to close. */
  probeMs: number;
  /** Partitioned until expiry: start only when n2's auth entry has at least this long to live. */
  minEntryLifeMs?: number;
  /** Partitioned until heal: the heal, this long after t0. */
  healAfterMs?: number;
}

const isSyn = (f: FlowWithNode) => f.protocol === IPPROTO_TCP && (f.tcpFlags & TCP_F_SYN) !== 0 && (f.tcpFlags & TCP_F_ACK) === 0;
const round = (ms: number) => Math.round(ms);

/** The SYNs from the client's IP to server:PORT, as n2 delivered or refused them. */
const synsAtServer = (flows: FlowWithNode[], clientIp: string, serverIp: string) =>
  flows.filter((f) => f.node === 'n2' && f.obsPoint === OBS_TO_ENDPOINT && isSyn(f) && f.saddr === clientIp && f.daddr === serverIp && f.dport === PORT);

/** The client authenticates to the server once (the auth entry every trial relies on). */
async function authenticate(lab: LabHandle, client: string): Promise<string[]> {
  const r = await echoSend(lab.lab, client, 'tcp', await lab.podIp('server'), PORT, `hello-from-${client}`, ['--timeout', '20000']);
  return r.exitCode === 0 ? [] : [`${client} did not reach the server (${r.stderr.trim() || `exit ${r.exitCode}`})`];
}

/** More pods of the client's identity (same labels), known to n2 before any trial. */
async function addClients(lab: LabHandle, names: string[]): Promise<void> {
  for (const pod of names) {
    const p = await addPod({ lab: lab.lab, node: 'n1', pod, labels: { app: 'client' } });
    const known = await waitUntil(async () => ((await ipcacheIdentity(lab.lab, 'n2', p.ip)) === p.identity ? true : undefined), SETTLE_MS);
    if (!known) throw new Error(`n2 never learned ${pod} (${p.ip})`);
  }
}

/** Refused SYNs after the window's end that show it closed. */
const REFUSALS_AFTER_END = 3;

/**
 * Resolves true once what ends the window has happened (n2's ipcache names
 * the intruder; partitioned until expiry, the auth entry's expiry) and
 * n2 has then refused the intruder's SYN a few times; false at spec.probeMs.
 */
async function windowSeenClosed(lab: LabHandle, spec: TrialSpec, partition: PartitionCase, clientIp: string, serverIp: string,
  intruderIdentity: number, entryOf: () => Promise<{ expiration: Date } | undefined>, mark: number): Promise<boolean> {
  const deadline = Date.now() + spec.probeMs;
  const endedAt = await waitUntil(async () => {
    if (partition === 'until-expiry') {
      const expires = (await entryOf())?.expiration.getTime();
      return expires === undefined || expires <= Date.now() ? Date.now() : undefined;
    }
    return (await ipcacheIdentity(lab.lab, 'n2', clientIp)) === intruderIdentity ? Date.now() : undefined;
  }, Math.max(0, deadline - Date.now()), 50);
  if (endedAt === undefined) return false;
  const refusedAfter = await waitUntil(() => {
    const n = synsAtServer(lab.flows().slice(mark), clientIp, serverIp).filter((f) => f.verdict === VERDICT_DROPPED && flowMs(f) >= endedAt).length;
    return n >= REFUSALS_AFTER_END ? true : undefined;
  }, Math.max(0, deadline - Date.now()), 50);
  return refusedAfter === true;
}

/** One case: delete the client at t0, reuse its IP, probe, then read the window from n2's flow events. */
async function trial(lab: LabHandle, spec: TrialSpec): Promise<WindowRow> {
  const partition = spec.partition ?? 'none';
  const row: WindowRow = {
    case: spec.case, mode: spec.mode, delayMs: spec.delayMs, reuseDelayMs: 0, reuse: spec.holdReuse ? 'after the update' : 'at once', partition, windowMs: 0, admitted: 0, attempts: 0,
    boundBy: '', admittedAfterBound: 0, refusedBeforeBound: 0, lab: lab.lab, problems: [],
  };
  const serverIp = await lab.podIp('server');
  const clientIp = await lab.podIp(spec.client);
  row.clientIdentity = await ipcacheIdentity(lab.lab, 'n2', clientIp);
  const serverIdentity = await ipcacheIdentity(lab.lab, 'n2', serverIp);
  const entryOf = async () => (await dumpAuth(lab.lab, 'n2', sharedDumpIo())).find((e) =>
    e.key.localSecLabel === serverIdentity && e.key.remoteSecLabel === row.clientIdentity && e.key.remoteNodeId === 1);
  const before = await entryOf();
  if (!before || before.expiration.getTime() <= Date.now()) row.problems.push('n2 holds no live auth entry for (server, client, n1)');

  // The intruder staged first (namespace, veth, programs), and the probe in it, waiting for its address:
  // t0 (the delete) comes after the probe runs, so the time a Node process takes to
  // start is never part of the window; the probe tries from the first moment the pod
  // can send.
  await stagePod(lab.lab, 'n1', spec.intruder);
  const probe = startProbe(lab.lab, 'n1', spec.intruder, serverIp, PORT, `window-${spec.intruder}`, {
    intervalMs: PROBE_INTERVAL_MS, count: Math.ceil(spec.probeMs / PROBE_INTERVAL_MS) + 1, durationMs: spec.probeMs,
    stopAfterFailures: STOP_AFTER_FAILURES, addressWaitMs: spec.delayMs + 2 * SETTLE_MS,
  });
  let attempts: ProbeAttempt[] = [];
  let healRequested: number | undefined;
  let heal: Promise<void> = Promise.resolve();
  let intruderAdded = false;
  const mark = lab.flows().length;
  try {
    await probe.ready;
    if (spec.minEntryLifeMs !== undefined) {
      // The entry's life left swings with the SVIDs' rotations. Waited for last, just
      // before t0, so that the probe's start is not taken out of the window.
      const lively = await waitUntil(async () => {
        const e = await entryOf();
        return e && e.expiration.getTime() - Date.now() >= spec.minEntryLifeMs! ? true : undefined;
      }, 2 * SHORT_SVID_TTL_MS + SETTLE_MS, 50);
      if (!lively) row.problems.push(`n2's auth entry never had ${spec.minEntryLifeMs} ms to live`);
    }
    lab.say(`[${lab.lab}] ${spec.case}: delete ${spec.client} (${clientIp}), ${spec.holdReuse ? 'reuse its IP once n2 has the update' : 'reuse its IP at once'}`);
    if (partition === 'none') await setDelay(lab.lab, 'n2', spec.delayMs);
    else await partitionNode(lab.lab, 'n2', true);
    // Only to schedule the heal; every time reported comes from the logs and events.
    const deletedLocal = Date.now();
    const scheduleHeal = () => {
      if (partition === 'until-heal') {
        heal = (async () => {
          await sleep(Math.max(0, deletedLocal + (spec.healAfterMs ?? HEAL_AFTER_MS) - Date.now()));
          healRequested = Date.now();
          await partitionNode(lab.lab, 'n2', false);
        })();
      }
    };
    const next = { node: 'n1', pod: spec.intruder, labels: { app: 'intruder' } };
    let intruder: Awaited<ReturnType<typeof addPod>>;
    if (spec.holdReuse) {
      await deletePod(lab.lab, spec.client);
      scheduleHeal();
      const gone = await waitUntil(async () => ((await ipcacheIdentity(lab.lab, 'n2', clientIp)) === undefined ? true : undefined), spec.delayMs + SETTLE_MS);
      if (!gone) row.problems.push('n2 never dropped the client\'s ipcache entry');
      intruder = await addPod({ lab: lab.lab, ...next, ip: clientIp, staged: true });
    } else {
      // The delete and the IP's reuse at once; the client's teardown comes after.
      scheduleHeal();
      intruder = await reusePodIp(lab.lab, spec.client, next);
    }
    intruderAdded = true;
    row.intruderIdentity = intruder.identity;
    if (intruder.identity === row.clientIdentity) row.problems.push('the intruder got the client\'s identity');
    // The probe runs until the window is seen to close (or ends itself after
    // failures that follow an admission); spec.probeMs only bounds it.
    const ended = probe.done.then(() => true, () => true);
    const closed = await Promise.race([ended, windowSeenClosed(lab, spec, partition, clientIp, serverIp, intruder.identity, entryOf, mark)]);
    if (!closed) row.problems.push(`the window was not seen to close within ${spec.probeMs} ms`);
    probe.stop();
    attempts = await probe.done;
  } finally {
    if (!intruderAdded) probe.stop();
    await probe.done.catch(() => undefined);
    await heal;
  }
  row.attempts = attempts.length;
  if (partition !== 'until-expiry') {
    // Every delayed update delivered before the next case starts.
    const settled = await waitUntil(async () => ((await ipcacheIdentity(lab.lab, 'n2', clientIp)) === row.intruderIdentity ? true : undefined), spec.delayMs + SETTLE_MS);
    if (!settled) row.problems.push('n2 never learned the intruder');
  }

  // ---- the window, from the logs' and events' own times ----------------------------
  const cp = await daemonLog(lab.lab, CONTROL_PLANE_NODE);
  const t0 = cp.find((l) => l.event === 'endpoint-deleted' && l.pod === spec.client)?.ms;
  const added = cp.find((l) => l.event === 'endpoint-added' && l.pod === spec.intruder)?.ms;
  if (t0 === undefined || added === undefined) {
    row.problems.push('the control plane did not log the delete and the add');
    return row;
  }
  row.reuseDelayMs = round(added - t0);
  const sports = new Set(attempts.map((a) => a.sport).filter((p) => p !== undefined));
  const syns = synsAtServer(lab.flows().slice(mark), clientIp, serverIp).filter((f) => flowMs(f) >= t0 && (sports.size === 0 || sports.has(f.sport)));
  const admitted = syns.filter((f) => f.verdict === VERDICT_FORWARDED).sort((a, b) => flowMs(a) - flowMs(b));
  const refused = syns.filter((f) => f.verdict === VERDICT_DROPPED).sort((a, b) => flowMs(a) - flowMs(b));
  row.admitted = new Set(admitted.map((f) => f.sport)).size;
  const last = admitted.at(-1);
  if (last) {
    row.windowMs = round(flowMs(last) - t0);
    row.firstAdmittedMs = round(flowMs(admitted[0]!) - t0);
  }
  const closing = refused.find((f) => !last || flowMs(f) > flowMs(last));
  if (closing) {
    row.closedAtMs = round(flowMs(closing) - t0);
    row.deniedReason = closing.dropReason;
    row.deniedAs = closing.srcIdentity;
  }

  let bound: number | undefined;
  if (partition === 'until-expiry') {
    const entry = await entryOf();
    bound = entry?.expiration.getTime();
    row.boundBy = 'auth entry expiry';
    if (bound === undefined) row.problems.push('the auth entry is gone (not expired: deleted)');
  } else {
    const n2 = await daemonLog(lab.lab, 'n2');
    // The first map write on n2 after t0 is the delayed delete (or, partitioned, the resync after the heal).
    bound = n2.find((l) => l.event === 'maps-synced' && l.ms >= t0)?.ms;
    row.boundBy = partition === 'until-heal' ? 'n2 resync after heal' : 'n2 applies the update';
    if (bound === undefined) row.problems.push('n2 never logged the update');
    if (healRequested !== undefined) row.healMs = round(healRequested - t0);
  }
  if (bound !== undefined) {
    row.boundMs = round(bound - t0);
    const earliest = partition === 'until-expiry' ? bound : partition === 'until-heal' ? healRequested ?? bound : t0 + spec.delayMs;
    // Log times are whole milliseconds.
    row.admittedAfterBound = admitted.filter((f) => flowMs(f) > bound! + 1).length;
    row.refusedBeforeBound = refused.filter((f) => flowMs(f) < earliest - 1).length;
  }
  return row;
}

export function formatWindowTable(rows: WindowRow[]): string[] {
  return markdownTable(
    ['case', 'mode', 'delay D ms', 'reuse after ms', 'window W ms', 'admitted / attempts', 'window ends with', 'first refusal'],
    rows.map((r) => [
      r.case, r.mode, r.partition === 'none' ? String(r.delayMs) : 'partitioned', String(r.reuseDelayMs), String(r.windowMs),
      `${r.admitted} / ${r.attempts}`,
      `${r.boundBy}${r.boundMs !== undefined ? ` (+${r.boundMs} ms)` : ''}`,
      r.closedAtMs !== undefined ? `+${r.closedAtMs} ms, ${r.deniedReason}${r.deniedAs !== undefined ? ` as ${r.deniedAs}` : ''}` : '-',
    ]),
  );
}

/** Lab names of the scenario beside its own. */
export const exposureLabs = (lab: string) => ({ tunnel: sideLabName(lab, 'tun'), expiry: sideLabName(lab, 'ttl') });

async function nativeCases(ctx: ScenarioContext, sideLabsUp: Promise<unknown>, p: WindowProfile): Promise<WindowRow[]> {
  const DELAYS_MS = p.delays;
  const HELD_DELAY_MS = p.held;
  const HEAL_AFTER_MS = p.healAfter;
  const lab = ownLab(ctx);
  const server = await startEchoServer(ctx.lab, 'server', 'tcp', PORT);
  try {
    const problems = await authenticate(lab, 'client');
    const clients = ['client', ...DELAYS_MS.slice(1).map((_, i) => `client-${i + 2}`), 'client-held', 'client-heal'];
    await addClients(lab, clients.slice(1));
    await sideLabsUp;
    const rows: WindowRow[] = [];
    for (const [i, d] of DELAYS_MS.entries()) {
      rows.push(await trial(lab, { case: `D = ${d} ms`, mode: 'native', client: clients[i]!, intruder: `intruder-${i + 1}`, delayMs: d, probeMs: d + PROBE_BOUND_MS }));
    }
    rows.push(await trial(lab, {
      case: `D = ${HELD_DELAY_MS} ms, reuse after the update`, mode: 'native', client: 'client-held', intruder: 'intruder-held',
      delayMs: HELD_DELAY_MS, holdReuse: true, probeMs: PROBE_BOUND_MS,
    }));
    await setDelay(ctx.lab, 'n2', 0);
    rows.push(await trial(lab, {
      case: `partitioned, healed after ${HEAL_AFTER_MS} ms`, mode: 'native', client: 'client-heal', intruder: 'intruder-heal',
      delayMs: 0, partition: 'until-heal', probeMs: HEAL_AFTER_MS + PROBE_BOUND_MS, healAfterMs: HEAL_AFTER_MS,
    }));
    for (const r of rows) r.problems.unshift(...problems);
    return rows;
  } finally {
    await server.stop();
  }
}

/**
 * `onReady` is called once the lab is up and its client authenticated (or it
 * failed); its case then waits for `go`.
 */
async function sideCase(ctx: ScenarioContext, name: string, topologyFile: string, opts: { svidTtlMs?: number },
  spec: Omit<TrialSpec, 'client' | 'intruder'>, onReady: () => void, go: Promise<unknown>): Promise<WindowRow> {
  try {
    const topology = await loadTopologyFile(resolve(REPO, topologyFile));
    ctx.say(`[${name}] bringing up ${topologyFile}${opts.svidTtlMs ? ` (SVIDs live ${opts.svidTtlMs} ms)` : ''}`);
    return await withSideLab(name, topology, opts, ctx.say, async (lab) => {
      const server = await startEchoServer(name, 'server', 'tcp', PORT);
      try {
        const problems = await authenticate(lab, 'client');
        onReady();
        await go;
        const row = await trial(lab, { ...spec, client: 'client', intruder: 'intruder' });
        row.problems.unshift(...problems);
        return row;
      } finally {
        await server.stop();
      }
    });
  } finally {
    onReady();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export const exposureWindow: Scenario = {
  name: 'exposure-window',
  summary: 'the exposure window of eventual consistency: with n2\'s updates delayed by D and the IP reused at once, a forbidden pod is admitted for about D; none when reuse waits, none in tunnel mode; partitioned, until heal or the auth entry\'s expiry',
  claims: ['C10'],
  topology: 'topologies/two-node-auth.yaml',
  async run(ctx) {
    const names = exposureLabs(ctx.lab);
    const profile = WINDOW_PROFILES[ctx.profile];
    const { delays: DELAYS_MS, tunnel: TUNNEL_DELAY_MS } = profile;
    // The side labs come up while the scenario's own lab gets ready. Its cases
    // run once they are up and idle, theirs after its own: every window is
    // measured on an otherwise quiet machine (bring-up loads it most).
    const ready = { tunnel: deferred(), expiry: deferred() };
    const nativeDone = deferred();
    const go = profile.sideAfterNative ? nativeDone.promise : Promise.resolve();
    const side = Promise.allSettled([
      sideCase(ctx, names.tunnel, 'topologies/two-node-tunnel.yaml', {}, { case: `tunnel, D = ${TUNNEL_DELAY_MS} ms`, mode: 'tunnel', delayMs: TUNNEL_DELAY_MS, probeMs: TUNNEL_DELAY_MS + PROBE_BOUND_MS }, ready.tunnel.resolve, go),
      sideCase(ctx, names.expiry, 'topologies/two-node-auth.yaml', { svidTtlMs: SHORT_SVID_TTL_MS },
        { case: `partitioned, SVIDs of ${SHORT_SVID_TTL_MS / 1000} s, no heal`, mode: 'native', delayMs: 0, partition: 'until-expiry', probeMs: SHORT_SVID_TTL_MS + PROBE_BOUND_MS, minEntryLifeMs: MIN_ENTRY_LIFE_MS }, ready.expiry.resolve, go),
    ]);
    let native: WindowRow[] = [];
    let nativeError: unknown;
    try {
      native = await nativeCases(ctx, Promise.all([ready.tunnel.promise, ready.expiry.promise]), profile);
    } catch (e) {
      nativeError = e;
    } finally {
      nativeDone.resolve();
    }
    const [tunnel, expiry] = await side;
    if (nativeError) throw nativeError;
    for (const r of [tunnel, expiry]) if (r!.status === 'rejected') throw r!.reason;
    const tunnelRow = (tunnel as PromiseFulfilledResult<WindowRow>).value;
    const expiryRow = (expiry as PromiseFulfilledResult<WindowRow>).value;
    const rows = [...native, tunnelRow, expiryRow];
    ctx.measurements.window = rows;

    ctx.say('C10 exposure window (measured; ms after t0 = the control plane\'s log of the delete):');
    for (const l of formatWindowTable(rows)) ctx.say(`  ${l}`);

    for (const r of rows) {
      ctx.check(`${r.case}: preconditions hold (auth entry, the intruder on the client's IP with another identity, updates logged)`,
        r.problems.length === 0, r.problems.join('; ') || undefined);
    }
    const delayRows = DELAYS_MS.map((d) => native.find((r) => r.partition === 'none' && r.reuse === 'at once' && r.delayMs === d)!);
    const w = delayRows.map((r) => r.windowMs);
    // The window opens only once the intruder holds the IP: when re-using it took
    // longer than D on this machine, there was nothing to admit, and the evidence says so.
    const tooSlow = (r: WindowRow) => (r.reuseDelayMs >= r.delayMs && r.delayMs > 0 ? ` (the IP was re-used only ${r.reuseDelayMs} ms after t0, later than D: the machine was too busy to show this window)` : '');
    ctx.check(`W grows with D (monotone over D = ${DELAYS_MS.join(', ')} ms) and W(${DELAYS_MS.at(-1)}) > W(${DELAYS_MS[1]})`,
      w.every((x, i) => i === 0 || x >= w[i - 1]!) && w.at(-1)! > w[1]!, w.map((x, i) => `W(${DELAYS_MS[i]}) = ${x}`).join(', ') + tooSlow(delayRows.at(-1)!));
    for (const r of delayRows) {
      ctx.check(`D = ${r.delayMs} ms: n2's update came no sooner than D after t0, and the door was open until it (no admission after n2 logged it, no refusal before t0 + D)`,
        r.boundMs !== undefined && r.boundMs >= r.delayMs - 1 && r.windowMs <= r.boundMs + 1 && r.admittedAfterBound === 0 && r.refusedBeforeBound === 0,
        `update at +${r.boundMs} ms, W = ${r.windowMs} ms, ${r.admitted} admitted, ${r.admittedAfterBound} admitted after, ${r.refusedBeforeBound} refused before`);
    }
    const biggest = delayRows.at(-1)!;
    ctx.check(`D = ${biggest.delayMs} ms: the intruder was admitted, then refused by policy (${DROP_POLICY})`,
      biggest.admitted > 0 && biggest.deniedReason === DROP_POLICY, `${biggest.admitted} admitted, then ${biggest.deniedReason}${tooSlow(biggest)}`);
    const held = native.find((r) => r.reuse === 'after the update')!;
    ctx.check('reuse held back until n2 has the update: no window (W = 0, nothing admitted)',
      held.windowMs === 0 && held.admitted === 0 && held.attempts > 0, `${held.admitted} of ${held.attempts} admitted, reuse after ${held.reuseDelayMs} ms`);
    ctx.check(`tunnel mode: no window — every attempt refused by policy (${DROP_POLICY}), judged as the intruder from the VNI`,
      tunnelRow.windowMs === 0 && tunnelRow.admitted === 0 && tunnelRow.attempts > 0 && tunnelRow.deniedReason === DROP_POLICY && tunnelRow.deniedAs === tunnelRow.intruderIdentity,
      `${tunnelRow.admitted} of ${tunnelRow.attempts} admitted; refused with ${tunnelRow.deniedReason} as ${tunnelRow.deniedAs} (intruder ${tunnelRow.intruderIdentity})`);
    const healRow = native.find((r) => r.partition === 'until-heal')!;
    ctx.check('partitioned: the window lasts until n2 resyncs after the heal (admitted until then, refused from then on)',
      healRow.admitted > 0 && healRow.healMs !== undefined && healRow.boundMs !== undefined && healRow.boundMs >= healRow.healMs
        && healRow.admittedAfterBound === 0 && healRow.refusedBeforeBound === 0 && healRow.windowMs <= healRow.boundMs + 1,
      `heal at +${healRow.healMs} ms, resync at +${healRow.boundMs} ms, W = ${healRow.windowMs} ms`);
    ctx.check(`partitioned, never healed: the window ends at the auth entry's expiry, then "Authentication required" (${DROP_POLICY_AUTH_REQUIRED})`,
      expiryRow.admitted > 0 && expiryRow.boundMs !== undefined && expiryRow.windowMs <= expiryRow.boundMs
        && expiryRow.admittedAfterBound === 0 && expiryRow.refusedBeforeBound === 0 && expiryRow.deniedReason === DROP_POLICY_AUTH_REQUIRED,
      `entry expires at +${expiryRow.boundMs} ms, W = ${expiryRow.windowMs} ms, then ${expiryRow.deniedReason}`
        + (expiryRow.boundMs !== undefined && expiryRow.reuseDelayMs >= expiryRow.boundMs ? ` (the IP was re-used only ${expiryRow.reuseDelayMs} ms after t0, after the entry expired: the machine was too busy to show this window)` : ''));
  },
};

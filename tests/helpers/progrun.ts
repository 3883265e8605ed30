// Shared pieces of the BPF_PROG_RUN tests (tests/kernel/bpf-prog-run*.test.ts):
// building the test-only programs of tests/fixtures/bpf against bpf/lib,
// collecting every flow event and signal that a few program runs raise, a
// throwaway node namespace to run them in, and checking that a test's
// programs are gone after teardown.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { BPF_DIR, buildDatapath, readIfindexes } from '../../lab/datapath/load.ts';
import { labBpffsDir, nodeNetns } from '../../lab/core/names.ts';
import { streamFlows, streamSignals, type EventStream } from '../../lab/datapath/events.ts';
import type { FlowEvent, SignalMsg } from '../../lab/abi/generated.ts';
import { run } from '../../lab/kernel/run.ts';
import { REPO } from './kernel.ts';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

export const FIXTURES_BPF = resolve(REPO, 'tests/fixtures/bpf');

/**
 * Every program run of a test file is pinned to one CPU: BPF_PROG_RUN emits
 * on the calling CPU's perf buffer, read in order, so a record that arrives
 * vouches for all records of earlier runs (see observe()).
 */
export const RUN_CPU = 0;

/** A generous bound on the wait for the sentinel's records: they are the signal, this only ends a broken run. */
export const SENTINEL_TIMEOUT_MS = 15_000;

/** Compiles a tc program of tests/fixtures/bpf with bpf/lib on the include path; returns the object's path. */
export async function buildFixture(source: string, outDir: string): Promise<string> {
  const multiarch = (await run(['clang', '-print-multiarch'])).stdout.trim();
  const object = join(outDir, basename(source).replace(/\.c$/, '.o'));
  await mkdir(outDir, { recursive: true });
  await run(['clang', '-g', '-O2', '-target', 'bpf', '-Wall', '-Wno-unused-function', `-I/usr/include/${multiarch}`, `-I${BPF_DIR}`,
    '-c', join(FIXTURES_BPF, source), '-o', object], { timeout: 120_000 });
  return object;
}

/**
 * Builds and loads a tests/fixtures/bpf program object: its programs pinned
 * under `pinDir`/progs, its own maps under `pinDir`/maps.
 */
export async function loadFixture(source: string, pinDir: string): Promise<{ progs: string; maps: string }> {
  const build = await mkdtemp(join(tmpdir(), 'mtless-fixture-'));
  try {
    const object = await buildFixture(source, build);
    await mkdir(pinDir, { recursive: true });
    const progs = join(pinDir, 'progs');
    const maps = join(pinDir, 'maps');
    await run(['bpftool', 'prog', 'loadall', object, progs, 'type', 'classifier', 'pinmaps', maps]);
    return { progs, maps };
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

/** The id of a pinned program. */
export async function progId(pin: string): Promise<number> {
  return (JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'pinned', pin])).stdout) as { id: number }).id;
}

/**
 * Throws unless every program in `ids` is gone. Programs are freed once
 * neither a pin nor a tc filter holds them, after an RCU grace period: wait
 * for that, with a generous deadline (a signal, not a guess).
 */
export async function expectProgramsGone(ids: number[], deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let left: number[] = [];
  do {
    const progs = JSON.parse((await run(['bpftool', '-j', 'prog', 'show'])).stdout || '[]') as { id: number }[];
    left = ids.filter((id) => progs.some((p) => p.id === id));
    if (left.length) await new Promise((r) => setTimeout(r, 50));
  } while (left.length && Date.now() < deadline);
  if (left.length) throw new Error(`programs ${left.join(', ')} outlived the test`);
}

/**
 * The packet that ends an observation: run after the packets under test, on
 * the same CPU, it raises a flow event (and, if `isSignal` is given, a
 * signal) that no packet under test raises.
 */
export interface Sentinel {
  send(): Promise<void>;
  isFlow(f: FlowEvent): boolean;
  isSignal?(s: SignalMsg): boolean;
}

export interface Observed<T> {
  result: T;
  flows: FlowEvent[];
  signals: SignalMsg[];
}

/**
 * Runs `during` with readers attached to the node's perf arrays (records
 * sent while no reader is attached are lost), and collects what arrives:
 * all of it, so "no record" assertions hold. After `during`, the sentinel
 * runs; once its records have arrived, every record `during` raised on the
 * same CPU has arrived before them. The sentinel's records are not returned.
 */
export async function observe<T>(lab: string, node: string, sentinel: Sentinel, during: () => Promise<T>): Promise<Observed<T>> {
  const flows: FlowEvent[] = [];
  const signals: SignalMsg[] = [];
  const seen = { flow: false, signal: sentinel.isSignal === undefined };
  let wake = () => {};
  const arrived = new Promise<void>((resolve) => (wake = resolve));
  const mark = (what: keyof typeof seen) => {
    seen[what] = true;
    if (seen.flow && seen.signal) wake();
  };
  const streams: EventStream[] = [];
  try {
    streams.push(streamFlows(lab, node, (f) => (sentinel.isFlow(f) ? mark('flow') : flows.push(f))));
    if (sentinel.isSignal) streams.push(streamSignals(lab, node, (s) => (sentinel.isSignal!(s) ? mark('signal') : signals.push(s))));
    await Promise.all(streams.map((s) => s.ready));
    const result = await during();
    await sentinel.send();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), SENTINEL_TIMEOUT_MS)));
    const late = await Promise.race([arrived.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      const missing = (['flow', 'signal'] as const).filter((w) => !seen[w]);
      throw new Error(`the sentinel's ${missing.join(' and ')} record did not arrive within ${SENTINEL_TIMEOUT_MS} ms`);
    }
    return { result, flows, signals };
  } finally {
    await Promise.all(streams.map((s) => s.stop()));
  }
}

/** Removes a throwaway node: its pins and its namespace (also what a crashed earlier run left). */
export async function removeThrowawayNode(lab: string, node: string): Promise<void> {
  await rm(labBpffsDir(lab), { recursive: true, force: true });
  await run(['ip', 'netns', 'del', nodeNetns(lab, node)], { okCodes: [1] });
}

/**
 * A node namespace with veth pairs (both ends in it) for BPF_PROG_RUN tests,
 * after removing any leftover of a crashed earlier run and building bpf/.
 * Returns every device's ifindex by name.
 */
export async function throwawayNode(lab: string, node: string, vethPairs: [string, string][]): Promise<Map<string, number>> {
  await removeThrowawayNode(lab, node);
  await buildDatapath();
  const netns = nodeNetns(lab, node);
  await run(['ip', 'netns', 'add', netns]);
  for (const [a, b] of vethPairs) await run(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b], { netns });
  return readIfindexes(netns);
}

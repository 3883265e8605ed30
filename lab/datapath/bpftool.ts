// Map I/O through bpftool, all via run(): dumps with `bpftool -j map dump`,
// many changes in one `bpftool batch file -` process.
//
// Why bpftool and not a native binding: measured on this VM (2 vCPU shared
// with other jobs, load ~1.8; kernel 6.18, bpftool 7.1, Node 20, every call
// through run()/execa; medians of two runs of 21-101 calls):
//   run(['true']): the floor of any process             3.6-5.2 ms
//   `bpftool map update`, one process per entry         6.0-7.6 ms per entry
//                                                       (200 entries: ~1.3 s)
//   `bpftool batch file -`, one process for N updates   N=1: 5.8-6.8 ms
//                                                       N=200: 10 ms, N=2000: 35-45 ms,
//                                                       N=20000: 300-325 ms
//   `bpftool -j map dump` + JSON.parse + decode         0: 5-6 ms, 200: 8-9 ms,
//                                                       2000: 20-30 ms, 20000: 175-205 ms
// So a batch costs one process (~6 ms) plus ~15 us per entry: ~130x faster
// than per-entry processes at 200 entries. A node's state is a few hundred
// entries, so every write stays in the low milliseconds; per-entry processes
// are used only where one entry changes (an auth entry, ~6 ms).
import { CommandError, run } from '../kernel/run.ts';
import type { Codec } from '../abi/generated.ts';

/** `hex 0a 00 …`: bpftool's byte syntax for keys and values. */
export function hexArgs(buf: Buffer): string[] {
  return ['hex', ...Array.from(buf, (b) => b.toString(16).padStart(2, '0'))];
}

/** bpftool -j prints bytes as "0x0a" strings (or numbers in perf records). */
export function bytesFromJson(bytes: readonly (string | number)[]): Buffer {
  return Buffer.from(bytes.map((b) => (typeof b === 'number' ? b : parseInt(b, 16))));
}

export interface MapEntry<K, V> {
  key: K;
  value: V;
}

/** One entry as `bpftool -j map dump` (and bpf/build/map-batch) prints it. */
export interface DumpRecord {
  key: (string | number)[];
  value?: (string | number)[];
  values?: { cpu: number; value: (string | number)[] }[];
}

async function dumpRaw(pin: string): Promise<DumpRecord[]> {
  const r = await run(['bpftool', '-j', 'map', 'dump', 'pinned', pin]);
  const text = r.stdout.trim();
  return text ? (JSON.parse(text) as DumpRecord[]) : [];
}

/** Every entry of a (non per-CPU) map, decoded. */
export async function dumpMap<K, V>(pin: string, key: Codec<K>, value: Codec<V>): Promise<MapEntry<K, V>[]> {
  return (await dumpRaw(pin)).map((rec) => {
    if (!rec.value) throw new Error(`${pin}: per-CPU map; use dumpPerCpuMap`);
    return { key: key.decode(bytesFromJson(rec.key)), value: value.decode(bytesFromJson(rec.value)) };
  });
}

/** A dump's records as raw bytes. */
export function rawEntries(records: readonly DumpRecord[]): { key: Buffer; value: Buffer }[] {
  return records.map((rec) => ({ key: bytesFromJson(rec.key), value: bytesFromJson(rec.value ?? []) }));
}

/** Raw entries decoded with a codec pair (for dumps read through a MapIo). */
export function decodeEntries<K, V>(rows: readonly { key: Buffer; value: Buffer }[], key: Codec<K>, value: Codec<V>): MapEntry<K, V>[] {
  return rows.map((row) => ({ key: key.decode(row.key), value: value.decode(row.value) }));
}

/** Every entry of a map as raw bytes (for diffing without decoding). */
export async function dumpMapRaw(pin: string): Promise<{ key: Buffer; value: Buffer }[]> {
  return rawEntries(await dumpRaw(pin));
}

/**
 * How a caller reads and writes maps in bulk: bpftool processes (BPFTOOL_IO),
 * or a long-lived MapWriter (the agent's, no process per call).
 */
export interface MapIo {
  dump(pin: string): Promise<{ key: Buffer; value: Buffer }[]>;
  applyAll(ops: readonly MapOp[]): Promise<void>;
}

/** Every entry of a per-CPU map, one value per CPU. */
export async function dumpPerCpuMap<K, V>(pin: string, key: Codec<K>, value: Codec<V>): Promise<{ key: K; values: V[] }[]> {
  return (await dumpRaw(pin)).map((rec) => ({
    key: key.decode(bytesFromJson(rec.key)),
    values: (rec.values ?? []).map((v) => value.decode(bytesFromJson(v.value))),
  }));
}

/** One change of a batch. */
export type MapOp =
  | { op: 'update'; pin: string; key: Buffer; value: Buffer }
  | { op: 'delete'; pin: string; key: Buffer };

export function opLine(op: MapOp): string {
  const head = ['map', op.op, 'pinned', op.pin, 'key', ...hexArgs(op.key)];
  return (op.op === 'update' ? [...head, 'value', ...hexArgs(op.value)] : head).join(' ');
}

/**
 * Applies the changes in one bpftool process. bpftool stops at the first
 * failing command (a delete of a missing key fails too), so callers delete
 * only keys they have just seen in a dump. The error names the failing line.
 */
export async function applyBatch(ops: readonly MapOp[]): Promise<void> {
  if (ops.length === 0) return;
  const lines = ops.map(opLine);
  try {
    await run(['bpftool', 'batch', 'file', '-'], { input: lines.join('\n') + '\n' });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    // "Error: ... processed N commands": the (N+1)th line failed.
    const done = /processed (\d+) commands?/.exec(error.result.stderr);
    const failed = done ? lines[Number(done[1])] : undefined;
    throw new CommandError(error.result, failed ? `${firstError(error.result.stderr)} at: ${failed}` : undefined);
  }
}

function firstError(stderr: string): string {
  return /Error: (.*)/.exec(stderr)?.[1]?.trim() ?? stderr.trim();
}

/** One update in its own process (~3 ms). */
export async function mapUpdate(pin: string, key: Buffer, value: Buffer): Promise<void> {
  await run(['bpftool', 'map', 'update', 'pinned', pin, 'key', ...hexArgs(key), 'value', ...hexArgs(value)]);
}

/** Deletes one key; false if it was not there. */
export async function mapDelete(pin: string, key: Buffer): Promise<boolean> {
  try {
    await run(['bpftool', 'map', 'delete', 'pinned', pin, 'key', ...hexArgs(key)]);
    return true;
  } catch (error) {
    if (error instanceof CommandError && /No such file or directory/.test(error.result.stderr)) return false;
    throw error;
  }
}

/** Looks one key up; undefined if absent. */
export async function mapLookup<V>(pin: string, key: Buffer, value: Codec<V>): Promise<V | undefined> {
  try {
    const r = await run(['bpftool', '-j', 'map', 'lookup', 'pinned', pin, 'key', ...hexArgs(key)]);
    const rec = JSON.parse(r.stdout) as DumpRecord;
    return rec.value ? value.decode(bytesFromJson(rec.value)) : undefined;
  } catch (error) {
    if (error instanceof CommandError && /No such file or directory|not found/.test(error.result.stderr + error.result.stdout)) {
      return undefined;
    }
    throw error;
  }
}

export interface MapInfo {
  id: number;
  name: string;
  type: string;
  bytesKey: number;
  bytesValue: number;
  maxEntries: number;
  flags: number;
}

/** `bpftool map show pinned`: what the kernel made of a map. */
export async function mapInfo(pin: string): Promise<MapInfo> {
  const r = await run(['bpftool', '-j', 'map', 'show', 'pinned', pin]);
  const m = JSON.parse(r.stdout) as {
    id: number; name: string; type: string; bytes_key: number; bytes_value: number; max_entries: number; flags?: number;
  };
  return { id: m.id, name: m.name, type: m.type, bytesKey: m.bytes_key, bytesValue: m.bytes_value, maxEntries: m.max_entries, flags: m.flags ?? 0 };
}

/** One bpftool process per dump and one batch for the writes. */
export const BPFTOOL_IO: MapIo = { dump: dumpMapRaw, applyAll: applyBatch };

// What the report draws, read from the run's own files: each scenario's
// run.json (lab/scenarios/record.ts), its captures through tshark, the
// captures of its side labs, and the latest benchmark reports under
// captures/bench/. Nothing here is drawn; a file that cannot be read is
// named in `problems` and its picture left out.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ScenarioResult } from '../scenarios/framework.ts';
import { readRecord, type RunRecord } from '../scenarios/record.ts';
import type { MatrixRow } from '../scenarios/confusion-matrix.ts';
import { CAPTURES_ROOT, MERGED_FILE } from '../capture/scenario.ts';
import { linkFileName, UNDERLAY_LINK } from '../capture/links.ts';
import { countMany } from '../capture/assert.ts';
import { LAB_DECODE_AS_RULES } from '../capture/profile.ts';
import { AUTH_PORT, HBONE_PORT } from '../abi/generated.ts';
import type { Ladder } from './ladder.ts';
import { runLadders, type FrameRow } from './flow-ladder.ts';
import { readFrames } from './frames.ts';
import { evidenceFilters, filterOfEvidence, type EvidenceFilter } from './filters.ts';
import { collectGoals, collectRatios, type BenchGoal, type Ratio } from './charts.ts';

export interface CaptureEntry {
  scenario: string;
  file: string;
  /** What the file holds (merged, one link, a side lab's mode). */
  what: string;
  filters: EvidenceFilter[];
}

export interface BenchEvidence {
  dir: string;
  files: { file: string; at: string }[];
  ratios: Ratio[];
  goals: BenchGoal[];
}

export interface ReportEvidence {
  records: Record<string, RunRecord>;
  recordFiles: Record<string, string>;
  ladders: Record<string, Ladder[]>;
  captures: CaptureEntry[];
  bench?: BenchEvidence;
  problems: string[];
}

export const BENCH_DIR = join(CAPTURES_ROOT, 'bench');
/** The benchmarks `mtless bench` knows, as `bench all` may key its report. */
const BENCH_NAMES = ['up', 'datapath', 'auth', 'sockmap', 'cli', 'modes'];

async function pcapngsIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.pcapng')).map((n) => join(dir, n)).sort((a, b) => (basename(a) === MERGED_FILE ? -1 : basename(b) === MERGED_FILE ? 1 : a.localeCompare(b)));
}

/**
 * Side labs' folders of this run's scenario: <root>/<side lab>/<scenario>/, the side lab named
 * from the scenario's lab (lab/scenarios/side-lab.ts), written since the run started.
 */
async function sideLabDirs(r: ScenarioResult, startedAt: Date): Promise<string[]> {
  const own = r.record ?? r.capture;
  if (!own) return [];
  const root = dirname(dirname(dirname(own)));
  const prefix = r.lab.slice(0, 12);
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory() || e.name === r.lab || !e.name.startsWith(prefix)) continue;
    const d = join(root, e.name, r.scenario);
    const st = await stat(d).catch(() => undefined);
    if (st?.isDirectory() && st.mtimeMs >= startedAt.getTime() - 1000) out.push(d);
  }
  return out.sort();
}

/** The captures of one scenario: its own folder's files (merged first), then its side labs' (the matrix rows, sockmap's lab). */
async function scenarioCaptures(r: ScenarioResult, frames: FrameRow[] | undefined, startedAt: Date): Promise<CaptureEntry[]> {
  const out: CaptureEntry[] = [];
  const dirs = new Map<string, string>();
  if (r.capture) dirs.set(dirname(r.capture), 'this lab');
  if (r.record) dirs.set(dirname(r.record), 'this lab');
  const matrix = r.measurements?.matrix as MatrixRow[] | undefined;
  for (const row of Array.isArray(matrix) ? matrix : []) if (row.capture) dirs.set(dirname(row.capture), `mode ${row.mode}`);
  for (const d of await sideLabDirs(r, startedAt)) if (!dirs.has(d)) dirs.set(d, `lab ${basename(dirname(d))}`);
  for (const [dir, owner] of dirs) {
    const row = (Array.isArray(matrix) ? matrix : []).find((m) => m.capture && dirname(m.capture) === dir);
    for (const file of await pcapngsIn(dir)) {
      const merged = basename(file) === MERGED_FILE;
      const link = frames ? [...new Set(frames.map((f) => f.link))].find((l) => linkFileName(l) === basename(file)) : undefined;
      let filters: EvidenceFilter[] = [];
      if (frames && dir === dirname(r.capture ?? '')) filters = evidenceFilters(merged ? frames : frames.filter((f) => f.link === link));
      else if (row && merged) filters = Object.values(row.evidence).map(filterOfEvidence).filter((f): f is EvidenceFilter => f !== undefined);
      if (filters.length === 0) filters = await countedFilters(file);
      out.push({ scenario: r.scenario, file, what: `${owner}: ${merged ? 'every captured link, merged' : `link ${link ?? basename(file, '.pcapng').replace('.', '/')}`}`, filters });
    }
  }
  return out;
}

/** Evidence filters of a capture no ladder read: one tshark pass counting each, those that match shown. */
const COUNTED: Record<string, string> = {
  'frame.comment contains "DROPPED"': 'dropped packets, each commented with its reason and place',
  [`tcp.port == ${AUTH_PORT} && tls.handshake.type == 11`]: "Certificate messages of the agents' handshake (SPIFFE IDs), decrypted with the embedded key log",
  [`tcp.port == ${HBONE_PORT} && tls.handshake.type == 11`]: "Certificate messages of the mesh proxies' handshakes (workload SPIFFE IDs)",
  vxlan: 'VXLAN frames: vxlan.vni is the source identity',
  wg: 'WireGuard datagrams, decrypted with the embedded keys',
  'tcp.len > 0 && !tls && !vxlan && !wg': 'TCP segments whose payload is in clear',
};
let tsharkSlots = 3;
const waiting: (() => void)[] = [];
async function countedFilters(file: string): Promise<EvidenceFilter[]> {
  // A few tshark passes at a time: a matrix run has some forty files.
  while (tsharkSlots === 0) await new Promise<void>((r) => waiting.push(r));
  tsharkSlots--;
  try {
    const filters = Object.fromEntries(Object.keys(COUNTED).map((f) => [f, f]));
    const counts = await countMany(file, filters, { decodeAs: [...LAB_DECODE_AS_RULES] });
    return Object.entries(counts).filter(([, n]) => n > 0).map(([filter, n]) => ({ filter, shows: `${n} ${COUNTED[filter]}` }));
  } catch {
    return []; // a file tshark cannot read still gets its link and how to open it

  } finally {
    tsharkSlots++;
    waiting.shift()?.();
  }
}

async function latestBench(dir: string): Promise<BenchEvidence | undefined> {
  const files: { file: string; mtime: number }[] = [];
  const walk = async (d: string, depth: number) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory() && depth < 3) await walk(p, depth + 1);
      else if (e.isFile() && /^bench-[a-z]+\.json$/.test(e.name)) files.push({ file: p, mtime: (await stat(p)).mtimeMs });
    }
  };
  await walk(dir, 0);
  if (files.length === 0) return undefined;
  files.sort((a, b) => b.mtime - a.mtime);
  const all = files.find((f) => basename(f.file) === 'bench-all.json');
  // `bench all` when there is one; else the newest report of each benchmark.
  const newest = new Map<string, { file: string; mtime: number }>();
  for (const f of files) if (!newest.has(basename(f.file))) newest.set(basename(f.file), f);
  const chosen = all ? [all] : [...newest.values()];
  const out: BenchEvidence = { dir, files: [], ratios: [], goals: [] };
  for (const f of chosen) {
    const data = JSON.parse(await readFile(f.file, 'utf8')) as unknown;
    out.files.push({ file: f.file, at: new Date(f.mtime).toISOString() });
    const name = basename(f.file, '.json').replace(/^bench-/, '');
    const parts = name === 'all' && data && typeof data === 'object' && !Array.isArray(data)
      ? Object.entries(data as Record<string, unknown>).filter(([k]) => BENCH_NAMES.includes(k))
      : [[name, data] as const];
    for (const [bench, report] of parts.length > 0 ? parts : [[name, data] as const]) {
      out.ratios.push(...collectRatios(bench, report));
      out.goals.push(...collectGoals(bench, report));
    }
    // `bench all` names the benchmarks that failed: a row each, never a silent gap.
    const errors = name === 'all' ? (data as { errors?: Record<string, unknown> }).errors : undefined;
    for (const [bench, why] of Object.entries(errors ?? {})) out.goals.push({ bench, goal: 'the benchmark ran', holds: false, detail: `failed: ${String(why)}` });
  }
  return out;
}

export async function gatherEvidence(results: ScenarioResult[], startedAt: Date, opts: { benchDir?: string } = {}): Promise<ReportEvidence> {
  const ev: ReportEvidence = { records: {}, recordFiles: {}, ladders: {}, captures: [], problems: [] };
  await Promise.all(results.map(async (r) => {
    let frames: FrameRow[] | undefined;
    try {
      if (r.record) {
        ev.records[r.scenario] = await readRecord(r.record);
        ev.recordFiles[r.scenario] = r.record;
      }
      if (r.capture) frames = await readFrames(r.capture);
      const rec = ev.records[r.scenario];
      if (rec && frames) ev.ladders[r.scenario] = runLadders({ record: rec, frames, underlayLink: UNDERLAY_LINK }, r.scenario);
    } catch (e) {
      ev.problems.push(`${r.scenario}: ${(e as Error).message}`);
    }
    ev.captures.push(...await scenarioCaptures(r, frames, startedAt).catch((e: Error) => {
      ev.problems.push(`${r.scenario} captures: ${e.message}`);
      return [];
    }));
  }));
  try {
    ev.bench = (await latestBench(opts.benchDir ?? BENCH_DIR)) ?? { dir: opts.benchDir ?? BENCH_DIR, files: [], ratios: [], goals: [] };
  } catch (e) {
    ev.problems.push(`benchmarks: ${(e as Error).message}`);
  }
  return ev;
}

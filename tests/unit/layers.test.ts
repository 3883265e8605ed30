// The folders of lab/ are floors: a module imports only from its own floor or
// below, and nothing imports in a circle. This test reads the import lines of
// every module and fails on the first import that goes up, on any cycle, on a
// process started outside lab/kernel/, and on a wire number defined twice.
import { test } from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');
const LAB = join(REPO, 'lab');

/** Lowest first. Folders on one floor may import each other as long as no cycle forms. */
export const FLOORS: string[][] = [
  ['abi'], // numbers and layouts shared with the kernel and the wire
  ['topology'], // the topology as data
  ['core'], // names, plan, state, process tags, log, progress
  ['kernel'], // every process the lab starts: run(), daemons, preflight
  ['spiffe', 'policy', 'capture', 'datapath', 'control', 'agent', 'apps', 'sockmap', 'tunnel', 'wireguard', 'mesh', 'observe'], // features
  ['compose'], // a whole lab: up, down, pods, status, doctor
  ['scenarios', 'bench', 'report', 'fuzz'], // experiments built on whole labs
  ['cli'], // the thin command line
];
const floorOf = new Map(FLOORS.flatMap((fs, i) => fs.map((f) => [f, i] as const)));

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : /\.(ts|mts|mjs)$/.test(e.name) ? [join(dir, e.name)] : []);
}

const files = walk(LAB);
const source = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
/** Source without comments, so that a comment may still mention 4250. */
const code = (f: string) => source.get(f)!.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
const IMPORT_RE = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

interface Edge { from: string; to: string; typeOnly: boolean }
function importsOf(f: string): { spec: string; typeOnly: boolean }[] {
  return [...code(f).matchAll(IMPORT_RE)].map((m) => ({ spec: (m[3] ?? m[4])!, typeOnly: Boolean(m[2]) }));
}
const edges: Edge[] = files.flatMap((f) =>
  importsOf(f).filter((i) => i.spec.startsWith('.')).map((i) => ({ from: f, to: normalize(join(dirname(f), i.spec)), typeOnly: i.typeOnly })));
const folder = (f: string) => relative(LAB, f).split('/')[0]!;
const rel = (f: string) => relative(REPO, f);

test('every folder of lab/ has a floor', async (t) => {
  const folders = [...new Set(files.map(folder))].filter((f) => !f.includes('.'));
  t.same(folders.filter((f) => !floorOf.has(f)), [], 'folders missing from FLOORS');
});

test('no module imports from a higher floor', async (t) => {
  const up = edges.filter((e) => (floorOf.get(folder(e.to)) ?? -1) > (floorOf.get(folder(e.from)) ?? 99));
  t.same(up.map((e) => `${rel(e.from)} -> ${rel(e.to)}`), []);
});

test('no import cycles, between modules or between folders', async (t) => {
  const cycles = (nodes: string[], next: (n: string) => string[]): string[][] => {
    const found: string[][] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (n: string) => {
      state.set(n, 'open');
      stack.push(n);
      for (const m of next(n)) {
        if (state.get(m) === 'open') found.push([...stack.slice(stack.indexOf(m)), m]);
        else if (!state.has(m)) visit(m);
      }
      stack.pop();
      state.set(n, 'done');
    };
    for (const n of nodes) if (!state.has(n)) visit(n);
    return found;
  };
  const byFile = new Map<string, string[]>();
  for (const e of edges) byFile.set(e.from, [...(byFile.get(e.from) ?? []), e.to]);
  t.same(cycles(files, (f) => byFile.get(f) ?? []).map((c) => c.map(rel).join(' -> ')), [], 'module cycles');
  const byFolder = new Map<string, Set<string>>();
  for (const e of edges) if (folder(e.from) !== folder(e.to)) byFolder.set(folder(e.from), (byFolder.get(folder(e.from)) ?? new Set()).add(folder(e.to)));
  t.same(cycles([...byFolder.keys()], (f) => [...(byFolder.get(f) ?? [])]).map((c) => c.join(' -> ')), [], 'folder cycles');
});

test('no process is started outside lab/kernel/', async (t) => {
  const starters = files.filter((f) => folder(f) !== 'kernel').flatMap((f) =>
    importsOf(f).filter((i) => !i.typeOnly && /^(node:)?child_process$|^execa$/.test(i.spec)).map(() => rel(f)));
  t.same(starters, []);
});

test('every number shared with the wire is defined once, in lab/abi/', async (t) => {
  const outside = files.filter((f) => folder(f) !== 'abi');
  const literals = outside.flatMap((f) => [...code(f).matchAll(/\b(4250|8472|15008|51871)\b/g)].map((m) => `${rel(f)}: ${m[1]}`));
  t.same(literals, [], 'port literals outside lab/abi/');
  const ipproto = outside.flatMap((f) => [...code(f).matchAll(/\bIPPROTO_[A-Z]+\s*=/g)].map((m) => `${rel(f)}: ${m[0]}`));
  t.same(ipproto, [], 'IPPROTO_* defined outside lab/abi/');
});

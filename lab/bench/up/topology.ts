// The bring-up benchmark's generated labs: their names, the default sizes,
// and the topology of one size (nodes n1…nN, pods nXpY, no policies). Pure.
import { prefixedLabName } from '../../core/names.ts';
import { DEFAULT_ADDRESSING, type Topology } from '../../topology/model.ts';

export interface BenchSize {
  nodes: number;
  podsPerNode: number;
}

/** One lab-like name per builder, so `mtless down <name>` also cleans up after a crashed run. */
export const BENCH_LAB = 'bench-up';
export const FLOOR_LAB = 'bench-floor';
export const MININET_LAB = 'bench-mn';

/** The three builders' names in one run: under `--name PREFIX`, PREFIX-bench-up and so on, so two runs can go side by side. */
export interface BenchUpLabs {
  lab: string;
  floor: string;
  mininet: string;
}
export const benchUpLabs = (prefix?: string): BenchUpLabs => ({
  lab: prefixedLabName(prefix, BENCH_LAB), floor: prefixedLabName(prefix, FLOOR_LAB), mininet: prefixedLabName(prefix, MININET_LAB),
});

/** `--sizes 2x2,4x25`: nodes × pods per node, comma-separated (pure); throws on anything else. */
export function parseBenchSizes(text: string): BenchSize[] {
  const sizes = text.split(',').map((part) => {
    const m = /^\s*(\d+)\s*[x×]\s*(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`not a size (NODESxPODS, e.g. 2x2): "${part}"`);
    const size = { nodes: Number(m[1]), podsPerNode: Number(m[2]) };
    if (size.nodes < 1 || size.nodes > 200 || size.podsPerNode < 1 || size.podsPerNode > 250) throw new Error(`size ${part.trim()} is out of range: 1-200 nodes of 1-250 pods`);
    return size;
  });
  return sizes;
}

export const DEFAULT_SIZES: BenchSize[] = [
  { nodes: 2, podsPerNode: 2 },
  { nodes: 4, podsPerNode: 25 },
  { nodes: 10, podsPerNode: 50 },
  { nodes: 10, podsPerNode: 200 },
];

/** The generated topology: nodes n1…nN, pods nXpY, no policies. */
export function benchTopology(size: BenchSize, name = BENCH_LAB): Topology {
  return {
    name,
    routing: 'native',
    encryption: { mode: 'none', strict: false },
    sockmap: false,
    addressing: DEFAULT_ADDRESSING,
    policies: [],
    nodes: Array.from({ length: size.nodes }, (_, i) => ({
      name: `n${i + 1}`,
      pods: Array.from({ length: size.podsPerNode }, (_, j) => ({
        name: `n${i + 1}p${j + 1}`,
        namespace: 'default',
        serviceAccount: 'default',
        labels: { app: `n${i + 1}p${j + 1}` },
      })),
    })),
  };
}

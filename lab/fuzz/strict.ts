// Differential fuzzing of bpf/strict.c: strict.o loaded on the fuzz node as
// lab/wireguard/strict.ts loads it (reusing the datapath's maps, its own
// strict_config), each case writing the strict CIDR, the ipcache and the
// node map, running cil_to_netdev_strict on a pod's packet, and comparing
// verdict, flow event and counter with strict-model.ts.
import { existsSync } from 'node:fs';
import { DROP_UNENCRYPTED_TRAFFIC, encodeIpcacheKey, encodeNodeKey, encodeNodeValue, encodeRemoteEndpointInfo, encodeStrictConfig, U32_CODEC } from '../abi/generated.ts';
import type { MapOp } from '../datapath/bpftool.ts';
import { skbContext } from '../datapath/progrun.ts';
import { loadStrict, strictConfigPin, strictProgPin } from '../wireguard/strict.ts';
import { compareReports, showValue, type ObservedReports } from './compare.ts';
import { fuzz, type FuzzOptions, type FuzzReport, type FuzzTarget } from './loop.ts';
import type { Entry } from './model.ts';
import { FuzzNode } from './node.ts';
import { ipcacheText } from './run.ts';
import { modelStrict, shrinkStrictCase, strictCase, strictCaseSize, type StrictCase, type StrictInput, type StrictOutcome } from './strict-model.ts';

export type StrictModel = (input: StrictInput) => StrictOutcome;

/** Loads strict.o on the fuzz node once (the CIDR is rewritten by every case). */
export async function ensureStrict(node: FuzzNode): Promise<void> {
  if (!existsSync(strictProgPin(node.lab, node.node))) await loadStrict(node.lab, node.node, '10.244.0.0/16');
}

interface Tag {
  index: number;
  case: StrictCase;
  expected: StrictOutcome;
  run: number;
}

export function strictTarget(node: FuzzNode, model: StrictModel = modelStrict): FuzzTarget<StrictCase, Tag> {
  const env = { ifindexes: node.ifindexes };
  const sentinel = node.sentinelMaps();
  return {
    name: 'strict',
    generate: (seed, index) => strictCase(seed, index, env),
    item: (c, index, _now, files) => {
      const expected = model({ packet: c.packet, ifindex: c.ifindex, config: c.config, maps: { ipcache: [...c.ipcache, ...sentinel.ipcache], nodes: c.nodes } });
      const writes: MapOp[] = [{ op: 'update', pin: strictConfigPin(node.lab, node.node), key: U32_CODEC.encode(0), value: encodeStrictConfig(c.config) }];
      const deletes: MapOp[] = [];
      const put = (pin: string, key: Buffer, value: Buffer) => {
        writes.push({ op: 'update', pin, key, value });
        deletes.push({ op: 'delete', pin, key });
      };
      for (const e of c.ipcache) put(node.pin('cilium_ipcache'), encodeIpcacheKey(e.key), encodeRemoteEndpointInfo(e.value));
      for (const e of c.nodes) put(node.pin('cilium_node_map'), encodeNodeKey(e.key), encodeNodeValue(e.value));
      const lines = writes.map(FuzzNode.mapLine);
      const run = lines.length;
      lines.push(FuzzNode.progRunLine(strictProgPin(node.lab, node.node), files.add(c.packet), files.shared(skbContext({ ifindex: c.ifindex }))));
      lines.push(...deletes.map(FuzzNode.mapLine));
      return { lines, tag: { index, case: c, expected, run }, metricsKey: expected.metrics ?? 'none' };
    },
    judge: (item, window) => {
      const { index, case: c, expected, run } = item.tag;
      const actual: ObservedReports = { retval: (item.outputs[run] as { retval: number }).retval, flows: item.flows, signals: item.signals, metrics: item.metrics };
      const diffs = compareReports({ ...expected, signal: null }, actual, window);
      const text = [
        ...formatStrictCase(c),
        `  model: ${expected.trace.join('; ')}`,
        `  expected: retval ${expected.retval}, flow ${showValue(expected.flow)}, metrics ${showValue(expected.metrics)}`,
        `  actual:   retval ${actual.retval}, flows ${showValue(actual.flows)}, metrics ${showValue(actual.metrics)}`,
        ...diffs.map((d) => `  differs: ${d}`),
      ];
      return { index, case: c, diffs, text, coverage: [expected.flow ? `drop ${DROP_UNENCRYPTED_TRAFFIC}${expected.trace.some((l) => l.startsWith('VXLAN')) ? ' inside VXLAN' : ''}` : `pass: ${(expected.trace.at(-1) ?? '').replace(/ \(.*?\)/, '')}`] };
    },
    shrink: shrinkStrictCase,
    size: strictCaseSize,
  };
}

export async function fuzzStrict(node: FuzzNode, opts: FuzzOptions & { model?: StrictModel }): Promise<FuzzReport<StrictCase>> {
  await ensureStrict(node);
  return fuzz(node, strictTarget(node, opts.model), opts);
}

const entries = <K, V>(name: string, list: Entry<K, V>[]) => list.map((e) => `    ${name} ${showValue(e.key)} = ${showValue(e.value)}`);

export function formatStrictCase(c: StrictCase): string[] {
  return [
    `  cil_to_netdev_strict at ifindex ${c.ifindex}, strict CIDR ${c.config.net}/${c.config.mask} (${c.aim})`,
    `  packet (${c.packet.length} bytes): ${c.packet.toString('hex')}`,
    ...ipcacheText(c.ipcache),
    ...entries('node', c.nodes),
  ];
}

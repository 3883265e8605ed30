// Differential fuzzing of bpf/datapath.c: random cases (generate.ts) run
// through the real programs with BPF_PROG_RUN on a throwaway node (node.ts),
// each compared with the reference model (model.ts) by the shared loop
// (loop.ts): a mismatch is run again alone, then shrunk (map entries
// dropped, then packet bytes cut and zeroed, while it still mismatches) and
// reported as its minimal input: the map state, the packet in hex, expected
// against actual.
import {
  CT4_KEY_CODEC,
  CT_ENTRY_CODEC,
  POLICY_ENTRY_CODEC,
  POLICY_KEY_CODEC,
  RUNTIME_CONFIG_CT_ACCOUNTING,
  RUNTIME_CONFIG_POLICY_MODE,
  U32_CODEC,
  U64_CODEC,
  encodeAuthInfo,
  encodeAuthKey,
  encodeCt4Key,
  encodeCtEntry,
  encodeEndpointInfo,
  encodeEndpointKey,
  encodeIpcacheKey,
  encodeNodeKey,
  encodeNodeValue,
  encodePolicyEntry,
  encodePolicyKey,
  encodeRemoteEndpointInfo,
  ENDPOINT_KEY_IPV4,
  IPCACHE_PREFIX_BITS_BEFORE_IP,
  type Ct4Key,
  type IpcacheKey,
  type RemoteEndpointInfo,
} from '../abi/generated.ts';
import type { MapOp } from '../datapath/bpftool.ts';
import { skbContext } from '../datapath/progrun.ts';
import { compareDatapath, showValue, type DatapathObservation } from './compare.ts';
import { fuzz, type FuzzOptions, type FuzzReport, type FuzzTarget } from './loop.ts';
import { caseSize, concretize, datapathCase, KEY_EQUALS, shrinkCandidates, type DatapathCase } from './generate.ts';
import { modelDatapath, type Clock, type DatapathInput, type DatapathOutcome, type Entry } from './model.ts';
import { decodeDump, FuzzNode, type FileSink, type ItemResult } from './node.ts';

export type DatapathModel = (input: DatapathInput) => DatapathOutcome;

/** The bpftool commands of one datapath case: write its maps, run, dump, put the maps back. */
export function datapathLines(node: FuzzNode, c: DatapathCase, input: DatapathInput, expected: DatapathOutcome, files: FileSink): { lines: string[]; run: number; ctDump: number; policyDump: number } {
  const writes: MapOp[] = [];
  const deletes: MapOp[] = [];
  const put = (map: Parameters<FuzzNode['pin']>[0], key: Buffer, value: Buffer) => {
    const pin = node.pin(map);
    writes.push({ op: 'update', pin, key, value });
    deletes.push({ op: 'delete', pin, key });
  };
  const m = input.maps;
  writes.push({ op: 'update', pin: node.pin('cilium_runtime_config'), key: U32_CODEC.encode(RUNTIME_CONFIG_POLICY_MODE), value: U64_CODEC.encode(BigInt.asUintN(64, m.policyMode)) });
  writes.push({ op: 'update', pin: node.pin('cilium_runtime_config'), key: U32_CODEC.encode(RUNTIME_CONFIG_CT_ACCOUNTING), value: U64_CODEC.encode(BigInt.asUintN(64, m.ctAccounting)) });
  for (const e of m.endpoints) put('cilium_lxc', encodeEndpointKey({ ifindex: e.key }), encodeEndpointInfo(e.value));
  for (const e of m.ipcache) put('cilium_ipcache', encodeIpcacheKey(e.key), encodeRemoteEndpointInfo(e.value));
  for (const e of m.nodes) put('cilium_node_map', encodeNodeKey(e.key), encodeNodeValue(e.value));
  for (const e of m.policy) put('cilium_policy', encodePolicyKey(e.key), encodePolicyEntry(e.value));
  for (const e of m.auth) put('cilium_auth_map', encodeAuthKey(e.key), encodeAuthInfo({ expiration: e.value }));
  for (const e of m.ct) put('cilium_ct4', encodeCt4Key(e.key), encodeCtEntry(e.value));
  // The entry the program should create: written over, then deleted, so the delete cannot fail.
  const created = expected.ctEffect.kind === 'created' ? expected.ctEffect.key : undefined;
  if (created && !m.ct.some((e) => KEY_EQUALS.ct(e.key, created))) {
    const pin = node.pin('cilium_ct4');
    const key = encodeCt4Key(created);
    deletes.push({ op: 'update', pin, key, value: Buffer.alloc(CT_ENTRY_CODEC.size) }, { op: 'delete', pin, key });
  }
  const prog = node.progPin(c.program === 'from-container' ? 'cil_from_container' : 'cil_to_container');
  const lines = writes.map(FuzzNode.mapLine);
  const run = lines.length;
  lines.push(FuzzNode.progRunLine(prog, files.add(c.packet), files.shared(skbContext({ ifindex: c.ifindex, mark: c.mark }))));
  const ctDump = lines.length;
  lines.push(`map dump pinned ${node.pin('cilium_ct4')}`);
  const policyDump = lines.length;
  lines.push(`map dump pinned ${node.pin('cilium_policy')}`);
  lines.push(...deletes.map(FuzzNode.mapLine));
  return { lines, run, ctDump, policyDump };
}

interface Tag {
  index: number;
  case: DatapathCase;
  input: DatapathInput;
  expected: DatapathOutcome;
  at: { run: number; ctDump: number; policyDump: number };
}

export interface DatapathVerdictDetail {
  input: DatapathInput;
  expected: DatapathOutcome;
  actual: DatapathObservation;
}

/** A datapath case's commands, with what the model expects of it (it sees the sentinel's entries too). */
export function datapathPart(node: FuzzNode, c: DatapathCase, now: Clock, files: FileSink, model: DatapathModel = modelDatapath) {
  const sentinel = node.sentinelMaps();
  const input = concretize(c, now);
  const expected = model({
    ...input,
    maps: {
      ...input.maps,
      endpoints: [...input.maps.endpoints, ...sentinel.endpoints],
      ipcache: [...input.maps.ipcache, ...sentinel.ipcache],
      policy: [...input.maps.policy, ...sentinel.policy],
    },
  });
  expected.policy = expected.policy.filter((e) => e.key.epIfindex !== node.sentinelIfindex);
  const { lines, ...at } = datapathLines(node, c, input, expected, files);
  return { lines, input, expected, at };
}

/** What a datapath case's commands (outputs from its first line on) and records show. */
export function datapathObservation(node: FuzzNode, outputs: unknown[], item: Pick<ItemResult<unknown>, 'flows' | 'signals' | 'metrics'>, at: { run: number; ctDump: number; policyDump: number }): DatapathObservation {
  return {
    retval: (outputs[at.run] as { retval: number }).retval,
    flows: item.flows,
    signals: item.signals,
    metrics: item.metrics,
    policy: decodeDump(outputs[at.policyDump], POLICY_KEY_CODEC, POLICY_ENTRY_CODEC).filter((e) => e.key.epIfindex !== node.sentinelIfindex),
    ct: decodeDump(outputs[at.ctDump], CT4_KEY_CODEC, CT_ENTRY_CODEC),
  };
}

/** The outcomes a datapath case reached, for a run's coverage. */
export function datapathCoverage(expected: DatapathOutcome): string[] {
  const coverage = [expected.dropReason ? `drop ${expected.dropReason}` : 'pass'];
  if (expected.signal) coverage.push('signal');
  if (expected.ctEffect.kind !== 'none') coverage.push(`ct ${expected.ctEffect.kind}`);
  if (expected.flow) coverage.push(`event, ct status ${expected.flow.ctStatus}`);
  if (expected.policyHit) coverage.push('policy hit');
  return coverage;
}

/** The datapath as a fuzz target: cases of generate.ts, judged by `model` (default modelDatapath). */
export function datapathTarget(node: FuzzNode, model: DatapathModel = modelDatapath): FuzzTarget<DatapathCase, Tag> {
  const env = { ifindexes: node.ifindexes };
  return {
    name: 'datapath',
    generate: (seed, index) => datapathCase(seed, index, env),
    item: (c, index, now, files) => {
      const { lines, input, expected, at } = datapathPart(node, c, now, files, model);
      return { lines, tag: { index, case: c, input, expected, at }, metricsKey: expected.metrics };
    },
    judge: (item, window) => {
      const { index, case: c, expected, at } = item.tag;
      const actual = datapathObservation(node, item.outputs, item, at);
      const diffs = compareDatapath(expected, actual, window);
      return { index, case: c, diffs, coverage: datapathCoverage(expected), text: formatDatapathVerdict(c, expected, actual, diffs) };
    },
    shrink: shrinkCandidates,
    size: caseSize,
  };
}

/** `cases` cases of `seed` compared with the model (`model` replaces it, e.g. to see the fuzzer fail). */
export async function fuzzDatapath(node: FuzzNode, opts: FuzzOptions & { model?: DatapathModel }): Promise<FuzzReport<DatapathCase>> {
  return fuzz(node, datapathTarget(node, opts.model), opts);
}

// ---- reports -------------------------------------------------------------------------

const json = (v: unknown) => showValue(v);

function entries<K, V>(name: string, list: Entry<K, V>[]): string[] {
  return list.map((e) => `    ${name} ${json(e.key)} = ${json(e.value)}`);
}

const ip4 = (b: Buffer) => Array.from(b.subarray(0, 4)).join('.');

/** "10.244.0.0/24" (the lookups' IPv4 key), or the whole key when it is another family or cluster. */
export function ipcacheText(list: Entry<IpcacheKey, RemoteEndpointInfo>[]): string[] {
  return list.map(({ key: k, value: v }) => {
    const plain = k.family === ENDPOINT_KEY_IPV4 && k.clusterId === 0 && k.prefixlen >= IPCACHE_PREFIX_BITS_BEFORE_IP && k.prefixlen <= IPCACHE_PREFIX_BITS_BEFORE_IP + 32;
    const where = plain ? `${ip4(k.ip)}/${k.prefixlen - IPCACHE_PREFIX_BITS_BEFORE_IP}` : json(k);
    return `    ipcache ${where} = identity ${v.secIdentity}, tunnel ${ip4(v.tunnelEndpoint)}${v.tunnelEndpoint.subarray(4).some((b) => b) ? ` (bytes ${v.tunnelEndpoint.toString('hex')})` : ''}, flags 0x${v.flags.toString(16)}${v.key ? `, key ${v.key}` : ''}`;
  });
}

/** A case as text: where it ran, the maps (times relative to now), the packet in hex. */
export function formatDatapathCase(c: DatapathCase): string[] {
  return [
    `  ${c.program} at ifindex ${c.ifindex}, mark 0x${c.mark.toString(16)}, policy mode ${c.policyMode}, CT accounting ${c.ctAccounting} (${c.aim})`,
    `  packet (${c.packet.length} bytes): ${c.packet.toString('hex')}`,
    ...entries('lxc', c.endpoints),
    ...ipcacheText(c.ipcache),
    ...c.nodes.map((n) => `    node ${n.key.family === ENDPOINT_KEY_IPV4 ? ip4(n.key.ip) : json(n.key)} = id ${n.value.id}${n.value.spi ? `, spi ${n.value.spi}` : ''}`),
    ...entries('policy', c.policy),
    ...entries('auth', c.auth),
    ...entries('ct', c.ct),
  ];
}

export function formatDatapathVerdict(c: DatapathCase, expected: DatapathOutcome, actual: DatapathObservation, diffs: string[]): string[] {
  const { trace, ...e } = expected;
  const observedCt = (key: Ct4Key) => actual.ct.find((x) => KEY_EQUALS.ct(x.key, key));
  return [
    ...formatDatapathCase(c),
    `  model: ${trace.join('; ')}`,
    `  expected: retval ${e.retval}, drop ${e.dropReason}, flow ${json(e.flow)}, signal ${json(e.signal)}, metrics ${json(e.metrics)}, ct ${json(e.ctEffect)}`,
    `  actual:   retval ${actual.retval}, flows ${json(actual.flows)}, signals ${json(actual.signals)}, metrics ${json(actual.metrics)}` +
      (e.ctEffect.kind !== 'none' ? `, ct ${json(observedCt(e.ctEffect.key) ?? null)}` : ''),
    ...diffs.map((d) => `  differs: ${d}`),
  ];
}

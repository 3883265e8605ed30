// Differential fuzzing of bpf/overlay.c: overlay.o loaded on the fuzz node
// as lab/tunnel loads it (reusing the datapath's maps, so its drops land in
// the node's events and metrics), next to a harness (bpf/overlay-harness.c
// beside this file, built at run time against bpf/):
//   'from' cases  a VNI from a sending node handed to the real
//                 cil_from_overlay through the harness's tunnel key: its
//                 verdict, drop event and counter, and the mark it leaves
//                 (ctx_out) must be the model's; a packet it lets through
//                 then reaches the receiving pod's cil_to_container with
//                 that mark, on a random map state, which must decide as
//                 the datapath model says (source identity from the VNI,
//                 reserved identities, VNI 0 falling back to the ipcache).
//   'to' cases    the real cil_to_overlay's verdict, drop event and counter,
//                 and the tunnel key the harness's copy of the same source
//                 sets (VNI, remote, TTL).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDENTITY_REMOTE_NODE, MAP_CODECS, VXLAN_VNI_MASK, encodeEndpointInfo, encodeEndpointKey, encodeIpcacheKey, encodeRemoteEndpointInfo } from '../abi/generated.ts';
import { nodeBpffsDir } from '../core/names.ts';
import { REPO_ROOT } from '../core/repo.ts';
import { run } from '../kernel/run.ts';
import type { MapOp } from '../datapath/bpftool.ts';
import { BPF_DIR, loadNodeObject } from '../datapath/load.ts';
import { skbContext } from '../datapath/progrun.ts';
import { loadOverlay, overlayProgPin } from '../tunnel/tunnel.ts';
import { compareDatapath, compareReports, showValue } from './compare.ts';
import { fuzz, type FuzzOptions, type FuzzReport, type FuzzTarget } from './loop.ts';
import { modelDatapath, TC_ACT_OK, type DatapathOutcome, type Entry } from './model.ts';
import { FuzzNode } from './node.ts';
import { modelFromOverlay, modelToOverlay, overlayCase, overlayCaseSize, shrinkOverlayCase, type OverlayCase } from './overlay-model.ts';
import { datapathCoverage, datapathObservation, datapathPart, formatDatapathCase, formatDatapathVerdict, ipcacheText, type DatapathModel } from './run.ts';

export const OVERLAY_HARNESS_SOURCE = join(REPO_ROOT, 'lab/fuzz/bpf/overlay-harness.c');
const harnessDir = (node: FuzzNode) => `${nodeBpffsDir(node.lab, node.node)}/fuzz-harness`;
const harnessPin = (node: FuzzNode, prog: 'from_overlay_with_vni' | 'to_overlay_key') => `${harnessDir(node)}/progs/${prog}`;

const SKB_MARK = 8;
const SKB_PRIORITY = 32;
const SKB_CB0 = 48;

/** Loads overlay.o and the harness on the fuzz node once. */
export async function ensureOverlay(node: FuzzNode): Promise<void> {
  if (existsSync(harnessPin(node, 'to_overlay_key'))) return;
  await loadOverlay(node.lab, node.node);
  const build = await mkdtemp(join(tmpdir(), 'mtless-fuzz-harness-'));
  try {
    const multiarch = (await run(['clang', '-print-multiarch'])).stdout.trim();
    const object = join(build, 'overlay-harness.o');
    await run(['clang', '-g', '-O2', '-target', 'bpf', '-Wall', '-Wno-unused-function', `-I/usr/include/${multiarch}`, `-I${BPF_DIR}`,
      '-c', OVERLAY_HARNESS_SOURCE, '-o', object], { timeout: 120_000 });
    const progArray = `${harnessDir(node)}/harness_progs`;
    await loadNodeObject({
      lab: node.lab, node: node.node, feature: 'the overlay fuzz harness', object,
      dir: harnessDir(node), progPins: `${harnessDir(node)}/progs`, sharedMaps: Object.keys(MAP_CODECS),
      ownMaps: { harness_progs: progArray },
      prepare: async () => void (await run(['bpftool', 'map', 'create', progArray, 'type', 'prog_array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'harness_progs'])),
    });
    // The harness's tail call lands in the node's own cil_from_overlay.
    await run(['bpftool', 'map', 'update', 'pinned', progArray, 'key', '0', '0', '0', '0', 'value', 'pinned', overlayProgPin(node.lab, node.node, 'cil_from_overlay')]);
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

type Reports = ReturnType<typeof modelToOverlay>;
type FromReports = ReturnType<typeof modelFromOverlay>;

type Tag =
  | { kind: 'to'; index: number; case: OverlayCase & { kind: 'to' }; expected: Reports; real: number; copy?: number }
  | {
      kind: 'from'; index: number; case: OverlayCase & { kind: 'from' }; from: FromReports; harness: number;
      /** The receiving pod's part, when cil_from_overlay lets the packet through. */
      receive?: { expected: DatapathOutcome; at: ReturnType<typeof datapathPart>['at'] };
    };

/** skb ctx with cb[0] set (the harness reads the sending node's address there). */
function contextWithCb0(fields: Parameters<typeof skbContext>[0], cb0: number): Buffer {
  const ctx = skbContext(fields);
  ctx.writeUInt32LE(cb0 >>> 0, SKB_CB0);
  return ctx;
}

const u32 = (ip: string) => ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);

export function overlayTarget(node: FuzzNode, opts: { datapathModel?: DatapathModel; toOverlayModel?: typeof modelToOverlay; fromOverlayModel?: typeof modelFromOverlay } = {}): FuzzTarget<OverlayCase, Tag> {
  const env = { ifindexes: node.ifindexes };
  const toModel = opts.toOverlayModel ?? modelToOverlay;
  const fromModel = opts.fromOverlayModel ?? modelFromOverlay;
  const sentinel = node.sentinelMaps();
  return {
    name: 'overlay',
    generate: (seed, index) => overlayCase(seed, index, env),
    item: (c, index, now, files) => {
      if (c.kind === 'to') {
        const expected = toModel({
          packet: c.packet, ifindex: c.ifindex, ingressIfindex: c.ingressIfindex,
          maps: { endpoints: [...c.endpoints, ...sentinel.endpoints], ipcache: [...c.ipcache, ...sentinel.ipcache], nodes: [] },
        });
        const writes: MapOp[] = [];
        const deletes: MapOp[] = [];
        const put = (pin: string, key: Buffer, value: Buffer) => {
          writes.push({ op: 'update', pin, key, value });
          deletes.push({ op: 'delete', pin, key });
        };
        for (const e of c.endpoints) put(node.pin('cilium_lxc'), encodeEndpointKey({ ifindex: e.key }), encodeEndpointInfo(e.value));
        for (const e of c.ipcache) put(node.pin('cilium_ipcache'), encodeIpcacheKey(e.key), encodeRemoteEndpointInfo(e.value));
        const packet = files.add(c.packet);
        const ctx = files.shared(skbContext({ ifindex: c.ifindex, ingressIfindex: c.ingressIfindex }));
        const lines = writes.map(FuzzNode.mapLine);
        const real = lines.length;
        lines.push(FuzzNode.progRunLine(overlayProgPin(node.lab, node.node, 'cil_to_overlay'), packet, ctx));
        // The harness's copy shows the tunnel key; it would report a drop a second time, so it runs only where none is expected.
        let copy: number | undefined;
        if (expected.retval === TC_ACT_OK) {
          copy = lines.length;
          lines.push(FuzzNode.progRunLine(harnessPin(node, 'to_overlay_key'), packet, ctx, files.output()));
        }
        lines.push(...deletes.map(FuzzNode.mapLine));
        return { lines, tag: { kind: 'to', index, case: c, expected, real, copy }, metricsKey: expected.metrics ?? 'none' };
      }
      const from = fromModel({
        packet: c.receive.packet, ifindex: c.ifindex, tunnel: c.direct ? null : { vni: c.vni, sender: c.sender }, mark: c.staleMark,
        maps: { ipcache: [...c.receive.ipcache, ...sentinel.ipcache], nodes: c.receive.nodes },
      });
      const prog = c.direct ? overlayProgPin(node.lab, node.node, 'cil_from_overlay') : harnessPin(node, 'from_overlay_with_vni');
      const harnessLine = FuzzNode.progRunLine(prog, files.add(c.receive.packet),
        files.shared(contextWithCb0({ ifindex: c.ifindex, priority: c.vni, mark: c.staleMark }, u32(c.sender))), files.output());
      // The receiving pod's maps (its ipcache and node IDs also fill cil_from_overlay's drop event).
      const receive = { ...c.receive, mark: from.mark };
      const part = datapathPart(node, receive, now, files, opts.datapathModel ?? modelDatapath);
      const { run, ctDump, policyDump } = part.at;
      if (from.retval !== TC_ACT_OK) {
        // Dropped in the tunnel: it never reaches the pod.
        const lines = [...part.lines.slice(0, run), harnessLine, ...part.lines.slice(policyDump + 1)];
        return { lines, tag: { kind: 'from', index, case: c, from, harness: run }, metricsKey: from.metrics ?? 'none' };
      }
      const lines = [...part.lines.slice(0, run), harnessLine, ...part.lines.slice(run)];
      return {
        lines,
        tag: { kind: 'from', index, case: c, from, harness: run, receive: { expected: part.expected, at: { run: run + 1, ctDump: ctDump + 1, policyDump: policyDump + 1 } } },
        metricsKey: part.expected.metrics,
      };
    },
    judge: (item, window) => {
      const t = item.tag;
      if (t.kind === 'to') {
        const real = (item.outputs[t.real] as { retval: number }).retval;
        const copy = t.copy === undefined ? undefined : (item.outputs[t.copy] as { retval: number }).retval;
        const ctx = item.written[0];
        const key = ctx && copy === TC_ACT_OK ? { vni: ctx.readUInt32LE(SKB_MARK), remote: dotted(ctx.readUInt32LE(SKB_PRIORITY)), ttl: ctx.readUInt32LE(SKB_CB0) } : null;
        const diffs = compareReports({ ...t.expected, signal: null }, { retval: real, flows: item.flows, signals: item.signals, metrics: item.metrics }, window);
        if (copy !== undefined && copy !== real) diffs.push(`copy.retval: overlay.o returned ${real}, the harness's copy of overlay.c ${copy}`);
        if (copy !== undefined && showValue(key) !== showValue(t.expected.key)) diffs.push(`key: expected ${showValue(t.expected.key)}, got ${showValue(key)}`);
        const text = [
          ...formatToOverlayCase(t.case),
          `  model: ${t.expected.trace.join('; ')}`,
          `  expected: retval ${t.expected.retval}, key ${showValue(t.expected.key)}, flow ${showValue(t.expected.flow)}, metrics ${showValue(t.expected.metrics)}`,
          `  actual:   retval ${real}${copy === undefined ? '' : ` (copy ${copy})`}, key ${showValue(key)}, flows ${showValue(item.flows)}, metrics ${showValue(item.metrics)}`,
          ...diffs.map((d) => `  differs: ${d}`),
        ];
        const coverage = [t.expected.flow ? `to-overlay: drop ${t.expected.flow.dropReason}` : 'to-overlay: into the tunnel'];
        if (t.expected.key?.vni === IDENTITY_REMOTE_NODE) coverage.push('to-overlay: VNI remote-node');
        return { index: t.index, case: t.case, diffs, text, coverage };
      }
      const retval = (item.outputs[t.harness] as { retval: number }).retval;
      const markOut = item.written[0]!.readUInt32LE(SKB_MARK);
      const diffs: string[] = [];
      if (markOut !== t.from.mark) diffs.push(`from.mark: expected 0x${t.from.mark.toString(16)}, got 0x${markOut.toString(16)}`);
      const c = t.case;
      const head = `  cil_from_overlay at ifindex ${c.ifindex}${c.direct ? ' without tunnel metadata' : `: VNI ${c.vni} from ${c.sender}`}, mark before 0x${c.staleMark.toString(16)}: ` +
        `expected retval ${t.from.retval}, mark 0x${t.from.mark.toString(16)} (${t.from.trace.join('; ')}); got retval ${retval}, mark 0x${markOut.toString(16)}`;
      if (!t.receive) {
        diffs.push(...compareReports({ ...t.from, signal: null }, { retval, flows: item.flows, signals: item.signals, metrics: item.metrics }, window).map((d) => `from ${d}`));
        const text = [head, ...formatDatapathCase(c.receive).slice(1), `  expected: flow ${showValue(t.from.flow)}, metrics ${showValue(t.from.metrics)}`,
          `  actual:   flows ${showValue(item.flows)}, metrics ${showValue(item.metrics)}`, ...diffs.map((d) => `  differs: ${d}`)];
        return { index: t.index, case: c, diffs, text, coverage: [`from-overlay: drop ${t.from.flow?.dropReason}`] };
      }
      if (retval !== t.from.retval) diffs.push(`from.retval: expected ${t.from.retval}, got ${retval}`);
      const actual = datapathObservation(node, item.outputs, item, t.receive.at);
      const receiveDiffs = compareDatapath(t.receive.expected, actual, window).map((d) => `receive ${d}`);
      const text = [
        head,
        '  then at the receiving pod:',
        ...formatDatapathVerdict({ ...c.receive, mark: t.from.mark }, t.receive.expected, actual, receiveDiffs),
        ...diffs.map((d) => `  differs: ${d}`),
      ];
      diffs.push(...receiveDiffs);
      const identity = (c.vni & VXLAN_VNI_MASK) >>> 0;
      const coverage = [t.from.mark ? 'from-overlay: identity mark' : c.direct ? 'from-overlay: passed untouched' : 'from-overlay: VNI 0', ...datapathCoverage(t.receive.expected).map((k) => `receive ${k}`)];
      if (!c.direct && t.from.mark && identity < 256) coverage.push(identity <= IDENTITY_REMOTE_NODE ? `from-overlay: reserved identity ${identity}` : 'from-overlay: identity below 256');
      return { index: t.index, case: c, diffs, text, coverage };
    },
    shrink: shrinkOverlayCase,
    size: overlayCaseSize,
  };
}

export async function fuzzOverlay(node: FuzzNode, opts: FuzzOptions & Parameters<typeof overlayTarget>[1]): Promise<FuzzReport<OverlayCase>> {
  await ensureOverlay(node);
  return fuzz(node, overlayTarget(node, opts), opts);
}

const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
const entries = <K, V>(name: string, list: Entry<K, V>[]) => list.map((e) => `    ${name} ${showValue(e.key)} = ${showValue(e.value)}`);

function formatToOverlayCase(c: OverlayCase & { kind: 'to' }): string[] {
  return [
    `  cil_to_overlay at ifindex ${c.ifindex}, ingress_ifindex ${c.ingressIfindex} (${c.aim})`,
    `  packet (${c.packet.length} bytes): ${c.packet.toString('hex')}`,
    ...entries('lxc', c.endpoints),
    ...ipcacheText(c.ipcache),
  ];
}

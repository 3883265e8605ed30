// What map I/O through bpftool costs per operation, on one node's maps of a
// lab with no traffic: one `bpftool map update` per entry vs one `bpftool
// batch` of 200 / 2000 entries into cilium_auth_map, a decoded dump of
// 200 / 2000 entries, and writeNodeState: the node's real state written
// fresh, an unchanged re-sync, and an ipcache of a 2000-pod cluster.
import type { LabPlan } from '../../core/plan.ts';
import { applyBatch, mapUpdate, type MapOp } from '../../datapath/bpftool.ts';
import { readIfindexes } from '../../datapath/load.ts';
import { mapPin } from '../../datapath/maps.ts';
import { dumpAuth, toAuthExpiration } from '../../datapath/auth.ts';
import { compileNodeState, writeNodeState, type NodeDatapathState } from '../../datapath/state.ts';
import { AUTH_TYPE_SPIRE, encodeAuthInfo, encodeAuthKey } from '../../abi/generated.ts';
import type { IdentityAllocation } from '../../policy/identity.ts';
import { median, summarize } from '../stats.ts';
import type { MapIoRow } from './report.ts';

export interface MapIoReps {
  /** Single-entry updates (one bpftool process each). Default 20. */
  single?: number;
  /** Batches per size, each followed by a dump. Default 5. */
  batch?: number;
  /** writeNodeState repetitions. Default 5. */
  state?: number;
}

/** Identities far above any the lab allocates: the benchmark's auth keys can never match real traffic. */
const BENCH_IDENTITY_BASE = 0x0100_0000;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function row(op: string, entries: number, ms: number[], note?: string): MapIoRow {
  const s = summarize(ms);
  return { op, entries, ms: s, usPerEntry: (s.median / entries) * 1000, ...(note ? { note } : {}) };
}

/** Measures on the first node's maps, and leaves them exactly as it found them (checked). */
export async function benchMapIo(lab: string, plan: LabPlan, identities: IdentityAllocation, reps: MapIoReps, log: (line: string) => void): Promise<MapIoRow[]> {
  const nSingle = reps.single ?? 20;
  const nBatch = reps.batch ?? 5;
  const nState = reps.state ?? 5;
  const node = plan.nodes[0]!;
  const pin = mapPin(lab, node.name, 'cilium_auth_map');
  const value = encodeAuthInfo({ expiration: toAuthExpiration(Date.now() + 3_600_000) });
  const key = (i: number) => encodeAuthKey({ localSecLabel: BENCH_IDENTITY_BASE + i, remoteSecLabel: BENCH_IDENTITY_BASE, remoteNodeId: 1, authType: AUTH_TYPE_SPIRE });
  const updates = (from: number, n: number): MapOp[] => Array.from({ length: n }, (_, i) => ({ op: 'update', pin, key: key(from + i), value }));
  const deletes = (from: number, n: number): MapOp[] => Array.from({ length: n }, (_, i) => ({ op: 'delete', pin, key: key(from + i) }));
  const rows: MapIoRow[] = [];

  // Single updates: one bpftool process per entry (what the agent does per auth).
  const single: number[] = [];
  for (let i = 0; i < nSingle; i++) single.push(await timed(() => mapUpdate(pin, key(i), value)));
  await applyBatch(deletes(0, nSingle));
  rows.push(row('auth map: update, one bpftool process', 1, single));
  log(`map I/O: single update median ${median(single).toFixed(2)} ms`);

  // Batches of N new entries, each followed by a decoded dump of the map (then emptied, untimed).
  for (const n of [200, 2000]) {
    const write: number[] = [];
    const dump: number[] = [];
    for (let r = 0; r < nBatch; r++) {
      write.push(await timed(() => applyBatch(updates(0, n))));
      let seen = 0;
      dump.push(await timed(async () => (seen = (await dumpAuth(lab, node.name)).length)));
      if (seen < n) throw new Error(`auth map holds ${seen} entries after a batch of ${n}`);
      await applyBatch(deletes(0, n));
    }
    rows.push(row(`auth map: batch update (bpftool batch)`, n, write));
    rows.push(row(`auth map: dump + decode (dumpAuth)`, n, dump));
    log(`map I/O: batch of ${n} median ${median(write).toFixed(2)} ms, dump median ${median(dump).toFixed(2)} ms`);
  }

  // writeNodeState: the node's real state, written into emptied maps (4 dumps + 1 batch) …
  const ifindexes = await readIfindexes(node.netns);
  const real = compileNodeState(plan, node.name, identities);
  const realEntries = real.ipcache.length + real.nodes.length + real.endpoints.length + real.policy.length;
  const empty: NodeDatapathState = { node: node.name, ipcache: [], nodes: [], endpoints: [], policy: [] };
  const fresh: number[] = [];
  for (let r = 0; r < nState; r++) {
    await writeNodeState(lab, node.name, empty, ifindexes);
    fresh.push(await timed(() => writeNodeState(lab, node.name, real, ifindexes)));
  }
  rows.push(row('node state: fresh write (writeNodeState, 4 maps)', realEntries, fresh, `${real.ipcache.length} ipcache, ${real.nodes.length} node, ${real.endpoints.length} endpoint, ${real.policy.length} policy entries`));
  // … an unchanged re-sync (4 dumps, no batch) …
  const noop: number[] = [];
  for (let r = 0; r < nState; r++) noop.push(await timed(() => writeNodeState(lab, node.name, real, ifindexes)));
  rows.push(row('node state: unchanged re-sync (4 dumps, no write)', realEntries, noop));
  // … and the ipcache of a 2000-pod cluster (1 dump + 1 batch of 2000).
  const big: NodeDatapathState = { ...real, ipcache: [...real.ipcache, ...syntheticIpcache(2000, plan)] };
  const ipcacheMs: number[] = [];
  for (let r = 0; r < nState; r++) {
    await writeNodeState(lab, node.name, real, ifindexes, { only: ['ipcache'] });
    ipcacheMs.push(await timed(() => writeNodeState(lab, node.name, big, ifindexes, { only: ['ipcache'] })));
  }
  rows.push(row('node state: ipcache of a 2000-pod cluster (writeNodeState only ipcache)', 2000, ipcacheMs, 'new /32s of pods on other nodes'));
  // Restore the real state and prove it is exact again.
  await writeNodeState(lab, node.name, real, ifindexes);
  const check = await writeNodeState(lab, node.name, real, ifindexes);
  if (check.updated !== 0 || check.deleted !== 0) throw new Error(`node state not restored: ${JSON.stringify(check)}`);
  log(`map I/O: node state fresh ${median(fresh).toFixed(2)} ms, re-sync ${median(noop).toFixed(2)} ms, ipcache 2000 ${median(ipcacheMs).toFixed(2)} ms`);
  return rows;
}

/** /32s of pods on the other nodes (10.245.x.y, outside the lab's pod range), each with its node as tunnel endpoint. */
function syntheticIpcache(n: number, plan: LabPlan) {
  const others = plan.nodes.slice(1);
  return Array.from({ length: n }, (_, i) => ({
    cidr: `10.245.${(i >> 8) & 255}.${i & 255}/32`,
    identity: 256 + (i % 500),
    tunnelEndpoint: (others[i % Math.max(1, others.length)] ?? plan.nodes[0]!).underlayIp,
  }));
}

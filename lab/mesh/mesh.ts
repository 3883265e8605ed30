// The mesh controller (istiod's part, run by the scenario on the lab host):
// issues one workload SVID per pod, writes each node proxy's config, installs
// the node's nftables redirect, and starts the proxies as tagged lab
// processes. `mtless down` removes everything: the proxies by tag, the tables
// with the node namespaces, the files with the state directory.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Topology } from '../topology/model.ts';
import { createCa, generateSvidKey, issueWorkloadSvid, loadCa, saveCa, type Ca } from '../spiffe/ca.ts';
import { MESH_TRUST_DOMAIN } from '../spiffe/id.ts';
import { startLabDaemon, waitForLogLine } from '../kernel/daemon.ts';
import { MESH_PROXY } from '../core/daemons.ts';
import { readState, writeState, type LabState } from '../core/state.ts';
import { run } from '../kernel/run.ts';
import { MESH_OUTBOUND_PORT_BASE } from '../abi/generated.ts';
import { POD_IFNAME } from '../core/names.ts';
import { POD_GATEWAY_IP } from '../core/plan.ts';
import { daemonLogFile, keyLogFile, meshDir, proxyDir } from '../core/names.ts';
import {
  MESH_TABLE, meshDestinations, workloadSpiffeId,
  type MeshPod, type OutboundRoute, type ProxyConfig,
} from './config.ts';

interface MeshState {
  policies: Topology['policies'];
  pods: MeshPod[];
  /** Outbound port map per node: `${srcPod}>${dstPod}:${port}` → local port (stable across reloads). */
  ports: Record<string, Record<string, number>>;
  generation: number;
}

const meshStateFile = (lab: string) => `${meshDir(lab)}/mesh.json`;
const bundleFile = (lab: string) => `${meshDir(lab)}/bundle.pem`;
/** The mesh's own CA (istiod's, trust domain cluster.local), apart from the lab's Cilium/SPIRE CA. */
const meshCaFile = (lab: string) => `${meshDir(lab)}/ca.key.pem`;

async function readMesh(lab: string): Promise<MeshState> {
  return JSON.parse(await readFile(meshStateFile(lab), 'utf8')) as MeshState;
}

/**
 * The workload SVID: one URI SAN `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
 * The key is made here and written 0600 next to the proxy's config.
 */
async function writeWorkloadSvid(lab: string, ca: Ca, pod: MeshPod): Promise<void> {
  const key = await generateSvidKey();
  const svid = await issueWorkloadSvid(ca, pod.namespace, pod.serviceAccount, { publicKey: key.publicKey });
  const dir = proxyDir(lab, pod.node);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(`${dir}/${pod.name}.key.pem`, key.keyPem, { mode: 0o600 });
  await chmod(`${dir}/${pod.name}.key.pem`, 0o600);
  await writeFile(`${dir}/${pod.name}.cert.pem`, svid.certPem);
}

/** The node proxy's config from the mesh state and the lab's pods (by lxc), allocating outbound ports. */
function proxyConfig(lab: string, state: LabState, mesh: MeshState, node: string): ProxyConfig {
  const self = state.nodes.find((n) => n.name === node)!;
  const podState = new Map(state.pods.map((p) => [p.name, p]));
  const local = mesh.pods.filter((p) => p.node === node && podState.has(p.name));
  const destinations = meshDestinations({ policies: mesh.policies } as Topology, mesh.pods);
  const ports = (mesh.ports[node] ??= {});
  const outbound: OutboundRoute[] = [];
  for (const src of local) {
    for (const d of destinations) {
      const dst = mesh.pods.find((p) => p.name === d.pod)!;
      // Same-node destinations are left alone (ztunnel would short-cut them; not part of this contrast).
      if (dst.node === node) continue;
      const key = `${src.name}>${d.pod}:${d.port}`;
      ports[key] ??= MESH_OUTBOUND_PORT_BASE + Object.keys(ports).length;
      outbound.push({
        localPort: ports[key]!, srcPod: src.name, srcLxc: podState.get(src.name)!.lxc,
        dstPod: dst.name, dstIp: dst.ip, dstPort: d.port,
        dstNodeIp: state.nodes.find((n) => n.name === dst.node)!.underlayIp,
        dstSpiffeId: workloadSpiffeId(dst.namespace, dst.serviceAccount),
      });
    }
  }
  return {
    lab, node, underlayIp: self.underlayIp, bundleFile: bundleFile(lab), keyLogFile: keyLogFile(lab), generation: mesh.generation,
    workloads: local.map((p) => ({
      pod: p.name, ip: p.ip, lxc: podState.get(p.name)!.lxc, spiffeId: workloadSpiffeId(p.namespace, p.serviceAccount),
      certFile: `${proxyDir(lab, node)}/${p.name}.cert.pem`, keyFile: `${proxyDir(lab, node)}/${p.name}.key.pem`,
    })),
    outbound,
    inbound: destinations.filter((d) => local.some((p) => p.name === d.pod)).map((d) => ({ ...d, ip: local.find((p) => p.name === d.pod)!.ip })),
  };
}

/**
 * The node's redirect, replaced atomically (one nft transaction):
 * - prerouting DNAT of (pod veth, destination pod IP, port) to the proxy's
 *   local port for that pair: the proxy learns the original destination and
 *   the source workload from the port (Node can read neither SO_ORIGINAL_DST
 *   nor the incoming interface);
 * - forward drop of any other packet to a meshed destination, so plaintext
 *   never bypasses the proxies (the pod-to-pod path is closed both at the
 *   sender's node and at the receiver's, like ambient's strict mTLS).
 */
export function nftScript(cfg: ProxyConfig, meshed: { ip: string; port: number }[]): string {
  const dnat = cfg.outbound.map((r) => `    iifname "${r.srcLxc}" ip daddr ${r.dstIp} tcp dport ${r.dstPort} dnat ip to ${cfg.underlayIp}:${r.localPort} comment "${r.srcPod} -> ${r.dstPod}:${r.dstPort}"`);
  const strict = meshed.map((m) => `    ip daddr ${m.ip} tcp dport ${m.port} counter drop comment "meshed: only through the proxies"`);
  return [
    `table inet ${MESH_TABLE}`,
    `delete table inet ${MESH_TABLE}`,
    `table inet ${MESH_TABLE} {`,
    '  chain to_proxy {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...dnat,
    '  }',
    '  chain no_bypass {',
    '    type filter hook forward priority filter; policy accept;',
    ...strict,
    '  }',
    '}',
    '',
  ].join('\n');
}

async function applyNode(lab: string, state: LabState, mesh: MeshState, node: string): Promise<ProxyConfig> {
  const cfg = proxyConfig(lab, state, mesh, node);
  await mkdir(proxyDir(lab, node), { recursive: true, mode: 0o700 });
  await writeFile(MESH_PROXY.configFile(lab, node), JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  const meshed = meshDestinations({ policies: mesh.policies } as Topology, mesh.pods).map((d) => ({ ip: mesh.pods.find((p) => p.name === d.pod)!.ip, port: d.port }));
  const netns = state.nodes.find((n) => n.name === node)!.netns;
  await run(['nft', '-f', '-'], { netns, input: nftScript(cfg, meshed) });
  // Pods route only the pod range; the destination proxy connects from the
  // node's underlay address (the datapath's allow-localhost admits it), so a
  // meshed pod needs the way back to it. The route goes with the pod's namespace.
  for (const rule of cfg.inbound) {
    const podNs = state.pods.find((p) => p.name === rule.pod)!.netns;
    await run(['ip', 'route', 'replace', `${cfg.underlayIp}/32`, 'via', POD_GATEWAY_IP, 'dev', POD_IFNAME, 'onlink'], { netns: podNs });
  }
  return cfg;
}

/** Starts the mesh on a lab that is up: SVIDs for every pod, redirect and proxy on every node. */
export async function startMesh(lab: string, topology: Topology): Promise<void> {
  const state = await readState(lab);
  if (!state || state.phase !== 'up') throw new Error(`lab "${lab}" is not up`);
  await mkdir(meshDir(lab), { recursive: true, mode: 0o700 });
  const ca = await createCa({ trustDomain: MESH_TRUST_DOMAIN });
  await saveCa(ca, meshCaFile(lab));
  await writeFile(bundleFile(lab), ca.certPem);
  const declared = new Map(topology.nodes.flatMap((n) => n.pods.map((p) => [p.name, p])));
  const pods: MeshPod[] = state.pods.map((p) => ({
    name: p.name, node: p.node, ip: p.ip, labels: p.labels,
    namespace: declared.get(p.name)?.namespace ?? 'default', serviceAccount: declared.get(p.name)?.serviceAccount ?? 'default',
  }));
  const mesh: MeshState = { policies: topology.policies, pods, ports: {}, generation: 1 };
  await Promise.all(pods.map((p) => writeWorkloadSvid(lab, ca, p)));
  for (const n of state.nodes) await applyNode(lab, state, mesh, n.name);
  await writeFile(meshStateFile(lab), JSON.stringify(mesh, null, 2) + '\n', { mode: 0o600 });
  for (const n of state.nodes) {
    const proc = await startLabDaemon(lab, MESH_PROXY, n.name);
    // Re-read: startLabDaemon does not write the state file, and others may have.
    const fresh = (await readState(lab))!;
    fresh.processes.push(proc);
    await writeState(fresh);
  }
}

/**
 * Enrolls a pod added at run time (`mtless pod add`): its SVID (of ITS service
 * account), then its node's redirect and proxy config (SIGHUP, waits for the
 * reload). Only the pod's own node changes: other proxies authorize by
 * certificate and need no update. Pods deleted from the lab leave the mesh here.
 */
export async function enrollPod(lab: string, pod: string, opts: { namespace?: string; serviceAccount?: string } = {}): Promise<void> {
  const state = (await readState(lab))!;
  const mesh = await readMesh(lab);
  const p = state.pods.find((x) => x.name === pod);
  if (!p) throw new Error(`lab "${lab}" has no pod "${pod}"`);
  const names = new Set(state.pods.map((x) => x.name));
  mesh.pods = mesh.pods.filter((x) => names.has(x.name) && x.name !== pod);
  const entry: MeshPod = { name: p.name, node: p.node, ip: p.ip, labels: p.labels, namespace: opts.namespace ?? 'default', serviceAccount: opts.serviceAccount ?? 'default' };
  mesh.pods.push(entry);
  mesh.generation++;
  await writeWorkloadSvid(lab, await loadCa(meshCaFile(lab)), entry);
  await applyNode(lab, state, mesh, p.node);
  await writeFile(meshStateFile(lab), JSON.stringify(mesh, null, 2) + '\n', { mode: 0o600 });
  const proc = state.processes.find((x) => x.node === p.node && x.role === MESH_PROXY.role);
  if (!proc) throw new Error(`no mesh proxy on node ${p.node}`);
  const logFile = daemonLogFile(lab, p.node, MESH_PROXY.role);
  const offset = (await readFile(logFile)).length;
  process.kill(proc.pid, 'SIGHUP');
  await waitForLogLine(logFile, `"generation":${mesh.generation}`, proc.pid, 5000, `mesh proxy on ${p.node} (reload)`, offset);
}

/** The proxy's structured log lines. */
export async function proxyLog(lab: string, node: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(daemonLogFile(lab, node, MESH_PROXY.role), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `nft list table` of a node (for the narrative and the tests). */
export async function listRedirect(lab: string, node: string): Promise<string> {
  const state = (await readState(lab))!;
  return (await run(['nft', 'list', 'table', 'inet', MESH_TABLE], { netns: state.nodes.find((n) => n.name === node)!.netns })).stdout;
}

/** Packets the node's `no_bypass` chain dropped (its rules' kernel counters): plaintext to a meshed pod that skipped the proxies. */
export async function bypassDrops(lab: string, node: string): Promise<number> {
  const state = (await readState(lab))!;
  const netns = state.nodes.find((n) => n.name === node)!.netns;
  const out = JSON.parse((await run(['nft', '-j', 'list', 'chain', 'inet', MESH_TABLE, 'no_bypass'], { netns })).stdout) as { nftables: { rule?: { expr: Record<string, { packets?: number }>[] } }[] };
  return out.nftables.flatMap((o) => o.rule?.expr ?? []).reduce((sum, e) => sum + (e.counter?.packets ?? 0), 0);
}

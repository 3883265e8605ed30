// Tunnel mode on a real lab (datapath, no agents): one cilium_vxlan per node
// in collect-metadata mode on UDP 8472 with bpf/overlay.c attached, pod
// traffic between the nodes routed into it, the VNI of every VXLAN packet
// equal to the source pod's identity (tshark on the underlay), and teardown
// leaving no namespace, pin or program.
import t from 'tap';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { destroyLab } from '../../lab/compose/down.ts';
import { readState } from '../../lab/core/state.ts';
import { run } from '../../lab/kernel/run.ts';
import { tcAttachedPrograms } from '../../lab/kernel/tc.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { startCapture } from '../../lab/capture/capture.ts';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { UNDERLAY_LINK } from '../../lab/capture/links.ts';
import { tsharkFields } from '../../lab/capture/tshark.ts';
import { loadOverlay, overlayProgPin, readVxlan, vxlanMac, VXLAN_IFNAME } from '../../lab/tunnel/index.ts';
import { OVERLAY_PROGRAMS, VXLAN_PORT } from '../../lab/abi/generated.ts';
import { bpfProgIds, echoSend, labLeftovers, needsRoot, ping, REPO, startEchoServer } from '../helpers/kernel.ts';
import { overlayDir } from '../../lab/core/names.ts';

const TOPOLOGY = resolve(REPO, 'topologies/two-node-tunnel.yaml');

/** Program ids of the pinned overlay programs of a node. */
async function pinnedIds(lab: string, node: string): Promise<number[]> {
  const ids: number[] = [];
  for (const prog of Object.values(OVERLAY_PROGRAMS)) {
    const r = await run(['bpftool', '-j', 'prog', 'show', 'pinned', overlayProgPin(lab, node, prog)]);
    ids.push((JSON.parse(r.stdout) as { id: number }).id);
  }
  return ids;
}

t.test('tunnel lab: VXLAN devices, cross-node traffic in the tunnel, VNI = source identity, clean teardown', { skip: needsRoot }, async (t) => {
  const lab = 't-tunnel-lab';
  await destroyLab(lab);
  const topology = await loadTopologyFile(TOPOLOGY);
  t.equal(topology.routing, 'tunnel', 'the topology asks for tunnel routing');
  const baseline = new Set(await bpfProgIds());
  const ours: number[] = [];
  const outDir = await mkdtemp(join(tmpdir(), 'tunnel-lab-'));
  try {
    const plan = await upWithDatapath(topology, { name: lab, agents: false });
    const state = (await readState(lab))!;
    const identity = (pod: string) => state.pods.find((p) => p.name === pod)!.identity!;
    const ip = (pod: string) => state.pods.find((p) => p.name === pod)!.ip;

    for (const n of plan.nodes) {
      const other = plan.nodes.find((o) => o !== n)!;
      const vx = await readVxlan(n.netns);
      t.ok(vx, `${n.name}: has ${VXLAN_IFNAME}`);
      t.ok(vx?.external, `${n.name}: collect-metadata (external) mode`);
      t.equal(vx?.dstport, VXLAN_PORT, `${n.name}: UDP ${VXLAN_PORT}`);
      t.ok(vx?.up, `${n.name}: up`);
      t.equal(vx?.mac, vxlanMac(lab, n.name), `${n.name}: deterministic MAC`);
      const route = (await run(['ip', '-o', 'route', 'get', other.pods[0]!.ip], { netns: n.netns })).stdout;
      t.match(route, `via ${other.underlayIp} dev ${VXLAN_IFNAME}`, `${n.name}: ${other.podCidr} goes into the tunnel`);
      t.notMatch((await run(['ip', 'route'], { netns: n.netns })).stdout, `${other.podCidr} via ${other.underlayIp} dev eth0`, `${n.name}: no native route left`);
      const names = async (dir: 'ingress' | 'egress') => (await tcAttachedPrograms(n.netns, VXLAN_IFNAME, dir)).map((p) => p.name);
      t.same(await names('egress'), [OVERLAY_PROGRAMS.toOverlay], `${n.name}: cil_to_overlay attached at egress`);
      t.same(await names('ingress'), [OVERLAY_PROGRAMS.fromOverlay], `${n.name}: cil_from_overlay attached at ingress`);
      ours.push(...(await pinnedIds(lab, n.name)));
    }

    const capture = await startCapture(state, [UNDERLAY_LINK], outDir);
    // local (n1, no ingress policy) <- server (n2): ICMP; local -> server:8080 is allowed without auth.
    const pong = await ping(lab, 'server', ip('local'));
    t.equal(pong.exitCode, 0, 'server (n2) pings local (n1) through the tunnel');
    const echo = await startEchoServer(lab, 'server', 'tcp', 8080);
    let sent;
    try {
      sent = await echoSend(lab, 'local', 'tcp', ip('server'), 8080, 'over-vxlan', ['--timeout', '15000']);
    } finally {
      await echo.stop();
    }
    t.equal(sent.exitCode, 0, 'local (n1) -> server (n2):8080 over TCP through the tunnel');
    const result = await capture.stop();
    const file = result.links[0]!.file;

    const rows = await tsharkFields(file, 'ip', ['ip.src', 'ip.dst', 'udp.dstport', 'vxlan.vni', 'tcp.dstport', 'icmp.type'],
      { decodeAs: [`udp.port==${VXLAN_PORT},vxlan`] });
    const inner = (r: Record<string, string[]>) => ({ src: r['ip.src']![1], dst: r['ip.dst']![1], vni: Number(r['vxlan.vni']![0]) });
    const vxlan = rows.filter((r) => r['vxlan.vni']!.length > 0);
    t.ok(vxlan.length > 0, `${vxlan.length} VXLAN packets on the underlay`);
    t.ok(vxlan.every((r) => r['udp.dstport']![0] === String(VXLAN_PORT)), `all to UDP ${VXLAN_PORT}`);
    const podIps = new Set(state.pods.map((p) => p.ip));
    const plain = rows.filter((r) => r['vxlan.vni']!.length === 0 && (podIps.has(r['ip.src']![0]!) || podIps.has(r['ip.dst']![0]!)));
    t.equal(plain.length, 0, 'no pod packet crosses the underlay outside the tunnel');
    const byPod = new Map(state.pods.map((p) => [p.ip, p.name]));
    t.same(vxlan.map(inner).filter((p) => !byPod.has(p.src!)), [], 'only pod traffic rides the tunnel');
    const wrong = vxlan.map(inner).filter((p) => byPod.has(p.src!) && p.vni !== identity(byPod.get(p.src!)!));
    t.same(wrong, [], 'every VNI is the identity of the inner source pod');
    const vnis = new Set(vxlan.map(inner).map((p) => `${byPod.get(p.src!)}=${p.vni}`));
    t.ok(vnis.has(`local=${identity('local')}`) && vnis.has(`server=${identity('server')}`), `VNIs seen: ${[...vnis].join(', ')}`);
  } finally {
    await destroyLab(lab);
    await rm(outDir, { recursive: true, force: true });
  }
  t.same(await labLeftovers(lab), [], 'no namespace, pin folder, state or process left');
  const now = new Set(await bpfProgIds());
  t.same(ours.filter((id) => now.has(id)), [], 'the overlay programs are unloaded');
  t.same([...now].filter((id) => !baseline.has(id) && ours.includes(id)), [], 'bpftool prog show is back to the baseline (for our programs)');
  const netns = (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.includes(lab));
  t.same(netns, [], 'no namespace of the lab');
});

t.test('tunnel: the overlay refuses to load without the node datapath', { skip: needsRoot }, async (t) => {
  const lab = 't-tunnel-nodp';
  await t.rejects(loadOverlay(lab, 'n1'), /needs the datapath of t-tunnel-nodp\/n1 first/);
  t.same(await readdir(overlayDir(lab, 'n1')).catch(() => null), null, 'no pin folder left behind');
});

// bpf/build/netns-setup against `ip`: a pod configured by the helper has the
// same addresses, routes, neighbours and addrgenmode as one configured by
// podLines through `ip -batch`, and its node's forwarding is on; a failing
// line stops it with the line, the namespace and the reason. Real namespaces
// named after the test, removed in finally.
import t from 'tap';
import { existsSync } from 'node:fs';
import { run, ipBatch } from '../../lab/kernel/run.ts';
import { netnsSetup, NETNS_SETUP_HELPER } from '../../lab/kernel/netns-setup.ts';
import { podLines, netnsSetupLines } from '../../lab/core/batches.ts';
import { planLab } from '../../lab/core/plan.ts';
import { benchTopology } from '../../lab/bench/up/topology.ts';
import { needsRoot } from '../helpers/kernel.ts';

const NS = { node: 't-nsetup-node', byIp: 't-nsetup-ip', byHelper: 't-nsetup-helper' };
const POD = { ip: '10.244.0.7', lxcMac: '02:aa:bb:cc:dd:07' };
const RANGE = '10.244.0.0/16';

/** What a pod namespace holds, without what differs between two veths (ifindex, MAC, link state). */
async function podView(ns: string): Promise<unknown> {
  const j = async (args: string[]) => JSON.parse((await run(['ip', '-n', ns, '-j', ...args])).stdout || '[]') as Record<string, unknown>[];
  const links = await j(['-d', 'link', 'show']);
  return {
    addrs: (await j(['addr', 'show'])).map((l) => ({ ifname: l.ifname, addr: (l.addr_info as Record<string, unknown>[]).map((a) => `${a.local}/${a.prefixlen} ${a.scope}`) })),
    routes: (await j(['route', 'show'])).map((r) => ({ ...r, flags: (r.flags as string[]).filter((f) => f !== 'linkdown') })),
    neigh: (await j(['neigh', 'show'])).map((n) => ({ dst: n.dst, lladdr: n.lladdr, state: n.state })),
    genmode: links.map((l) => [l.ifname, (l.inet6_addr_gen_mode as string | undefined) ?? null, (l.flags as string[]).includes('UP')]),
  };
}

t.test('the lines: forwarding per node, then each pod', async (t) => {
  const plan = planLab(benchTopology({ nodes: 2, podsPerNode: 1 }, 't-lines'), 't-lines');
  const [p1, p2] = plan.nodes.map((n) => n.pods[0]!);
  t.same(netnsSetupLines(plan), [
    `ns ${plan.nodes[0]!.netns}`, 'sysctl net/ipv4/ip_forward 1', `ns ${plan.nodes[1]!.netns}`, 'sysctl net/ipv4/ip_forward 1',
    `ns ${p1!.netns}`, `pod eth0 ${p1!.ip} 169.254.1.1 ${p1!.lxcMac} 10.244.0.0/16`,
    `ns ${p2!.netns}`, `pod eth0 ${p2!.ip} 169.254.1.1 ${p2!.lxcMac} 10.244.0.0/16`,
  ]);
});

t.test('netns-setup builds what ip builds', { skip: needsRoot || (!existsSync(NETNS_SETUP_HELPER) ? 'bpf/build/netns-setup is not built (make -C bpf)' : false) }, async (t) => {
  try {
    await ipBatch(Object.values(NS).map((ns) => `netns add ${ns}`));
    await ipBatch([
      `link add t-ns-a type veth peer name eth0 netns ${NS.byIp}`,
      `link add t-ns-b type veth peer name eth0 netns ${NS.byHelper}`,
    ], NS.node);
    await ipBatch(podLines(RANGE, POD), NS.byIp);
    await netnsSetup([`ns ${NS.node}`, 'sysctl net/ipv4/ip_forward 1', `ns ${NS.byHelper}`, `pod eth0 ${POD.ip} 169.254.1.1 ${POD.lxcMac} ${RANGE}`]);
    const byIp = await podView(NS.byIp);
    t.same(await podView(NS.byHelper), byIp, 'same addresses, routes, neighbour, addrgenmode and UP flags');
    t.match(JSON.stringify(byIp), /10\.244\.0\.7\/32/, 'and they are the pod\'s');
    t.equal((await run(['cat', '/proc/sys/net/ipv4/ip_forward'], { netns: NS.node })).stdout.trim(), '1', 'forwarding on in the node');
    t.equal((await run(['cat', '/proc/sys/net/ipv4/ip_forward'], { netns: NS.byIp })).stdout.trim(), '0', 'and only there');

    const again = await run([NETNS_SETUP_HELPER], { input: `ns ${NS.byHelper}\npod eth0 ${POD.ip} 169.254.1.1 ${POD.lxcMac} ${RANGE}\n`, okCodes: [1] });
    t.equal(again.exitCode, 1);
    t.equal(again.stderr.trim(), `netns-setup: line 2 (ns ${NS.byHelper}): addr add: File exists`, 'the failing line, namespace and reason');
    const missing = await run([NETNS_SETUP_HELPER], { input: 'ns t-nsetup-none\n', okCodes: [1] });
    t.match(missing.stderr, /line 1 \(ns t-nsetup-none\): open namespace: No such file or directory/);
    const bad = await run([NETNS_SETUP_HELPER], { input: 'frobnicate\n', okCodes: [1] });
    t.match(bad.stderr, /expected: ns NAME \| sysctl PATH VALUE \| pod/);
  } finally {
    await run(['ip', '-force', '-batch', '-'], { input: Object.values(NS).map((ns) => `netns delete ${ns}`).join('\n') + '\n', okCodes: 'any' });
  }
});

// bpf/build/netns-setup against `ip`: `up` with the helper builds the same
// lab as `up` with `ip -batch` (MTLAB_NETNS_SETUP=0) — in every namespace
// the same links (kind, master, UP, addrgenmode, the planned MACs),
// addresses, routes and neighbours, and the nodes' forwarding on; a failing
// line stops the helper with the line, the namespace and the reason. Real
// namespaces named after the test, removed in finally.
import t from 'tap';
import { existsSync } from 'node:fs';
import { run } from '../../lab/kernel/run.ts';
import { NETNS_SETUP_ENV, NETNS_SETUP_HELPER } from '../../lab/kernel/netns-setup.ts';
import { inNetnsLines, podLines } from '../../lab/core/batches.ts';
import { upLab } from '../../lab/compose/up.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { readState } from '../../lab/core/state.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { labLeftovers, needsRoot, REPO } from '../helpers/kernel.ts';

type Json = Record<string, unknown>;

/**
 * What a namespace holds, without what differs between two builds (ifindex,
 * random MACs, counters, the order of links and neighbours: ip builds the two networks
 * side by side, the helper one after the other).
 */
async function netnsView(ns: string, plannedMacs: Set<string>): Promise<unknown> {
  const j = async (args: string[]) => JSON.parse((await run(['ip', '-n', ns, '-j', ...args])).stdout || '[]') as Json[];
  const byName = (a: Json, b: Json) => String(a.ifname).localeCompare(String(b.ifname));
  const links = (await j(['-d', 'link', 'show'])).sort(byName);
  return {
    links: links.map((l) => ({
      ifname: l.ifname,
      kind: (l.linkinfo as Json | undefined)?.info_kind ?? null,
      master: l.master ?? null,
      up: (l.flags as string[]).includes('UP'),
      genmode: l.inet6_addr_gen_mode ?? null,
      address: plannedMacs.has(l.address as string) ? l.address : 'not planned',
    })),
    addrs: (await j(['addr', 'show'])).sort(byName).map((l) => ({ ifname: l.ifname, addr: (l.addr_info as Json[]).map((a) => `${a.family} ${a.local}/${a.prefixlen} ${a.scope}`) })),
    routes: (await j(['route', 'show'])).map((r) => ({ ...r, flags: (r.flags as string[]).filter((f) => f !== 'linkdown') })),
    // A neighbour dump comes in hash order.
    neigh: (await j(['neigh', 'show'])).map((n) => ({ dst: n.dst, dev: n.dev, lladdr: n.lladdr, state: n.state })).sort((a, b) => String(a.dst).localeCompare(String(b.dst))),
    forwarding: (await run(['cat', '/proc/sys/net/ipv4/ip_forward'], { netns: ns })).stdout.trim(),
  };
}

async function buildAndView(lab: string, env: string | undefined): Promise<Map<string, unknown>> {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  const saved = process.env[NETNS_SETUP_ENV];
  if (env === undefined) delete process.env[NETNS_SETUP_ENV];
  else process.env[NETNS_SETUP_ENV] = env;
  try {
    const plan = await upLab(topo, { name: lab });
    const macs = new Set(plan.nodes.flatMap((n) => n.pods.flatMap((p) => [p.lxcMac, p.podMac])));
    const views = new Map<string, unknown>();
    for (const ns of (await readState(lab))!.netns) views.set(ns, await netnsView(ns, macs));
    return views;
  } finally {
    if (saved === undefined) delete process.env[NETNS_SETUP_ENV];
    else process.env[NETNS_SETUP_ENV] = saved;
    await destroyLab(lab);
  }
}

t.test('the helper\'s lines: ns NAME, then the same ip lines', async (t) => {
  t.same(inNetnsLines('mtl_x_pod', podLines('10.244.0.0/16', { ip: '10.244.0.7', lxcMac: '02:aa:bb:cc:dd:07' })), [
    'ns mtl_x_pod',
    'link set lo up',
    'link set eth0 addrgenmode none',
    'addr add 10.244.0.7/32 dev eth0',
    'link set eth0 up',
    'neigh replace 169.254.1.1 lladdr 02:aa:bb:cc:dd:07 dev eth0 nud permanent',
    'route add 10.244.0.0/16 via 169.254.1.1 dev eth0 onlink',
  ]);
});

const noHelper = !existsSync(NETNS_SETUP_HELPER) ? 'bpf/build/netns-setup is not built (make -C bpf)' : false;

t.test('up with netns-setup builds what up with ip builds', { skip: needsRoot || noHelper }, async (t) => {
  const lab = 't-nsetup';
  const byIp = await buildAndView(lab, '0');
  t.same(await labLeftovers(lab), [], 'the ip build is gone');
  const byHelper = await buildAndView(lab, undefined);
  t.same(await labLeftovers(lab), [], 'the helper build is gone');

  t.same([...byHelper.keys()], [...byIp.keys()], 'the same namespaces');
  for (const [ns, view] of byIp) t.same(byHelper.get(ns), view, `${ns}: same links, addresses, routes, neighbours, forwarding`);
  // Not two empty builds: the objects the lab is made of are there.
  const all = JSON.stringify([...byHelper.values()]);
  t.match(all, /"kind":"bridge"/, 'the bridges');
  t.match(all, /"ifname":"lxc[^"]*","kind":"veth"/, 'the pods\' veths');
  t.match(all, /"dst":"10\.244\.\d+\.0\/24","gateway":"[\d.]+","dev":"eth0"/, 'the native routes between nodes');
  t.match(all, /"dst":"169\.254\.1\.1"[^}]*"state":\["PERMANENT"\]/, 'the pods\' gateway neighbours');
  t.match(all, /"forwarding":"1"/, 'forwarding on in the nodes');
  t.match(all, /"forwarding":"0"/, 'and off elsewhere');
});

t.test('a failing line stops the helper and says which', { skip: needsRoot || noHelper }, async (t) => {
  const NS = 't-nsetup-err';
  const helper = (input: string) => run([NETNS_SETUP_HELPER], { input, okCodes: [0, 1] });
  try {
    t.equal((await helper(`netns add ${NS}\nns ${NS}\nlink set lo up\naddr add 10.9.0.1/24 dev lo\n`)).exitCode, 0, 'creates a namespace and works in it');
    t.ok(existsSync(`/run/netns/${NS}`), 'under /run/netns, where ip finds it');
    t.match((await run(['ip', '-n', NS, '-j', 'addr', 'show', 'dev', 'lo'])).stdout, /"local":"10\.9\.0\.1","prefixlen":24/);

    const again = await helper(`ns ${NS}\naddr add 10.9.0.1/24 dev lo\n`);
    t.equal(again.exitCode, 1);
    t.equal(again.stderr.trim(), `netns-setup: line 2 (ns ${NS}): addr add 10.9.0.1/24 dev lo: File exists`, 'the failing line, namespace and reason');
    t.match((await helper(`netns add ${NS}\n`)).stderr, new RegExp(`line 1 \\(ns it started in\\): netns add ${NS}: /run/netns/${NS}: File exists`));
    t.match((await helper('ns t-nsetup-none\n')).stderr, /line 1 \(ns t-nsetup-none\): ns t-nsetup-none: open namespace: No such file or directory/);
    t.match((await helper(`ns ${NS}\nlink set nosuchdev up\n`)).stderr, /link set nosuchdev up: nosuchdev: No such device/);
    t.match((await helper(`ns ${NS}\nneigh replace 10.9.0.2 lladdr 02:zz:00:00:00:01 dev lo nud permanent\n`)).stderr, /02:zz:00:00:00:01: not a MAC address/);
    t.match((await helper(`ns ${NS}\nroute add 10.8.0.0/24 via 10.9.0.254 dev lo metric 5\n`)).stderr, /metric: unexpected word/);
    t.match((await helper('frobnicate\n')).stderr, /frobnicate: expected: ns NAME \| sysctl PATH VALUE \| netns add/);
  } finally {
    await run(['ip', 'netns', 'delete', NS], { okCodes: 'any' });
  }
});

// Name derivation and the address plan: pure, no root.
import t from 'tap';
import * as names from '../../lab/core/names.ts';
import { planLab } from '../../lab/core/plan.ts';
import { DEFAULT_ADDRESSING, type Topology, LAB_NAME_RE } from '../../lab/topology/model.ts';

const pod = (name: string, ip?: string) => ({ name, namespace: 'default', serviceAccount: 'default', labels: { app: name }, ...(ip ? { ip } : {}) });
const topo = (nodes: Topology['nodes']): Topology => ({
  name: 'unit', routing: 'native', encryption: { mode: 'none', strict: false }, sockmap: false, addressing: DEFAULT_ADDRESSING, nodes, policies: [],
});

t.test('interface names stay within 15 characters and stay unique', async (t) => {
  t.equal(names.lxcIfname('client'), 'lxc-client', 'short pod names are kept readable');
  t.equal(names.lxcIfname('abcdefghijk'), 'lxc-abcdefghijk', '11 characters still fit');
  const long = names.lxcIfname('a-very-long-pod-name-indeed');
  t.equal(long.length, 15);
  t.match(long, /^lxc[0-9a-f]{12}$/, 'long names become lxc + hash, like Cilium');
  const many = Array.from({ length: 2000 }, (_, i) => names.lxcIfname(`pod-with-a-long-name-${i}`));
  t.equal(Math.max(...many.map((n) => n.length)), names.IFNAME_MAX, 'all within the limit');
  t.equal(new Set(many).size, 2000, 'no collisions among 2000 long names');
  t.equal(names.fabricPortIfname('n1'), 'u-n1');
  t.ok(names.fabricPortIfname('node-with-a-very-long-name').length <= 15);
  t.not(names.wgIfname('a', 'n1'), names.wgIfname('b', 'n1'), 'WireGuard names differ across labs (its socket is host-wide)');
  t.ok(names.wgIfname('a-long-lab-name', 'a-long-node-name').length <= 15);
});

t.test('namespace names carry the lab and never collide across labs', async (t) => {
  t.equal(names.nodeNetns('demo', 'n1'), 'mtl_demo_n_n1');
  t.equal(names.podNetns('demo', 'client'), 'mtl_demo_p_client');
  t.equal(names.labOfNetns('mtl_demo_p_client'), 'demo');
  t.equal(names.labOfNetns('mtl_a-b_fabric'), 'a-b');
  t.equal(names.labOfNetns('other'), undefined);
  t.notOk(names.podNetns('a-b', 'x').startsWith(names.labNetnsPrefix('a')), 'lab "a" does not own lab "a-b"');
  t.ok(LAB_NAME_RE.test('two-node'));
  for (const bad of ['', 'Two', '1abc', 'a_b', 'x'.repeat(25), 'ends-']) t.notOk(LAB_NAME_RE.test(bad), `"${bad}" rejected`);
});

t.test('MACs are deterministic, unicast and locally administered', async (t) => {
  const mac = names.macAddress('lab', 'pod', 'lxc');
  t.equal(mac, names.macAddress('lab', 'pod', 'lxc'));
  t.not(mac, names.macAddress('lab', 'pod', 'pod'));
  t.match(mac, /^0a(:[0-9a-f]{2}){5}$/);
});

t.test('address plan', async (t) => {
  const plan = planLab(topo([
    { name: 'n1', pods: [pod('client'), pod('local')] },
    { name: 'n2', pods: [pod('fixed', '10.244.1.2'), pod('server')] },
  ]), 'demo');
  t.same(plan.nodes.map((n) => [n.name, n.id, n.underlayIp, n.mgmtIp, n.podCidr]), [
    ['n1', 1, '172.30.0.10', '172.31.0.10', '10.244.0.0/24'],
    ['n2', 2, '172.30.0.11', '172.31.0.11', '10.244.1.0/24'],
  ]);
  t.same(plan.nodes.flatMap((n) => n.pods.map((p) => [p.name, p.ip, p.lxc])), [
    ['client', '10.244.0.2', 'lxc-client'],
    ['local', '10.244.0.3', 'lxc-local'],
    ['fixed', '10.244.1.2', 'lxc-fixed'],
    ['server', '10.244.1.3', 'lxc-server'],
  ], 'fixed addresses are kept and skipped by the allocator');
  t.equal(plan.controlIp, '172.31.0.1');
  t.equal(plan.fabricNetns, 'mtl_demo_fabric');
  const big = planLab(topo([{ name: 'n1', pods: Array.from({ length: 253 }, (_, i) => pod(`p${i}`)) }]));
  t.equal(big.nodes[0]!.pods.at(-1)!.ip, '10.244.0.254', '253 pods fill .2 to .254');
});

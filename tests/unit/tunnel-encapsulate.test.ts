// The pure parts of tunnel mode with WireGuard (lab/tunnel/encapsulate.ts):
// which topologies encapsulate, the VXLAN device's MTU, the steering rule and
// table, and WireGuard's allowed-ips per mode.
import t from 'tap';
import { resolve } from 'node:path';
import { planLab } from '../../lab/core/plan.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { wgIfname } from '../../lab/core/names.ts';
import {
  encapsulated, encapsulationLines, ENCAPSULATED_VXLAN_MTU, ENCAP_ROUTE_TABLE, vxlanDeviceLines, wgAllowedIps, WG_DEVICE_MTU,
} from '../../lab/tunnel/index.ts';
import { VXLAN_PORT } from '../../lab/abi/generated.ts';

const REPO = resolve(import.meta.dirname, '../..');
const load = (f: string) => loadTopologyFile(resolve(REPO, 'topologies', f));

t.test('only tunnel routing with WireGuard encapsulates', async (t) => {
  t.ok(encapsulated(await load('two-node-tunnel-wireguard.yaml')), 'tunnel + wireguard');
  t.notOk(encapsulated(await load('two-node-tunnel.yaml')), 'tunnel alone');
  t.notOk(encapsulated(await load('two-node-wireguard.yaml')), 'wireguard alone (native routing)');
  t.notOk(encapsulated(await load('two-node-auth.yaml')), 'neither');
});

t.test('the VXLAN device fits inside WireGuard only when encapsulated', async (t) => {
  const enc = planLab(await load('two-node-tunnel-wireguard.yaml'), 'u-enc');
  const plain = planLab(await load('two-node-tunnel.yaml'), 'u-plain');
  t.match(vxlanDeviceLines(enc, enc.nodes[0]!)[0], ` mtu ${ENCAPSULATED_VXLAN_MTU} type vxlan external dstport ${VXLAN_PORT}`);
  t.equal(ENCAPSULATED_VXLAN_MTU + 50, WG_DEVICE_MTU, 'outer IPv4 + UDP + VXLAN + inner Ethernet = 50 bytes');
  t.notMatch(vxlanDeviceLines(plain, plain.nodes[0]!)[0], ' mtu ', 'plain tunnel mode keeps the default MTU');
});

t.test('steering: one rule by the VXLAN port, one route per peer, fail-closed default', async (t) => {
  const plan = planLab(await load('two-node-tunnel-wireguard.yaml'), 'u-enc');
  const [n1, n2] = plan.nodes as [typeof plan.nodes[0], typeof plan.nodes[0]];
  const wg = wgIfname(plan.lab, n1.name);
  t.same(encapsulationLines(plan, n1, wg), [
    `rule add priority 100 ipproto 17 dport ${VXLAN_PORT} lookup ${ENCAP_ROUTE_TABLE}`,
    `route replace unreachable default table ${ENCAP_ROUTE_TABLE}`,
    `route replace ${n2.underlayIp}/32 dev ${wg} src ${n1.underlayIp} table ${ENCAP_ROUTE_TABLE}`,
  ]);
  t.equal(wgAllowedIps(plan.topology, n2), `${n2.underlayIp}/32`, 'encapsulated: the peer\'s node IP (the outer source)');
  const native = planLab(await load('two-node-wireguard.yaml'), 'u-native');
  t.equal(wgAllowedIps(native.topology, native.nodes[1]!), native.nodes[1]!.podCidr, 'native routing: the peer\'s pod CIDR');
});

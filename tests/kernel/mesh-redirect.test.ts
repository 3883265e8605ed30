// The mesh's nftables redirect in a throwaway namespace: the script loads,
// reloads atomically, and the table goes with the namespace.
import t from 'tap';
import { run } from '../../lab/kernel/run.ts';
import { nftScript } from '../../lab/mesh/mesh.ts';
import { MESH_TABLE, meshDestinations, type ProxyConfig } from '../../lab/mesh/config.ts';
import { needsRoot } from '../helpers/kernel.ts';

const cfg: ProxyConfig = {
  lab: 't', node: 'n1', underlayIp: '192.0.2.10', bundleFile: '/dev/null', keyLogFile: '/dev/null', generation: 1,
  workloads: [],
  outbound: [{ localPort: 15100, srcPod: 'client', srcLxc: 'lxc-client', dstPod: 'server', dstIp: '10.9.1.2', dstPort: 8080, dstNodeIp: '192.0.2.11', dstSpiffeId: 'spiffe://cluster.local/ns/default/sa/server' }],
  inbound: [],
};

t.test('meshDestinations reads ingress rules as principals', async (t) => {
  const pods = [
    { name: 'client', node: 'n1', ip: '10.9.0.2', namespace: 'default', serviceAccount: 'client', labels: { app: 'client' } },
    { name: 'server', node: 'n2', ip: '10.9.1.2', namespace: 'default', serviceAccount: 'server', labels: { app: 'server' } },
  ];
  const policies = [{ name: 'p', endpointSelector: { matchLabels: { app: 'server' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' as const }, { port: '9090', protocol: 'UDP' as const }] }] }] }];
  t.same(meshDestinations({ policies } as never, pods), [{ pod: 'server', port: 8080, allow: ['spiffe://cluster.local/ns/default/sa/client'] }]);
});

t.test('nft redirect in a throwaway namespace', { skip: needsRoot }, async (t) => {
  const ns = 't-mesh-redirect';
  await run(['ip', 'netns', 'add', ns]);
  try {
    const script = nftScript(cfg, [{ ip: '10.9.1.2', port: 8080 }]);
    await run(['nft', '-f', '-'], { netns: ns, input: script });
    await run(['nft', '-f', '-'], { netns: ns, input: script }); // a reload replaces, never duplicates
    const listed = (await run(['nft', 'list', 'table', 'inet', MESH_TABLE], { netns: ns })).stdout;
    t.match(listed, /iifname "lxc-client" ip daddr 10\.9\.1\.2 tcp dport 8080 dnat ip to 192\.0\.2\.10:15100/);
    t.equal(listed.match(/dnat ip to/g)?.length, 1, 'one DNAT rule after two loads');
    t.match(listed, /hook forward[\s\S]*ip daddr 10\.9\.1\.2 tcp dport 8080 counter packets \d+ bytes \d+ drop/);
    const host = (await run(['nft', 'list', 'tables'])).stdout;
    t.notMatch(host, new RegExp(`inet ${MESH_TABLE}\\b`), 'nothing in the host namespace');
  } finally {
    await run(['ip', 'netns', 'delete', ns], { okCodes: [1] });
  }
});

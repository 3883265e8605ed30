// The control plane on a real lab: pods added and deleted at run time reach
// every agent's maps; a partitioned node keeps a stale ipcache until healed.
import t from 'tap';
import { existsSync } from 'node:fs';
import { run } from '../../lab/kernel/run.ts';
import { lxcIfname, nodeLinkPins, nodeNetns } from '../../lab/core/names.ts';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { addPod, deletePod, partitionNode, isPartitioned } from '../../lab/compose/pods.ts';
import { dumpNodeMap, ipcacheCidr } from '../../lab/datapath/maps.ts';
import { controlState } from '../../lab/control/client.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { echoSend, labCli, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const lab = 't-cp';

async function ipcacheIdentity(node: string, ip: string): Promise<number | undefined> {
  const rows = await dumpNodeMap(lab, node, 'cilium_ipcache');
  return rows.find((r) => ipcacheCidr(r.key) === `${ip}/32`)?.value.secIdentity;
}

/** Polls until `ok` holds; the deadline only ends a broken run (the control plane usually propagates within a second). */
async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('control plane: pods at run time, partition and heal', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node.yaml`);
  try {
    await upWithDatapath(topo, { name: lab });

    await t.test('pod add refuses what a topology file may not hold, and changes nothing', async (t) => {
      const before = (await controlState(lab)).snapshot.endpoints.length;
      await t.rejects(addPod({ lab, node: 'n1', pod: 'n2', labels: { app: 'x' } }), /pod name "n2" is also a node/);
      await t.rejects(addPod({ lab, node: 'n1', pod: 'cp', labels: { app: 'x' } }), /pod name "cp" is reserved/);
      await t.rejects(addPod({ lab, node: 'n1', pod: 'evil', labels: Object.fromEntries([['__proto__', 'zzz']]) }), /invalid key "__proto__"/);
      const cli = await labCli(['pod', 'add', lab, 'n1', 'evil2', '--labels', '__proto__=zzz']);
      t.equal(cli.exitCode, 1, 'the CLI refuses a __proto__ label too');
      t.match(String(cli.all), /invalid key "__proto__"/);
      t.equal((await controlState(lab)).snapshot.endpoints.length, before, 'no endpoint was registered');
    });

    await t.test('pod add: a new label set gets a new identity, every node learns it', async (t) => {
      const r = await addPod({ lab, node: 'n1', pod: 'web', labels: { app: 'web' } });
      t.ok(r.identity >= 256, `identity ${r.identity}`);
      for (const node of ['n1', 'n2']) {
        t.equal(await until(() => ipcacheIdentity(node, r.ip), (v) => v === r.identity), r.identity, `${node}'s ipcache maps ${r.ip} to it`);
      }
      const srv = await startEchoServer(lab, 'web', 'tcp', 8000);
      try {
        const s = await echoSend(lab, 'server', 'tcp', r.ip, 8000, 'to-web');
        t.equal(s.exitCode, 0, `the new pod is reachable: ${s.stderr}`);
      } finally {
        await srv.stop();
      }
      const same = await addPod({ lab, node: 'n2', pod: 'web2', labels: { app: 'web' } });
      t.equal(same.identity, r.identity, 'the same labels share the identity');
    });

    await t.test('two pods added at once both land in the state', async (t) => {
      const { readState } = await import('../../lab/core/state.ts');
      const [a, b] = await Promise.all([
        addPod({ lab, node: 'n1', pod: 'para-a', labels: { app: 'para' } }),
        addPod({ lab, node: 'n1', pod: 'para-b', labels: { app: 'para' } }),
      ]);
      t.not(a.ip, b.ip, 'distinct addresses');
      const pods = (await readState(lab))!.pods.map((p) => p.name);
      t.ok(pods.includes('para-a') && pods.includes('para-b'), 'both recorded');
      await Promise.all([deletePod(lab, 'para-a'), deletePod(lab, 'para-b')]);
      t.notOk((await readState(lab))!.pods.some((p) => p.name.startsWith('para-')), 'both removed');
      // Gone when deletePod returns, not later in the kernel's namespace cleanup:
      // a pod added at once on the same IP needs the /32 route free.
      const n1 = nodeNetns(lab, 'n1');
      for (const [pod, ip] of [['para-a', a.ip], ['para-b', b.ip]] as const) {
        const route = await run(['ip', '-j', 'route', 'show', `${ip}/32`], { netns: n1 });
        t.same(JSON.parse(route.stdout || '[]'), [], `${pod}: the node's /32 route to ${ip} is gone`);
        const link = await run(['ip', 'link', 'show', lxcIfname(pod)], { netns: n1, okCodes: [1] });
        t.equal(link.exitCode, 1, `${pod}: its veth ${lxcIfname(pod)} is gone`);
        t.notOk(existsSync(`${nodeLinkPins(lab, 'n1')}/${lxcIfname(pod)}`), `${pod}: no tcx link pins left for ${lxcIfname(pod)}`);
      }
    });

    await t.test('bad pod input is refused and changes nothing', async (t) => {
      await t.rejects(addPod({ lab, node: 'n9', pod: 'x', labels: { a: 'b' } }), /no node "n9" \(valid: n1, n2\)/);
      await t.rejects(addPod({ lab, node: 'n1', pod: 'web', labels: { a: 'b' } }), /already exists/);
      await t.rejects(addPod({ lab, node: 'n1', pod: 'y', labels: { a: 'b' }, ip: '10.244.1.50' }), /outside node n1's pod range/);
      const cli = await labCli(['pod', 'add', lab, 'n1', 'z']);
      t.equal(cli.exitCode, 2, 'missing labels is a usage error');
      t.equal((await controlState(lab)).snapshot.endpoints.length, 5, 'the control plane still has 5 endpoints');
    });

    await t.test('a restarted control plane keeps the pods changed at run time', async (t) => {
      const { restartDaemon } = await import('../../lab/kernel/daemon.ts');
      const { readState } = await import('../../lab/core/state.ts');
      await restartDaemon((await readState(lab))!, 'cp');
      const pods = (await controlState(lab)).snapshot.endpoints.map((e) => e.pod).sort();
      t.same(pods, ['client', 'local', 'server', 'web', 'web2']);
    });

    await t.test('partition: the cut-off node keeps a stale ipcache; heal resyncs it', async (t) => {
      const web = (await controlState(lab)).snapshot.endpoints.find((e) => e.pod === 'web')!;
      await partitionNode(lab, 'n2', true);
      t.ok(await isPartitioned(lab, 'n2'));
      await deletePod(lab, 'web');
      const replaced = await addPod({ lab, node: 'n1', pod: 'intruder', labels: { app: 'intruder' }, ip: web.ip });
      t.not(replaced.identity, web.identity, 'the new pod has another identity');
      t.equal(await until(() => ipcacheIdentity('n1', web.ip), (v) => v === replaced.identity), replaced.identity, 'n1 (connected) sees the new identity');
      // n2 cannot learn it: the update is stuck on the cut management link.
      const stale = await until(() => ipcacheIdentity('n2', web.ip), (v) => v !== web.identity, 1500);
      t.equal(stale, web.identity, `n2 (partitioned) still maps ${web.ip} to the old identity ${web.identity}`);
      await partitionNode(lab, 'n2', false);
      t.equal(await until(() => ipcacheIdentity('n2', web.ip), (v) => v === replaced.identity), replaced.identity, 'after heal n2 resyncs');
    });
  } finally {
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), []);
});

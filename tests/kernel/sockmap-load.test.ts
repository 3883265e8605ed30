// Sockmap on a real lab: load, attach, which sockets go into the sockhash and
// under which key, counters, detach, unload, and what `mtless down` leaves.
import t from 'tap';
import { access } from 'node:fs/promises';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { labBpffsDir, labCgroupDir, nodeCgroupDir } from '../../lab/core/names.ts';
import { findPod } from '../../lab/core/plan.ts';
import { mapInfo } from '../../lab/datapath/bpftool.ts';
import { run } from '../../lab/kernel/run.ts';
import { appArgv } from '../../lab/sockmap/app.ts';
import { SOCKMAP_OBJECT, SOCKMAP_STEP, attachSockOps, countersDelta, detachSockOps, dumpSockhash, dumpSockmapPods, readSockmapCounters, sockOpsAttached, sockmapMapPin, sockmapProgramIds, unloadSockmap, type SockmapCounters } from '../../lab/sockmap/load.ts';
import { SOCK_KEY_SIZE, SOCKMAP_MAP_CODECS, SOCKMAP_MAPS, SOCKMAP_METRICS_MAX, SOCKMAP_PROGRAMS, SOCKMAP_STRUCT_LAYOUTS } from '../../lab/abi/generated.ts';
import { spawnInPod, type PodProcess } from '../../lab/sockmap/pod.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { bpfProgIds, labLeftovers, needsRoot, REPO } from '../helpers/kernel.ts';
import { sockmapDir } from '../../lab/core/names.ts';

const exists = (p: string) => access(p).then(() => true, () => false);

/** Waits until `probe` holds or the deadline passes; returns the last answer. */
async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('the structs, maps and programs of lab/abi match the BTF of sockmap.o', async (t) => {
  const r = await run(['bpftool', '-j', 'btf', 'dump', 'file', SOCKMAP_OBJECT]);
  type BtfType = { id: number; name?: string; kind: string; size?: number; members?: { name: string; bits_offset: number }[]; vars?: { type_id: number }[] };
  const types = (JSON.parse(r.stdout) as { types: BtfType[] }).types;
  const layout = (name: string) => {
    const s = types.find((x) => x.kind === 'STRUCT' && x.name === name);
    if (!s) return undefined;
    return { size: s.size, fields: Object.fromEntries(s.members!.map((m) => [m.name, m.bits_offset / 8])) };
  };
  for (const [name, expected] of Object.entries(SOCKMAP_STRUCT_LAYOUTS)) t.same(layout(name), expected, `struct ${name}: size and every field's offset`);
  const mapVars = types.find((x) => x.kind === 'DATASEC' && x.name === '.maps')?.vars?.map((v) => types.find((x) => x.id === v.type_id)?.name) ?? [];
  t.same(mapVars.sort(), Object.keys(SOCKMAP_MAP_CODECS).sort(), 'maps');
  const funcs = types.filter((x) => x.kind === 'FUNC').map((x) => x.name);
  t.same(funcs.sort(), Object.values(SOCKMAP_PROGRAMS).sort(), 'programs');
});

t.test('sockmap on a lab: load, attach, keys, counters, detach, cleanup', { skip: needsRoot }, async (t) => {
  const lab = 't-sockmap-ld';
  const topo = await loadTopologyFile(`${REPO}/topologies/sockmap.yaml`);
  const procs: PodProcess[] = [];
  const start = (node: string, pod: string, args: string[]) => {
    const p = spawnInPod(lab, node, pod, appArgv(args));
    procs.push(p);
    return p;
  };
  let progIds: number[] = [];
  try {
    // The step is listed twice on purpose: it must be idempotent.
    const plan = await upWithDatapath(topo, { name: lab, agents: false, extraSteps: [SOCKMAP_STEP, SOCKMAP_STEP] });
    const ip = (pod: string) => findPod(plan, pod)!.ip;
    const counters = (node: string) => readSockmapCounters(lab, node);

    await t.test('each node has its own pins, attached to its own cgroup', async (t) => {
      for (const node of ['n1', 'n2']) {
        t.ok(await exists(nodeCgroupDir(lab, node)), `${node}: cgroup ${nodeCgroupDir(lab, node)}`);
        t.ok(await sockOpsAttached(lab, node), `${node}: cil_sock_ops attached to the cgroup`);
        const ids = await sockmapProgramIds(lab, node);
        progIds.push(...Object.values(ids));
        const hash = await mapInfo(sockmapMapPin(lab, node, SOCKMAP_MAPS.sockhash));
        t.match(hash, { type: 'sockhash', bytesKey: SOCK_KEY_SIZE, bytesValue: 8 }, `${node}: sockhash`);
        const metrics = await mapInfo(sockmapMapPin(lab, node, SOCKMAP_MAPS.metrics));
        t.match(metrics, { type: 'percpu_array', maxEntries: SOCKMAP_METRICS_MAX }, `${node}: metrics slots`);
      }
      t.equal(new Set(progIds).size, 4, 'four distinct programs (two per node)');
      t.same([...(await dumpSockmapPods(lab, 'n1')).keys()].sort(), [ip('client'), ip('local')].sort(), 'n1 knows its two pods');
      t.same([...(await dumpSockmapPods(lab, 'n2')).keys()], [ip('server')], 'n2 knows its pod');
    });

    const server = start('n1', 'client', ['serve', '7070']);
    t.ok(await server.waitForLine(/^READY/, 15_000), 'server in client pod is ready');

    await t.test('a same-node connection: both sockets in the hash, each under its own tuple and namespace', async (t) => {
      const before = await counters('n1');
      const c = start('n1', 'local', ['send', ip('client'), '7070', '--step', '--hold', 'one', 'two!']);
      const connected = await c.waitForLine(/^CONNECTED /, 15_000);
      t.ok(await c.waitForLine(/^ECHO one$/, 5000), 'first message echoed');
      const port = Number(connected?.split(' ')[1]);
      const pods = await dumpSockmapPods(lab, 'n1');
      const keys = await dumpSockhash(lab, 'n1');
      t.same(
        keys.map((k) => ({ ...k, netnsCookie: k.netnsCookie.toString() })).sort((a, b) => a.sip4.localeCompare(b.sip4)),
        [
          { netnsCookie: pods.get(ip('client'))!.toString(), sip4: ip('client'), dip4: ip('local'), sport: 7070, dport: port, family: 1 },
          { netnsCookie: pods.get(ip('local'))!.toString(), sip4: ip('local'), dip4: ip('client'), sport: port, dport: 7070, family: 1 },
        ].sort((a, b) => a.sip4.localeCompare(b.sip4)),
        'keys: own address first, ports in network order, the namespace cookie each pod learned',
      );
      t.not(pods.get(ip('client')), pods.get(ip('local')), 'the two pods have different namespace cookies');
      t.not(pods.get(ip('client')), 0n, 'cookies were learned');
      c.signal('SIGUSR2');
      t.ok(await c.waitForLine(/^ECHO two!$/, 5000), 'second message echoed');
      c.signal('SIGUSR2');
      t.ok(await c.waitForLine(/^CLOSED$/, 5000), 'closed');
      const d = countersDelta(before, await counters('n1'));
      t.equal(d.socketsAdded, 2n, 'two sockets added');
      t.same(d.redirected, { count: 4n, bytes: 2n * BigInt('one'.length + 'two!'.length) }, 'two writes each way redirected, every byte');
      t.same(d.passed, { count: 0n, bytes: 0n }, 'nothing passed to TCP/IP');
      t.ok(await until(async () => (await dumpSockhash(lab, 'n1')).length === 0, 5000), 'closed sockets leave the hash');
    });

    await t.test('a dual-stack listener (IPv4-mapped AF_INET6 sockets) is accelerated too', async (t) => {
      const dual = start('n1', 'client', ['serve', '7071', '--host', '::']);
      t.ok(await dual.waitForLine(/^READY/, 15_000));
      const before = await counters('n1');
      const c = start('n1', 'local', ['send', ip('client'), '7071', 'mapped']);
      t.ok(await c.waitForLine(/^CLOSED$/, 15_000), c.describe());
      // The client's CLOSED does not mean the server's own line has reached us yet: wait for it.
      t.match(await dual.waitForLine(/^ACCEPT /, 15_000) ?? dual.describe(), /ACCEPT ::ffff:/, 'the server saw an IPv4-mapped peer');
      const d = countersDelta(before, await counters('n1'));
      t.equal(d.socketsAdded, 2n, 'both sockets added');
      t.same(d.redirected, { count: 2n, bytes: 2n * BigInt('mapped'.length) }, 'both writes redirected');
      await dual.stop();
    });

    await t.test('a cross-node connection is not accelerated', async (t) => {
      const srv2 = start('n2', 'server', ['serve', '8080']);
      t.ok(await srv2.waitForLine(/^READY/, 15_000));
      const [b1, b2] = await Promise.all([counters('n1'), counters('n2')]);
      const c = start('n1', 'local', ['send', ip('server'), '8080', 'far']);
      t.ok(await c.waitForLine(/^CLOSED$/, 15_000), c.describe());
      const [d1, d2] = [countersDelta(b1, await counters('n1')), countersDelta(b2, await counters('n2'))];
      t.equal(d1.socketsSkipped, 1n, 'n1 skipped the client socket (peer on n2)');
      t.equal(d2.socketsSkipped, 1n, 'n2 skipped the accepted socket (peer on n1)');
      t.equal(d1.socketsAdded + d2.socketsAdded, 0n, 'none added');
      t.equal(d1.redirected.count + d2.redirected.count, 0n, 'nothing redirected');
      // srv2 stays up: `mtless down` must stop it to remove n2's cgroup.
    });

    await t.test('a process outside the cgroup is not accelerated', async (t) => {
      const before = await counters('n1');
      const r = await run([...['nsenter', `--net=/run/netns/mtl_${lab}_p_local`, '--'], ...appArgv(['send', ip('client'), '7070', 'outside'])], { timeout: 15_000 });
      t.match(r.stdout, /ECHO outside/);
      const d = countersDelta(before, await counters('n1'));
      // The server's accepted socket is in the cgroup; its peer is not in the hash.
      t.equal(d.socketsAdded, 1n, 'only the server side was added');
      t.equal(d.redirected.count, 0n, 'nothing redirected');
      t.same(d.passed, { count: 1n, bytes: BigInt('outside'.length) }, "the server's echo found no peer socket and went through TCP/IP");
    });

    await t.test('sock_ops detached: new connections are not added; attached again: they are', async (t) => {
      await detachSockOps(lab, 'n1');
      t.notOk(await sockOpsAttached(lab, 'n1'), 'detached');
      let before = await counters('n1');
      let c = start('n1', 'local', ['send', ip('client'), '7070', 'plain']);
      t.ok(await c.waitForLine(/^CLOSED$/, 15_000), c.describe());
      t.equal(countersDelta(before, await counters('n1')).socketsAdded, 0n, 'none added while detached');
      await attachSockOps(lab, 'n1');
      before = await counters('n1');
      c = start('n1', 'local', ['send', ip('client'), '7070', 'fast']);
      t.ok(await c.waitForLine(/^CLOSED$/, 15_000), c.describe());
      t.equal(countersDelta(before, await counters('n1')).redirected.count, 2n, 'redirected again');
    });

    await t.test('unloading mid-connection: the connection falls back to TCP/IP and keeps working', async (t) => {
      const c = start('n1', 'local', ['send', ip('client'), '7070', '--step', 'before', 'after']);
      t.ok(await c.waitForLine(/^ECHO before$/, 15_000), 'echoed while accelerated');
      const ids = Object.values(await sockmapProgramIds(lab, 'n1'));
      await unloadSockmap(lab, 'n1');
      t.notOk(await exists(sockmapDir(lab, 'n1')), 'pins removed');
      c.signal('SIGUSR2');
      t.ok(await c.waitForLine(/^ECHO after$/, 5000), 'echoed after unload');
      t.ok(await c.waitForLine(/^CLOSED$/, 5000), c.describe());
      t.ok(await until(async () => (await bpfProgIds()).every((id) => !ids.includes(id)), 10_000), "n1's programs are freed");
    });
  } finally {
    await destroyLab(lab);
    await Promise.all(procs.map((p) => p.stop()));
  }
  t.notOk(await exists(labCgroupDir(lab)), 'no cgroup dir');
  t.notOk(await exists(labBpffsDir(lab)), 'no pins');
  // cgroup release frees the sock_ops attachment asynchronously.
  t.ok(await until(async () => (await bpfProgIds()).every((id) => !progIds.includes(id)), 10_000), 'bpftool prog show has none of our programs');
  t.same(await labLeftovers(lab), [], 'nothing of the lab is left');
});

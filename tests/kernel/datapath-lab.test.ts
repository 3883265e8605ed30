// The datapath across real namespaces, without agents: auth entries are
// written by hand, so each verdict is the programs' alone.
import t from 'tap';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { dumpAuth, writeAuthEntry, deleteAuthEntry } from '../../lab/datapath/auth.ts';
import { streamFlows, streamSignals, type EventStream } from '../../lab/datapath/events.ts';
import {
  AUTH_TYPE_SPIRE, DROP_POLICY_AUTH_REQUIRED, DROP_POLICY, OBS_TO_ENDPOINT, SIGNAL_AUTH_REQUIRED, VERDICT_DROPPED, VERDICT_FORWARDED,
  type FlowEvent, type SignalMsg,
} from '../../lab/abi/generated.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { run } from '../../lab/kernel/run.ts';
import { nodeProgPins } from '../../lab/core/names.ts';
import { bpfProgIds, echoSend, labCli, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

/**
 * Waits until `probe` finds something. Events travel through bpftool and a
 * pipe, so they may arrive after the process that caused them has exited;
 * the deadline only ends a broken run.
 */
async function eventually<T>(probe: () => T | undefined, ms = 15_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('two-node-auth without agents', { skip: needsRoot }, async (t) => {
  const lab = 't-dp';
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node-auth.yaml`);
  const ids = allocateIdentities(topo);
  const id = (pod: string) => ids.byPod.get(pod)!;
  const streams: EventStream[] = [];
  let labProgs: number[] = [];
  try {
    const plan = await upWithDatapath(topo, { name: lab, agents: false });
    // This lab's own programs, by their pins (other labs may load programs meanwhile).
    for (const node of ['n1', 'n2']) {
      for (const prog of ['cil_from_container', 'cil_to_container']) {
        const r = await run(['bpftool', '-j', 'prog', 'show', 'pinned', `${nodeProgPins(lab, node)}/${prog}`]);
        labProgs.push((JSON.parse(r.stdout) as { id: number }).id);
      }
    }
    t.equal(labProgs.length, 4, 'two programs per node are loaded and pinned');
    const ip = (pod: string) => findPod(plan, pod)!.ip;
    const flows: (FlowEvent & { node: string })[] = [];
    const signals: (SignalMsg & { node: string })[] = [];
    const flowStreams: EventStream[] = [];
    for (const node of ['n1', 'n2']) {
      flowStreams.push(streamFlows(lab, node, (f) => flows.push({ ...f, node })));
      streams.push(streamSignals(lab, node, (s) => signals.push({ ...s, node })));
    }
    streams.push(...flowStreams);
    await Promise.all(streams.map((s) => s.ready));
    const server = await startEchoServer(lab, 'server', 'tcp', 8080);
    const udpServer = await startEchoServer(lab, 'server', 'udp', 9090);
    const client = await startEchoServer(lab, 'client', 'tcp', 7070);
    try {
      await t.test('client -> server TCP is dropped with 189 while no auth entry exists', async (t) => {
        const r = await echoSend(lab, 'client', 'tcp', ip('server'), 8080, 'blocked', ['--timeout', '2500']);
        t.not(r.exitCode, 0, 'the connection does not complete');
        const dropped = () => flows.filter((f) => f.daddr === ip('server') && f.dport === 8080 && f.verdict === VERDICT_DROPPED);
        await eventually(() => (dropped().length >= 2 ? true : undefined));
        const drops = dropped();
        t.ok(drops.length >= 2, `SYN and its retransmits dropped (${drops.length})`);
        t.ok(drops.every((f) => f.dropReason === DROP_POLICY_AUTH_REQUIRED && f.obsPoint === OBS_TO_ENDPOINT && f.node === 'n2'), 'all with 189 at n2 to-container');
        const sig = await eventually(() => signals.find((s) => s.node === 'n2'));
        t.same(sig, {
          node: 'n2', signalNr: SIGNAL_AUTH_REQUIRED,
          auth: { localSecLabel: id('server'), remoteSecLabel: id('client'), remoteNodeId: 1, authType: AUTH_TYPE_SPIRE },
        }, 'the signal carries the auth key (server id, client id, node 1, spire)');
      });

      await t.test('a hand-written auth entry lets it through', async (t) => {
        const key = { localSecLabel: id('server'), remoteSecLabel: id('client'), remoteNodeId: 1, authType: AUTH_TYPE_SPIRE };
        await writeAuthEntry(lab, 'n2', key, new Date(Date.now() + 600_000));
        t.equal((await dumpAuth(lab, 'n2')).length, 1);
        const r = await echoSend(lab, 'client', 'tcp', ip('server'), 8080, 'allowed');
        t.equal(r.exitCode, 0, r.stderr);
        t.match(r.stdout, /ECHO allowed/);
      });

      await t.test('UDP behaves the same', async (t) => {
        const key = { localSecLabel: id('server'), remoteSecLabel: id('client'), remoteNodeId: 1, authType: AUTH_TYPE_SPIRE };
        await deleteAuthEntry(lab, 'n2', key);
        const before = await echoSend(lab, 'client', 'udp', ip('server'), 9090, 'u1', ['--timeout', '1000']);
        t.not(before.exitCode, 0, 'no echo without an entry');
        t.ok(await eventually(() => flows.find((f) => f.dport === 9090 && f.dropReason === DROP_POLICY_AUTH_REQUIRED)), 'dropped with 189');
        await writeAuthEntry(lab, 'n2', key, new Date(Date.now() + 600_000));
        const after = await echoSend(lab, 'client', 'udp', ip('server'), 9090, 'u2');
        t.equal(after.exitCode, 0, after.stderr);
      });

      await t.test('local -> client on the same node uses remote node id 0', async (t) => {
        const r = await echoSend(lab, 'local', 'tcp', ip('client'), 7070, 'same-node', ['--timeout', '1500']);
        t.not(r.exitCode, 0);
        const sig = await eventually(() => signals.find((s) => s.node === 'n1'));
        t.same(sig?.auth, { localSecLabel: id('client'), remoteSecLabel: id('local'), remoteNodeId: 0, authType: AUTH_TYPE_SPIRE });
        await writeAuthEntry(lab, 'n1', sig!.auth, new Date(Date.now() + 600_000));
        const ok = await echoSend(lab, 'local', 'tcp', ip('client'), 7070, 'same-node');
        t.equal(ok.exitCode, 0, ok.stderr);
      });

      await t.test('a policy without auth allows at once; a port no rule allows is denied (133)', async (t) => {
        const r = await echoSend(lab, 'local', 'tcp', ip('server'), 8080, 'no-auth-needed');
        t.equal(r.exitCode, 0, r.stderr);
        t.notOk(flows.some((f) => f.saddr === ip('local') && f.daddr === ip('server') && f.verdict === VERDICT_DROPPED), 'never dropped');
        const denied = await echoSend(lab, 'client', 'tcp', ip('server'), 7070, 'denied', ['--timeout', '1000']);
        t.not(denied.exitCode, 0);
        t.ok(await eventually(() => flows.find((f) => f.daddr === ip('server') && f.dport === 7070 && f.dropReason === DROP_POLICY)), 'denied with 133');
      });

      t.ok(await eventually(() => flows.find((f) => f.verdict === VERDICT_FORWARDED)), 'forwarded verdicts were streamed too');

      await t.test('the observe command shows the verdicts, beside the test\'s own readers', async (t) => {
        // The lab's flow relay is the one reader of each perf array: the test's
        // streams and the observer both subscribe to it.
        // Until stopped, not for a fixed time: each echo client is a Node process
        // that may take seconds to start on a busy machine.
        const observe = labCli(['observe', lab, '--follow']);
        let out = '';
        observe.stdout?.on('data', (d: Buffer) => void (out += d.toString()));
        // The observer is ready when it says so on stderr.
        await new Promise<void>((resolve) => {
          let err = '';
          observe.stderr?.on('data', (d: Buffer) => {
            err += d.toString();
            if (err.includes('observing')) resolve();
          });
          void observe.then(() => resolve());
        });
        // Hubble's compact lines (lab/observe/printer.ts).
        const denied = /: default\/client:\d+ \(ID:\d+\) -> default\/server:7070 \(ID:\d+\) Policy denied DROPPED \(TCP Flags: SYN\)/;
        const allowed = /: default\/local:\d+ \(ID:\d+\) -> default\/server:8080 \(ID:\d+\) policy-verdict:L3-L4 INGRESS ALLOWED \(TCP Flags: SYN\)/;
        try {
          await echoSend(lab, 'client', 'tcp', ip('server'), 7070, 'denied', ['--timeout', '500']);
          await echoSend(lab, 'local', 'tcp', ip('server'), 8080, 'allowed');
          await eventually(() => (denied.test(out) && allowed.test(out) ? true : undefined));
        } finally {
          observe.kill('SIGINT');
          await observe;
        }
        t.match(out, denied);
        t.match(out, allowed);
      });
    } finally {
      await Promise.all([server.stop(), udpServer.stop(), client.stop()]);
    }
  } finally {
    await Promise.all(streams.map((s) => s.stop().catch(() => undefined)));
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), []);
  const loaded = new Set(await bpfProgIds());
  t.same(labProgs.filter((id) => loaded.has(id)), [], 'no program of the lab is loaded once down returns');
});

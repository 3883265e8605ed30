// Node agents facing bad peers and a missing control plane: no auth entry is
// written, traffic stays dropped, one clear log line says why, and the agent
// survives every case. A killed agent's helpers (its perf-reader, its map
// writer) die with it, so a restart leaves one reader of its perf array.
import t from 'tap';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { readState } from '../../lab/core/state.ts';
import { restartDaemon } from '../../lab/kernel/daemon.ts';
import { nodeScriptArgv } from '../../lab/kernel/node-script.ts';

import { AGENT } from '../../lab/core/daemons.ts';
import { findTaggedProcesses, stopProcesses, isAlive } from '../../lab/core/processes.ts';
import { controlSocket, nodeMapPins, nodeNetns, processTag, stateDir } from '../../lab/core/names.ts';
import { dumpAuth, deleteAuthEntry } from '../../lab/datapath/auth.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { readdir, readFile, rm } from 'node:fs/promises';
import { echoSend, labCli, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';
import { daemonLogFile } from '../../lab/core/names.ts';
import { spawn } from '../../lab/kernel/spawn.ts';

const lab = 't-faults';

async function logLines(node: string, role = 'agent'): Promise<Record<string, unknown>[]> {
  const text = await readFile(daemonLogFile(lab, node, role), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

/**
 * Live perf-reader processes of a node's cilium_signals (the
 * agent's; the flow relay reads cilium_events), found by command line, not by tag.
 */
async function eventPipeReaders(node: string): Promise<number[]> {
  const dir = `${nodeMapPins(lab, node)}/cilium_signals`;
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[0]?.endsWith('/perf-reader') && argv.some((a) => a.startsWith(dir)) && isAlive(Number(entry))) found.push(Number(entry));
  }
  return found;
}

/** Polls until `probe` yields; the deadline only ends a broken run (log lines usually come within a second). */
async function waitFor<T>(probe: () => Promise<T | undefined>, ms = 30_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('agent faults', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node-auth.yaml`);
  try {
    const plan = await upWithDatapath(topo, { name: lab });
    const serverIp = findPod(plan, 'server')!.ip;
    const n1 = plan.nodes.find((n) => n.name === 'n1')!;
    const server = await startEchoServer(lab, 'server', 'tcp', 8080);
    const n1Agent = () => readState(lab).then((s) => s!.processes.find((p) => p.node === 'n1')!);
    try {
      await t.test('the peer agent is down', async (t) => {
        await stopProcesses([(await n1Agent()).pid]);
        const st = JSON.parse(String((await labCli(['status', lab, '--json'])).stdout));
        t.equal(st.processes.find((p: { node?: string }) => p.node === 'n1')?.alive, false, '`status` says the n1 agent is dead');
        const r = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'x', ['--timeout', '2500']);
        t.not(r.exitCode, 0, 'traffic stays dropped');
        const line = await waitFor(async () => (await logLines('n2')).find((l) => l.event === 'auth-failed'));
        t.equal(line?.reason, 'connection-refused', String(line?.detail));
        t.equal((await dumpAuth(lab, 'n2')).length, 0, 'no auth entry');
      });

      for (const mode of ['other-ca', 'expired', 'wrong-id', 'two-sans'] as const) {
        await t.test(`the peer presents a certificate: ${mode}`, async (t) => {
          const fake = spawn(nodeScriptArgv('tests/fixtures/fake-peer.ts', [stateDir(lab), n1.underlayIp, mode]), { netns: nodeNetns(lab, 'n1') });
          try {
            await new Promise<void>((resolve, reject) => {
              const timer = setTimeout(() => reject(new Error('fake peer not READY within 30 s')), 30_000);
              fake.stdout?.on('data', (d: Buffer) => d.toString().includes('READY') && (clearTimeout(timer), resolve()));
              fake.on('exit', (c) => (clearTimeout(timer), reject(new Error(`fake peer exited ${c}`))));
            });
            const before = (await logLines('n2')).filter((l) => l.event === 'auth-failed').length;
            const r = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'x', ['--timeout', '2500']);
            t.not(r.exitCode, 0, 'traffic stays dropped');
            const failures = await waitFor(async () => {
              const f = (await logLines('n2')).filter((l) => l.event === 'auth-failed').slice(before);
              return f.length > 0 ? f : undefined;
            });
            const expected = { 'other-ca': 'untrusted-ca', expired: 'expired', 'wrong-id': 'wrong-spiffe-id', 'two-sans': 'multiple-uri-sans' }[mode];
            t.equal(failures?.[0]?.reason, expected, `one clear reason: ${failures?.[0]?.detail}`);
            t.equal((await dumpAuth(lab, 'n2')).length, 0, 'no auth entry written');
            const st = await readState(lab);
            t.ok(isAlive(st!.processes.find((p) => p.node === 'n2')!.pid), 'the n2 agent is still running');
          } finally {
            fake.kill('SIGTERM');
            await fake;
          }
        });
      }

      await t.test('a restarted agent re-reads the maps and carries on', async (t) => {
        await restartDaemon((await readState(lab))!, 'n1');
        const r = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'after-restart', ['--timeout', '20000']);
        t.equal(r.exitCode, 0, `traffic flows once the real peer is back: ${r.stderr}`);
        t.equal((await dumpAuth(lab, 'n2')).length, 1, 'the entry is written');
      });

      await t.test('a killed agent takes its helpers along; its restart is the only event reader', async (t) => {
        const agentTag = processTag(lab, 'n1', AGENT.role);
        t.equal((await eventPipeReaders('n1')).length, 1, 'the running agent reads its signals through one perf-reader');
        const pid = (await n1Agent()).pid;
        process.kill(pid, 'SIGKILL');
        const left = async () => (await findTaggedProcesses(lab)).filter((p) => p.tag === agentTag);
        const gone = await waitFor(async () => ((await left()).length === 0 ? true : undefined));
        t.ok(gone, `nothing tagged ${agentTag} outlives the agent (left: ${(await left()).map((p) => p.pid).join(', ') || 'none'})`);
        t.same(await eventPipeReaders('n1'), [], 'no perf-reader of n1 without its agent');
        const proc = await restartDaemon((await readState(lab))!, { role: AGENT.role, node: 'n1' });
        t.not(proc.pid, pid, 'a new agent');
        const readers = await eventPipeReaders('n1');
        t.equal(readers.length, 1, `exactly one perf-reader of n1 after the restart (${readers.join(', ')})`);
        const r = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'after-kill', ['--timeout', '20000']);
        t.equal(r.exitCode, 0, `traffic flows with the restarted agent: ${r.stderr}`);
      });

      await t.test('the control plane is down at agent start', async (t) => {
        const state = (await readState(lab))!;
        // A crash: SIGKILL leaves the admin socket behind, refused.
        process.kill(state.processes.find((p) => p.role === 'control-plane')!.pid, 'SIGKILL');
        await waitFor(async () => (isAlive(state.processes.find((p) => p.role === 'control-plane')!.pid) ? undefined : true));
        const crashed = /the control plane of lab "t-faults" is not running \(crashed or stopped\): see `mtless logs t-faults cp`, then `mtless restart t-faults cp`/;
        const add = await labCli(['pod', 'add', lab, 'n1', 'late', '--labels', 'app=late']);
        t.equal(add.exitCode, 1, 'pod add with a crashed control plane fails');
        t.match(String(add.all), crashed, `and says so: ${String(add.all).trim()}`);
        t.notMatch(String(add.all), /--no-agents/, 'without blaming --no-agents');
        t.notOk((await readState(lab))!.pods.some((p) => p.name === 'late'), 'and adds nothing');
        // A stop removes the socket: the state still says the lab has a control plane.
        await rm(controlSocket(lab), { force: true });
        const stopped = await labCli(['pod', 'add', lab, 'n1', 'late', '--labels', 'app=late']);
        t.match(String(stopped.all), crashed, 'the same message once the socket is gone');
        const mark = (await logLines('n2')).length; // only lines of the restarted agent count
        await restartDaemon((await readState(lab))!, 'n2');
        const line = await waitFor(async () => (await logLines('n2')).slice(mark).find((l) => l.event === 'control-plane-unreachable' || l.event === 'control-plane-lost'));
        t.ok(line, `the agent says it cannot reach the control plane (${line?.event}: ${line?.error ?? ''})`);
        // Entries and maps of the pinned datapath carry on without it.
        const r = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'no-cp');
        t.equal(r.exitCode, 0, 'existing auth entry still lets traffic through');
        const key = (await dumpAuth(lab, 'n2'))[0]!.key;
        await deleteAuthEntry(lab, 'n2', key);
        t.notOk((await logLines('n2')).slice(mark).some((l) => l.event === 'maps-synced'), 'no sync while the control plane is down');
        await restartDaemon((await readState(lab))!, 'cp');
        const resync = await waitFor(async () => (await logLines('n2')).slice(mark).find((l) => l.event === 'maps-synced'));
        t.ok(resync, 'the agent syncs once the control plane is back');
        const again = await echoSend(lab, 'client', 'tcp', serverIp, 8080, 'cp-back', ['--timeout', '20000']);
        t.equal(again.exitCode, 0, `a new handshake works: ${again.stderr}`);
      });
    } finally {
      await server.stop();
    }
  } finally {
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), []);
  t.same([...(await eventPipeReaders('n1')), ...(await eventPipeReaders('n2'))], [], 'no perf-reader of the lab after down');
});

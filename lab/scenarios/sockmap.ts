// Claim C8: sockmap redirection carries same-node pod-to-pod payload without
// it ever appearing on the veths. And the security side of the same fact:
// the tc datapath, where policy and auth are enforced, never sees that
// payload, so a deny rule or a revoked auth entry does not stop an
// established accelerated connection.
//
// Two labs of one topology: the scenario's own (sockmap: true) and a second
// one with the flag flipped in code (sockmap: false), brought up and torn
// down inside the scenario. Every experiment runs in both, side by side.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { upWithDatapath } from '../compose/lab.ts';
import { destroyLab } from '../compose/down.ts';
import { findPod, type LabPlan } from '../core/plan.ts';
import { startCapture } from '../capture/capture.ts';
import { countMany, plaintextFilter } from '../capture/assert.ts';
import { scenarioDir } from '../capture/scenario.ts';
import { deleteAuthEntry, writeAuthEntry } from '../datapath/auth.ts';
import { AUTH_TYPE_SPIRE, DROP_POLICY_AUTH_REQUIRED, DROP_POLICY_DENY, IPPROTO_TCP, TCP_F_FIN, VERDICT_DROPPED, type AuthKey } from '../abi/generated.ts';
import { readIfindexes } from '../datapath/load.ts';
import { readMetrics } from '../datapath/maps.ts';
import { MapWriter } from '../datapath/map-writer.ts';
import { compileNodeState, writeNodeState, type NodeDatapathState } from '../datapath/state.ts';
import { allocateIdentities } from '../policy/identity.ts';
import { appArgv } from '../sockmap/app.ts';
import { countersDelta, ensureNodeCgroup, readSockmapCounters, SOCKMAP_STEP, sockOpsAttached, type SockmapCounters } from '../sockmap/load.ts';
import { runInPod, spawnInPod, type PodProcess } from '../sockmap/pod.ts';
import { currentRun, type Scenario, type ScenarioContext } from './framework.ts';
import { sideProgress, waitUntil } from './side-lab.ts';
import { sockmapDir } from '../core/names.ts';

const NODE = 'n1';
const SENDER = 'local';
const RECEIVER = 'client';
/** Echo-timeout of one message: far above a same-node RTT on a busy machine, and above TCP's first retransmits (200, 400 ms). */
const ECHO_TIMEOUT_MS = 5000;
/** How long a SYN seen in flight may take to be answered: a same-node handshake tc lets through takes well under a millisecond. */
const SYN_ANSWER_MS = 2000;

/** One side of the comparison: a lab, and whether sockmap is on in it. */
interface Side {
  lab: string;
  plan: LabPlan;
  sockmap: boolean;
  label: string;
}

const exists = (p: string) => access(p).then(() => true, () => false);

function podIp(side: Side, pod: string): string {
  const p = findPod(side.plan, pod);
  if (!p) throw new Error(`no pod ${pod} in ${side.lab}`);
  return p.ip;
}

/** Starts the echo server in RECEIVER and waits for READY. */
async function startServer(side: Side, port: number, procs: PodProcess[]): Promise<PodProcess> {
  const server = spawnInPod(side.lab, NODE, RECEIVER, appArgv(['serve', String(port)]));
  procs.push(server);
  if (!(await server.waitForLine(/^READY /, 15_000))) throw new Error(`server not ready: ${server.describe()}`);
  return server;
}

async function counters(side: Side): Promise<SockmapCounters | undefined> {
  return side.sockmap ? readSockmapCounters(side.lab, NODE) : undefined;
}

// ---- the exchange, captured on both veths --------------------------------------------

interface Exchange {
  messages: string[];
  bytes: number;
  /** Bytes the receiver read (its EOF line), and the messages it printed. */
  received: number;
  receivedAll: boolean;
  echoedAll: boolean;
  /** Per veth: handshake, FIN and payload frames of the connection. */
  veths: Record<string, { syn: number; synAck: number; fin: number; payload: number; secret: number; file: string }>;
  delta?: SockmapCounters;
}

async function exchange(side: Side, secret: string, procs: PodProcess[]): Promise<Exchange> {
  const port = 7070;
  const messages = [1, 2, 3].map((i) => `${secret}-${i}`);
  const bytes = messages.reduce((s, m) => s + Buffer.byteLength(m), 0);
  const links = [`${NODE}/lxc-${SENDER}`, `${NODE}/lxc-${RECEIVER}`];
  const server = await startServer(side, port, procs);
  // startCapture resolves once every tcpdump has said "listening on".
  const capture = await startCapture(side.lab, links, scenarioDir(side.lab, 'sockmap'), { filter: `tcp port ${port}` });
  let client: PodProcess | undefined;
  const before = await counters(side);
  let delta: SockmapCounters | undefined;
  let files: Record<string, string> = {};
  try {
    client = spawnInPod(side.lab, NODE, SENDER, appArgv(['send', podIp(side, RECEIVER), String(port), ...messages]));
    procs.push(client);
    await client.waitForLine(/^CLOSED$/, 15_000);
    await server.waitForLine(/^EOF /, 15_000);
    const after = await counters(side);
    if (before && after) delta = countersDelta(before, after);
  } finally {
    const result = await capture.stop();
    files = Object.fromEntries(result.links.map((l) => [l.link, l.file]));
    await server.stop();
  }
  const veths: Exchange['veths'] = {};
  for (const link of links) {
    const file = files[link];
    if (!file) throw new Error(`no capture file for ${link}`);
    const c = await countMany(file, {
      syn: 'tcp.flags.syn == 1 && tcp.flags.ack == 0',
      synAck: 'tcp.flags.syn == 1 && tcp.flags.ack == 1',
      fin: 'tcp.flags.fin == 1',
      payload: 'tcp.len > 0',
      secret: plaintextFilter(secret),
    });
    veths[link] = { ...c, file };
  }
  const eof = server.stdoutLines.find((l) => l.startsWith('EOF '));
  const received = eof ? Number(eof.split(' ')[1]) : 0;
  const recvText = server.stdoutLines.filter((l) => l.startsWith('RECV ')).map((l) => l.split(' ').slice(2).join(' ')).join('');
  return {
    messages,
    bytes,
    received,
    receivedAll: received === bytes && recvText === messages.join(''),
    echoedAll: messages.every((m) => client!.stdoutLines.includes(`ECHO ${m}`)),
    veths,
    delta,
  };
}

// ---- policy interplay ------------------------------------------------------------------

/**
 * Whether the probe's new connection to `port` gets established. The wait
 * for an answer starts once its SYN is out (its socket in SYN-SENT, or
 * already connected), not when its process was spawned: a Node process can
 * take seconds to start on a busy machine.
 */
async function connects(side: Side, port: number, probe: PodProcess): Promise<boolean> {
  const connected = () => probe.stdoutLines.some((l) => l.startsWith('CONNECTED '));
  const deadline = Date.now() + 30_000;
  while (!connected()) {
    if (probe.exit) return connected(); // it gave up (e.g. reset)
    const synSent = await runInPod(side.lab, NODE, SENDER, ['ss', '-Htn', 'state', 'syn-sent', 'dport', '=', `:${port}`], { timeoutMs: 15_000 });
    if (synSent.stdout.trim()) return (await probe.waitForLine(/^CONNECTED /, SYN_ANSWER_MS)) !== undefined;
    if (Date.now() > deadline) throw new Error(`the probe to port ${port} sent no SYN within 30 s: ${probe.describe()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

type Change = 'deny' | 'revoke-auth';

interface Interplay {
  change: Change;
  /** The first message, before the change, was echoed. */
  before: boolean;
  /** The message sent after the change reached the receiver and came back. */
  after: boolean;
  /** Drops with the change's reason while the established connection sent its message. */
  drops: number;
  /** A new connection, opened while the change is in place, got established. */
  newConnection: boolean;
  /** sockmap sides: messages redirected after the change. */
  redirectedAfter?: bigint;
  /** The established connection's local port (its FIN is sent under the change, when the client stops). */
  clientPort: number;
}

/**
 * An established connection local -> client:port sends one message, the
 * policy changes under it, it sends another. 'deny': an explicit deny rule
 * for (local -> client, TCP port) is added to client's ingress policy.
 * 'revoke-auth': client's ingress policy requires auth for local and the
 * entry written for it is deleted (per-packet policy mode, the default, in
 * which Cilium re-checks auth on every non-reply packet).
 */
async function interplay(side: Side, change: Change, port: number, procs: PodProcess[]): Promise<Interplay> {
  // One map writer for the step's policy changes, closed at its end (it holds the maps open).
  const writer = new MapWriter();
  try {
    return await interplaySteps(writer, side, change, port, procs);
  } finally {
    writer.close();
  }
}

async function interplaySteps(writer: MapWriter, side: Side, change: Change, port: number, procs: PodProcess[]): Promise<Interplay> {
  const ids = allocateIdentities(side.plan.topology);
  const id = (pod: string) => ids.byPod.get(pod)!;
  const nodePlan = side.plan.nodes.find((n) => n.name === NODE)!;
  const ifindexes = await readIfindexes(nodePlan.netns);
  const base = compileNodeState(side.plan, NODE, ids);
  const receiverLxc = findPod(side.plan, RECEIVER)!.lxc;
  const withRule = (deny: boolean, authType: number): NodeDatapathState => ({
    ...base,
    endpoints: base.endpoints.map((e) => (e.pod === RECEIVER ? { ...e, ingressEnforced: true } : e)),
    policy: [...base.policy, { lxc: receiverLxc, direction: 'ingress', peerIdentity: id(SENDER), protocol: IPPROTO_TCP, port, deny, authType }],
  });
  const authKey: AuthKey = { localSecLabel: id(RECEIVER), remoteSecLabel: id(SENDER), remoteNodeId: 0, authType: AUTH_TYPE_SPIRE };
  const reason = change === 'deny' ? DROP_POLICY_DENY : DROP_POLICY_AUTH_REQUIRED;
  const drops = async () => (await readMetrics(side.lab, NODE)).filter((m) => m.reason === reason).reduce((s, m) => s + Number(m.packets), 0);

  if (change === 'revoke-auth') {
    await writeNodeState(side.lab, NODE, withRule(false, AUTH_TYPE_SPIRE), ifindexes, { io: writer });
    await writeAuthEntry(side.lab, NODE, authKey, new Date(Date.now() + 10 * 60_000));
  }
  const server = await startServer(side, port, procs);
  try {
    const tag = `${change}-${side.sockmap ? 'on' : 'off'}`;
    const client = spawnInPod(side.lab, NODE, SENDER, appArgv(['send', podIp(side, RECEIVER), String(port), '--step', '--hold', '--timeout', String(ECHO_TIMEOUT_MS), `before-${tag}`, `after-${tag}`]));
    procs.push(client);
    const connected = await client.waitForLine(/^CONNECTED /, 15_000);
    const before = (await client.waitForLine(/^(ECHO|NOECHO) before-/, 15_000))?.startsWith('ECHO') ?? false;
    await client.waitForLine(/^WAIT$/, 15_000);

    const drops0 = await drops();
    const sm0 = await counters(side);
    if (change === 'deny') await writeNodeState(side.lab, NODE, withRule(true, 0), ifindexes, { io: writer });
    else await deleteAuthEntry(side.lab, NODE, authKey);
    client.signal('SIGUSR2');
    // A cut connection is reported by the client only at its timeout (NOECHO
    // after 5 s); tc dropping the message and its retransmit says it sooner.
    let answered = false;
    const line = client.waitForLine(/^(ECHO|NOECHO) after-/, ECHO_TIMEOUT_MS + 5000).finally(() => (answered = true));
    const cut = await waitUntil(async () => (answered ? false : (await drops()) - drops0 >= 2 ? true : undefined), ECHO_TIMEOUT_MS + 5000, 100);
    const after = cut ? false : ((await line)?.startsWith('ECHO') ?? false);
    const dropCount = (await drops()) - drops0;
    const sm1 = await counters(side);

    // A new connection under the changed policy: its SYN goes through tc in both labs.
    const probe = spawnInPod(side.lab, NODE, SENDER, appArgv(['send', podIp(side, RECEIVER), String(port), '--timeout', '500', `probe-${tag}`]));
    procs.push(probe);
    const newConnection = await connects(side, port, probe);
    await probe.stop();
    await client.stop();
    return {
      change,
      before,
      after,
      drops: dropCount,
      newConnection,
      redirectedAfter: sm0 && sm1 ? countersDelta(sm0, sm1).redirected.count : undefined,
      clientPort: Number(connected?.split(' ')[1] ?? 0),
    };
  } finally {
    await server.stop();
    await writeNodeState(side.lab, NODE, base, ifindexes, { io: writer });
    if (change === 'revoke-auth') await deleteAuthEntry(side.lab, NODE, authKey);
  }
}

// ---- the scenario ------------------------------------------------------------------------

/** Name of the sockmap-off twin of a lab (≤ 24 characters, the lab-name limit). */
export function offLabName(lab: string): string {
  return `${lab.slice(0, 20).replace(/-$/, '')}-off`;
}

function describeVeths(x: Exchange): string {
  return Object.entries(x.veths).map(([l, v]) => `${l}: SYN ${v.syn}, SYN-ACK ${v.synAck}, FIN ${v.fin}, payload ${v.payload}`).join('; ');
}

async function runSide(ctx: ScenarioContext, side: Side, procs: PodProcess[]): Promise<void> {
  const on = side.sockmap;
  const L = side.label;
  try {
    const x = await exchange(side, `secret-${on ? 'on' : 'off'}-${Date.now()}`, procs);
    ctx.say(`${L}: captures in ${join(scenarioDir(side.lab, 'sockmap'))}`);
    const veths = Object.values(x.veths);
    ctx.check(`${L}: the handshake is on both veths (SYN and SYN-ACK)`, veths.every((v) => v.syn >= 1 && v.synAck >= 1), describeVeths(x));
    ctx.check(`${L}: the FIN is on both veths, both ways`, veths.every((v) => v.fin >= 2), describeVeths(x));
    if (on) {
      ctx.check(`${L}: no payload segment on either veth (no tcp.len > 0)`, veths.every((v) => v.payload === 0), describeVeths(x));
      ctx.check(`${L}: the secret never appears on the veths`, veths.every((v) => v.secret === 0));
    } else {
      ctx.check(`${L}: the payload is on both veths (tcp.len > 0, both ways)`, veths.every((v) => v.payload >= 2 * x.messages.length), describeVeths(x));
      ctx.check(`${L}: the secret is readable on both veths`, veths.every((v) => v.secret >= x.messages.length));
    }
    ctx.check(`${L}: the receiver got every byte, in order`, x.receivedAll, `${x.received} of ${x.bytes} bytes`);
    ctx.check(`${L}: the sender got every echo`, x.echoedAll);
    if (on) {
      const d = x.delta!;
      ctx.check(`${L}: the redirect counter matches the messages (${2 * x.messages.length} writes, ${2 * x.bytes} bytes, both ways)`,
        d.redirected.count === BigInt(2 * x.messages.length) && d.redirected.bytes === BigInt(2 * x.bytes),
        `redirected ${d.redirected.count} messages / ${d.redirected.bytes} bytes`);
      ctx.check(`${L}: both sockets were added, no message fell back to TCP/IP`, d.socketsAdded === 2n && d.passed.count === 0n,
        `added ${d.socketsAdded}, passed ${d.passed.count}`);
    }

    for (const [change, port] of [['deny', 7171], ['revoke-auth', 7272]] as const) {
      const what = change === 'deny' ? 'a deny rule added mid-connection' : 'the auth entry deleted mid-connection (policy requires auth)';
      const r = await interplay(side, change, port, procs);
      const reason = change === 'deny' ? DROP_POLICY_DENY : DROP_POLICY_AUTH_REQUIRED;
      ctx.check(`${L}, ${change}: the first message passes before the change`, r.before);
      if (on) {
        ctx.check(`${L}, ${change}: after ${what}, the established connection still delivers (tc never sees the payload)`,
          r.after && r.drops === 0 && (r.redirectedAfter ?? 0n) >= 2n, `echoed: ${r.after}, drops ${r.drops}, redirected ${r.redirectedAfter}`);
        // Only the side in ctx.lab has a flow stream.
        const fin = side.lab === ctx.lab
          ? await ctx.waitForFlow((f) => f.node === NODE && f.sport === r.clientPort && f.dport === port && f.verdict === VERDICT_DROPPED && (f.tcpFlags & TCP_F_FIN) !== 0)
          : undefined;
        if (side.lab === ctx.lab) {
          ctx.check(`${L}, ${change}: tc still sees that connection's FIN, and drops it (reason ${reason})`, fin?.dropReason === reason,
            fin ? `${fin.saddr}:${fin.sport} -> ${fin.daddr}:${fin.dport} dropped, reason ${fin.dropReason}` : 'no FIN drop seen');
        }
      } else {
        ctx.check(`${L}, ${change}: after ${what}, the established connection is cut (drops with reason ${reason})`,
          !r.after && r.drops >= 1, `echoed: ${r.after}, drops ${r.drops}`);
      }
      ctx.check(`${L}, ${change}: a new connection is refused (its SYN crosses tc)`, !r.newConnection);
    }
  } finally {
    await Promise.all(procs.splice(0).map((p) => p.stop()));
  }
}

export const sockmapScenario: Scenario = {
  name: 'sockmap',
  summary: 'same-node TCP short-circuited at the socket layer: handshake and FIN on the veths, payload never; tc policy and auth no longer see it',
  claims: ['C8'],
  topology: 'topologies/sockmap.yaml',
  // Verdicts here are the datapath's alone: no agent re-authenticates behind the scenario's back.
  options: { agents: false },
  async run(ctx) {
    const procs: PodProcess[] = [];
    const on: Side = { lab: ctx.lab, plan: ctx.plan, sockmap: true, label: 'sockmap on' };
    const offLab = offLabName(ctx.lab);
    const run = currentRun();
    // The sockmap-off twin comes up while the sockmap side runs (they share
    // no namespace), instead of after it.
    const offUp = upWithDatapath({ ...ctx.plan.topology, sockmap: false }, { name: offLab, agents: false, signal: run?.signal, progress: sideProgress(offLab, run?.progress) });
    offUp.catch(() => undefined); // awaited below; a failed up has removed what it made
    try {
      const installed = await Promise.all(ctx.plan.nodes.map(async (n) => (await exists(sockmapDir(ctx.lab, n.name))) && (await sockOpsAttached(ctx.lab, n.name))));
      ctx.check('sockmap is loaded on every node, sock_ops attached to its cgroup', installed.every(Boolean));

      ctx.say(`same node: ${SENDER} -> ${RECEIVER}:7070 on ${NODE}, three messages with a secret, captured on both veths`);
      await runSide(ctx, on, procs);

      ctx.say('cross node: local (n1) -> server (n2) is never accelerated');
      const before = await Promise.all(['n1', 'n2'].map((n) => readSockmapCounters(ctx.lab, n)));
      const server = spawnInPod(ctx.lab, 'n2', 'server', appArgv(['serve', '8080']));
      try {
        await server.waitForLine(/^READY /, 15_000);
        const client = spawnInPod(ctx.lab, NODE, SENDER, appArgv(['send', ctx.podIp('server'), '8080', 'cross-node']));
        const closed = await client.waitForLine(/^CLOSED$/, 15_000);
        await client.stop();
        const d = await Promise.all(['n1', 'n2'].map(async (n, i) => countersDelta(before[i]!, await readSockmapCounters(ctx.lab, n))));
        ctx.check('cross-node TCP is skipped by sock_ops on both nodes and never redirected',
          closed !== undefined && d.every((x) => x.socketsSkipped === 1n && x.socketsAdded === 0n && x.redirected.count === 0n),
          d.map((x, i) => `n${i + 1}: skipped ${x.socketsSkipped}, added ${x.socketsAdded}, redirected ${x.redirected.count}`).join('; '));
      } finally {
        await server.stop();
      }

      ctx.say(`the same topology with sockmap: false (lab ${offLab})`);
      const offPlan = await offUp;
      const off: Side = { lab: offLab, plan: offPlan, sockmap: false, label: 'sockmap off' };
      ctx.check('with sockmap: false nothing is loaded', !(await exists(sockmapDir(offLab, NODE))));
      // Same launch path as the sockmap side: processes join an (empty) node cgroup.
      await Promise.all(offPlan.nodes.map((n) => ensureNodeCgroup(offLab, n.name)));
      await runSide(ctx, off, procs);
    } finally {
      await offUp.catch(() => undefined);
      if (!run?.keep || run.signal?.aborted) await destroyLab(offLab);
    }

    ctx.say('finding: the payload of an accelerated connection never crosses tc, so tc-level policy and auth');
    ctx.say('are only applied to its handshake and FIN. A deny rule or a revoked auth entry stops new');
    ctx.say('connections on both sides but does not stop an established accelerated one.');
  },
};

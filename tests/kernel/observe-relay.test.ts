// `mtless observe` through the lab's flow relay, on two-node-auth with its
// agents: two observers at once receive the same drop of the client's first
// SYN (AUTH_REQUIRED, named default/client) and the agent's auth-completed
// event; a streamFlows reader (what scenarios use) gets the record too;
// --last reads the relay's history afterwards; and each filter keeps exactly
// the events it should of that history.
import t from 'tap';
import type { ResultPromise } from 'execa';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { streamFlows, type EventStream } from '../../lab/datapath/events.ts';
import { DROP_POLICY_AUTH_REQUIRED, VERDICT_DROPPED, type FlowEvent } from '../../lab/abi/generated.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { allocateIdentities } from '../../lab/policy/identity.ts';
import type { ObservedEvent } from '../../lab/observe/hubble.ts';
import { echoSend, labCli, labLeftovers, needsRoot, REPO, startEchoServer, type Server } from '../helpers/kernel.ts';

const LAB = 't-obs';

/** Waits for `probe` with a deadline that only ends a broken run. */
async function eventually<T>(probe: () => T | undefined, ms = 30_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Observer {
  proc: ResultPromise;
  events: ObservedEvent[];
  stderr: () => string;
}

/** `mtless observe … --follow`, ready once it says "observing" on stderr. */
async function startObserver(args: string[]): Promise<Observer> {
  const proc = labCli(['observe', LAB, ...args, '--follow']) as unknown as ResultPromise;
  const events: ObservedEvent[] = [];
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      events.push(JSON.parse(out.slice(0, nl)) as ObservedEvent);
      out = out.slice(nl + 1);
    }
  });
  await new Promise<void>((resolve) => {
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('observing')) resolve();
    });
    void proc.then(() => resolve(), () => resolve());
  });
  return { proc, events, stderr: () => err };
}

/** One-shot `mtless observe` (no follow): its JSON lines. */
async function query(args: string[]): Promise<ObservedEvent[]> {
  const r = await labCli(['observe', LAB, '-o', 'json', ...args]);
  if (r.exitCode !== 0) throw new Error(`observe ${args.join(' ')} exited ${r.exitCode}: ${String(r.stderr)}`);
  return String(r.stdout).split('\n').filter(Boolean).map((l) => JSON.parse(l) as ObservedEvent);
}

const isAuthDrop = (e: ObservedEvent) => e.flow?.verdict === 'DROPPED' && e.flow.drop_reason_desc === 'AUTH_REQUIRED' && e.flow.l4?.TCP?.destination_port === 8080;
const isAuthCompleted = (e: ObservedEvent) => e.auth?.type === 'AUTH_COMPLETED';
/** Unix ms of an RFC 3339 time with up to 9 fractional digits. */
const msOf = (time: string) => Date.parse(time.replace(/(\.\d{3})\d+/, '$1'));
const times = (events: ObservedEvent[]) => events.map((e) => msOf(e.time));
const ordered = (events: ObservedEvent[]) => times(events).every((ms, i, all) => i === 0 || ms >= all[i - 1]!);

t.test('two observers, one relay: the same auth drop and auth completion; history; filters', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node-auth.yaml`);
  const ids = allocateIdentities(topo);
  const clientId = ids.byPod.get('client')!;
  const serverId = ids.byPod.get('server')!;
  const observers: Observer[] = [];
  const servers: Server[] = [];
  let reader: EventStream | undefined;
  try {
    const plan = await upWithDatapath(topo, { name: LAB });
    const serverIp = findPod(plan, 'server')!.ip;
    servers.push(await startEchoServer(LAB, 'server', 'tcp', 8080), await startEchoServer(LAB, 'server', 'udp', 9090));

    // A scenario's reader, beside the two observers: all three through the relay.
    const records: FlowEvent[] = [];
    reader = streamFlows(LAB, 'n2', (f) => records.push(f));
    await reader.ready;
    observers.push(await startObserver(['-o', 'json']), await startObserver(['-o', 'json']));
    t.same(observers.map((o) => o.proc.exitCode), [null, null], 'both observers run at once');

    // The first SYN waits for the handshake: dropped once, then its retransmit passes.
    const sent = await echoSend(LAB, 'client', 'tcp', serverIp, 8080, 'first', ['--timeout', '20000']);
    t.equal(sent.exitCode, 0, `the connection completes after the handshake: ${sent.stderr}`);
    // A UDP datagram and a denied port: more kinds of event for the filters below.
    await echoSend(LAB, 'client', 'udp', serverIp, 9090, 'u', ['--timeout', '1000']);
    await echoSend(LAB, 'client', 'tcp', serverIp, 7070, 'denied', ['--timeout', '1000']);
    // Traffic without the client: its pod filters must leave this out.
    t.equal((await echoSend(LAB, 'local', 'tcp', serverIp, 8080, 'no-auth')).exitCode, 0, 'local -> server needs no auth');

    const seen = await eventually(() =>
      observers.every((o) => o.events.some(isAuthDrop) && o.events.some(isAuthCompleted) && o.events.some((e) => e.flow?.l4?.TCP?.destination_port === 7070) && o.events.some((e) => e.flow?.source.pod_name === 'local')) ? true : undefined);
    t.ok(seen, 'both observers saw the drop, the auth completion, the denied port and local\'s connection');
    const [a, b] = observers.map((o) => o.events);
    const dropA = a!.find(isAuthDrop)!;
    const dropB = b!.find(isAuthDrop)!;
    t.equal(dropA.flow?.uuid, dropB.flow?.uuid, 'the same drop (one relay, one uuid)');
    t.same(dropA, dropB, 'delivered identically');
    t.match(dropA, {
      flow: {
        verdict: 'DROPPED', drop_reason: DROP_POLICY_AUTH_REQUIRED, drop_reason_desc: 'AUTH_REQUIRED', Type: 'L3_L4', node_name: 'n2',
        IP: { destination: serverIp, ipVersion: 'IPv4' }, l4: { TCP: { destination_port: 8080, flags: { SYN: true } } },
        source: { pod_name: 'client', namespace: 'default', identity: clientId },
        destination: { pod_name: 'server', namespace: 'default', identity: serverId },
        traffic_direction: 'INGRESS', event_type: { type: 1, sub_type: 189 }, is_reply: false, Summary: 'TCP Flags: SYN',
      },
      node_name: 'n2',
    });
    t.ok(dropA.flow!.source.labels?.includes('k8s:app=client'), 'the identity\'s labels, Hubble-style');
    const done = a!.find(isAuthCompleted)!;
    t.match(done.auth, {
      node_name: 'n2', auth_type: 'SPIRE', peer_spiffe_id: `spiffe://spiffe.cilium/identity/${clientId}`,
      source: { identity: serverId, pod_name: 'server' }, destination: { identity: clientId, pod_name: 'client' }, remote_node_name: 'n1',
    });
    t.type(done.auth!.handshake_ms, 'number', 'with its handshake time');
    t.ok(a!.some((e) => e.auth?.type === 'AUTH_REQUESTED'), 'the request too');
    t.ok(msOf(done.time) >= msOf(dropA.time), 'the completion comes after the drop that asked for it');
    t.ok(ordered(a!) && ordered(b!), 'events of both nodes merged by time');
    t.ok(a!.some((e) => e.flow?.verdict === 'FORWARDED' && e.flow.auth_type === 'SPIRE' && e.flow.destination.pod_name === 'server'),
      'the retransmitted SYN is allowed by the authenticated policy entry');
    await eventually(() => (records.some((r) => r.verdict === VERDICT_DROPPED && r.dropReason === DROP_POLICY_AUTH_REQUIRED) ? true : undefined));
    t.ok(records.some((r) => r.verdict === VERDICT_DROPPED && r.dropReason === DROP_POLICY_AUTH_REQUIRED && r.dport === 8080), 'the streamFlows reader got the record as well');

    for (const o of observers) o.proc.kill('SIGINT');
    const exits = await Promise.all(observers.map((o) => o.proc));
    t.same(exits.map((r) => r.exitCode), [0, 0], 'Ctrl-C ends an observer cleanly');

    // ---- after the fact: the relay's history ----------------------------------------
    const all = await query(['--last', '1000']);
    t.ok(all.some((e) => e.flow?.uuid === dropA.flow!.uuid), '--last finds the drop afterwards');
    t.ok(ordered(all), 'history merged by time');
    t.same((await query(['--last', '1'])), all.slice(-1), '--last 1: the newest event');
    t.same((await query(['--first', '2'])), all.slice(0, 2), '--first 2: the oldest two');
    const defaults = String((await labCli(['observe', LAB])).stdout).trimEnd().split('\n');
    t.comment(`mtless observe ${LAB}:\n${defaults.join('\n')}`);
    t.equal(defaults.length, Math.min(20, all.length), 'no flags: the last 20, as hubble observe');

    // Each filter keeps exactly what a reading of its flag says. The observers run a few
    // at a time (any number may run at once), then each is checked in order.
    const ends = (e: ObservedEvent) => e.flow ?? e.auth;
    const since = done.time;
    const filters: [string[], (e: ObservedEvent) => boolean, string][] = [
      [['--verdict', 'DROPPED'], (e) => e.flow?.verdict === 'DROPPED', '--verdict DROPPED'],
      [['--verdict', 'FORWARDED'], (e) => e.flow?.verdict === 'FORWARDED', '--verdict FORWARDED'],
      [['--from-pod', 'client'], (e) => ends(e)?.source.pod_name === 'client', '--from-pod client (namespace default)'],
      [['--to-pod', 'default/server'], (e) => ends(e)?.destination.pod_name === 'server', '--to-pod default/server'],
      [['--pod', 'client'], (e) => ends(e)?.source.pod_name === 'client' || ends(e)?.destination.pod_name === 'client', '--pod client'],
      [['--from-identity', String(serverId)], (e) => ends(e)?.source.identity === serverId, '--from-identity'],
      [['--to-identity', String(serverId)], (e) => ends(e)?.destination.identity === serverId, '--to-identity'],
      [['--port', '8080'], (e) => e.flow?.l4?.TCP?.destination_port === 8080 || e.flow?.l4?.TCP?.source_port === 8080, '--port 8080'],
      [['--protocol', 'udp'], (e) => e.flow?.l4?.UDP !== undefined, '--protocol udp'],
      [['--type', 'drop'], (e) => e.flow?.event_type.type === 1, '--type drop'],
      [['--type', 'policy-verdict'], (e) => e.flow?.event_type.type === 5, '--type policy-verdict'],
      [['--type', 'auth'], (e) => e.auth !== undefined, '--type auth'],
      [['--type', 'auth:completed'], isAuthCompleted, '--type auth:completed'],
      [['--node', 'n1'], (e) => e.node_name === 'n1', '--node n1'],
      [['--drop-reason-desc', 'POLICY_DENIED'], (e) => e.flow?.drop_reason_desc === 'POLICY_DENIED', '--drop-reason-desc'],
      [['--from-pod', 'client', '--verdict', 'DROPPED', '--port', '8080'], (e) => e.flow?.source.pod_name === 'client' && e.flow.verdict === 'DROPPED' && e.flow.l4?.TCP?.destination_port === 8080, 'flags combined: all of them'],
      [['--since', since], (e) => msOf(e.time) >= msOf(since), '--since TIME'],
    ];
    const got: ObservedEvent[][] = [];
    for (let i = 0; i < filters.length; i += 4) {
      got.push(...(await Promise.all(filters.slice(i, i + 4).map(([args]) => query(['--last', '1000', ...args])))));
    }
    const key = (e: ObservedEvent) => e.time + (e.flow?.uuid ?? e.auth?.type ?? '');
    filters.forEach(([, keep, what], i) => {
      const want = all.filter(keep);
      t.ok(want.length > 0 && want.length < all.length, `${what}: the lab made events on both sides of it`);
      t.same(got[i]!.map(key), want.map(key), what);
    });
    t.same(await query(['--last', '1000', '--type', 'trace']), [], '--type trace: the datapath sends none');
    t.same(await query(['--last', '1000', '--from-pod', 'kube-system/client']), [], 'another namespace: nothing');

    // The compact line, exactly as Hubble prints it.
    const compact = String((await labCli(['observe', LAB, '--last', '1000', '--type', 'drop', '--to-port', '8080', '--print-node-name'])).stdout).trimEnd().split('\n');
    t.ok(compact.length > 0);
    for (const line of compact) {
      t.match(line, /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{3} \[n2\]: default\/client:\d+ \(ID:\d+\) -> default\/server:8080 \(ID:\d+\) Authentication required DROPPED \(TCP Flags: SYN\)$/);
    }
    const usage = await labCli(['observe', LAB, '--verdict', 'MAYBE']);
    t.equal(usage.exitCode, 2, 'a bad filter is a usage error');
    t.match(String(usage.stderr), /invalid --verdict value: MAYBE/);
  } finally {
    for (const o of observers) if (o.proc.exitCode === null) o.proc.kill('SIGKILL');
    await Promise.all(observers.map((o) => o.proc.catch(() => undefined)));
    await reader?.stop().catch(() => undefined);
    await Promise.all(servers.map((s) => s.stop()));
    await destroyLab(LAB);
  }
  t.same(await labLeftovers(LAB), [], 'nothing of the lab is left, relay included');
});

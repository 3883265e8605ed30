// Auth types on a real lab with agents (two nodes, server on n2 requiring
// auth at ingress): spire authenticates and the agent's Prometheus counters
// move; test-always-fail keeps the flow dropped with 189 and the agent logs
// a failure for every signal; an auth type with no handler (written into
// n2's policy map by hand: no topology can ask for it) is refused with a log
// line and a metric, and no entry is written. The counters are read through
// `mtless metrics --prometheus`, which scrapes the agent's HTTP endpoint on
// the node's management address, and parsed as Prometheus text.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { daemonLogFile } from '../../lab/core/names.ts';
import { readState } from '../../lab/core/state.ts';
import { dumpAuth } from '../../lab/datapath/auth.ts';
import { mapUpdate } from '../../lab/datapath/bpftool.ts';
import { streamFlows, type EventStream } from '../../lab/datapath/events.ts';
import { dumpNodeMap, mapPin } from '../../lab/datapath/maps.ts';
import { nodeScriptArgv } from '../../lab/kernel/node-script.ts';
import { run } from '../../lab/kernel/run.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { AUTH_ATTEMPTS, parsePrometheus, sampleValue, SIGNALS_HANDLED, type Labels, type Sample } from '../../lab/agent/metrics.ts';
import { ALWAYS_FAIL_MESSAGE } from '../../lab/agent/auth-handlers.ts';
import { metricsUrl } from '../../lab/cli/commands/metrics.ts';
import * as gen from '../../lab/abi/generated.ts';
import type { FlowEvent } from '../../lab/abi/generated.ts';
import { echoSend, labCli, labLeftovers, needsRoot, startEchoServer, type Server } from '../helpers/kernel.ts';

const lab = 't-auth-types';
const SPIRE_PORT = 8080;
const ALWAYS_FAIL_PORT = 8081;
/** Asks for spire in the topology; the test rewrites n2's entry to UNKNOWN_TYPE. */
const UNKNOWN_PORT = 8082;
const UNKNOWN_TYPE = 3;

const TOPOLOGY = `
name: auth-types
nodes:
  - name: n1
    pods:
      - { name: client, labels: { app: client } }
  - name: n2
    pods:
      - { name: server, labels: { app: server } }
policies:
  - name: server-auth-types
    endpointSelector: { matchLabels: { app: server } }
    ingress:
      - fromEndpoints: [{ matchLabels: { app: client } }]
        toPorts: [{ ports: [{ port: "${SPIRE_PORT}", protocol: TCP }, { port: "${UNKNOWN_PORT}", protocol: TCP }] }]
        authentication: { mode: required }
      - fromEndpoints: [{ matchLabels: { app: client } }]
        toPorts: [{ ports: [{ port: "${ALWAYS_FAIL_PORT}", protocol: TCP }] }]
        authentication: { mode: test-always-fail }
`;

async function agentLog(node: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(daemonLogFile(lab, node, 'agent'), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Polls until `probe` yields; the deadline only ends a broken run. */
async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** n2's agent counters, scraped over HTTP by the CLI and parsed as Prometheus text. */
async function scrape(): Promise<Sample[]> {
  const r = await labCli(['metrics', lab, 'n2', '--prometheus']);
  if (r.exitCode !== 0) throw new Error(`mtless metrics failed: ${String(r.stderr)}`);
  return parsePrometheus(String(r.stdout)).samples;
}
const delta = (before: Sample[], after: Sample[], name: string, labels: Labels) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

t.test('auth types: spire authenticates, test-always-fail and an unknown type stay dropped, counters on /metrics', { skip: needsRoot }, async (t) => {
  await destroyLab(lab);
  const dir = await mkdtemp(join(tmpdir(), 'auth-types-'));
  const servers: Server[] = [];
  let flowStream: EventStream | undefined;
  try {
    await writeFile(join(dir, 'auth-types.yaml'), TOPOLOGY);
    const plan = await upWithDatapath(await loadTopologyFile(join(dir, 'auth-types.yaml')), { name: lab });
    const serverIp = findPod(plan, 'server')!.ip;
    const n1 = plan.nodes.find((n) => n.name === 'n1')!;
    for (const port of [SPIRE_PORT, ALWAYS_FAIL_PORT, UNKNOWN_PORT]) servers.push(await startEchoServer(lab, 'server', 'tcp', port));
    const flows: FlowEvent[] = [];
    flowStream = streamFlows(lab, 'n2', (f) => flows.push(f));
    await flowStream.ready;
    const toPort = (port: number) => flows.filter((f) => f.daddr === serverIp && f.dport === port);
    const state = (await readState(lab))!;
    const identity = (pod: string) => state.pods.find((p) => p.name === pod)!.identity!;
    const keyOf = (authType: number) => `${identity('server')}:${identity('client')}:${n1.id}:${authType}`;

    await t.test('the endpoint is plain HTTP on the management address, Prometheus text', async (t) => {
      const n2 = state.nodes.find((n) => n.name === 'n2')!;
      const url = metricsUrl(n2);
      t.match(url, new RegExp(`^http://${n2.mgmtIp.replace(/\./g, '\\.')}:${gen.METRICS_PORT}/metrics$`));
      const direct = await run(nodeScriptArgv('lab/agent/metrics-scrape.ts', [url]), { netns: n2.netns });
      const parsed = parsePrometheus(direct.stdout);
      t.equal(parsed.types[SIGNALS_HANDLED.name], 'counter');
      t.equal(parsed.types[AUTH_ATTEMPTS.name], 'counter');
      const notFound = await run(nodeScriptArgv('lab/agent/metrics-scrape.ts', [url.replace('/metrics', '/other')]), { netns: n2.netns, okCodes: 'any' });
      t.equal(notFound.exitCode, 1);
      t.match(notFound.stderr, /answered 404/);
      const table = await labCli(['metrics', lab]);
      t.equal(table.exitCode, 0, '`mtless metrics LAB` reads every node');
      t.match(String(table.stdout), /^NODE\s+METRIC\s+LABELS\s+VALUE$/m);
      t.match(String(table.stdout), /^n1\s+cilium_auth_pending\s+-\s+0$/m);
    });

    await t.test('spire: the flow is authenticated, and the counters move', async (t) => {
      const before = await scrape();
      const r = await echoSend(lab, 'client', 'tcp', serverIp, SPIRE_PORT, 'authenticated', ['--timeout', '15000']);
      t.equal(r.exitCode, 0, 'client -> server:8080 completes after the handshake');
      const done = await eventually(async () => (await agentLog('n2')).find((l) => l.event === 'auth-completed' && l.key === keyOf(gen.AUTH_TYPE_SPIRE)));
      t.equal(done?.authType, 'spire');
      t.ok((await dumpAuth(lab, 'n2')).some((e) => e.key.authType === gen.AUTH_TYPE_SPIRE), 'an entry of auth type spire');
      t.ok(toPort(SPIRE_PORT).some((f) => f.dropReason === gen.DROP_POLICY_AUTH_REQUIRED), 'the first SYN was dropped with 189');
      const after = await scrape();
      t.ok(delta(before, after, SIGNALS_HANDLED.name, { signal: 'auth_required', data: 'spire', status: 'received' }) >= 1, 'signals handled: auth_required/spire/received moved');
      t.ok(delta(before, after, AUTH_ATTEMPTS.name, { auth_type: 'spire', outcome: 'success' }) >= 1, 'auth attempts: spire/success moved');
      t.equal(delta(before, after, SIGNALS_HANDLED.name, { status: 'channel overflow' }), 0, 'no overflow');
    });

    await t.test('test-always-fail: dropped with 189 every time, one logged failure per signal, no entry', async (t) => {
      const before = await scrape();
      const r = await echoSend(lab, 'client', 'tcp', serverIp, ALWAYS_FAIL_PORT, 'never', ['--timeout', '3500']);
      t.not(r.exitCode, 0, 'the connection never completes');
      // The client has given up: every SYN it sent was dropped and has been reported (or soon is).
      await eventually(() => (toPort(ALWAYS_FAIL_PORT).length >= 2 ? true : undefined));
      // Every drop signalled the agent; each signal is a failed attempt of its own (no backoff after a failure).
      const failures = async () => (await agentLog('n2')).filter((l) => l.event === 'auth-failed' && l.key === keyOf(gen.AUTH_TYPE_ALWAYS_FAIL));
      await eventually(async () => ((await failures()).length >= toPort(ALWAYS_FAIL_PORT).length ? true : undefined));
      const after = await scrape();
      const drops = toPort(ALWAYS_FAIL_PORT);
      const logged = await failures();
      t.ok(drops.length >= 2, `SYN and retransmits seen (${drops.length})`);
      t.ok(drops.every((f) => f.verdict === gen.VERDICT_DROPPED && f.dropReason === gen.DROP_POLICY_AUTH_REQUIRED && f.authType === gen.AUTH_TYPE_ALWAYS_FAIL), 'all dropped with 189, auth type test-always-fail');
      t.equal(logged.length, drops.length, 'one logged failure per dropped SYN');
      t.ok(logged.every((l) => l.reason === 'always-fail' && l.detail === ALWAYS_FAIL_MESSAGE && l.authType === 'test-always-fail'), 'with Cilium\'s reason');
      t.notOk((await dumpAuth(lab, 'n2')).some((e) => e.key.authType === gen.AUTH_TYPE_ALWAYS_FAIL), 'no entry of auth type test-always-fail');
      t.equal(delta(before, after, AUTH_ATTEMPTS.name, { auth_type: 'test-always-fail', outcome: 'fail', reason: 'always-fail' }), drops.length, 'auth attempts: test-always-fail/fail counted per signal');
      t.equal(delta(before, after, SIGNALS_HANDLED.name, { signal: 'auth_required', data: 'test-always-fail', status: 'received' }), drops.length, 'signals handled, by auth type');
    });

    await t.test('an auth type without a handler: refused with a log line and a metric, no entry', async (t) => {
      const pin = mapPin(lab, 'n2', 'cilium_policy');
      const entry = (await dumpNodeMap(lab, 'n2', 'cilium_policy')).find((e) => e.key.dport === UNKNOWN_PORT && e.key.direction === gen.DIR_INGRESS);
      t.ok(entry, `n2 has the ingress entry for port ${UNKNOWN_PORT}`);
      await mapUpdate(pin, gen.MAP_CODECS.cilium_policy.key.encode(entry!.key), gen.MAP_CODECS.cilium_policy.value.encode({ ...entry!.value, authType: UNKNOWN_TYPE | gen.AUTH_TYPE_EXPLICIT }));
      const before = await scrape();
      const r = await echoSend(lab, 'client', 'tcp', serverIp, UNKNOWN_PORT, 'never', ['--timeout', '2500']);
      t.not(r.exitCode, 0, 'the connection never completes');
      const drop = await eventually(() => toPort(UNKNOWN_PORT)[0]);
      t.match(drop, { verdict: gen.VERDICT_DROPPED, dropReason: gen.DROP_POLICY_AUTH_REQUIRED, authType: UNKNOWN_TYPE });
      const line = await eventually(async () => (await agentLog('n2')).find((l) => l.event === 'auth-failed' && l.key === keyOf(UNKNOWN_TYPE)));
      t.equal(line?.reason, 'unknown-auth-type');
      t.equal(line?.authType, 'Unknown-auth-type-3', "Cilium's name for it");
      t.match(String(line?.detail), /unknown requested auth type/);
      t.notOk((await dumpAuth(lab, 'n2')).some((e) => e.key.authType === UNKNOWN_TYPE), 'no entry of the unknown type');
      const after = await scrape();
      t.ok(delta(before, after, AUTH_ATTEMPTS.name, { auth_type: 'Unknown-auth-type-3', outcome: 'fail', reason: 'unknown-auth-type' }) >= 1, 'counted as a failed attempt');
      t.ok(delta(before, after, SIGNALS_HANDLED.name, { data: 'Unknown-auth-type-3', status: 'received' }) >= 1, 'its signals counted under its name');
    });
  } finally {
    await flowStream?.stop();
    for (const s of servers) await s.stop();
    await destroyLab(lab);
    await rm(dir, { recursive: true, force: true });
  }
  t.same(await labLeftovers(lab), [], 'no namespace, pin folder, state or process left');
});

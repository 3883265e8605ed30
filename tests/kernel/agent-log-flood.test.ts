// A flood of refused connections on an agent's auth port, inside the lab's
// namespaces (node n2 floods n1's underlay address): the agent logs one line
// per reason per second and a "suppressed N more <reason>" line for the
// rest, every refused connection is either logged or counted, the log stays
// under its cap, and the agent still authenticates afterwards. No false
// accepts: TLS 1.0, 1.1 and 1.2, no client certificate, bad SNIs and garbage
// are refused, and 200 half-open plus 4,300 silent connections held at once
// neither get through nor stop the server serving a good client.
import t from 'tap';
import { stat, readFile } from 'node:fs/promises';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { daemonLogFile, nodeNetns, stateDir } from '../../lab/core/names.ts';
import { readState } from '../../lab/core/state.ts';
import { dumpAuth } from '../../lab/datapath/auth.ts';
import { LOG_CAP_BYTES } from '../../lab/core/log.ts';
import { nodeScriptArgv } from '../../lab/kernel/node-script.ts';
import { spawn } from '../../lab/kernel/spawn.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { echoSend, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const lab = 't-logflood';
const FLOOD = 2000;
const REASONS = { garbage: 'handshake-failed', 'no-sni': 'unknown-sni' } as const;
const HALF_OPEN = 200;
const CONCURRENT = 4300;

type LogLine = { time: string; event: string; reason?: string; suppressed?: number; message?: string };

async function logLines(file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

/** Refusals of `reason`: logged lines and the counts of the summaries. */
const accountedAll = (lines: LogLine[], reason: string) =>
  lines.filter((l) => l.event === 'auth-serve-failed' && l.reason === reason).length +
  lines.filter((l) => l.event === 'auth-serve-suppressed' && l.reason === reason).reduce((n, l) => n + (l.suppressed ?? 0), 0);

/** Polls until `probe` yields; the deadline only ends a broken run. */
async function waitFor<T>(probe: () => Promise<T | undefined>, ms = 60_000): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('agent log under a flood of refused connections', { skip: needsRoot }, async (t) => {
  const topo = await loadTopologyFile(`${REPO}/topologies/two-node-auth.yaml`);
  try {
    const plan = await upWithDatapath(topo, { name: lab });
    const n1 = plan.nodes.find((n) => n.name === 'n1')!;
    const file = daemonLogFile(lab, 'n1', 'agent');
    const mark = (await logLines(file)).length;

    const flood = spawn(nodeScriptArgv('tests/fixtures/bad-tls-flood.ts', [n1.underlayIp, String(FLOOD), '50']), { netns: nodeNetns(lab, 'n2') });
    let out = '';
    flood.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const exit = await flood;
    t.equal(exit.exitCode, 0, `the flood ran: ${String(exit.stderr ?? '')}`);
    const sent = (JSON.parse(out.trim()) as { sent: Record<keyof typeof REASONS, number> }).sent;
    t.equal(sent.garbage + sent['no-sni'], FLOOD, `${FLOOD} connections sent`);

    // Every refusal is logged or counted; the counts come once their second has passed.
    const accounted = (lines: LogLine[], reason: string) =>
      lines.filter((l) => l.event === 'auth-serve-failed' && l.reason === reason).length +
      lines.filter((l) => l.event === 'auth-serve-suppressed' && l.reason === reason).reduce((n, l) => n + (l.suppressed ?? 0), 0);
    const flooded = await waitFor(async () => {
      const lines = (await logLines(file)).slice(mark);
      return Object.entries(REASONS).every(([kind, reason]) => accounted(lines, reason) >= sent[kind as keyof typeof REASONS]) ? lines : undefined;
    });
    const lines = flooded ?? (await logLines(file)).slice(mark);
    for (const [kind, reason] of Object.entries(REASONS)) {
      t.equal(accounted(lines, reason), sent[kind as keyof typeof REASONS], `each ${kind} connection is logged or counted once as ${reason}`);
      const logged = lines.filter((l) => l.event === 'auth-serve-failed' && l.reason === reason).map((l) => Date.parse(l.time));
      const closest = Math.min(...logged.slice(1).map((ms, i) => ms - logged[i]!));
      t.ok(logged.length < 2 || closest >= 999, `${reason}: ${logged.length} lines, at least a second apart by their own times (closest ${closest} ms)`);
      const summary = lines.find((l) => l.event === 'auth-serve-suppressed' && l.reason === reason);
      t.match(summary?.message, new RegExp(`^suppressed \\d+ more ${reason}$`), `a summary line: ${summary?.message}`);
    }
    // The flood's lines are bounded by its duration, not by its size.
    const times = lines.map((l) => Date.parse(l.time));
    const seconds = Math.ceil((Math.max(...times) - Math.min(...times)) / 1000) + 1;
    t.ok(lines.length <= 2 * 3 * seconds, `${lines.length} lines for ${FLOOD} refusals over ${seconds} s (at most a line and a summary per reason per second)`);
    const size = (await stat(file)).size;
    t.ok(size <= LOG_CAP_BYTES, `the log (${size} B) stays under its cap (${LOG_CAP_BYTES} B)`);

    await t.test('no false accepts on the auth port: old TLS, no certificate, bad SNI, garbage, half-open and 4,300 concurrent connections', async (t) => {
      const state = (await readState(lab))!;
      const id = (pod: string) => String(state.pods.find((p) => p.name === pod)!.identity);
      const from = (await logLines(file)).length;
      // n1 holds the client pod's SVID; the abuser (on n2) holds a valid one of the server pod.
      const abuse = spawn(nodeScriptArgv('tests/fixtures/auth-port-abuse.ts', [stateDir(lab), n1.underlayIp, id('client'), id('server'), String(HALF_OPEN), String(CONCURRENT)]), { netns: nodeNetns(lab, 'n2') });
      let text = '';
      abuse.stdout?.on('data', (d: Buffer) => (text += d.toString()));
      const done = await abuse;
      t.equal(done.exitCode, 0, `the abuser ran: ${String(done.stderr ?? '')}`);
      const seen = JSON.parse(text.trim()) as { results: Record<string, { secureConnect: boolean; error?: string }>; openAtOnce: number; stillOpen: number };
      const r = seen.results;
      for (const v of ['tls1.0', 'tls1.1', 'tls1.2']) {
        t.notOk(r[v]!.secureConnect, `${v}: no handshake`);
        t.match(r[v]!.error, /PROTOCOL_VERSION/, `${v}: the server answered with a protocol_version alert (${r[v]!.error}): the ClientHello went out`);
      }
      for (const v of ['bad-sni', 'foreign-sni']) t.notOk(r[v]!.secureConnect, `${v}: no handshake (${r[v]!.error})`);
      t.ok(r['no-cert']!.error, `no-cert: the connection ends in an error (${r['no-cert']!.error})`);
      t.ok(r.control!.secureConnect && !r.control!.error, 'control: a client with everything right completes the handshake (the abuser can succeed)');
      t.equal(seen.openAtOnce, HALF_OPEN + CONCURRENT, `${seen.openAtOnce} connections open at once (${HALF_OPEN} half-open, ${CONCURRENT} silent)`);
      t.ok(r['control-while-held']!.secureConnect && !r['control-while-held']!.error, `while they were open the server still served (${seen.stillOpen} still open after)`);
      // The server's own word: exactly the two controls handshaken, every bad attempt refused.
      const lines = (await waitFor(async () => {
        const l = (await logLines(file)).slice(from);
        return accountedAll(l, 'unknown-sni') >= 2 && accountedAll(l, 'no-client-certificate') >= 1 && accountedAll(l, 'handshake-failed') >= 4 ? l : undefined;
      })) ?? (await logLines(file)).slice(from);
      const served = lines.filter((l) => l.event === 'auth-served');
      t.equal(served.length, 2, `auth-served only for the two controls (${served.length})`);
      t.ok(accountedAll(lines, 'handshake-failed') >= 4, `TLS 1.0, 1.1, 1.2 and garbage refused (${accountedAll(lines, 'handshake-failed')} handshake-failed)`);
      t.ok(accountedAll(lines, 'unknown-sni') >= 2, `both bad SNIs refused (${accountedAll(lines, 'unknown-sni')} unknown-sni)`);
      t.ok(accountedAll(lines, 'no-client-certificate') >= 1, 'the client without a certificate refused');
      t.same(await dumpAuth(lab, 'n1'), [], 'no auth entry on n1');
    });

    // The agent still does its job.
    const server = await startEchoServer(lab, 'server', 'tcp', 8080);
    try {
      const r = await echoSend(lab, 'client', 'tcp', findPod(plan, 'server')!.ip, 8080, 'after-flood', ['--timeout', '20000']);
      t.equal(r.exitCode, 0, `traffic authenticates after the flood: ${r.stderr}`);
    } finally {
      await server.stop();
    }
  } finally {
    await destroyLab(lab);
  }
  t.same(await labLeftovers(lab), [], 'nothing left after down');
});

// A flood of refused connections on an agent's auth port, inside the lab's
// namespaces (node n2 floods n1's underlay address): the agent logs one line
// per reason per second and a "suppressed N more <reason>" line for the
// rest, every refused connection is either logged or counted, the log stays
// under its cap, and the agent still authenticates afterwards.
import t from 'tap';
import { stat, readFile } from 'node:fs/promises';
import { upWithDatapath } from '../../lab/compose/lab.ts';
import { destroyLab } from '../../lab/compose/down.ts';
import { findPod } from '../../lab/core/plan.ts';
import { daemonLogFile, nodeNetns } from '../../lab/core/names.ts';
import { LOG_CAP_BYTES } from '../../lab/core/log.ts';
import { nodeScriptArgv } from '../../lab/kernel/node-script.ts';
import { spawn } from '../../lab/kernel/spawn.ts';
import { loadTopologyFile } from '../../lab/topology/validate.ts';
import { echoSend, labLeftovers, needsRoot, REPO, startEchoServer } from '../helpers/kernel.ts';

const lab = 't-logflood';
const FLOOD = 2000;
const REASONS = { garbage: 'handshake-failed', 'no-sni': 'unknown-sni' } as const;

type LogLine = { time: string; event: string; reason?: string; suppressed?: number; message?: string };

async function logLines(file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

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

// `mtless metrics`: see lab/cli/table.ts for its summary. Scrapes each node
// agent's Prometheus endpoint (http://<mgmt ip>:METRICS_PORT/metrics) over
// HTTP. The management network is reachable only from inside the lab, so
// the request is made by a small Node script run in the node's namespace
// (lab/agent/metrics-scrape.ts). Like `cilium-dbg metrics list`: one row per
// series; --prometheus prints the text as served; -o json for scripts.
import { METRICS_PORT } from '../../abi/generated.ts';
import { parsePrometheus, type Sample } from '../../agent/metrics.ts';
import { AGENT } from '../../core/daemons.ts';
import type { LabState, NodeState } from '../../core/state.ts';
import { nodeScriptArgv } from '../../kernel/node-script.ts';
import { run } from '../../kernel/run.ts';
import { UsageError, type Command } from '../command.ts';
import { table } from '../format.ts';
import { json, nodeOf, runningLab } from '../running-lab.ts';

export const metricsUrl = (n: Pick<NodeState, 'mgmtIp'>) => `http://${n.mgmtIp}:${METRICS_PORT}/metrics`;

type Scrape = { node: string; url: string } & ({ text: string } | { error: string });

async function scrape(state: LabState, n: NodeState): Promise<Scrape> {
  const url = metricsUrl(n);
  if (!state.processes.some((p) => p.role === AGENT.role && p.node === n.name)) {
    return { node: n.name, url, error: 'no agent on this node (the lab runs without agents)' };
  }
  const r = await run(nodeScriptArgv('lab/agent/metrics-scrape.ts', [url]), { netns: n.netns, okCodes: 'any', timeout: 15_000 });
  return r.exitCode === 0 ? { node: n.name, url, text: r.stdout } : { node: n.name, url, error: r.stderr.trim() || `exit code ${r.exitCode}` };
}

const labelText = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(' ') || '-';

export const command: Command = {
  options: { json: { type: 'boolean' }, output: { type: 'string', short: 'o' }, prometheus: { type: 'boolean' } },
  run: async ([lab, nodeArg, extra], v) => {
    if (extra) throw new UsageError(`metrics: unexpected argument "${extra}"`);
    const state = await runningLab(lab, 'metrics');
    if (v.output !== undefined && v.output !== 'json' && v.output !== 'table') throw new UsageError(`metrics: -o ${String(v.output)}: expected json or table`);
    const asJson = Boolean(v.json) || v.output === 'json';
    if (asJson && v.prometheus) throw new UsageError('metrics: --prometheus and -o json exclude each other');
    const nodes = nodeArg ? [state.nodes.find((n) => n.name === nodeOf(state, nodeArg, 'metrics'))!] : state.nodes;
    const scrapes = await Promise.all(nodes.map((n) => scrape(state, n)));
    const failed = scrapes.filter((s): s is Scrape & { error: string } => 'error' in s);
    for (const f of failed) process.stderr.write(`metrics: ${f.node}: ${f.error}\n`);
    const ok = scrapes.filter((s): s is Scrape & { text: string } => 'text' in s);

    if (v.prometheus) {
      // As served; with several nodes, a comment says whose lines follow.
      for (const s of ok) process.stdout.write((nodes.length > 1 ? `# node ${s.node} (${s.url})\n` : '') + s.text);
    } else {
      const parsed = ok.map((s) => ({ node: s.node, url: s.url, samples: parsePrometheus(s.text).samples }));
      if (asJson) console.log(json(parsed));
      else {
        const rows = parsed.flatMap((p) => p.samples.map((m: Sample) => [p.node, m.name, labelText(m.labels), String(m.value)]));
        if (rows.length) console.log(table([['NODE', 'METRIC', 'LABELS', 'VALUE'], ...rows]).join('\n'));
      }
    }
    return failed.length ? 1 : 0;
  },
};

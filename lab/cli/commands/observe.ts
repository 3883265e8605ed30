// `mtless observe`: see lab/cli/table.ts for its summary.
import { streamFlows } from '../../datapath/events.ts';
import { formatFlow } from '../../datapath/format.ts';
import { UsageError, type Command } from '../command.ts';
import { runningLab, nodeOf, resolver, json } from '../running-lab.ts';

export const command: Command = {
  options: { node: { type: 'string' }, json: { type: 'boolean' }, follow: { type: 'boolean', short: 'f' }, seconds: { type: 'string' } },
  run: async ([lab], v) => {
    const state = await runningLab(lab, 'observe');
    const nodes = v.node ? [nodeOf(state, v.node as string, 'observe')] : state.nodes.map((n) => n.name);
    const resolve = resolver(state);
    // Perf events are a live stream with no history: observe shows what happens while it runs.
    const seconds = v.seconds === undefined ? 5 : Number(v.seconds);
    if (!(seconds > 0)) throw new UsageError('observe: --seconds must be a positive number');
    const streams = nodes.map((node) =>
      streamFlows(state.lab, node, (f) => console.log(v.json ? json({ node, ...f }) : formatFlow(f, { resolve }))),
    );
    await Promise.all(streams.map((s) => s.ready));
    process.stderr.write(`observing ${nodes.join(', ')} ${v.follow ? '(Ctrl-C to stop)' : `for ${seconds} s (--follow to keep going)`}\n`);
    await new Promise<void>((r) => {
      process.once('SIGINT', r);
      process.once('SIGTERM', r);
      if (!v.follow) setTimeout(r, seconds * 1000);
    });
    await Promise.all(streams.map((s) => s.stop()));
    return 0;
  },
};

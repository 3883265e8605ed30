// `mtless exec`: see lab/cli/table.ts for its summary.
import { readState } from '../../core/state.ts';
import { podPlace, runAttached } from '../../kernel/run.ts';

import { UsageError, requireRoot, type Command } from '../command.ts';

export const command: Command = {
  run: async ([target, ...cmd]) => {
    requireRoot('exec');
    const m = /^([^/]+)\/([^/]+)$/.exec(target ?? '');
    if (!m) throw new UsageError('exec: expected NAME/POD');
    if (cmd.length === 0) throw new UsageError('exec: missing command after --');
    const [, lab, who] = m as unknown as [string, string, string];
    const state = await readState(lab);
    if (!state) throw new Error(`no lab named "${lab}" (see \`mtless status\`)`);
    const pod = state.pods.find((p) => p.name === who);
    const node = state.nodes.find((n) => n.name === who);
    if (!pod && !node) {
      const valid = [...state.pods.map((p) => p.name), ...state.nodes.map((n) => n.name)].join(', ');
      throw new Error(`lab "${lab}" has no pod or node "${who}" (valid: ${valid})`);
    }
    // A pod's command joins its node's cgroup when the lab runs sockmap.
    const r = await runAttached(cmd, pod ? podPlace(lab, pod.node, pod.name) : { netns: node!.netns });
    return r.exitCode ?? 1;
  },
};

// `mtless delay`: see lab/cli/table.ts for its summary.
import { setDelay } from '../../control/client.ts';
import { UsageError, type Command } from '../command.ts';
import { runningLab, nodeOf } from '../running-lab.ts';

export const command: Command = {
  run: async ([lab, node, ms]) => {
    const state = await runningLab(lab, 'delay');
    const n = Number(ms);
    if (!Number.isInteger(n) || n < 0) throw new UsageError('delay: MS must be a non-negative integer');
    await setDelay(state.lab, nodeOf(state, node, 'delay'), n);
    console.log(`node ${node} sees control plane updates ${n} ms late`);
    return 0;
  },
};

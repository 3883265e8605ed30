// `mtless partition`: see lab/cli/table.ts for its summary.
import { partitionNode } from '../../compose/pods.ts';
import { type Command } from '../command.ts';
import { runningLab, nodeOf } from '../running-lab.ts';

export const command: Command = {
  run: async ([lab, node]) => {
    const state = await runningLab(lab, 'partition');
    await partitionNode(state.lab, nodeOf(state, node, 'partition'), true);
    console.log(`node ${node} is cut off the control plane`);
    return 0;
  },
};

// `mtless heal`: see lab/cli/table.ts for its summary.
import { partitionNode } from '../../compose/pods.ts';
import { type Command } from '../command.ts';
import { runningLab, nodeOf } from '../running-lab.ts';

export const command: Command = {
  run: async ([lab, node]) => {
    const state = await runningLab(lab, 'heal');
    await partitionNode(state.lab, nodeOf(state, node, 'heal'), false);
    console.log(`node ${node} is reconnected`);
    return 0;
  },
};

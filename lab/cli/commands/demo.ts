// `mtless demo`: see lab/cli/table.ts for its summary.
import { DEFAULT_SCENARIO } from '../../scenarios/index.ts';
import { type Command } from '../command.ts';
import { runNamed } from '../run-scenarios.ts';

export const command: Command = {
  options: { keep: { type: 'boolean' } },
  run: async (_args, v) => runNamed([DEFAULT_SCENARIO], { keep: v.keep as boolean }),
};

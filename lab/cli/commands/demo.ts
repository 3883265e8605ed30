// `mtless demo`: see lab/cli/table.ts for its summary.
import { DEFAULT_SCENARIO } from '../../scenarios/index.ts';
import { type Command } from '../command.ts';
import { runNamed } from '../run-scenarios.ts';
import { RUN_OPTIONS, runOptions } from '../run-options.ts';

export const command: Command = {
  options: { keep: { type: 'boolean' }, ...RUN_OPTIONS },
  run: async (_args, v) => runNamed([DEFAULT_SCENARIO], { keep: v.keep as boolean, ...runOptions(v) }),
};

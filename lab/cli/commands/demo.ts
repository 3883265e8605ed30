// `mtless demo`: see lab/cli/table.ts for its summary, lab/cli/demo.ts for the run.
import { UsageError, type Command } from '../command.ts';
import { RUN_OPTIONS } from '../run-options.ts';

export const command: Command = {
  options: { only: { type: 'string' }, step: { type: 'boolean' }, keep: { type: 'boolean' }, ...RUN_OPTIONS },
  run: async (args, v) => {
    if (args.length > 0) throw new UsageError(`demo: unexpected argument "${args[0]}" (choose claims with --only C1,C5)`);
    const { demoOptions, runDemo } = await import('../demo.ts');
    return runDemo(demoOptions(v));
  },
};

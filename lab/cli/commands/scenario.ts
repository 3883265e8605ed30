// `mtless scenario`: see lab/cli/table.ts for its summary.
import { SCENARIOS } from '../../scenarios/index.ts';
import { UsageError, type Command } from '../command.ts';
import { runNamed } from '../run-scenarios.ts';
import { RUN_OPTIONS, runOptions } from '../run-options.ts';

export const command: Command = {
  options: { keep: { type: 'boolean' }, json: { type: 'boolean' }, junit: { type: 'string' }, ...RUN_OPTIONS },
  run: async ([op, ...names], v) => {
    if (op === 'list') {
      for (const s of Object.values(SCENARIOS)) console.log(`${s.name.padEnd(20)} ${s.claims.join(',').padEnd(8)} ${s.summary}`);
      return 0;
    }
    if (op !== 'run') throw new UsageError('scenario: expected list or run');
    if (names.length === 0) throw new UsageError('scenario run: name at least one scenario (see `mtless scenario list`)');
    if (v.junit === '') throw new UsageError('--junit: expected a file');
    return runNamed(names, { keep: v.keep as boolean, json: v.json as boolean, junit: v.junit as string | undefined, ...runOptions(v) });
  },
};

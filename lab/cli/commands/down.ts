// `mtless down`: see lab/cli/table.ts for its summary.
import { destroyLab, formatDownTime, listLabsOnHost } from '../../compose/down.ts';

import { UsageError, requireRoot, oneLabName, type Command } from '../command.ts';

export const command: Command = {
  options: { all: { type: 'boolean' } },
  run: async (args, v) => {
    requireRoot('down');
    const labs = v.all ? await listLabsOnHost() : [oneLabName(args, 'down')];
    if (v.all && args.length > 0) throw new UsageError('down: give a NAME or --all, not both');
    if (labs.length === 0) console.log('no labs on this host');
    for (const lab of labs) {
      const r = await destroyLab(lab);
      const what = [`${r.netns.length} namespaces`, `${r.processes} processes`, r.removedPins ? 'pins' : '', r.removedCgroups ? 'cgroups' : '']
        .filter(Boolean).join(', ');
      console.log(`lab "${lab}" is down (removed ${what}) ${formatDownTime(r.phasesMs)}`);
    }
    return 0;
  },
};

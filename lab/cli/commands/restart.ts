// `mtless restart`: see lab/cli/table.ts for its summary.
import { restartDaemon } from '../../kernel/daemon.ts';
import { UsageError, type Command } from '../command.ts';
import { runningLab } from '../running-lab.ts';

export const command: Command = {
  run: async ([lab, who]) => {
    const state = await runningLab(lab, 'restart');
    if (!who) throw new UsageError('restart: missing NODE or cp');
    const p = await restartDaemon(state, who);
    console.log(`${p.role} ${who} restarted (pid ${p.pid})`);
    return 0;
  },
};

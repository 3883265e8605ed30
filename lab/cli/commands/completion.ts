// `mtless completion`: see lab/cli/table.ts for its summary.
import { UsageError, type Command } from '../command.ts';
import { BASH_COMPLETION, ZSH_COMPLETION } from '../completion-scripts.ts';

export const command: Command = {
  run: async ([shell, extra]) => {
    if (extra) throw new UsageError(`completion: unexpected argument "${extra}"`);
    if (shell === 'bash') process.stdout.write(BASH_COMPLETION);
    else if (shell === 'zsh') process.stdout.write(ZSH_COMPLETION);
    else throw new UsageError(`completion: expected bash or zsh${shell ? `, got "${shell}"` : ''}`);
    return 0;
  },
};

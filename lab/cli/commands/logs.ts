// `mtless logs`: see lab/cli/table.ts for its summary.
import { readFile } from 'node:fs/promises';
import { daemonLogFile } from '../../core/names.ts';
import { type Command } from '../command.ts';
import { runningLab } from '../running-lab.ts';

/** ip → "node/pod" (or "node" for node addresses) for readable flows. */

export const command: Command = {
  run: async ([lab, who]) => {
    const state = await runningLab(lab, 'logs');
    const files = state.processes
      .filter((p) => !who || p.node === who)
      .map((p) => p.logFile ?? daemonLogFile(state.lab, p.node, p.role));
    if (files.length === 0) throw new Error(who ? `no agent or control plane "${who}" in lab "${state.lab}"` : `lab "${state.lab}" runs no agents (up --no-agents)`);
    for (const f of files) process.stdout.write(await readFile(f, 'utf8').catch(() => ''));
    return 0;
  },
};

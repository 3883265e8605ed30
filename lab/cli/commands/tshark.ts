// `mtless tshark FILE [tshark options…]`: see lab/cli/table.ts for its summary.
import { viewerArgv } from '../../capture/profile.ts';
import { runAttached } from '../../kernel/run.ts';
import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  // tshark's own options (-Y, -T fields -e …) go through as they are.
  passThrough: true,
  run: async ([file, ...extra]) => {
    if (!file) throw new UsageError('tshark: missing FILE');
    const { argv, profile } = await viewerArgv('tshark', file, extra);
    // Only on a terminal: scripts read tshark's stderr too.
    if (!profile.installed && process.stderr.isTTY) {
      process.stderr.write(`mtless tshark: profile not installed at ${profile.dir}: decoding with the same -d/-o options (mtless wireshark-profile --install)\n`);
    }
    return (await runAttached(argv)).exitCode ?? 1;
  },
};

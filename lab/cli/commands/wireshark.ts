// `mtless wireshark FILE [wireshark options…]`: see lab/cli/table.ts for its summary.
import { onPath, PROFILE_NAME, viewerArgv } from '../../capture/profile.ts';
import { runAttached } from '../../kernel/run.ts';
import { UsageError, type Command } from '../command.ts';

export const command: Command = {
  passThrough: true,
  run: async ([file, ...extra]) => {
    if (!file) throw new UsageError('wireshark: missing FILE');
    const { argv, profile } = await viewerArgv('wireshark', file, extra);
    if (!(await onPath('wireshark'))) {
      throw new Error(`wireshark is not installed here (a server has tshark only): open ${file} on a machine with Wireshark, `
        + `with the profile from \`mtless wireshark-profile --export -\` (see captures/README.md), or read it here with \`mtless tshark ${file}\``);
    }
    if (!profile.installed) {
      process.stderr.write(`mtless wireshark: profile "${PROFILE_NAME}" not installed at ${profile.dir}: decoding with the same -d/-o options; `
        + `colours and filter buttons need the profile (mtless wireshark-profile --install)\n`);
    }
    return (await runAttached(argv)).exitCode ?? 1;
  },
};

// `mtless wireshark-profile`: see lab/cli/table.ts for its summary.
//   --install      into the invoking user's Wireshark folder (SUDO_USER's under sudo)
//   --uninstall    remove it from there (only the lab's own profile)
//   --export DIR   DIR/mtless-lab/, for another machine; `-`: a tar on stdout
//   (none)         where it would go and whether it is there and current
import {
  exportProfile, installProfile, PROFILE_NAME, PROFILE_SOURCE, profileDir, profileMatches, profileTar, uninstallProfile, wiresharkConfigDir, type Owner,
} from '../../capture/profile.ts';
import { run } from '../../kernel/run.ts';
import { isRoot, UsageError, type Command } from '../command.ts';

interface Target {
  user?: string;
  configDir: string;
  owner?: Owner;
}

/** Whose Wireshark: under sudo the user who ran sudo (their files, their ownership), else ours. */
async function target(): Promise<Target> {
  const sudoUser = process.env.SUDO_USER;
  if (isRoot() && sudoUser && sudoUser !== 'root') {
    const r = await run(['getent', 'passwd', sudoUser], { okCodes: [2] });
    const [, , uid, gid, , home] = r.stdout.trim().split(':');
    if (r.exitCode !== 0 || !home) throw new Error(`SUDO_USER "${sudoUser}" has no passwd entry`);
    // Their environment (XDG_CONFIG_HOME) stays behind sudo: Wireshark's defaults for their home.
    return { user: sudoUser, configDir: await wiresharkConfigDir({ HOME: home }, home), owner: { uid: Number(uid), gid: Number(gid) } };
  }
  return { configDir: await wiresharkConfigDir() };
}

export const command: Command = {
  options: { install: { type: 'boolean' }, uninstall: { type: 'boolean' }, export: { type: 'string' } },
  run: async (args, v) => {
    if (args.length > 0) throw new UsageError(`wireshark-profile: unexpected argument "${args[0]}"`);
    const modes = [v.install && 'install', v.uninstall && 'uninstall', v.export !== undefined && 'export'].filter(Boolean);
    if (modes.length > 1) throw new UsageError(`wireshark-profile: one of --install, --uninstall, --export at a time`);

    if (typeof v.export === 'string') {
      if (v.export === '-') {
        if (process.stdout.isTTY) throw new UsageError('wireshark-profile: --export - writes a tar archive; pipe it, e.g. `| tar -x -C ~/.config/wireshark/profiles`');
        process.stdout.write(await profileTar());
        return 0;
      }
      const r = await exportProfile(v.export);
      process.stdout.write(`${r.changed ? 'exported' : 'already there'}: ${r.dir}\n`);
      process.stdout.write(`on the machine with Wireshark, copy that folder into ~/.config/wireshark/profiles/ (Windows: %APPDATA%\\Wireshark\\profiles\\)\n`);
      return 0;
    }

    const t = await target();
    const who = t.user ? `user ${t.user}` : 'you';
    const dir = profileDir(t.configDir);
    if (v.install) {
      const r = await installProfile(t.configDir, t.owner);
      process.stdout.write(`${r.changed ? 'installed' : 'already installed'}: ${r.dir} (Wireshark profile "${PROFILE_NAME}" for ${who})\n`);
      process.stdout.write(`open a capture with it: mtless wireshark FILE, or wireshark -C ${PROFILE_NAME} FILE\n`);
      return 0;
    }
    if (v.uninstall) {
      const r = await uninstallProfile(t.configDir);
      process.stdout.write(r === 'removed' ? `removed ${dir}\n` : r === 'absent' ? `not installed: ${dir}\n` : `${dir} is not the lab's profile: left alone\n`);
      return 0;
    }
    const current = await profileMatches(dir);
    process.stdout.write(`Wireshark profile "${PROFILE_NAME}" for ${who}: ${dir}: ${current ? 'installed, current' : 'not installed (or older than the lab\'s)'}\n`);
    process.stdout.write(`source: ${PROFILE_SOURCE}\n`);
    if (!current) process.stdout.write(`install it: mtless wireshark-profile --install (with sudo: for the user who ran sudo)\n`);
    return 0;
  },
};

// The lab's Wireshark profile (lab/capture/wireshark-profile, installed as
// "mtless-lab"): what it decodes and why, where Wireshark looks for it, how
// to install or export it, and the command-line options that stand in for it
// where it is not installed.
//
// Why a profile at all: Wireshark 4.0 does not know the lab's ports. It
// assigns TCP 4250 to GSM over IP (gsm_ipa), so the mutual-auth handshakes
// show as "RSL … Malformed Packet"; it knows VXLAN only on IANA's 4789, so
// Cilium's 8472 is plain UDP and the VNI (the source identity) is hidden;
// HBONE's 15008 is plain TCP.
import { chmod, chown, copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AUTH_PORT, HBONE_PORT, VXLAN_PORT, WG_PORT } from '../abi/generated.ts';
import { REPO_ROOT } from '../core/repo.ts';

export const PROFILE_NAME = 'mtless-lab';
/** The profile in the checkout (captures/ is git-ignored, so it lives here). */
export const PROFILE_SOURCE = join(REPO_ROOT, 'lab/capture/wireshark-profile');
/** Every file of the profile: an install copies exactly these. */
export const PROFILE_FILES = ['colorfilters', 'decode_as_entries', 'dfilter_buttons', 'preferences'] as const;
/** The first line of the lab's decode_as_entries: tells our profile from a user's own one of the same name. */
export const PROFILE_MARK = '# mtless-lab';

export interface DecodeAs {
  table: 'tcp.port' | 'udp.port';
  port: number;
  /** The dissector's filter name, for `tshark -d`. */
  dissector: string;
  /** Its name in decode_as_entries (what Wireshark's Decode As dialog shows). */
  shown: string;
  why: string;
}

/** The ports the lab uses that Wireshark 4.0 decodes wrongly or not at all. */
export const LAB_DECODE_AS: readonly DecodeAs[] = [
  { table: 'tcp.port', port: AUTH_PORT, dissector: 'tls', shown: 'TLS', why: "Cilium's mutual-auth handshake between node agents (TLS 1.3); Wireshark 4.0 takes it for GSM over IP" },
  { table: 'tcp.port', port: HBONE_PORT, dissector: 'tls', shown: 'TLS', why: 'HBONE: the mesh proxies\' per-connection mTLS tunnels' },
  { table: 'udp.port', port: VXLAN_PORT, dissector: 'vxlan', shown: 'VXLAN', why: "Cilium's VXLAN tunnel (Wireshark knows only 4789): the VNI carries the source identity" },
  { table: 'udp.port', port: WG_PORT, dissector: 'wg', shown: 'WireGuard', why: "the lab's WireGuard port (Wireshark's default is 51820; its heuristics usually find it anyway)" },
];

/** A line for every capture's comment: what to open it with, and why. */
export const PROFILE_HINT = `Wireshark: open with the lab's profile (\`mtless wireshark FILE\`, or \`wireshark -C ${PROFILE_NAME}\`): it decodes ${
  LAB_DECODE_AS.map((d) => `${d.table.slice(0, 3)}/${d.port} as ${d.shown}`).join(', ')} (Wireshark 4.0 takes ${AUTH_PORT} for GSM over IP); drops: frame.comment contains "DROPPED"`;

/** `-d` options equivalent to the profile's decode_as_entries (tshark and wireshark take them alike). */
export function decodeAsArgs(): string[] {
  return LAB_DECODE_AS.flatMap((d) => ['-d', `${d.table}==${d.port},${d.dissector}`]);
}

/** The `tcp.port==4250,tls` forms, for DissectOptions.decodeAs. */
export const LAB_DECODE_AS_RULES: readonly string[] = LAB_DECODE_AS.map((d) => `${d.table}==${d.port},${d.dissector}`);

/** A decode_as_entries line (the profile's and sharkd's configuration folders). */
export function decodeAsEntryLine(d: Pick<DecodeAs, 'table' | 'port' | 'shown'>): string {
  return `decode_as_entry: ${d.table},${d.port},(none),${d.shown}`;
}

/** decode_as_entries as the profile holds it (a unit test keeps the file equal to this). */
export function decodeAsEntriesText(): string {
  return [
    `${PROFILE_MARK}: the lab's ports that Wireshark 4.0 does not decode right.`,
    ...LAB_DECODE_AS.map((d) => `# ${d.table.slice(0, 3)}/${d.port}: ${d.why}.`),
    ...LAB_DECODE_AS.map(decodeAsEntryLine),
  ].join('\n') + '\n';
}

/** The profile's column layout as one `-o` value (its preferences file says the same). */
export async function columnPreference(source = PROFILE_SOURCE): Promise<string> {
  const text = await readFile(join(source, 'preferences'), 'utf8');
  const m = /^gui\.column\.format:\s*\n((?:[ \t]+.*\n?)+)/m.exec(text);
  if (!m) throw new Error(`${join(source, 'preferences')} has no gui.column.format`);
  return `gui.column.format:${m[1]!.split('\n').map((l) => l.trim()).filter(Boolean).join(' ')}`;
}

/**
 * Wireshark's personal configuration folder, as Wireshark 4.0 finds it
 * (wsutil/filesystem.c): $WIRESHARK_CONFIG_DIR; else $XDG_CONFIG_HOME (or
 * ~/.config)/wireshark if it is a folder; else ~/.wireshark if that is one;
 * else the XDG one.
 */
export async function wiresharkConfigDir(env: NodeJS.ProcessEnv = process.env, home = env.HOME || homedir()): Promise<string> {
  if (env.WIRESHARK_CONFIG_DIR) return env.WIRESHARK_CONFIG_DIR;
  const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
  const xdg = join(env.XDG_CONFIG_HOME || join(home, '.config'), 'wireshark');
  if (await isDir(xdg)) return xdg;
  const legacy = join(home, '.wireshark');
  if (await isDir(legacy)) return legacy;
  return xdg;
}

export const profileDir = (configDir: string) => join(configDir, 'profiles', PROFILE_NAME);

/** Whether `dir` holds this lab's profile with every file as in the checkout (an older copy counts as not installed). */
export async function profileMatches(dir: string, source = PROFILE_SOURCE): Promise<boolean> {
  for (const f of PROFILE_FILES) {
    const [a, b] = await Promise.all([readFile(join(dir, f)).catch(() => undefined), readFile(join(source, f))]);
    if (!a || !a.equals(b)) return false;
  }
  return true;
}

/** Whether a profile folder is the lab's (by its decode_as_entries), not a user's own of the same name. */
export async function isLabProfile(dir: string): Promise<boolean> {
  const text = await readFile(join(dir, 'decode_as_entries'), 'utf8').catch(() => '');
  return text.startsWith(PROFILE_MARK);
}

export interface Owner {
  uid: number;
  gid: number;
}

export interface InstallResult {
  dir: string;
  /** false when it was already there, file for file. */
  changed: boolean;
}

/**
 * Copies the profile into `<configDir>/profiles/mtless-lab`, owned by
 * `owner` when given (an install for SUDO_USER, run as root). Files
 * Wireshark adds there itself (recent, …) stay. Idempotent.
 */
export async function installProfile(configDir: string, owner?: Owner, source = PROFILE_SOURCE): Promise<InstallResult> {
  return copyProfile(profileDir(configDir), owner, source);
}

/** The profile as `<dir>/mtless-lab/`, e.g. into a folder to copy to a laptop's `…/wireshark/profiles/`. */
export async function exportProfile(dir: string, source = PROFILE_SOURCE): Promise<InstallResult> {
  return copyProfile(join(dir, PROFILE_NAME), undefined, source);
}

async function copyProfile(dir: string, owner: Owner | undefined, source: string): Promise<InstallResult> {
  if (await profileMatches(dir, source)) return { dir, changed: false };
  // The folders that mkdir creates belong to the user too, or their Wireshark could not write its own files there.
  const created = await mkdirOwned(dir, owner);
  for (const f of PROFILE_FILES) {
    const to = join(dir, f);
    await copyFile(join(source, f), to);
    await chmod(to, 0o644);
    if (owner) await chown(to, owner.uid, owner.gid);
  }
  if (owner && created.length === 0) await chown(dir, owner.uid, owner.gid);
  return { dir, changed: true };
}

/** mkdir -p that hands every folder it made to `owner`; returns them. */
async function mkdirOwned(dir: string, owner?: Owner): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; !(await stat(d).then(() => true, () => false)); d = join(d, '..')) missing.unshift(d);
  await mkdir(dir, { recursive: true });
  if (owner) for (const d of missing) await chown(d, owner.uid, owner.gid);
  return missing;
}

/** Removes the lab's profile from a config folder; a user's own "mtless-lab" (without our mark) is left alone. */
export async function uninstallProfile(configDir: string): Promise<'removed' | 'absent' | 'not ours'> {
  const dir = profileDir(configDir);
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) return 'absent';
  if (!(await isLabProfile(dir))) return 'not ours';
  await rm(dir, { recursive: true, force: true });
  return 'removed';
}

/** The profile as a tar stream (ustar) of `mtless-lab/<file>`: `ssh vm mtless wireshark-profile --export - | tar -x -C …/profiles`. */
export async function profileTar(source = PROFILE_SOURCE, mtime = new Date()): Promise<Buffer> {
  const entries: { name: string; data?: Buffer }[] = [{ name: `${PROFILE_NAME}/` }];
  for (const f of PROFILE_FILES) entries.push({ name: `${PROFILE_NAME}/${f}`, data: await readFile(join(source, f)) });
  return tar(entries, mtime);
}

/** A minimal ustar archive: folders and regular files, names under 100 bytes. */
export function tar(entries: { name: string; data?: Buffer }[], mtime: Date): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const dir = e.data === undefined;
    const h = Buffer.alloc(512);
    if (Buffer.byteLength(e.name) > 99) throw new Error(`tar: name too long: ${e.name}`);
    const field = (offset: number, length: number, value: string) => h.write(value, offset, length, 'utf8');
    const octal = (offset: number, length: number, value: number) => field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
    field(0, 100, e.name);
    octal(100, 8, dir ? 0o755 : 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, e.data?.length ?? 0);
    octal(136, 12, Math.floor(mtime.getTime() / 1000));
    field(148, 8, '        '); // checksum counts as spaces while it is computed
    field(156, 1, dir ? '5' : '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    let sum = 0;
    for (const b of h) sum += b;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(h);
    if (e.data) blocks.push(e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(blocks);
}

export interface ProfileArgs {
  /** Options for wireshark/tshark: `-C mtless-lab`, or `-d`/`-o` equivalents. */
  args: string[];
  installed: boolean;
  /** Where Wireshark would look for it. */
  dir: string;
}

/**
 * How to open a capture with the lab's profile: `-C mtless-lab` when it is
 * installed (and current) where Wireshark will look, else the same decodes
 * and columns as options (colour rules and filter buttons need the profile).
 */
export async function profileArgs(env: NodeJS.ProcessEnv = process.env): Promise<ProfileArgs> {
  const dir = profileDir(await wiresharkConfigDir(env));
  if (await profileMatches(dir)) return { args: ['-C', PROFILE_NAME], installed: true, dir };
  return { args: [...decodeAsArgs(), '-o', await columnPreference()], installed: false, dir };
}

/** Whether a command is on the PATH (to say something better than "command not found"). */
export async function onPath(command: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  for (const d of (env.PATH ?? '').split(':').filter(Boolean)) {
    if (await stat(join(d, command)).then((s) => s.isFile() && (s.mode & 0o111) !== 0, () => false)) return true;
  }
  return false;
}

/** The command line that opens `file` in wireshark or tshark with the lab's profile (or its stand-in options), then `extra`. */
export async function viewerArgv(tool: 'wireshark' | 'tshark', file: string, extra: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ argv: string[]; profile: ProfileArgs }> {
  const info = await stat(file).catch(() => undefined);
  if (!info) throw new Error(`${file}: no such file`);
  if (!info.isFile()) throw new Error(`${file}: not a capture file`);
  const profile = await profileArgs(env);
  return { argv: [tool, ...profile.args, '-r', file, ...extra], profile };
}

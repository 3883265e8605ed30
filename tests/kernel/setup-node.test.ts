// scripts/setup on a machine without Node 20: in a throwaway mount namespace
// the machine's node and npm are replaced by Debian 12's answer (v18) and
// .tools/ by an empty folder; setup must fetch the pinned Node and npm from
// the npm registry into .tools/, check them, and find them there next time.
import t from 'tap';
import { execa } from 'execa';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { REPO, needsRoot } from '../helpers/kernel.ts';

const PINNED = /NODE_VERSION=(\S+)/;

t.test('setup installs a pinned Node 20 from the npm registry when the machine has an old one', { skip: needsRoot }, async (t) => {
  const dir = await mkdtemp('/tmp/mtless-setup-node-');
  // The mount point must exist; an empty one made here is removed again.
  const madeTools = await execa('mkdir', [`${REPO}/.tools`], { reject: false }).then((r) => r.exitCode === 0);
  try {
    const pinned = PINNED.exec(await execa('cat', [`${REPO}/scripts/install-node.sh`]).then((r) => r.stdout))?.[1];
    t.ok(pinned, 'install-node.sh pins a version');
    // Debian 12's nodejs: version 18, no npm.
    await writeFile(`${dir}/node18`, '#!/bin/sh\ncase "$1" in -p) echo 18 ;; *) echo v18.19.0 ;; esac\n');
    await writeFile(`${dir}/no-npm`, '#!/bin/sh\necho "npm: not installed" >&2; exit 127\n');
    await chmod(`${dir}/node18`, 0o755);
    await chmod(`${dir}/no-npm`, 0o755);
    await execa('mkdir', ['-p', `${dir}/tools`]);
    const hide = [
      `mount --bind ${dir}/node18 "$(readlink -f "$(command -v node)")"`,
      `if command -v npm >/dev/null; then mount --bind ${dir}/no-npm "$(readlink -f "$(command -v npm)")"; fi`,
      `mount --bind ${dir}/tools ${REPO}/.tools`,
    ].join(' && ');
    const setup = (extra = '') =>
      execa('unshare', ['--mount', '--propagation', 'private', 'bash', '-c',
        `${hide} && node --version && bash ${REPO}/scripts/setup --node-only${extra}`], { reject: false, all: true, env: { PATH: process.env.PATH! } });
    const first = await setup(` && ${REPO}/.tools/node/bin/node --version && ${REPO}/.tools/node/bin/npm --version`);
    t.equal(first.exitCode, 0, String(first.all));
    t.match(String(first.all), /^v18\.19\.0$/m, 'the machine\'s node is the old one in this namespace');
    t.match(String(first.all), new RegExp(`installing Node v${pinned} and npm \\S+ from the npm registry`), 'setup says what it fetches and from where');
    t.match(String(first.all), new RegExp(`^v${pinned}$`, 'm'), 'the installed node runs');
    t.match(String(first.all), /^\d+\.\d+\.\d+$/m, 'the installed npm runs');
    const again = await setup();
    t.equal(again.exitCode, 0, String(again.all));
    t.match(String(again.all), new RegExp(`Node: v${pinned} under \\.tools/ \\(installed earlier\\)`), 'a second run reuses it');
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (madeTools) await execa('rmdir', [`${REPO}/.tools`], { reject: false });
  }
});

// The compiled `mtless` command as a user meets it: per-command help, short
// usage on a usage error, "needs root" instead of a raw EACCES, a quiet exit
// on a closed pipe, and a refusal to run a build older than its sources.
import t from 'tap';
import { execa } from 'execa';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { LAB_CLI, REPO, labCli, needsRoot } from '../helpers/kernel.ts';

// `env -u NODE_OPTIONS`: the test runner re-adds its own process hooks to every child's
// NODE_OPTIONS, and they cannot write their files as nobody.
const asNobody = (args: string[]) =>
  execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', LAB_CLI, ...args], { reject: false, all: true, cwd: REPO });

t.test('help: the whole usage, one command, CMD --help', { skip: needsRoot }, async (t) => {
  const all = await labCli(['--help']);
  t.equal(all.exitCode, 0);
  t.match(String(all.stdout), /^usage:\n  mtless validate FILE…/);
  const one = await labCli(['help', 'up']);
  t.equal(one.exitCode, 0);
  t.match(String(one.stdout), /^usage: mtless up FILE /);
  t.notMatch(String(one.stdout), /mtless down/, 'only that command');
  const flag = await labCli(['up', '--help']);
  t.equal(flag.exitCode, 0, 'CMD --help is help, not an unknown option');
  t.equal(String(flag.stdout), String(one.stdout));
});

t.test('a usage error prints that command\'s usage only, exit 2', { skip: needsRoot }, async (t) => {
  const r = await labCli(['up', '--bogus']);
  t.equal(r.exitCode, 2);
  t.match(String(r.all), /mtless: Unknown option '--bogus'/);
  t.match(String(r.all), /usage: mtless up FILE/);
  t.notMatch(String(r.all), /mtless down/, 'not the whole usage');
  const missing = await labCli(['maps']);
  t.equal(missing.exitCode, 2);
  t.match(String(missing.all), /maps: missing lab name[\s\S]*usage: mtless maps NAME NODE ipcache\|/);
});

t.test('not root: status, logs and maps say they need root', { skip: needsRoot }, async (t) => {
  for (const args of [['status'], ['logs', 'some-lab'], ['maps', 'some-lab', 'n1', 'auth']]) {
    const r = await asNobody(args);
    t.equal(r.exitCode, 1, `${args.join(' ')} exits 1`);
    t.match(String(r.all), new RegExp(`${args[0]} needs root`), `${args.join(' ')} says it needs root`);
    t.notMatch(String(r.all), /EACCES|at .*\.js:\d+/, 'no raw errno, no stack trace');
  }
});

t.test('a closed pipe ends the command quietly', { skip: needsRoot }, async (t) => {
  // `mtless --help | head -1`: head exits after one line, the rest hits a closed pipe.
  const r = await execa('bash', ['-o', 'pipefail', '-c', `"${LAB_CLI}" --help | head -1; echo "status \${PIPESTATUS[0]}"`], { reject: false, all: true });
  t.match(String(r.all), /^usage:\nstatus 0\n?$/, 'one line, exit 0, no EPIPE trace');
  // The reader gone before the first write: every write meets the closed pipe (a short usage fits in the
  // pipe's buffer above, so only this case fails without the handler).
  const gone = await execa('bash', ['-c', `"${LAB_CLI}" --help | true; echo "status \${PIPESTATUS[0]}"`], { reject: false, all: true });
  t.equal(String(gone.all).trim(), 'status 0', 'a reader that never reads: exit 0, nothing on stderr');
});

t.test('a build older than its sources is refused with how to rebuild', { skip: needsRoot }, async (t) => {
  // Copy bin/ and a source tree whose one file is newer than the copied stamp: the script finds the checkout from its own path.
  const dir = await mkdtemp('/tmp/mtless-stale-');
  try {
    await execa('mkdir', ['-p', `${dir}/bin`, `${dir}/dist`, `${dir}/lab`]);
    await execa('cp', [LAB_CLI, `${dir}/bin/mtless`]);
    await execa('touch', [`${dir}/dist/.build-stamp`, `${dir}/lab/x.ts`]);
    const past = new Date(Date.now() - 60_000);
    await utimes(`${dir}/dist/.build-stamp`, past, past);
    const r = await execa(`${dir}/bin/mtless`, ['--help'], { reject: false, all: true });
    t.equal(r.exitCode, 1);
    t.match(String(r.all), /the build is older than lab\/x\.ts: rebuild with 'npm run build'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

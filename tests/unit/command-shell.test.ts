// The command shell `up` runs its ip batches through (lab/kernel/shell.ts):
// real sh, real processes, no root needed.
import t from 'tap';
import { CommandShell, groupScript, shellQuote } from '../../lab/kernel/shell.ts';
import { CommandError } from '../../lab/kernel/run.ts';

t.test('quoting: nothing inside single quotes is expanded', async (t) => {
  t.equal(shellQuote(`it's $HOME`), `'it'\\''s $HOME'`);
  const script = groupScript([{ argv: ['cat'], input: 'a\n' }], '/d', 'tok');
  t.match(script, /<<'__MTLESS_INPUT_tok'\na\n__MTLESS_INPUT_tok\n/, 'input as a quoted here-document');
  t.match(script, /echo "tok 0 \$\?"; } &\n/, 'one status line per command, in the background');
  t.match(script, /wait; echo "tok end"\n$/, 'the group ends after wait');
  t.throws(() => groupScript([{ argv: ['cat'], input: 'x\n__MTLESS_INPUT_tok\n' }], '/d', 'tok'), /terminator/, 'an input line equal to the terminator is refused');
});

t.test('a group runs side by side; each command gets its own input, output and status', async (t) => {
  const shell = new CommandShell(t.testdir());
  t.teardown(() => shell.close());
  const input = `it's $HOME and \`date\`\nline 2`;
  const [a, b] = await shell.run([{ argv: ['cat'], input }, { argv: ['sh', '-c', 'echo out; echo err >&2'] }]);
  t.equal(a!.stdout, `${input}\n`, 'the input reached the command verbatim (a final newline added)');
  t.equal(a!.exitCode, 0);
  t.equal(b!.stdout, 'out\n');
  t.equal(b!.stderr, 'err\n');
  const [c] = await shell.run([{ argv: ['cat'], input: 'second group\n' }]);
  t.equal(c!.stdout, 'second group\n', 'the same shell runs the next group');
});

t.test('a failing command: CommandError with its stderr and namespace; the shell goes on', async (t) => {
  const shell = new CommandShell(t.testdir());
  t.teardown(() => shell.close());
  const err = await shell.run([{ argv: ['true'] }, { argv: ['sh', '-c', 'echo "RTNETLINK answers: File exists" >&2; exit 2'], netns: 'lab-n1' }]).catch((e: unknown) => e);
  t.ok(err instanceof CommandError, 'a CommandError');
  t.match((err as Error).message, /\(in netns lab-n1\) failed: RTNETLINK answers: File exists/);
  t.equal((err as CommandError).result.exitCode, 2);
  const missing = await shell.run([{ argv: ['no-such-command-here'] }]).catch((e: unknown) => e);
  t.match((missing as Error).message, /command not found: no-such-command-here/);
  t.same((await shell.run([{ argv: ['true'] }])).map((r) => r.exitCode), [0], 'still usable after failures');
  await shell.close();
  await shell.close();
  t.pass('close twice is fine');
  await t.rejects(shell.run([{ argv: ['true'] }]), /exited/, 'a closed shell refuses work');
});

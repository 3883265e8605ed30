// Completion against a running lab, the way bash runs it: the script from
// `mtless completion bash` sourced, _mtless called with COMP_WORDS and
// COMP_CWORD set, COMPREPLY read back. As root (the state) and as nobody
// (the namespace names only).
import t from 'tap';
import { execa } from 'execa';
import { dirname } from 'node:path';
import { LAB_CLI, REPO, labCli, labLeftovers, needsRoot } from '../helpers/kernel.ts';

const LAB = 't-cli-completion';

/** COMPREPLY of the sourced script for a command line whose last word is under the cursor. */
async function tab(script: string, words: string[], asNobody = false): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const program = `${script}\nCOMP_WORDS=(mtless ${quoted}); COMP_CWORD=${words.length}; _mtless; printf '%s\\n' "\${COMPREPLY[@]}"`;
  // The script calls `mtless` as typed: the checkout's bin first on PATH.
  const env = { PATH: `${dirname(LAB_CLI)}:${process.env.PATH}` };
  const argv = asNobody ? ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', 'bash', '-c', program] : ['bash', '-c', program];
  const r = await execa(argv[0]!, argv.slice(1), { env, cwd: REPO });
  return r.stdout.split('\n').filter(Boolean);
}

t.test('bash completion knows the running lab', { skip: needsRoot }, async (t) => {
  const script = String((await labCli(['completion', 'bash'])).stdout);
  t.equal((await execa('bash', ['-n'], { input: script, reject: false })).exitCode, 0, 'bash -n');
  const up = await labCli(['up', 'topologies/two-node.yaml', '--name', LAB, '--no-agents']);
  try {
    t.equal(up.exitCode, 0, String(up.all));
    t.ok((await tab(script, [''])).includes('observe'), 'verbs');
    t.same(await tab(script, ['maps', 't-cli-comp']), [LAB], 'the lab by prefix');
    t.same(await tab(script, ['maps', LAB, '']), ['n1', 'n2'], "the lab's nodes");
    t.same(await tab(script, ['maps', LAB, 'n1', 'a']), ['auth'], 'a map by prefix');
    t.same((await tab(script, ['exec', `${LAB}/`])).sort(), [`${LAB}/client`, `${LAB}/local`, `${LAB}/n1`, `${LAB}/n2`, `${LAB}/server`], 'pods and nodes');
    t.same((await tab(script, ['observe', LAB, '--to-pod', ''])).sort(), ['client', 'local', 'server'], "an option's value: the lab's pods");
    t.same(await tab(script, ['logs', LAB, '--f']), ['--follow'], 'options');
    t.same(await tab(script, ['maps', LAB, ''], true), ['n1', 'n2'], 'without root: nodes from the namespace names');
  } finally {
    await labCli(['down', LAB]);
  }
  t.same(await labLeftovers(LAB), [], 'nothing left');
});

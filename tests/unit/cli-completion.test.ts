// Shell completion: the verb table read as a grammar, what Tab offers at each
// place of a command line (names from given sources, not a running lab), and
// that the bash script is valid bash that asks `mtless __complete`.
import t from 'tap';
import { execa } from 'execa';
import { COMMAND_TABLE } from '../../lab/cli/table.ts';
import { parseArgGrammar } from '../../lab/cli/arg-grammar.ts';
import { complete, completionLines, type NameSources } from '../../lab/cli/completion.ts';
import { BASH_COMPLETION, ZSH_COMPLETION } from '../../lab/cli/completion-scripts.ts';

const sources: NameSources = {
  labs: async () => ['lab-a', 'lab-b'],
  nodesAndPods: async (lab) => ({ nodes: [`${lab}-n1`, 'n2'], pods: ['client', 'server'] }),
  scenarios: async () => ['mtless-basic'],
};
const offer = async (...words: string[]) => complete(words, words.length - 1, sources);

t.test('grammar of argument lines: slots, alternatives, options and their values', async (t) => {
  const maps = parseArgGrammar(COMMAND_TABLE.maps!.args);
  t.same(maps.alternatives[0]!.map((s) => s.placeholder ?? s.literals), ['NAME', 'NODE', ['ipcache', 'nodes', 'endpoints', 'policy', 'auth', 'ct', 'metrics']]);
  t.same(maps.options.get('-o')?.literals, ['json']);
  const scenario = parseArgGrammar(COMMAND_TABLE.scenario!.args);
  t.equal(scenario.alternatives.length, 2, 'list | run …');
  t.ok(scenario.alternatives[1]!.at(-1)!.repeats, 'NAME… repeats');
  const observe = parseArgGrammar(COMMAND_TABLE.observe!.args);
  t.equal(observe.options.get('-f'), undefined, '-f takes no value');
  t.equal(observe.options.get('--seconds')?.placeholder, 'S');
  t.same(observe.options.get('--type')?.literals, ['drop', 'trace', 'policy-verdict', 'auth'], 'auth[:SUB] offers auth');
  for (const o of ['--pod', '--from-pod', '--to-pod']) t.equal(observe.options.get(o)?.placeholder, '[NS/]POD', o);
  const logs = parseArgGrammar(COMMAND_TABLE.logs!.args);
  t.same(logs.alternatives[0]!.map((s) => [s.placeholder, s.literals, s.optional]), [['NAME', [], false], ['NODE', ['cp'], true]]);
  t.ok(parseArgGrammar(COMMAND_TABLE.down!.args).options.has('--all'));
});

t.test('every verb and every option of the table is offered', async (t) => {
  const verbs = await offer('');
  t.same(verbs, { words: [...Object.keys(COMMAND_TABLE), 'help'] });
  for (const [verb, entry] of Object.entries(COMMAND_TABLE)) {
    const written = [...new Set(entry.args.match(/(?<![\w-])--?[a-zA-Z][\w-]*/g) ?? [])];
    const c = await offer(verb, '-');
    for (const o of written) t.ok('words' in c && c.words.includes(o), `${verb} ${o}`);
  }
  t.same(await offer('help', ''), verbs, 'help CMD');
});

t.test('positions: lab, node, pod and literal words; option values', async (t) => {
  t.same(await offer('maps', ''), { words: ['lab-a', 'lab-b'] });
  t.same(await offer('maps', 'lab-b', ''), { words: ['lab-b-n1', 'n2'] }, 'nodes of the lab named');
  t.same(await offer('maps', 'lab-b', 'n2', ''), { words: ['ipcache', 'nodes', 'endpoints', 'policy', 'auth', 'ct', 'metrics'] });
  t.same(await offer('logs', 'lab-a', ''), { words: ['cp', 'lab-a-n1', 'n2'] });
  t.same(await offer('exec', ''), { words: ['lab-a/client', 'lab-a/server', 'lab-a/lab-a-n1', 'lab-a/n2', 'lab-b/client', 'lab-b/server', 'lab-b/lab-b-n1', 'lab-b/n2'] });
  t.same(await offer('pod', ''), { words: ['add', 'del'] });
  t.same(await offer('pod', 'del', 'lab-a', 'n1', ''), { words: ['client', 'server'] });
  t.same(await offer('auth', 'lab-a', 'n1', ''), { words: ['set', 'del'] });
  t.same(await offer('scenario', ''), { words: ['list', 'run'] });
  t.same(await offer('scenario', 'run', ''), { words: ['mtless-basic'] }, 'scenario names, not labs');
  t.same(await offer('scenario', 'run', 'mtless-basic', ''), { words: ['mtless-basic'] }, 'NAME… takes more');
  t.same(await offer('observe', 'lab-a', '--node', ''), { words: ['lab-a-n1', 'n2'] });
  t.same(await offer('observe', 'lab-a', '--from-pod', ''), { words: ['client', 'server'] });
  t.same(await offer('observe', 'lab-a', '-o', ''), { words: ['compact', 'dict', 'json'] });
  t.same(await offer('observe', 'lab-a', '--last', '5', ''), await offer('observe', 'lab-a', '-'), 'a value is skipped; no positional left: the options');
  t.same(await offer('up', ''), { files: 'files' });
  t.same(await offer('capture', 'lab-a', '-w', ''), { files: 'dirs' });
  t.same(await offer('exec', 'lab-a/client', '--', ''), { files: 'files' }, 'after --: the shell default');
  t.same(await offer('completion', ''), { words: ['bash', 'zsh'] });
  t.same(await offer('nonsense', ''), { words: [] });
  t.equal(completionLines({ words: ['a', 'b'] }), 'a\nb\n');
  t.equal(completionLines({ files: 'dirs' }), '__dirs__\n');
});

t.test('the bash script is valid bash and registers _mtless', async (t) => {
  const r = await execa('bash', ['-n'], { input: BASH_COMPLETION, reject: false });
  t.equal(r.exitCode, 0, r.stderr);
  const defined = await execa('bash', ['-c', `${BASH_COMPLETION}\ncomplete -p mtless; type -t _mtless`]);
  t.match(defined.stdout, /complete -F _mtless mtless\nfunction/);
  t.match(BASH_COMPLETION, /__complete "\$COMP_CWORD"/);
  t.match(ZSH_COMPLETION, /^#compdef mtless\n/);
  t.match(ZSH_COMPLETION, /__complete \$\(\(CURRENT - 1\)\)/);
});

t.test('demo: its options, and the claim ids after --only', async (t) => {
  const demo = parseArgGrammar(COMMAND_TABLE.demo!.args);
  t.same([...demo.options.keys()], ['--only', '--step', '--keep', '--name', '--out']);
  t.equal(demo.options.get('--step'), undefined, '--step takes no value');
  t.same(await offer('demo', '--only', ''), { words: ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8', 'C9', 'C10'] });
});

// Shell completion: what the word under the cursor can be. Verbs, options and
// literal words come from the verb table's argument lines (lab/cli/table.ts),
// lab, node and pod names from the running labs. The shell scripts
// (completion-scripts.ts) ask `mtless __complete CWORD WORD…` for them.
import { readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { COMMAND_TABLE } from './table.ts';
import { parseArgGrammar, type Slot } from './arg-grammar.ts';
import { listStateLabs, readState } from '../core/state.ts';
import { labNetnsPrefix, netnsPath, nodeOfNetns, podNetns } from '../core/names.ts';
import { LAB_NAME_RE } from '../topology/model.ts';

/** Words to offer, or "let the shell complete a file / directory name". */
export type Completion = { words: string[] } | { files: 'files' | 'dirs' };

/** Where names come from (the running labs by default; tests may give others). */
export interface NameSources {
  labs(): Promise<string[]>;
  nodesAndPods(lab: string): Promise<{ nodes: string[]; pods: string[] }>;
  scenarios(): Promise<string[]>;
}

const NONE: Completion = { words: [] };

export async function complete(words: string[], cword: number, sources: NameSources = RUNNING_LABS): Promise<Completion> {
  const cur = words[cword] ?? '';
  const before = words.slice(0, cword);
  const verbs = [...Object.keys(COMMAND_TABLE), 'help'];
  if (before.length === 0) return { words: verbs };
  const [verb, ...typed] = before;
  if (verb === 'help') return typed.length === 0 ? { words: verbs } : NONE;
  const entry = COMMAND_TABLE[verb!];
  if (!entry) return NONE;
  const grammar = parseArgGrammar(entry.args);
  const options = [...grammar.options.keys(), '--help'];
  const positionals: string[] = [];
  for (let i = 0; i < typed.length; i++) {
    const w = typed[i]!;
    // After `--` the words are another command's (exec): the shell's default.
    if (w === '--') return { files: 'files' };
    if (/^-./.test(w)) {
      const value = grammar.options.get(w);
      if (value && i === typed.length - 1) return valueOf(w, value, labOf(grammar.alternatives, positionals), verb!, sources);
      if (value) i++;
      continue;
    }
    positionals.push(w);
  }
  if (cur.startsWith('-')) return { words: options };
  const next = grammar.alternatives.filter((slots) => matches(slots, positionals)).map((slots) => ({ slot: slotAt(slots, positionals.length), slots }))
    .filter((x): x is { slot: Slot; slots: Slot[] } => x.slot !== undefined);
  if (next.length === 0) return { words: options };
  const out: string[] = [];
  for (const { slot, slots } of next) {
    const c = await valueOf(undefined, slot, labOf([slots], positionals), verb!, sources);
    if ('files' in c) return c;
    out.push(...c.words);
  }
  return { words: [...new Set(out)] };
}

function slotAt(slots: Slot[], i: number): Slot | undefined {
  if (i < slots.length) return slots[i];
  return slots.at(-1)?.repeats ? slots.at(-1) : undefined;
}

/** Do the typed positionals fit this alternative (its literal words where it has them)? */
function matches(slots: Slot[], positionals: string[]): boolean {
  return positionals.every((w, i) => {
    const slot = slotAt(slots, i);
    return slot !== undefined && (slot.placeholder !== undefined || slot.literals.includes(w));
  });
}

/** The lab named so far: the word in the NAME (or NAME/POD) slot. */
function labOf(alternatives: Slot[][], positionals: string[]): string | undefined {
  for (const slots of alternatives) {
    const i = slots.findIndex((s) => s.placeholder === 'NAME' || s.placeholder === 'NAME/POD');
    const w = i >= 0 ? positionals[i] : undefined;
    if (w) return w.split('/')[0];
  }
  return undefined;
}

async function valueOf(option: string | undefined, slot: Slot, lab: string | undefined, verb: string, sources: NameSources): Promise<Completion> {
  const words = [...slot.literals];
  const kind = option === '--node' ? 'NODE' : slot.placeholder;
  switch (kind) {
    case 'NAME':
      words.push(...(verb === 'scenario' ? await sources.scenarios() : await sources.labs()));
      break;
    case 'NAME/POD':
      for (const l of await sources.labs()) {
        const { nodes, pods } = await sources.nodesAndPods(l);
        words.push(...pods.map((p) => `${l}/${p}`), ...nodes.map((n) => `${l}/${n}`));
      }
      break;
    case 'NODE':
      if (lab) words.push(...(await sources.nodesAndPods(lab)).nodes);
      break;
    case 'POD':
    case '[NS/]POD':
      if (lab) words.push(...(await sources.nodesAndPods(lab)).pods);
      break;
    case 'CLAIMS':
      words.push(...(await import('../scenarios/claims.ts')).CLAIM_IDS);
      break;
    case 'FILE':
      return { files: 'files' };
    case 'DIR':
      return { files: 'dirs' };
  }
  return { words };
}

/** Names of the labs on this host. Without root the state files are closed, so nodes and pods come from the namespace names. */
export const RUNNING_LABS: NameSources = {
  labs: async () => (await listStateLabs()).filter((l) => LAB_NAME_RE.test(l)),
  nodesAndPods: async (lab) => {
    const state = await readState(lab).catch(() => undefined);
    if (state) return { nodes: state.nodes.map((n) => n.name), pods: state.pods.map((p) => p.name) };
    const netns = (await readdir(dirname(netnsPath(labNetnsPrefix(lab)))).catch(() => [] as string[]));
    const podPrefix = podNetns(lab, '');
    return {
      nodes: netns.map(nodeOfNetns).filter((x) => x?.lab === lab).map((x) => x!.node),
      pods: netns.filter((n) => n.startsWith(podPrefix)).map((n) => n.slice(podPrefix.length)),
    };
  },
  scenarios: async () => Object.keys((await import('../scenarios/index.ts')).SCENARIOS),
};

/** What `mtless __complete` prints: one word a line, or a directive the scripts understand. */
export function completionLines(c: Completion): string {
  if ('files' in c) return `__${c.files}__\n`;
  return c.words.map((w) => `${w}\n`).join('');
}

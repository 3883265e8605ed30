// Reads a verb's argument line of the table (`NAME NODE set|del … [--ttl S]`)
// as a grammar: the positional slots of each alternative, and each option
// with what its value is. Completion uses it, so it can never drift from the
// usage text. Pure.

/** One positional slot: literal words to pick from, or a placeholder (NAME, NODE, FILE…). */
export interface Slot {
  literals: string[];
  placeholder?: string;
  optional: boolean;
  /** `NAME…`: takes every further word. */
  repeats: boolean;
}

export interface ArgGrammar {
  /** Top-level alternatives (`list | run NAME…`), each a list of slots. */
  alternatives: Slot[][];
  /** Every option, and its value (a slot) when it takes one. */
  options: Map<string, Slot | undefined>;
}

/** Splits on spaces outside brackets: `[-w DIR|-]` stays one token. */
function tokens(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ' ' && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

const isOption = (t: string) => /^--?[a-zA-Z]/.test(t);

function slotOf(token: string, optional: boolean): Slot {
  const repeats = token.endsWith('…');
  // `auth[:SUB]`: the word is `auth`.
  const words = token.replace(/…$/, '').split('|').map((w) => w.replace(/(.)\[.*\]$/, '$1')).filter(Boolean);
  // Lower-case words are typed as they are; upper-case ones (and `[NS/]POD`) stand for a value.
  const literals = words.filter((w) => /^[a-z][a-z0-9-]*$/.test(w));
  const placeholder = words.find((w) => !literals.includes(w));
  return { literals, placeholder, optional, repeats };
}

/** Options of one group (`-f | --seconds S`, `--pod|--from-pod|--to-pod [NS/]POD`) into `options`. */
function readOptions(group: string[], options: ArgGrammar['options']): void {
  for (let i = 0; i < group.length; i++) {
    const t = group[i]!;
    if (t === '|' || !isOption(t)) continue;
    const next = group[i + 1];
    const value = next !== undefined && next !== '|' && !isOption(next) ? slotOf(next, false) : undefined;
    for (const name of t.split('|').filter(isOption)) options.set(name, value);
    if (value) i++;
  }
}

export function parseArgGrammar(args: string): ArgGrammar {
  const options: ArgGrammar['options'] = new Map();
  const alternatives: Slot[][] = [[]];
  const list = tokens(args);
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (t === '|') {
      alternatives.push([]);
      continue;
    }
    const slots = alternatives.at(-1)!;
    // `[--policies F]…`: a repeatable group reads like one.
    const group = t.replace(/\]…$/, ']');
    if (group.startsWith('[') && group.endsWith(']')) {
      const inner = tokens(group.slice(1, -1));
      // A bracket holding options is options; `[NODE|cp]` is an optional positional.
      if (inner.some(isOption)) readOptions(inner, options);
      else if (!group.startsWith('[NS/]')) slots.push(slotOf(group.slice(1, -1), true));
      continue;
    }
    if (isOption(t)) {
      const next = list[i + 1];
      readOptions(next && !isOption(next) && next !== '|' && !next.startsWith('[') ? [t, next] : [t], options);
      if (options.get(t.split('|')[0]!)) i++;
      continue;
    }
    if (t === '--') break;
    slots.push(slotOf(t, false));
  }
  return { alternatives, options };
}

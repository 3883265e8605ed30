// --name PREFIX and --out DIR of `scenario run`, `demo` and `bench`: two runs
// on one host side by side, with their own labs and their own output folder.
import { RUN_PREFIX_RE } from '../core/names.ts';
import { UsageError, type Values } from './command.ts';

export const RUN_OPTIONS = { name: { type: 'string' }, out: { type: 'string' } } as const;

export interface RunOptions {
  prefix?: string;
  out?: string;
}

export function runOptions(v: Values): RunOptions {
  const prefix = v.name as string | undefined;
  if (prefix !== undefined && !RUN_PREFIX_RE.test(prefix)) {
    throw new UsageError(`--name: "${prefix}" is not a lab-name prefix (1–10 of a-z, 0-9 and -, starting with a letter, not ending with -)`);
  }
  const out = v.out as string | undefined;
  if (out === '') throw new UsageError('--out: expected a directory');
  return { prefix, out };
}

// What every CLI verb is: its options and a thin run(). Its summary and
// argument line live in the table (table.ts), so that usage and help never
// load a command's module.
import type { ParseArgsConfig } from 'node:util';
import { LAB_NAME_RE } from '../topology/model.ts';

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  options?: ParseArgsConfig['options'];
  /** A wrapper of another tool (tshark): its arguments go to run() as they are, unparsed. */
  passThrough?: boolean;
  run: (args: string[], values: Values) => Promise<number>;
}

/** A mistake in how the command was called: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

// Kept free of lab/kernel imports: loading the process runner costs start-up time.
export const isRoot = (): boolean => process.getuid?.() === 0;

export function requireRoot(what: string): void {
  if (!isRoot()) throw Object.assign(new Error(`${what} needs root: the lab creates namespaces and loads BPF programs (run it with sudo)`), { exitCode: 1 });
}

export function oneLabName(args: string[], what: string): string {
  const [lab, extra] = args;
  if (!lab) throw new UsageError(`${what}: missing lab name`);
  if (extra) throw new UsageError(`${what}: unexpected argument "${extra}"`);
  if (!LAB_NAME_RE.test(lab)) throw new UsageError(`${what}: invalid lab name "${lab}"`);
  return lab;
}

/** A positive number of seconds from an option, in ms. */
export function seconds(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0)) throw new UsageError(`--${name}: expected a positive number of seconds, got "${value}"`);
  return n * 1000;
}

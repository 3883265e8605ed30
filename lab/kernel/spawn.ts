// The long-lived shape of the one runner (run.ts has the others): a child
// with streamed output that dies with us. Kept apart because it needs execa
// at import time, and short commands should not pay for loading it.
import { execa, type ResultPromise } from 'execa';
import { placeArgv, type Place } from './run.ts';

/** A started child: modules outside lab/kernel/ `import type` it from here. */
export type { ResultPromise };

export interface SpawnOptions extends Place {
  env?: Record<string, string>;
  stdin?: 'pipe' | 'ignore';
  cwd?: string;
}

/**
 * Starts a long-running command and hands back the child, output streamed
 * (captures, event pipes, bpftool batch, pod apps). The child is ours: it
 * gets SIGKILL when this process dies (PR_SET_PDEATHSIG through setpriv,
 * kept across the execs of nsenter, sh and stdbuf), so a killed agent leaves
 * no perf reader behind to steal its successor's events.
 */
export function spawn(argv: string[], opts: SpawnOptions = {}): ResultPromise {
  const full = ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...placeArgv(opts, argv)];
  return execa(full[0]!, full.slice(1), { reject: false, buffer: false, env: opts.env, cwd: opts.cwd, stdin: opts.stdin ?? 'ignore' });
}

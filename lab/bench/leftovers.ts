// A benchmark owns its labs by name: it refuses to start while one of them
// exists (a benchmark still running, or a crashed one's objects), and never
// deletes another run's objects unasked.
import { labNetnsOnHost } from '../compose/down.ts';
import { readState } from '../core/state.ts';
import { findTaggedProcesses } from '../core/processes.ts';

/** Whether anything of `lab` exists: namespaces on the host, a state file, or tagged processes. */
export async function labExists(lab: string): Promise<boolean> {
  const ns = await labNetnsOnHost(lab);
  const state = await readState(lab).catch(() => undefined);
  const procs = await findTaggedProcesses(lab);
  return ns.length > 0 || Boolean(state) || procs.length > 0;
}

/** A crashed earlier run (or one still going) leaves objects: never delete another run's lab unasked. */
export async function refuseLeftovers(lab: string): Promise<void> {
  if (await labExists(lab)) {
    throw new Error(`lab "${lab}" exists (a benchmark is running, or a crashed one left it behind): run \`mtless down ${lab}\` first`);
  }
}

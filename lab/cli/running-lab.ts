// Shared by the verbs that act on a running lab: find it, check a node name,
// name addresses by their pods.
import { readState, type LabState } from '../core/state.ts';
import { requireRoot, UsageError } from './command.ts';

export async function runningLab(lab: string | undefined, what: string): Promise<LabState> {
  if (!lab) throw new UsageError(`${what}: missing lab name`);
  // The lab's state is readable by root only.
  requireRoot(what);
  const state = await readState(lab);
  if (!state) throw new Error(`no lab named "${lab}" (see \`mtless status\`)`);
  return state;
}

export function nodeOf(state: LabState, node: string | undefined, what: string): string {
  if (!node) throw new UsageError(`${what}: missing NODE`);
  if (!state.nodes.some((n) => n.name === node)) {
    throw new Error(`lab "${state.lab}" has no node "${node}" (valid: ${state.nodes.map((n) => n.name).join(', ')})`);
  }
  return node;
}

/** ip → "node/pod" (or "node" for node addresses) for readable flows. */
export function resolver(state: LabState) {
  const names = new Map<string, string>();
  for (const p of state.pods) names.set(p.ip, `${p.node}/${p.name}`);
  for (const n of state.nodes) names.set(n.underlayIp, n.name);
  return (ip: string) => names.get(ip);
}

export const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : Buffer.isBuffer(x) ? x.toString('hex') : x), 2);

// How the lab runs one of its own Node scripts (agents, control plane, mesh
// proxies, pod apps): the only place that knows they are TypeScript run
// through tsx. Imports nothing of the lab, so a pod app may import it cheaply.
import { resolve } from 'node:path';

/** The checkout's root: scripts are named relative to it. */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** Resolved from this module, not from the child's cwd. */
const TSX_LOADER = import.meta.resolve('tsx');

/**
 * argv that runs `script` (repo-relative, e.g. 'lab/agent/main.ts') with
 * `args`, by the Node binary running now.
 */
export function nodeScriptArgv(script: string, args: string[] = []): string[] {
  return [process.execPath, '--import', TSX_LOADER, resolve(REPO_ROOT, script), ...args];
}

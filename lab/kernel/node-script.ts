// How the lab runs one of its own Node scripts (agents, control plane, mesh
// proxies, pod apps): the only place that knows they are TypeScript run
// through tsx. Cheap to import (a pod app imports it).
import { resolve } from 'node:path';
import { REPO_ROOT } from '../core/repo.ts';

export { REPO_ROOT };

/** Resolved from this module, not from the child's cwd. */
const TSX_LOADER = import.meta.resolve('tsx');

/**
 * argv that runs `script` (repo-relative, e.g. 'lab/agent/main.ts') with
 * `args`, by the Node binary running now.
 */
export function nodeScriptArgv(script: string, args: string[] = []): string[] {
  return [process.execPath, '--import', TSX_LOADER, resolve(REPO_ROOT, script), ...args];
}

// How the lab runs one of its own Node scripts (agents, control plane, mesh
// proxies, pod apps): the only place that knows whether they run compiled
// (dist/, what users get) or as TypeScript through tsx (development, when the
// build is missing or older than the sources). Cheap to import (a pod app
// imports it).
import { resolve } from 'node:path';
import { buildIsFresh, compiledPath, REPO_ROOT, RUNNING_COMPILED } from '../core/repo.ts';

export { REPO_ROOT };

/**
 * argv that runs `script` (repo-relative, e.g. 'lab/agent/main.ts') with
 * `args`, by the Node binary running now: the compiled file when the build is
 * current, else the source through tsx. Compiled code never falls back: a
 * stale build there is an error (bin/mtless refuses to start on one).
 */
export function nodeScriptArgv(script: string, args: string[] = []): string[] {
  // Only lab/ is compiled; a test's own script (tests/fixtures/…) always runs through tsx.
  const compiled = script.startsWith('lab/');
  if (compiled && (RUNNING_COMPILED || buildIsFresh())) return [process.execPath, compiledPath(script), ...args];
  // Resolved from this module, not from the child's cwd.
  return [process.execPath, '--import', import.meta.resolve('tsx'), resolve(REPO_ROOT, script), ...args];
}

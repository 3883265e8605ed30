// Where the checkout is, and whether its compiled build (dist/, made by
// `npm run build`) is current. The same code runs from lab/*.ts (tests, tsx)
// and from dist/lab/*.js (what users run), so the root is found by walking up
// to the project's package.json, never by counting "../".
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"name":\s*"mtless-lab"/.test(readFileSync(pkg, 'utf8'))) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the mtless-lab checkout above ${from}`);
  }
}

export const REPO_ROOT = findRoot(import.meta.dirname);
/** tsc's output: dist/lab/… mirrors lab/…. */
export const BUILD_DIR = join(REPO_ROOT, 'dist');
/** Touched by `npm run build` once tsc has written everything. */
export const BUILD_STAMP = join(BUILD_DIR, '.build-stamp');
/** True when this module itself runs from the build. */
export const RUNNING_COMPILED = import.meta.url.endsWith('.js');

/** scripts/bundle.mjs's output: one file per daemon, with its dependencies, mirroring dist/. */
export const BUNDLE_DIR = join(BUILD_DIR, 'bundle');
/** The daemons (lab/core/daemons.ts): bundled, since every lab starts several and a bundle starts on about half the CPU. */
export const BUNDLED_SCRIPTS: readonly string[] = ['lab/agent/main.ts', 'lab/control/main.ts', 'lab/mesh/proxy.ts', 'lab/observe/relay-main.ts'];

/** The compiled file of a source, e.g. 'lab/agent/main.ts' → …/dist/bundle/lab/agent/main.js (a daemon) or …/dist/lab/agent/… */
export const compiledPath = (script: string) =>
  join(BUNDLED_SCRIPTS.includes(script) ? BUNDLE_DIR : BUILD_DIR, script.replace(/\.ts$/, '.js'));

/** The first source under lab/ newer than the build, or undefined when the build is current. */
export function sourceNewerThanBuild(): string | undefined {
  let built: number;
  try {
    built = statSync(BUILD_STAMP).mtimeMs;
  } catch {
    return 'lab/ (never built)';
  }
  const walk = (dir: string): string | undefined => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const found = walk(p);
        if (found) return found;
      } else if (/\.(ts|mjs)$/.test(e.name) && statSync(p).mtimeMs > built) return p.slice(REPO_ROOT.length + 1);
    }
    return undefined;
  };
  return walk(join(REPO_ROOT, 'lab'));
}

let fresh: boolean | undefined;
/** sourceNewerThanBuild() === undefined, computed once per process. */
export function buildIsFresh(): boolean {
  fresh ??= sourceNewerThanBuild() === undefined;
  return fresh;
}

/** What `make -C bpf` builds: the BPF objects, the host helpers and the pods' apps (C). */
export const C_BUILD_DIR = join(REPO_ROOT, 'bpf', 'build');

/**
 * The path of a program `make -C bpf` builds (e.g. 'echo' → bpf/build/echo),
 * or a clear error when it is not built: a fresh checkout that skipped
 * scripts/setup, or one built before the program existed.
 */
export function builtProgram(name: string): string {
  const path = join(C_BUILD_DIR, name);
  if (!existsSync(path)) throw new Error(`${path} is not built: run \`make -C ${join(REPO_ROOT, 'bpf')}\` (or scripts/setup)`);
  return path;
}

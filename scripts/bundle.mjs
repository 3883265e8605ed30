// `npm run build`, after tsc: bundles each daemon (lab/core/daemons.ts's table)
// with its dependencies into one file under dist/bundle/, mirroring dist/.
// A daemon started from its bundle reads a handful of files instead of
// hundreds of modules: measured, its start costs about half the CPU
// (README, "Benchmarks"). Only code reachable at start goes in the entry
// file; dynamic imports become chunks of their own (--splitting).
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { BUNDLED_SCRIPTS, BUNDLE_DIR } = await import(join(root, 'dist/lab/core/repo.js'));
const { DAEMONS } = await import(join(root, 'dist/lab/core/daemons.js'));
const missing = DAEMONS.filter((d) => !BUNDLED_SCRIPTS.includes(d.script));
if (missing.length > 0) throw new Error(`daemons not in BUNDLED_SCRIPTS: ${missing.map((d) => d.script).join(', ')}`);

await rm(BUNDLE_DIR, { recursive: true, force: true });
await build({
  entryPoints: BUNDLED_SCRIPTS.map((s) => join(root, 'dist', s.replace(/\.ts$/, '.js'))),
  outdir: BUNDLE_DIR,
  outbase: join(root, 'dist'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // CommonJS dependencies (@peculiar/x509) call require() for Node's own modules.
  banner: { js: "import { createRequire as __mtlessRequire } from 'node:module'; const require = __mtlessRequire(import.meta.url);" },
});

// The daemons run from their bundles (scripts/bundle.mjs): every daemon of the
// table is bundled, its compiled path is the bundle, and a daemon's bundle does
// not carry the topology file parsers at start (only behind a dynamic import).
import { test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_STAMP, BUNDLE_DIR, BUNDLED_SCRIPTS, compiledPath } from '../../lab/core/repo.ts';
import { DAEMONS } from '../../lab/core/daemons.ts';

test('every daemon is bundled and starts from dist/bundle/', async (t) => {
  for (const d of DAEMONS) {
    t.ok(BUNDLED_SCRIPTS.includes(d.script), `${d.role}: ${d.script} is bundled`);
    t.equal(compiledPath(d.script), join(BUNDLE_DIR, d.script.replace(/\.ts$/, '.js')), `${d.role} starts from its bundle`);
  }
  t.equal(compiledPath('lab/cli/main.ts').startsWith(BUNDLE_DIR), false, 'the CLI runs from dist/lab/');
});

test('the built bundles exist and their entry files leave the YAML and zod parsers out', { skip: existsSync(BUILD_STAMP) ? false : 'not built (npm run build)' }, async (t) => {
  for (const script of BUNDLED_SCRIPTS) {
    const file = compiledPath(script);
    t.ok(existsSync(file), `${file} exists`);
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    // zod's and yaml's own identifiers, present in any bundle that inlines them.
    t.notMatch(text, /\$ZodType|YAMLParseError/, `${script}: no zod or yaml in the entry file`);
  }
});

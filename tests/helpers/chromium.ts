// Headless Chromium (Debian's `chromium`) driven by its command line: the DOM
// after parsing (--dump-dom), a screenshot (--screenshot), and the page's
// console messages (--enable-logging=stderr: each one a line tagged CONSOLE).
// A throwaway profile per call, so nothing is written to root's home.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../../lab/kernel/run.ts';

export const CHROMIUM = 'chromium';

export async function chromiumVersion(): Promise<string | undefined> {
  const r = await run([CHROMIUM, '--version'], { okCodes: 'any' }).catch(() => undefined);
  return r && r.exitCode === 0 ? r.stdout.trim() : undefined;
}

export interface PageLoad {
  dom: string;
  /** Console messages and uncaught errors of the page (Chromium logs them all as CONSOLE lines). */
  console: string[];
}

async function withProfile<T>(fn: (args: string[]) => Promise<T>): Promise<T> {
  const profile = await mkdtemp(join(tmpdir(), 'mtless-chromium-'));
  try {
    // --no-sandbox: Chromium refuses to run as root with its sandbox.
    return await fn(['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run', `--user-data-dir=${profile}`]);
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

export async function loadPage(file: string): Promise<PageLoad> {
  return withProfile(async (base) => {
    const r = await run([CHROMIUM, ...base, '--enable-logging=stderr', '--v=0', '--dump-dom', pathToFileURL(file).href], { timeout: 120_000 });
    return { dom: r.stdout, console: r.stderr.split('\n').filter((l) => /:CONSOLE[:(]/.test(l)) };
  });
}

export async function screenshot(file: string, png: string, width = 1280, height = 2000): Promise<void> {
  await withProfile((base) => run([CHROMIUM, ...base, `--window-size=${width},${height}`, `--screenshot=${png}`, pathToFileURL(file).href], { timeout: 120_000 }));
}

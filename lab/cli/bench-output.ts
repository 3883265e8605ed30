// `bench … --out DIR`: the report also as files, so runs side by side keep theirs.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const bigints = (_k: string, x: unknown) => (typeof x === 'bigint' ? x.toString() : x);

/** Writes DIR/bench-<what>.txt and .json; returns their paths. */
export async function writeBenchOutput(dir: string, what: string, data: unknown, text: string): Promise<string[]> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const files = [join(root, `bench-${what}.txt`), join(root, `bench-${what}.json`)];
  await writeFile(files[0]!, text.endsWith('\n') ? text : `${text}\n`);
  await writeFile(files[1]!, `${JSON.stringify(data, bigints, 2)}\n`);
  return files;
}

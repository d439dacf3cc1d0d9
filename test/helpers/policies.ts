import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { LoadedText } from '../../src/policy/load.js';

export const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures');
export const EXAMPLE_POLICIES = path.join(import.meta.dirname, '..', '..', 'policies');

/** A fixture file, or every file of a fixture directory, named as the CLI would name them. */
export async function fixture(name: string): Promise<LoadedText[]> {
  const full = path.join(FIXTURES, name);
  const files = (await stat(full)).isDirectory()
    ? (await readdir(full)).sort().map((f) => path.join(full, f))
    : [full];
  return Promise.all(
    files.map(async (file) => ({
      name: path.relative(FIXTURES, file),
      text: await readFile(file, 'utf8'),
    })),
  );
}

import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodePolicyFile, type LoadedText } from '../../src/policy/load.js';

export const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures');
export const EXAMPLE_POLICIES = path.join(import.meta.dirname, '..', '..', 'policies');

/** A fixture file, or every file of a fixture directory, named and decoded as the CLI would. */
export async function fixture(name: string): Promise<LoadedText[]> {
  const full = path.join(FIXTURES, name);
  const files = (await stat(full)).isDirectory()
    ? (await readdir(full)).sort().map((f) => path.join(full, f))
    : [full];
  return Promise.all(
    files.map(async (file) =>
      decodePolicyFile(path.relative(FIXTURES, file), await readFile(file)),
    ),
  );
}

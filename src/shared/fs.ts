import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describeError, ModelCenterError } from './errors.js';

/** Writes through a temporary file and a rename, so readers never see half a file. */
export async function writeFileAtomically(
  file: string,
  text: string,
  options: { mode?: number } = {},
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  // The mode is set at creation, so a secret is never readable by others, not even briefly.
  await writeFile(temporary, text, { mode: options.mode ?? 0o666 });
  await rename(temporary, file);
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelCenterError(`cannot read ${file}: ${describeError(error)}`);
  }
}

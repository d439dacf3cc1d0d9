import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describeError, ModelCenterError } from './errors.js';

/**
 * Writes through a temporary file and a rename, so readers never see half a file. When the write
 * fails (a full disk) the temporary file is removed: nothing is left behind and `file` is as it was.
 */
export async function writeFileAtomically(
  file: string,
  text: string,
  options: { mode?: number } = {},
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  // The mode is set at creation, so a secret is never readable by others, not even briefly.
  try {
    await writeFile(temporary, text, { mode: options.mode ?? 0o666 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
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

import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodePolicyFile, type LoadedText } from '../../src/policy/load.js';

export const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures');
export const EXAMPLE_POLICIES = path.join(import.meta.dirname, '..', '..', 'policies');

/**
 * Secret-shaped values the secret-boundary fixtures need, made at test time: the files hold the
 * placeholders, so no key-shaped string is committed. Lengths are fixed (the masked forms in the
 * expected messages name them): an OpenAI project key of 50 characters, a Langfuse key of 38.
 */
export const FIXTURE_SECRETS: Readonly<Record<string, string>> = {
  '@@openai-project-key@@': `sk-proj-${randomBytes(21).toString('hex')}`,
  '@@langfuse-secret-key@@': `sk-lf-${randomBytes(16).toString('hex')}`,
};

/** The file's bytes with the placeholders filled (byte for byte otherwise: latin1 round-trips). */
function withSecrets(bytes: Buffer): Buffer {
  let text = bytes.toString('latin1');
  if (!text.includes('@@')) return bytes;
  for (const [placeholder, value] of Object.entries(FIXTURE_SECRETS)) {
    text = text.replaceAll(placeholder, value);
  }
  return Buffer.from(text, 'latin1');
}

/** A fixture file, or every file of a fixture directory, named and decoded as the CLI would. */
export async function fixture(name: string): Promise<LoadedText[]> {
  const full = path.join(FIXTURES, name);
  const files = (await stat(full)).isDirectory()
    ? (await readdir(full)).sort().map((f) => path.join(full, f))
    : [full];
  return Promise.all(
    files.map(async (file) =>
      decodePolicyFile(path.relative(FIXTURES, file), withSecrets(await readFile(file))),
    ),
  );
}

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';

/** A secret kept in the state directory (mode 0600), generated once, never logged. */
export async function stateSecret(
  stateDir: string,
  name: string,
  prefix: string,
  log: Logger,
): Promise<string> {
  const file = path.join(stateDir, name);
  const existing = (await readIfExists(file))?.trim();
  if (existing) return existing;
  await protectStateDir(stateDir);
  const value = `${prefix}${randomBytes(32).toString('hex')}`;
  await writeFileAtomically(file, `${value}\n`, { mode: 0o600 });
  log.warn({ file }, `${name} not configured: generated one (mode 0600)`);
  return value;
}

/**
 * Creates the state directory with a `.gitignore` that ignores everything in it. It sits in the
 * policy repository by default (`.modelcenter/`) and holds the generated master key, the secret
 * store and its key: a `git add -A` in a repository whose own .gitignore does not name it would
 * otherwise commit them.
 */
export async function protectStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const ignore = path.join(stateDir, '.gitignore');
  if ((await readIfExists(ignore)) === undefined) {
    await writeFileAtomically(
      ignore,
      '# Model Center state: secrets and runtime files, never committed.\n*\n',
    );
  }
}

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
  await mkdir(stateDir, { recursive: true });
  const value = `${prefix}${randomBytes(32).toString('hex')}`;
  await writeFileAtomically(file, `${value}\n`, { mode: 0o600 });
  log.warn({ file }, `${name} not configured: generated one (mode 0600)`);
  return value;
}

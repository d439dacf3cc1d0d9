import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFileAtomically } from '../shared/fs.js';

/** The config an instance was started on: its bytes, their hash and its deployment ids. */
export interface LiveConfig {
  text: string;
  sha256: string;
  intended: readonly string[];
}

export async function readLiveConfig(
  file: string,
  intended: readonly string[],
): Promise<LiveConfig> {
  const text = await readFile(file, 'utf8');
  return { text, sha256: createHash('sha256').update(text).digest('hex'), intended };
}

/**
 * A copy of the config an instance served, for a supervised restart: the generated file may hold
 * a newer (or refused) config by then, and a restart must bring back what was serving.
 */
export async function writeSnapshot(
  stateDir: string | undefined,
  live: LiveConfig,
): Promise<string> {
  const dir = path.join(stateDir ?? path.join(tmpdir(), `modelcenter-${process.pid}`), 'live');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `config-${live.sha256.slice(0, 16)}.yaml`);
  await writeFileAtomically(file, live.text);
  return file;
}

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The Model Center checkout (where package.json and litellm/ live), from src/ or dist/ alike. */
export function projectRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'modelcenter'
    ) {
      cached = dir;
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(
        'cannot find the Model Center checkout above ' + fileURLToPath(import.meta.url),
      );
    dir = parent;
  }
}

/** Where LiteLLM's spool callback writes request records, inside a state directory. */
export function spoolDirIn(stateDir: string): string {
  return path.join(stateDir, 'spool');
}

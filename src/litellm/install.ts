import { spawn } from 'node:child_process';
import path from 'node:path';
import { ModelCenterError } from '../shared/errors.js';
import { projectRoot } from '../shared/paths.js';

export class LiteLLMInstallError extends ModelCenterError {}

/** Where the pinned LiteLLM lives once litellm/setup.sh has run. */
export function litellmVenv(root = projectRoot()): string {
  return process.env.MODELCENTER_LITELLM_VENV ?? path.join(root, 'litellm', '.venv');
}

export function litellmBinary(venv = litellmVenv()): string {
  return path.join(venv, 'bin', 'litellm');
}

/**
 * Runs litellm/setup.sh, which creates or refreshes litellm/.venv from the hash-locked
 * requirements and returns at once when the venv already matches the lock file.
 */
export async function ensureLiteLLMInstalled(root = projectRoot()): Promise<void> {
  if (process.env.MODELCENTER_LITELLM_VENV) return;
  const script = path.join(root, 'litellm', 'setup.sh');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) {
    throw new LiteLLMInstallError(
      `litellm/setup.sh failed (exit ${code}); the pinned LiteLLM could not be installed — read its output above, check that Python ≥ 3.10 and PyPI are reachable`,
    );
  }
}

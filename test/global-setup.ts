import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { projectRoot } from '../src/shared/paths.js';

/**
 * Integration tests need the pinned LiteLLM and two Debian packages (nginx for blue-green,
 * PostgreSQL for the ledger): install what is missing once, before any test file runs.
 */
export default async function setup(): Promise<void> {
  const script = path.join(projectRoot(), '.ci', 'install-system-packages.sh');
  const result = spawnSync('bash', [script], { stdio: 'inherit' });
  if (result.status !== 0) {
    throw new Error(`${script} failed (exit ${result.status}): see its output above`);
  }
  await ensureLiteLLMInstalled();
}

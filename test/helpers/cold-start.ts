import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../../src/compile/build.js';
import { startLiteLLM } from '../../src/litellm/process.js';
import { providerEnv, type Keys } from './stack.js';

/**
 * How long a LiteLLM cold start (spawn → readiness) takes on this machine right now, on the
 * policies given: the yardstick for every wait in the supervision tests, instead of a fixed
 * timeout that a loaded machine overruns.
 */
export async function measureColdStart(policies: string, keys: Keys): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-cold-start-'));
  try {
    const build = buildFromTexts([{ name: 'policies/scenario.yaml', text: policies }]);
    if (!build.yaml) throw new Error('the scenario policies do not compile');
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(configPath, build.yaml);
    const started = Date.now();
    const litellm = await startLiteLLM({
      configPath,
      masterKey: keys.master,
      env: providerEnv(keys),
      spoolDir: path.join(dir, 'spool'),
      readinessTimeoutMs: 300_000,
    });
    const ms = Date.now() - started;
    await litellm.stop();
    return ms;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

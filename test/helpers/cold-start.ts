import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../../src/compile/build.js';
import { startLiteLLM } from '../../src/litellm/process.js';
import { trafficClient } from './traffic.js';
import { providerEnv, type Keys } from './stack.js';

/**
 * How long a LiteLLM cold start takes on this machine right now, on the policies given (they must
 * have a `fast` profile): spawn → readiness (`readyMs`), and then its first chat answer
 * (`firstAnswerMs`, which a fresh LiteLLM spends seconds on under load). The yardstick for every
 * wait in the supervision tests, instead of a fixed timeout that a loaded machine overruns.
 */
export async function measureColdStart(
  policies: string,
  keys: Keys,
): Promise<{ readyMs: number; firstAnswerMs: number; ms: number }> {
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
    const readyMs = Date.now() - started;
    const asked = Date.now();
    await trafficClient(litellm.url, keys.master).chat.completions.create({
      model: 'fast',
      messages: [{ role: 'user', content: 'hi' }],
    });
    const firstAnswerMs = Date.now() - asked;
    await litellm.stop();
    return { readyMs, firstAnswerMs, ms: readyMs + firstAnswerMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

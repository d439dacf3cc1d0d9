import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { providerEnv, UNSET_KEY_PLACEHOLDER } from '../../src/reload/make-strategy.js';
import { PassThrough } from 'node:stream';
import { testKey } from '../helpers/secrets.js';

/** What LiteLLM's environment receives from the config it is about to load. */
describe('providerEnv', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-provider-env-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("passes the provider keys a config names and never the controller's own secrets", async () => {
    const configFile = path.join(dir, 'config.yaml');
    // A config validation never saw (an old commit, a hand edit): it names the admin tokens.
    await writeFile(
      configFile,
      [
        'model_list:',
        '  - model_name: a',
        '    litellm_params:',
        '      model: openai/gpt-4o',
        '      api_key: os.environ/OPENAI_API_KEY',
        '      api_base: https://example.test/v1',
        '  - model_name: b',
        '    litellm_params:',
        '      model: openai/gpt-4o',
        '      api_key: os.environ/MODELCENTER_ADMIN_TOKENS',
        '',
      ].join('\n'),
    );
    const logs = new PassThrough();
    let logText = '';
    logs.on('data', (chunk: Buffer) => (logText += chunk.toString('utf8')));
    const log = createLogger({ destination: logs, level: 'info' });
    const openaiKey = testKey();
    const adminToken = testKey('mc-');
    const env = providerEnv(
      configFile,
      { OPENAI_API_KEY: openaiKey, MODELCENTER_ADMIN_TOKENS: adminToken },
      log,
    )();
    // Deployment b's key variable is withheld: it gets a placeholder, so LiteLLM does not fall
    // back to OPENAI_API_KEY for it (test/integration/unset-key-fallback.test.ts).
    expect(env).toEqual({
      OPENAI_API_KEY: openaiKey,
      MODELCENTER_ADMIN_TOKENS: UNSET_KEY_PLACEHOLDER,
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(logText).toContain('MODELCENTER_ADMIN_TOKENS');
    expect(logText).not.toContain(adminToken);
  });
});

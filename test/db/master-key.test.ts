import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { LiteLLMKeyClient } from '../../src/keys/key-client.js';
import { MasterKeyRotationError, rotateMasterKeyInDatabase } from '../../src/keys/master-key-db.js';
import { LiteLLMAdminClient } from '../../src/litellm/admin-client.js';
import type { RunningLiteLLM } from '../../src/litellm/process.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, startInstance, type DbStack } from '../helpers/litellm-db.js';
import { testKey } from '../helpers/secrets.js';
import { coldStartMs, scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(240_000) });

/**
 * The master key of a real database-mode LiteLLM: `/key/regenerate` with `new_master_key`, then the
 * reload (the instance restarted with the new key); the old value keeps working for requests until
 * the grace period ends. A model stored in the database with its credential (encrypted by LiteLLM)
 * must still answer afterwards.
 */
describe('master key rotation in database mode', () => {
  const oldMaster = testKey('sk-master-');
  const newMaster = testKey('sk-master-');
  const salt = testKey('salt-');
  const openaiKey = testKey();
  let upstream: FakeUpstream;
  let stack: DbStack;
  let current: RunningLiteLLM;

  const chat = (key: string) =>
    new OpenAI({ baseURL: `${current.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions
      .create({ model: 'stored', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => 200,
        (error: { status?: number }) => error.status ?? 0,
      );

  beforeAll(async () => {
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey: oldMaster,
      env: { LITELLM_SALT_KEY: salt },
    });
    current = stack.instances[0]!;
    // The credential is stored in LiteLLM's database, encrypted: the rotation must keep it readable.
    await new LiteLLMAdminClient(current.url, oldMaster, 60_000).createModel({
      model_name: 'stored',
      litellm_params: {
        model: 'openai/gpt-4o-mini',
        api_base: `${upstream.url}/v1`,
        api_key: openaiKey,
      },
      model_info: { id: 'stored-1' },
    });
    expect(await chat(oldMaster)).toBe(200);
  });
  afterAll(async () => {
    await current?.stop();
    await stack?.stop();
    await upstream?.close();
  });

  it('refuses without LITELLM_SALT_KEY and changes nothing', async () => {
    const failure = await rotateMasterKeyInDatabase({
      client: new LiteLLMKeyClient(current.url, oldMaster, 60_000),
      currentMaster: oldMaster,
      newMaster,
      graceSeconds: 10,
      litellmEnv: {},
      reload: () => Promise.reject(new Error('no reload may happen')),
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MasterKeyRotationError);
    expect((failure as Error).message).toMatch(/LITELLM_SALT_KEY is not set.*nothing was changed/);
    expect((failure as Error).message).not.toContain(oldMaster);
    expect(await chat(oldMaster)).toBe(200);
    expect(await chat(newMaster)).toBe(401);
  });

  it('the new key works at once after the reload, the stored credential still decrypts, the old key works until the grace period ends and is refused after', async () => {
    // Long enough to outlast the reload (a database-mode start, a few cold starts here).
    const graceSeconds = Math.round((4 * coldStartMs()) / 1000) + 15;
    let reloadedAt = 0;
    const result = await rotateMasterKeyInDatabase({
      client: new LiteLLMKeyClient(current.url, oldMaster, 60_000),
      currentMaster: oldMaster,
      newMaster,
      graceSeconds,
      litellmEnv: { LITELLM_SALT_KEY: salt },
      reload: async (master) => {
        await current.stop();
        current = await startInstance({
          context: inject('litellmDb'),
          database: stack.database,
          masterKey: master,
          env: { LITELLM_SALT_KEY: salt },
        });
        reloadedAt = Date.now();
      },
    });
    expect(result.newFingerprint).not.toBe(result.oldFingerprint);
    expect(await chat(newMaster)).toBe(200);
    // Admin routes take the new master key.
    await expect(
      new LiteLLMKeyClient(current.url, newMaster, 60_000).tokensWithAlias('x'),
    ).resolves.toEqual([]);
    // The upstream got the stored credential, decrypted after the re-encryption.
    expect(upstream.generations().at(-1)?.outcome).toBe(200);
    // Clients that switch late: the old value still answers within the grace period.
    expect(Date.now() - reloadedAt).toBeLessThan(graceSeconds * 1000);
    expect(await chat(oldMaster)).toBe(200);
    await vi.waitFor(
      async () => {
        expect(await chat(oldMaster)).toBe(401);
      },
      { timeout: scaled(60_000) + graceSeconds * 1000, interval: 1000 },
    );
    expect(Date.parse(result.graceUntil)).toBeLessThanOrEqual(Date.now());
    expect(await chat(newMaster)).toBe(200);
  });
});

/**
 * Why the rotation above never calls `/key/regenerate` with `new_master_key` when a salt key is set:
 * LiteLLM 1.106.12 then re-encrypts the stored rows with the new master key but decrypts them with
 * the salt key, and the stored model is gone after the restart. If this test fails, LiteLLM fixed
 * it, and the rotation may use regenerate again.
 */
describe('LiteLLM: /key/regenerate with new_master_key while LITELLM_SALT_KEY is set', () => {
  it('leaves the stored model unreadable after the restart with the new master key', async () => {
    const oldMaster = testKey('sk-master-');
    const newMaster = testKey('sk-master-');
    const salt = testKey('salt-');
    const openaiKey = testKey();
    const upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    const stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey: oldMaster,
      env: { LITELLM_SALT_KEY: salt },
    });
    let restarted: RunningLiteLLM | undefined;
    try {
      const url = stack.urls[0]!;
      await new LiteLLMAdminClient(url, oldMaster, 60_000).createModel({
        model_name: 'stored',
        litellm_params: {
          model: 'openai/gpt-4o-mini',
          api_base: `${upstream.url}/v1`,
          api_key: openaiKey,
        },
        model_info: { id: 'stored-1' },
      });
      await new LiteLLMKeyClient(url, oldMaster, 60_000).regenerateMaster(oldMaster, newMaster);
      await stack.stop();
      restarted = await startInstance({
        context: inject('litellmDb'),
        database: stack.database,
        masterKey: newMaster,
        env: { LITELLM_SALT_KEY: salt },
      });
      const served = await new LiteLLMAdminClient(restarted.url, newMaster, 60_000).inventory();
      expect(served.map((d) => d.id)).not.toContain('stored-1');
    } finally {
      await restarted?.stop();
      await stack.stop();
      await upstream.close();
    }
  });
});

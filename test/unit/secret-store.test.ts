import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import {
  LocalSecretStore,
  SECRET_KEY_ENV,
  SECRET_STORE_FILE,
} from '../../src/secrets/local-store.js';
import { resolveCredential, storedCredentialEnv } from '../../src/secrets/references.js';
import { SecretStoreError } from '../../src/secrets/store.js';
import { testKey } from '../helpers/secrets.js';

const log = createLogger({ level: 'silent' });
let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'modelcenter-secrets-'));
});
afterEach(() => rm(stateDir, { recursive: true, force: true }));

describe('the local secret store', () => {
  it('keeps values encrypted in a 0600 file, current and previous with its expiry, across reopen', async () => {
    const key = testKey('');
    const env = { [SECRET_KEY_ENV]: key.slice(0, 64) };
    const store = await LocalSecretStore.open({ stateDir, env, log });
    const first = testKey();
    const second = testKey();
    await store.put('secret:openai-prod', first);
    const until = new Date(Date.now() + 3_600_000);
    await store.put('secret:openai-prod', second, { keepPreviousUntil: until });

    const file = path.join(stateDir, SECRET_STORE_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const raw = await readFile(file, 'utf8');
    expect(raw).not.toContain(first);
    expect(raw).not.toContain(second);
    expect(raw).not.toContain('openai-prod');

    const reopened = await LocalSecretStore.open({ stateDir, env, log });
    expect(reopened.peek('secret:openai-prod')).toMatchObject({
      current: { value: second },
      previous: { value: first, expiresAt: until.toISOString() },
    });
    await reopened.restorePrevious('secret:openai-prod');
    expect(reopened.peek('secret:openai-prod')?.current.value).toBe(first);
    expect(reopened.peek('secret:openai-prod')?.previous).toBeUndefined();
  });

  it('without a grace period the old value is gone at once', async () => {
    const store = await LocalSecretStore.open({ stateDir, env: {}, log });
    await store.put('env:GROQ_API_KEY', testKey());
    const now = testKey();
    await store.put('env:GROQ_API_KEY', now);
    const stored = store.peek('env:GROQ_API_KEY');
    expect(stored?.current.value).toBe(now);
    expect(stored?.previous).toBeUndefined();
    await expect(store.restorePrevious('env:GROQ_API_KEY')).rejects.toThrow(/no previous value/);
  });

  it('generates its key into the state directory (0600) when MODELCENTER_SECRET_KEY is unset', async () => {
    const store = await LocalSecretStore.open({ stateDir, env: {}, log });
    const value = testKey();
    await store.put('secret:x1', value);
    expect((await stat(path.join(stateDir, 'secret-key'))).mode & 0o777).toBe(0o600);
    const again = await LocalSecretStore.open({ stateDir, env: {}, log });
    expect(again.peek('secret:x1')?.current.value).toBe(value);
  });

  it('a wrong key is refused with what to check, and never yields garbage', async () => {
    const store = await LocalSecretStore.open({
      stateDir,
      env: { [SECRET_KEY_ENV]: 'a passphrase long enough' },
      log,
    });
    await store.put('secret:x1', testKey());
    await expect(
      LocalSecretStore.open({
        stateDir,
        env: { [SECRET_KEY_ENV]: 'another long passphrase' },
        log,
      }),
    ).rejects.toThrow(/cannot decrypt .*MODELCENTER_SECRET_KEY/);
  });

  it('refuses bad names and values with line breaks', async () => {
    const store = await LocalSecretStore.open({ stateDir, env: {}, log });
    await expect(store.put('../etc', testKey())).rejects.toThrow(SecretStoreError);
    await expect(store.put('secret:ok', `${testKey()}\n`)).rejects.toThrow(/line break/);
  });
});

describe('credential references', () => {
  it('a rotated env: credential takes precedence over the environment; secret: comes from the store', async () => {
    const store = await LocalSecretStore.open({ stateDir, env: {}, log });
    const fromEnv = testKey();
    const rotated = testKey();
    const env = { OPENAI_API_KEY: fromEnv };
    expect(resolveCredential('env:OPENAI_API_KEY', env, store)).toMatchObject({
      source: 'env',
      value: fromEnv,
      overridesEnv: false,
    });
    await store.put('env:OPENAI_API_KEY', rotated);
    expect(resolveCredential('env:OPENAI_API_KEY', env, store)).toMatchObject({
      source: 'store',
      value: rotated,
      overridesEnv: true,
    });
    expect(resolveCredential('secret:gpu-box', env, store)).toMatchObject({
      source: 'missing',
      variable: 'MODELCENTER_SECRET_GPU_BOX',
    });
    const box = testKey();
    await store.put('secret:gpu-box', box);
    expect(storedCredentialEnv(store)).toEqual({
      OPENAI_API_KEY: rotated,
      MODELCENTER_SECRET_GPU_BOX: box,
    });
  });
});

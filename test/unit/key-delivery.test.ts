import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deliverKey, readDeliveryOnce } from '../../src/keys/delivery.js';
import { createLogger } from '../../src/log/logger.js';
import { LocalSecretStore } from '../../src/secrets/local-store.js';
import { git } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';

const log = createLogger({ level: 'silent' });

describe('delivering a new key to a file', () => {
  let repo: string;
  let outside: string;
  let policies: string;

  beforeEach(async () => {
    repo = await mkdtemp(path.join(tmpdir(), 'mc-delivery-repo-'));
    outside = await mkdtemp(path.join(tmpdir(), 'mc-delivery-out-'));
    policies = path.join(repo, 'policies');
    await mkdir(policies);
    git(repo, 'init', '-q');
  });
  afterEach(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  const deliver = async (file: string) => {
    const store = await LocalSecretStore.open({
      stateDir: path.join(repo, '.modelcenter'),
      env: {},
      log,
    });
    const value = testKey();
    const result = await deliverKey({
      subject: 'master-key',
      value,
      rotationId: 'rot_test',
      delivery: { file },
      store,
      baseDir: policies,
      mask: (text) => text.replaceAll(value, '****'),
    });
    return { result, value, store };
  };

  it('refuses a file git would commit (a relative path lands in policies/), and still offers the one API read', async () => {
    const { result, value, store } = await deliver('master.key');
    expect(result.channels).toEqual(['api-read']);
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]).toMatch(/inside the repository .* could be committed/);
    expect(result.failed[0]).not.toContain(value);
    await expect(stat(path.join(policies, 'master.key'))).rejects.toThrow(/ENOENT/);
    expect(await readDeliveryOnce(store, 'master-key')).toBe(value);
  });

  it('writes a file the repository ignores, or one outside it, with mode 0600', async () => {
    await writeFile(path.join(repo, '.gitignore'), '*.key\n');
    const ignored = await deliver('master.key');
    expect(ignored.result.failed).toEqual([]);
    const inRepo = path.join(policies, 'master.key');
    expect(ignored.result.channels).toEqual([`file:${inRepo}`, 'api-read']);
    expect((await readFile(inRepo, 'utf8')).trim()).toBe(ignored.value);

    const elsewhere = path.join(outside, 'master.key');
    const written = await deliver(elsewhere);
    expect(written.result.channels).toEqual([`file:${elsewhere}`, 'api-read']);
    expect((await stat(elsewhere)).mode & 0o777).toBe(0o600);
  });
});

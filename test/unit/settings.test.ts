import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings, SettingsError } from '../../src/settings/settings.js';
import { testKey } from '../helpers/secrets.js';

describe('settings: defaults, settings file, environment; every bad value named', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-settings-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const problems = async (env: NodeJS.ProcessEnv): Promise<string[]> => {
    try {
      await loadSettings(env, dir);
    } catch (error) {
      if (error instanceof SettingsError) return error.problems;
      throw error;
    }
    return [];
  };

  it('defaults resolve against the working directory', async () => {
    const settings = await loadSettings({ MODELCENTER_NGINX: path.join(dir, 'no-nginx') }, dir);
    expect(settings).toMatchObject({
      policies: path.join(dir, 'policies'),
      configFile: path.join(dir, 'litellm', 'config.yaml'),
      strategy: 'restart',
      litellmPort: 4000,
      apiHost: '127.0.0.1',
      apiPort: 4100,
      schedules: { 'drift-check': '*/5 * * * *' },
    });
  });

  it('blue-green is the default wherever nginx is present, else restart; the reason says which and why', async () => {
    const nginx = path.join(dir, 'nginx');
    await writeFile(nginx, '#!/bin/sh\n', { mode: 0o755 });
    const withNginx = await loadSettings({ MODELCENTER_NGINX: nginx }, dir);
    expect(withNginx.strategy).toBe('blue-green');
    expect(withNginx.strategyReason).toContain(nginx);
    const without = await loadSettings({ MODELCENTER_NGINX: path.join(dir, 'no-nginx') }, dir);
    expect(without.strategy).toBe('restart');
    expect(without.strategyReason).toMatch(/nginx was not found/);
    const chosen = await loadSettings(
      { MODELCENTER_NGINX: nginx, MODELCENTER_RELOAD_STRATEGY: 'restart' },
      dir,
    );
    expect(chosen).toMatchObject({
      strategy: 'restart',
      strategyReason: 'set by MODELCENTER_RELOAD_STRATEGY',
    });
  });

  it('supervision limits: defaults, set from the environment, a bad value named with its variable', async () => {
    const env = { MODELCENTER_NGINX: path.join(dir, 'no-nginx') };
    expect(await loadSettings(env, dir)).toMatchObject({
      supervisionProbeSeconds: 3,
      supervisionReadinessFailures: 5,
      supervisionMaxRestarts: 5,
      supervisionWindowSeconds: 300,
    });
    const set = await loadSettings(
      {
        ...env,
        MODELCENTER_SUPERVISION_MAX_RESTARTS: '10',
        MODELCENTER_SUPERVISION_WINDOW_SECONDS: '600',
      },
      dir,
    );
    expect(set).toMatchObject({ supervisionMaxRestarts: 10, supervisionWindowSeconds: 600 });
    const bad = await problems({ ...env, MODELCENTER_SUPERVISION_MAX_RESTARTS: '0' });
    expect(bad.join('\n')).toMatch(/MODELCENTER_SUPERVISION_MAX_RESTARTS.*at least 1/);
  });

  it('the environment overrides the file, which overrides the defaults', async () => {
    const file = path.join(dir, 'modelcenter.yaml');
    await writeFile(
      file,
      'strategy: blue-green\napiPort: 5000\nschedules:\n  drift-check: "0 * * * *"\n',
    );
    const settings = await loadSettings(
      {
        MODELCENTER_SETTINGS: file,
        MODELCENTER_API_PORT: '5001',
        MODELCENTER_ADMIN_TOKENS: 'a-token-1, a-token-2',
      },
      dir,
    );
    expect(settings.strategy).toBe('blue-green');
    expect(settings.apiPort).toBe(5001);
    expect(settings.adminTokens).toEqual(['a-token-1', 'a-token-2']);
    expect(settings.schedules['drift-check']).toBe('0 * * * *');
  });

  it('reports every bad value at once, each with its variable and the fix', async () => {
    const found = await problems({
      MODELCENTER_RELOAD_STRATEGY: 'hot-swap',
      MODELCENTER_API_PORT: 'eighty',
      MODELCENTER_WATCH: 'maybe',
      MODELCENTER_SCHEDULE_DRIFT_CHECK: 'every five minutes',
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'MODELCENTER_RELOAD_STRATEGY: must be restart, blue-green or admin-api',
        expect.stringMatching(/^MODELCENTER_API_PORT: /),
        expect.stringMatching(/^MODELCENTER_WATCH: /),
      ]),
    );
    expect(found).toHaveLength(3); // the cron check runs once the rest parses
    expect(await problems({ MODELCENTER_SCHEDULE_DRIFT_CHECK: 'every five minutes' })).toEqual([
      expect.stringMatching(/^MODELCENTER_SCHEDULE_DRIFT_CHECK .*: .*5 fields/),
    ]);
  });

  it('tokens never come from the settings file, and admin-api needs its instances', async () => {
    const file = path.join(dir, 'tokens.yaml');
    await writeFile(
      file,
      'adminTokens: [oops-a-secret-in-a-file]\nstrategy: admin-api\nbogus: 1\n',
    );
    const found = await problems({ MODELCENTER_SETTINGS: file });
    expect(found.join('\n')).toContain(
      'adminTokens holds secrets and is read from the environment only — set MODELCENTER_ADMIN_TOKENS',
    );
    expect(found.join('\n')).not.toContain('oops-a-secret-in-a-file');
    expect(found.join('\n')).toContain('unknown setting bogus');
    expect(await problems({ MODELCENTER_RELOAD_STRATEGY: 'admin-api' })).toEqual([
      expect.stringContaining('MODELCENTER_LITELLM_URLS: the admin-api strategy needs'),
      expect.stringContaining(
        'LITELLM_MASTER_KEY: set it to the master key of the LiteLLM instances',
      ),
    ]);
    expect(
      await problems({
        MODELCENTER_RELOAD_STRATEGY: 'admin-api',
        MODELCENTER_LITELLM_URLS: 'http://llm-1:4000',
        LITELLM_MASTER_KEY: testKey(),
      }),
    ).toEqual([]);
  });
});

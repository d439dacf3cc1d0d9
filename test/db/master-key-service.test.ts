import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { freePort, type RunningLiteLLM } from '../../src/litellm/process.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, startInstance, type DbStack } from '../helpers/litellm-db.js';
import { policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { coldStartMs, scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000) });

/**
 * `modelcenter keys rotate-master` through the service in database mode (admin-api strategy on a
 * real database-mode LiteLLM that Model Center does not start): refused without LITELLM_SALT_KEY;
 * with it, the old key becomes a virtual key that expires with the grace, the restart command
 * restarts the instance with the new key, which works at once; the old one until the grace ends.
 */
describe('master key rotation through the service (database mode)', () => {
  const oldMaster = testKey('sk-master-');
  const salt = testKey('salt-');
  const openaiKey = testKey();
  const admin = testKey('mc-admin-');
  let upstream: FakeUpstream;
  let stack: DbStack;
  let instance: RunningLiteLLM;
  let repo: string;
  let dir: string;
  let serving: ServingInProcess | undefined;
  let api: string;
  let restarts = 0;
  let watching = true;
  let watcher: Promise<void> | undefined;

  const chat = (key: string) =>
    new OpenAI({ baseURL: `${instance.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions
      .create({ model: 'gpt-mini', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => 200,
        (error: { status?: number }) => error.status ?? 0,
      );
  const serve = async (env: Record<string, string>) => {
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    serving = serveInProcess(repo, {
      LITELLM_MASTER_KEY: oldMaster,
      OPENAI_API_KEY: openaiKey,
      MODELCENTER_RELOAD_STRATEGY: 'admin-api',
      MODELCENTER_LITELLM_URLS: instance.url,
      MODELCENTER_API_PORT: String(apiPort),
      MODELCENTER_ADMIN_TOKENS: admin,
      MODELCENTER_KEYS_TICK_SECONDS: '1',
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      ...env,
    });
    await serving.started();
  };
  const stopServing = async () => {
    serving?.stop();
    await serving?.exit;
    serving = undefined;
  };
  const cli = async (args: string[]) => {
    let out = '';
    const code = await runCli(
      args,
      { stdout: (t) => (out += t), stderr: (t) => (out += t), cwd: repo },
      { MODELCENTER_URL: api, MODELCENTER_TOKEN: admin },
    );
    return { code, out };
  };

  beforeAll(async () => {
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey: oldMaster,
      env: { LITELLM_SALT_KEY: salt },
    });
    instance = stack.instances[0]!;
    repo = await policyRepo(`
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    base_url: ${upstream.url}/v1
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat] }
`);
    dir = await mkdtemp(path.join(tmpdir(), 'mc-master-db-'));
    // The restart command hands the new key to this test (as systemd or kubectl would get it from
    // the environment), which restarts the instance on the same port and database.
    const request = path.join(dir, 'restart-request');
    const done = path.join(dir, 'restarted');
    await writeFile(
      path.join(dir, 'restart.sh'),
      `#!/bin/sh\nrm -f "${done}"\nprintf '%s' "$LITELLM_MASTER_KEY" > "${request}.tmp" && mv "${request}.tmp" "${request}"\nwhile [ ! -e "${done}" ]; do sleep 0.2; done\n`,
      { mode: 0o700 },
    );
    watcher = (async () => {
      while (watching) {
        if (existsSync(request)) {
          const master = await readFile(request, 'utf8');
          await rm(request);
          const port = instance.port;
          await instance.stop();
          instance = await startInstance({
            context: inject('litellmDb'),
            database: stack.database,
            masterKey: master,
            port,
            env: { LITELLM_SALT_KEY: salt },
          });
          restarts += 1;
          await writeFile(done, '');
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  });
  afterAll(async () => {
    watching = false;
    await watcher;
    await stopServing();
    await instance?.stop();
    await upstream?.close();
    if (repo) await rm(repo, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refused without LITELLM_SALT_KEY: nothing changes, the old key still works', async () => {
    await serve({ MODELCENTER_RESTART_COMMAND: `sh ${path.join(dir, 'restart.sh')}` });
    try {
      await until(async () => ((await chat(oldMaster)) === 200 ? true : undefined));
      const { code, out } = await cli(['keys', 'rotate-master', '--grace', '5m']);
      expect(code).not.toBe(0);
      expect(out).toMatch(/LITELLM_SALT_KEY is not set/);
      expect(out).toMatch(/nothing was changed/);
      expect(restarts).toBe(0);
      expect(await chat(oldMaster)).toBe(200);
      expect(out.includes(oldMaster)).toBe(false);
    } finally {
      await stopServing();
    }
  });

  it('with the salt key: the new key works at once, the old one until the grace ends, refused after', async () => {
    await serve({
      LITELLM_SALT_KEY: salt,
      MODELCENTER_RESTART_COMMAND: `sh ${path.join(dir, 'restart.sh')}`,
    });
    const graceSeconds = Math.round((2 * coldStartMs()) / 1000) + 20;
    const rotated = await cli(['keys', 'rotate-master', '--grace', `${graceSeconds}s`]);
    expect(rotated.code, rotated.out).toBe(0);
    expect(rotated.out).toMatch(/rotated the master key: [0-9a-f]{12} → [0-9a-f]{12}/);
    const rotatedAt = Date.now();
    expect(restarts).toBe(1);
    const read = await cli(['keys', 'read-master']);
    expect(read.code).toBe(0);
    const newMaster = read.out.trim();
    expect(newMaster).toMatch(/^sk-/);
    expect(newMaster).not.toBe(oldMaster);
    expect(await chat(newMaster)).toBe(200);
    expect(Date.now() - rotatedAt).toBeLessThan(graceSeconds * 1000);
    expect(await chat(oldMaster)).toBe(200);
    await vi.waitFor(
      async () => {
        expect(await chat(oldMaster)).toBe(401);
      },
      { timeout: scaled(60_000) + graceSeconds * 1000, interval: 1000 },
    );
    expect(await chat(newMaster)).toBe(200);
    const logs = (serving?.logs() ?? '') + (serving?.stderr() ?? '');
    for (const value of [oldMaster, newMaster, salt])
      expect(logs.includes(value), 'a log holds a key value').toBe(false);
  });
});

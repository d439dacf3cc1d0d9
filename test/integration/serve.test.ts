import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { freePort } from '../../src/litellm/process.js';
import { findNginx } from '../../src/reload/default-strategy.js';
import { FIXTURES } from '../helpers/policies.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until } from '../helpers/serve.js';
import { scaled } from '../helpers/timing.js';

// Each test starts serve, LiteLLM and applies several times.
vi.setConfig({ testTimeout: scaled(240_000) });

describe('modelcenter serve (the main job)', () => {
  let repo: string;
  let fakes: Fakes;
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  const readToken = testKey('mc-read-');

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
  });
  afterAll(async () => {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('serves the policies, applies a new policy commit by itself and through the API and CLI, logs no secret, stops cleanly', async () => {
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: adminToken, read: readToken },
      { MODELCENTER_POLL_SECONDS: '0.3' },
    );
    const service = serveInProcess(repo, env);
    const api = `http://127.0.0.1:${apiPort}`;
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    const answer = await until(async () =>
      (await fetch(`${api}/healthz`)).ok
        ? ((
            await client.chat.completions.create({
              model: 'fast',
              messages: [{ role: 'user', content: 'hi' }],
            })
          ).choices[0]?.message.content ?? undefined)
        : undefined,
    );
    expect(answer).toContain('reply from ollama-fake');
    expect(git(repo, 'log', '-1', '--format=%s', '--', 'litellm/config.yaml')).toMatch(
      /^modelcenter: render config/,
    );

    // A policy commit goes live by itself (the commit trigger).
    await commitPolicies(
      repo,
      scenarioPolicies(fakes).replace(
        '  embed:\n    requires: [embedding]\n',
        '  embed:\n    requires: [embedding]\n  cheap:\n    requires: [chat]\n    prefer: [cost]\n',
      ),
      'policies: add profile cheap',
    );
    const cheap = await until(
      async () =>
        (
          await client.chat.completions.create({
            model: 'cheap',
            messages: [{ role: 'user', content: 'hi' }],
          })
        ).choices[0]?.message.content ?? undefined,
    );
    expect(cheap).toMatch(/reply from/);

    // The API: status for a read token; apply refused for it, accepted for admin, same verified state.
    const status = (await (
      await fetch(`${api}/v1/status`, { headers: { authorization: `Bearer ${readToken}` } })
    ).json()) as {
      lastKnownGood: string;
      instances: { ready: boolean; missing: string[] }[];
    };
    expect(status.instances).toEqual([expect.objectContaining({ ready: true, missing: [] })]);
    const lkg = git(repo, 'rev-parse', 'refs/modelcenter/last-known-good');
    expect(status.lastKnownGood).toBe(lkg);
    const refused = await fetch(`${api}/v1/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readToken}` },
    });
    expect(refused.status).toBe(403);

    await commitPolicies(
      repo,
      scenarioPolicies(fakes).replace(
        'profiles:',
        '  gpt-big:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    context_window: 128000\n\nprofiles:',
      ),
      'policies: add gpt-big',
    );
    let out = '';
    const code = await runCli(
      ['apply'],
      { stdout: (t) => (out += t), stderr: (t) => (out += t), cwd: repo },
      {
        MODELCENTER_URL: api,
        MODELCENTER_TOKEN: adminToken,
      },
    );
    // The commit trigger may have applied it first; either way the CLI answer is the verified state.
    expect(code).toBe(0);
    expect(out).toMatch(/^apply: (applied|unchanged) [0-9a-f]{12}/);
    const viaApi = (await (
      await fetch(`${api}/v1/apply`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}` },
      })
    ).json()) as { outcome: string; commit: string; lastKnownGood: string };
    expect(viaApi.outcome).toBe('unchanged');
    expect(viaApi.lastKnownGood).toBe(git(repo, 'rev-parse', 'refs/modelcenter/last-known-good'));
    expect(viaApi.commit).toBe(git(repo, 'log', '-1', '--format=%H', '--', 'litellm/config.yaml'));
    const served = await (
      await fetch(`http://127.0.0.1:${port}/v1/models`, {
        headers: { authorization: `Bearer ${keys.master}` },
      })
    ).json();
    expect(JSON.stringify(served)).toContain('gpt-big');

    // Metrics and jobs, for a read token.
    const metrics = await (
      await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${readToken}` } })
    ).text();
    expect(metrics).toMatch(/modelcenter_applies_total\{outcome="applied"\} [1-9]/);
    expect(metrics).toMatch(
      /modelcenter_http_requests_total\{method="POST",route="\/v1\/apply",status="403"\} 1/,
    );
    expect(metrics).toContain('modelcenter_reload_strategy_info{strategy="blue-green"} 1');
    const jobs = (await (
      await fetch(`${api}/v1/jobs`, { headers: { authorization: `Bearer ${readToken}` } })
    ).json()) as { jobs: { name: string }[] };
    expect(jobs.jobs.map((j) => j.name)).toEqual(['drift-check', 'key-rotation', 'model-sync']);
    const ran = await fetch(`${api}/v1/jobs/drift-check/run`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(ran.status).toBe(200);
    expect(
      await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${readToken}` } }).then(
        (r) => r.text(),
      ),
    ).toContain('modelcenter_drift{kind="live-models"} 0');

    service.stop();
    expect(await service.exit).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/health/readiness`)).rejects.toThrow();
    await expect(fetch(`${api}/healthz`)).rejects.toThrow();

    // Logs: JSON lines that name what happened, with no secret value anywhere.
    const logs = service.logs();
    expect(logs).toMatch(/"subsystem":"apply".*"outcome":"applied"/);
    expect(logs).toMatch(/"route":"\/v1\/apply","status":403/);
    for (const secret of [
      keys.master,
      keys.groq,
      keys.openai,
      keys.anthropic,
      adminToken,
      readToken,
    ]) {
      expect(logs).not.toContain(secret);
      expect(service.stderr()).not.toContain(secret);
    }
    // The banner says which reload strategy runs and why: blue-green wherever nginx is.
    expect(service.stderr()).toMatch(
      findNginx(env)
        ? /reload strategy blue-green \(the default wherever nginx is present/
        : /reload strategy restart \(/,
    );
  });

  it('SIGTERM during an apply: the apply finishes, git, last-known-good and the journal agree, LiteLLM is stopped', async () => {
    const port = await freePort();
    const apiPort = await freePort();
    const tsx = path.join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');
    const cli = path.join(import.meta.dirname, '..', '..', 'src', 'cli', 'index.ts');
    const child = spawn(tsx, [cli, 'serve'], {
      cwd: repo,
      env: {
        ...process.env,
        LITELLM_MASTER_KEY: keys.master,
        ...providerEnv(keys),
        MODELCENTER_LITELLM_PORT: String(port),
        MODELCENTER_API_PORT: String(apiPort),
        MODELCENTER_ADMIN_TOKENS: adminToken,
        MODELCENTER_POLL_SECONDS: '3600', // only the API applies here
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    const api = `http://127.0.0.1:${apiPort}`;
    await until(async () => ((await fetch(`${api}/healthz`)).ok ? true : undefined));

    await commitPolicies(
      repo,
      scenarioPolicies(fakes).replace(
        'profiles:',
        '  gpt-sigterm:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat]\n    context_window: 128000\n\nprofiles:',
      ),
      'policies: add gpt-sigterm',
    );
    const applying = fetch(`${api}/v1/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
    }).then(
      (r) => r.status,
      () => 'no answer',
    );
    const journal = path.join(repo, '.modelcenter', 'apply-journal.json');
    await until(
      async () => ((await readFile(journal, 'utf8')).includes('reloading') ? true : undefined),
      30_000,
    );
    child.kill('SIGTERM'); // mid-apply: LiteLLM is restarting on the new config
    expect(await exited, stderr).toBe(0);
    expect(await applying).toBe(200); // the running apply was finished and answered
    const generated = git(repo, 'log', '-1', '--format=%H', '--', 'litellm/config.yaml');
    expect(git(repo, 'rev-parse', 'refs/modelcenter/last-known-good')).toBe(generated);
    expect(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')).toContain(
      'gpt-sigterm',
    );
    await expect(readFile(journal, 'utf8')).rejects.toThrow(); // nothing left to recover
    await expect(fetch(`http://127.0.0.1:${port}/health/readiness`)).rejects.toThrow();
    expect(git(repo, 'status', '--porcelain', '--', 'litellm')).toBe('');
  });

  it('never starts LiteLLM on invalid policies with nothing committed: exit 1 and the problems', async () => {
    let stderr = '';
    const code = await runCli(
      [
        'serve',
        '--policies',
        path.join(FIXTURES, 'invalid', 'duplicate-across-files'),
        '--config',
        path.join(repo, 'never.yaml'),
      ],
      { stdout: () => undefined, stderr: (t) => (stderr += t), cwd: repo },
      {
        MODELCENTER_API_PORT: String(await freePort()),
        MODELCENTER_LITELLM_PORT: String(await freePort()),
      },
    );
    expect(code).toBe(1);
    expect(stderr).toContain('LiteLLM was not started');
    expect(stderr).toMatch(/duplicate/i);
    await expect(readFile(path.join(repo, 'never.yaml'))).rejects.toThrow();
  });

  it('refuses bad settings before doing anything, naming each variable', async () => {
    let stderr = '';
    const code = await runCli(
      ['serve'],
      { stdout: () => undefined, stderr: (t) => (stderr += t), cwd: repo },
      {
        MODELCENTER_RELOAD_STRATEGY: 'hot-swap',
        MODELCENTER_API_PORT: '99999',
      },
    );
    expect(code).toBe(1);
    expect(stderr).toContain(
      'MODELCENTER_RELOAD_STRATEGY: must be restart, blue-green or admin-api',
    );
    expect(stderr).toContain('MODELCENTER_API_PORT: must be between 1 and 65535');
  });
});

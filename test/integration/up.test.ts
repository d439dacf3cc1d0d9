import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { upCommand } from '../../src/cli/up.js';
import { freePort } from '../../src/litellm/process.js';
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

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('modelcenter up (the main job)', () => {
  let repo: string;
  let fakes: Fakes;
  const keys = newKeys();

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
  });
  afterAll(async () => {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('commits and serves the policies, applies a new policy commit while running, and stops cleanly', async () => {
    const port = await freePort();
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    let stdout = '';
    const running = upCommand(
      {
        policies: path.join(repo, 'policies'),
        configFile: path.join(repo, 'litellm', 'config.yaml'),
        port,
        stateDir: path.join(repo, '.modelcenter'),
        env: {
          LITELLM_MASTER_KEY: keys.master,
          ...providerEnv(keys),
        },
        until: stopped,
        pollMs: 200,
      },
      { stdout: (t) => (stdout += t), stderr: () => undefined, cwd: repo },
    );
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    const answer = await until(
      async () =>
        (
          await client.chat.completions.create({
            model: 'fast',
            messages: [{ role: 'user', content: 'hi' }],
          })
        ).choices[0]?.message.content ?? undefined,
    );
    expect(answer).toContain('reply from ollama-fake');
    expect(stdout).toContain(`serves 10 deployments on http://127.0.0.1:${port}`);
    expect(git(repo, 'log', '-1', '--format=%s', '--', 'litellm/config.yaml')).toMatch(
      /^modelcenter: render config/,
    );
    expect(await readFile(path.join(repo, 'litellm', 'config.yaml'), 'utf8')).toContain(
      'fast/llama-small',
    );

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
    expect(stdout).toMatch(/apply: applied [0-9a-f]{12}\n.*apply: applied [0-9a-f]{12}/s);

    stop();
    expect(await running).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/health/readiness`)).rejects.toThrow();
  });

  it('never starts LiteLLM on invalid policies: exit 1 and the problems', async () => {
    let stderr = '';
    const code = await runCli(
      [
        'up',
        '--policies',
        path.join(FIXTURES, 'invalid', 'duplicate-across-files'),
        '--config',
        path.join(repo, 'never.yaml'),
      ],
      {
        stdout: () => undefined,
        stderr: (t) => (stderr += t),
        cwd: repo,
      },
    );
    expect(code).toBe(1);
    expect(stderr).toContain('LiteLLM was not started');
    await expect(readFile(path.join(repo, 'never.yaml'))).rejects.toThrow();
  });
});

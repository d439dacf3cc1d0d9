import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { upCommand } from '../../src/cli/up.js';
import { freePort } from '../../src/litellm/process.js';
import { FIXTURES } from '../helpers/policies.js';
import { allFakes, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { testKey } from '../helpers/secrets.js';

describe('modelcenter up (the main job)', () => {
  let dir: string;
  let fakes: Fakes;
  const keys = {
    master: testKey('sk-master-'),
    groq: testKey('gsk_'),
    openai: testKey(),
    anthropic: testKey('sk-ant-'),
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-up-'));
    fakes = await startFakes(keys);
  });
  afterAll(async () => {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('renders the policies, serves them on the given port, and stops cleanly', async () => {
    const policies = path.join(dir, 'policies');
    await writeFile(path.join(dir, 'scenario.yaml'), scenarioPolicies(fakes));
    await cp(path.join(dir, 'scenario.yaml'), path.join(policies, 'scenario.yaml'));
    const port = await freePort();
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    let stdout = '';
    const running = upCommand(
      {
        policies,
        configFile: path.join(dir, 'litellm', 'config.yaml'),
        port,
        stateDir: path.join(dir, '.modelcenter'),
        env: {
          LITELLM_MASTER_KEY: keys.master,
          GROQ_API_KEY: keys.groq,
          OPENAI_API_KEY: keys.openai,
          ANTHROPIC_API_KEY: keys.anthropic,
        },
        until,
      },
      { stdout: (t) => (stdout += t), stderr: () => undefined, cwd: dir },
    );
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    let answer = '';
    for (let attempt = 0; attempt < 300 && !answer; attempt++) {
      try {
        const reply = await client.chat.completions.create({
          model: 'fast',
          messages: [{ role: 'user', content: 'hi' }],
        });
        answer = reply.choices[0]?.message.content ?? '';
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(answer).toContain('reply from ollama-fake');
    expect(stdout).toContain(`serves 10 deployments on http://127.0.0.1:${port}`);
    expect(await readFile(path.join(dir, 'litellm', 'config.yaml'), 'utf8')).toContain(
      'fast/llama-small',
    );
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
        path.join(dir, 'never.yaml'),
      ],
      {
        stdout: () => undefined,
        stderr: (t) => (stderr += t),
        cwd: dir,
      },
    );
    expect(code).toBe(1);
    expect(stderr).toContain('LiteLLM was not started');
    await expect(readFile(path.join(dir, 'never.yaml'))).rejects.toThrow();
  });
});

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../../src/litellm/process.js';
import { DEMO_LABEL } from '../../src/demo/upstream.js';
import { descendantsOf } from '../helpers/processes.js';
import { git, GIT_ENV } from '../helpers/repo.js';
import { until } from '../helpers/serve.js';
import { scaled } from '../helpers/timing.js';

// One clone, one `npm start`: LiteLLM starts, a policy commit is applied (a second start).
vi.setConfig({ testTimeout: scaled(420_000), hookTimeout: scaled(60_000) });

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The fenced code block that follows `heading` in the README. */
function blockAfter(readme: string, heading: string, language = 'sh'): string {
  const at = readme.indexOf(heading);
  expect(at, `README has "${heading}"`).toBeGreaterThan(-1);
  const fence = '```' + language + '\n';
  const start = readme.indexOf(fence, at) + fence.length;
  return readme.slice(start, readme.indexOf('```', start));
}

/** The environment of a newcomer's shell: no provider key, no Model Center variable. */
function newcomerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...GIT_ENV };
  for (const name of Object.keys(env)) {
    if (/^(MODELCENTER_|LITELLM_)|_API_KEY$|^GPU_BOX_KEY$/.test(name)) delete env[name];
  }
  return env;
}

/** Whether something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('a newcomer on a fresh clone (README as written, no provider key)', () => {
  let clone: string;
  let npmCache: string;
  let started: ChildProcess | undefined;
  let output = '';
  const env = newcomerEnv();

  beforeAll(async () => {
    clone = path.join(await mkdtemp(path.join(tmpdir(), 'mc-newcomer-')), 'modelcenter');
    npmCache = await mkdtemp(path.join(tmpdir(), 'mc-npm-cache-'));
    // The committed branch HEAD, as `git clone` gives it to a newcomer.
    await run('git', ['clone', '-q', ROOT, clone], { env });
    // `npm install` and LiteLLM's set-up are done once for the whole machine: the clone shares
    // them (litellm/setup.sh finds the venv's stamp matching the lock and returns at once).
    await symlink(
      await realpath(path.join(ROOT, 'node_modules')),
      path.join(clone, 'node_modules'),
    );
    await symlink(
      await realpath(path.join(ROOT, 'litellm', '.venv')),
      path.join(clone, 'litellm', '.venv'),
    );
  });
  afterAll(async () => {
    if (started?.pid && started.exitCode === null) started.kill('SIGKILL');
    await rm(path.dirname(clone), { recursive: true, force: true });
    await rm(npmCache, { recursive: true, force: true });
  });

  /** `npx modelcenter …` in the clone, with nothing but the newcomer's environment. */
  async function npx(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run('npx', ['modelcenter', ...args], {
        cwd: clone,
        env: { ...env, npm_config_cache: npmCache },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it('starts, answers the first request in demo mode, reports it, applies only committed policies, and stops on SIGTERM', async () => {
    const readme = await readFile(path.join(clone, 'README.md'), 'utf8');
    const commands = blockAfter(readme, '### 1. Start it')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    expect(commands).toEqual(['npm install', 'npm start']);
    const main = commands[1]!.split(' ');

    // Ports other helpers do not use (the README's defaults may be taken on a shared machine).
    const litellmPort = await freePort();
    const apiPort = await freePort();
    started = spawn(main[0]!, main.slice(1), {
      cwd: clone,
      env: {
        ...env,
        MODELCENTER_LITELLM_PORT: String(litellmPort),
        MODELCENTER_API_PORT: String(apiPort),
        MODELCENTER_POLL_SECONDS: '0.5',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    started.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => started!.once('exit', resolve));

    // Ready: the service says where it is.
    const service = await Promise.race([
      until(async () => {
        const text = await readFile(path.join(clone, '.modelcenter', 'service.json'), 'utf8');
        const found = JSON.parse(text) as {
          apiUrl: string;
          litellmUrl: string;
          pid: number;
          demoUrl?: string;
        };
        return (await fetch(`${found.apiUrl}/readyz`)).ok ? found : undefined;
      }, 300_000),
      exited.then((code) => {
        throw new Error(`npm start exited with ${code}:\n${output}`);
      }),
    ]);
    expect(service.litellmUrl).toBe(`http://127.0.0.1:${litellmPort}`);
    expect(service.demoUrl, 'demo mode without provider keys').toBeDefined();
    expect(output).toContain('DEMO MODE');
    const masterKey = (
      await readFile(path.join(clone, '.modelcenter', 'master-key'), 'utf8')
    ).trim();

    // The README's first request (curl), against the port this run chose.
    const curl = blockAfter(readme, '### 2. Send the first request')
      .replace(/\\\n\s*/g, '')
      .trim();
    expect(curl).toContain('http://127.0.0.1:4000/v1/chat/completions');
    const body = JSON.parse(/-d '([^']+)'/.exec(curl)![1]!) as { model: string; tags: string[] };
    const goal = body.tags.find((t) => t.startsWith('goal:'))!.slice('goal:'.length);
    const caller = body.tags.find((t) => t.startsWith('caller:'))!.slice('caller:'.length);
    const { stdout: answered } = await run(
      'sh',
      ['-c', curl.replace('127.0.0.1:4000', `127.0.0.1:${litellmPort}`)],
      { cwd: clone, env },
    );
    const completion = JSON.parse(answered) as { choices: { message: { content: string } }[] };
    expect(completion.choices[0]!.message.content.startsWith(DEMO_LABEL)).toBe(true);

    // The same with the openai client, streamed.
    const client = new OpenAI({ baseURL: `${service.litellmUrl}/v1`, apiKey: masterKey });
    // LiteLLM's `tags` are not in the openai client's types; the client sends them as given.
    const request = {
      model: body.model,
      messages: [{ role: 'user' as const, content: 'Say hello' }],
      stream: true as const,
      tags: body.tags,
    };
    const stream = await client.chat.completions.create(request);
    let streamed = '';
    let chunks = 0;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
      chunks++;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(streamed.startsWith(DEMO_LABEL)).toBe(true);

    // The spend report, while it serves, through `npx modelcenter` and no variable at all.
    const report = await until(async () => {
      const r = await npx('spend', 'report', '--group-by', 'goal,caller');
      return r.code === 0 && r.stdout.includes(goal) && r.stdout.includes(caller) ? r : undefined;
    }, 60_000);
    const row = report.stdout.split('\n').find((l) => l.startsWith(goal))!;
    expect(row).toContain(caller);
    expect(row).not.toMatch(/e-\d/); // decimal USD, never 4.2e-05
    const status = await npx('status');
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/demo mode:\s+ON/);
    expect(status.stdout).toContain(`instance ${service.litellmUrl}: ready`);

    // An uncommitted policy edit is reported, not applied.
    const served = async (): Promise<string[]> => {
      const info = (await (
        await fetch(`${service.litellmUrl}/v1/model/info`, {
          headers: { authorization: `Bearer ${masterKey}` },
        })
      ).json()) as { data: { model_name: string }[] };
      return info.data.map((d) => d.model_name);
    };
    await writeFile(
      path.join(clone, 'policies', 'zz-newcomer.yaml'),
      `providers:
  newcomer-box: { kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", local: true }
models:
  newcomer-model: { provider: newcomer-box, capabilities: [chat], context_window: 4096 }
`,
    );
    await until(
      () =>
        Promise.resolve(output.includes('uncommitted policy edits are not applied') || undefined),
      30_000,
    );
    const dirty = JSON.parse((await npx('status', '--format', 'json')).stdout) as {
      policies: { uncommittedEdits: boolean };
    };
    expect(dirty.policies.uncommittedEdits).toBe(true);
    expect(await served()).not.toContain('newcomer-model');

    // Committed, it goes live.
    git(clone, 'add', 'policies/zz-newcomer.yaml');
    git(clone, 'commit', '-q', '-m', 'policies: a newcomer model');
    await until(
      async () => ((await served()).includes('newcomer-model') ? true : undefined),
      240_000,
    );
    await until(async () => {
      const s = JSON.parse((await npx('status', '--format', 'json')).stdout) as {
        lastKnownGoodIsCurrent: boolean;
        policies: { uncommittedEdits: boolean };
      };
      return s.lastKnownGoodIsCurrent && !s.policies.uncommittedEdits ? true : undefined;
    }, 60_000);
    // A rollback to what is live changes nothing and reloads nothing.
    const rollback = await npx('rollback');
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(/^rollback: unchanged/);

    // SIGTERM to the started pid: nothing left running, no port bound, within 10 s.
    const family = descendantsOf(started.pid!).map((p) => p.pid);
    expect(family.length).toBeGreaterThan(1);
    const ports = [litellmPort, apiPort, Number(new URL(service.demoUrl!).port)];
    const signalled = Date.now();
    started.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let left: number[] = [];
    let bound = true;
    while (Date.now() - signalled < 10_000) {
      left = [started.pid!, ...family].filter(alive);
      bound = (await Promise.all(ports.map(listening))).some(Boolean);
      if (left.length === 0 && !bound) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`SIGTERM → no process, no port bound: ${Date.now() - signalled} ms`);
    expect(left, `still running after SIGTERM:\n${output.slice(-3000)}`).toEqual([]);
    expect(bound, 'a port is still bound after SIGTERM').toBe(false);
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(started.exitCode ?? started.signalCode).not.toBeNull();
    await expect(readFile(path.join(clone, '.modelcenter', 'service.json'))).rejects.toThrow();
  });
});

import { execFileSync } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { freePort } from '../../src/litellm/process.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, type DbStack } from '../helpers/litellm-db.js';
import { policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });

/**
 * Virtual keys through the running service (`modelcenter serve` with the admin-api strategy on a
 * real database-mode LiteLLM): the routes, the CLI, the audit trail — and no key value in any
 * answer, log line, git commit or audit event.
 */
describe('virtual keys through the service', () => {
  const masterKey = testKey('sk-master-');
  const openaiKey = testKey();
  const admin = testKey('mc-admin-');
  let upstream: FakeUpstream;
  let stack: DbStack;
  let repo: string;
  let serving: ServingInProcess;
  let api: string;
  const values: string[] = [];
  const answers: string[] = [];

  const call = async (method: 'GET' | 'POST', route: string, body?: unknown) => {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    answers.push(text);
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
  };
  const chatStatus = (key: string) =>
    new OpenAI({ baseURL: `${stack.urls[0]}/v1`, apiKey: key, maxRetries: 0 }).chat.completions
      .create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => 200,
        (error: { status?: number }) => error.status ?? 0,
      );

  beforeAll(async () => {
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey,
      env: { OPENAI_API_KEY: openaiKey },
    });
    repo = await policyRepo(`
providers:
  openai:
    kind: openai
    credential: env:OPENAI_API_KEY
    base_url: ${upstream.url}/v1
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat] }
profiles:
  fast: { requires: [chat] }
callers:
  research-agent:
    profiles: [fast]
    key: { grace: 1h }
`);
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    serving = serveInProcess(repo, {
      LITELLM_MASTER_KEY: masterKey,
      OPENAI_API_KEY: openaiKey,
      MODELCENTER_RELOAD_STRATEGY: 'admin-api',
      MODELCENTER_LITELLM_URLS: stack.urls[0]!,
      MODELCENTER_API_PORT: String(apiPort),
      MODELCENTER_ADMIN_TOKENS: admin,
      MODELCENTER_KEYS_TICK_SECONDS: '1',
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
    });
    await serving.started();
  });
  afterAll(async () => {
    serving?.stop();
    await serving?.exit;
    await stack?.stop();
    await upstream?.close();
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('the service makes the key at start; the owner reads it once through the API; it works', async () => {
    const status = await until(async () => {
      const answer = await call('GET', '/v1/keys/virtual');
      const callers = answer.body.callers as { caller: string; state: string }[] | undefined;
      return callers?.some((c) => c.caller === 'research-agent' && c.state === 'ok')
        ? callers
        : undefined;
    });
    expect(status[0]).toMatchObject({ caller: 'research-agent', state: 'ok' });
    // The keys clients present: this caller sends its own virtual key, not the master key.
    const { fingerprint } = status[0] as unknown as { fingerprint: string };
    const listed = (await call('GET', '/v1/keys')).body.keys as {
      subject: string;
      fingerprint: string;
      sharesMasterKey?: boolean;
    }[];
    expect(listed.find((k) => k.subject === 'caller:research-agent')).toMatchObject({
      fingerprint,
      sharesMasterKey: false,
    });
    const read = await call('POST', '/v1/keys/research-agent/delivery');
    expect(read.status).toBe(200);
    const key = read.body.key as string;
    values.push(key);
    expect(await chatStatus(key)).toBe(200);
    const again = await call('POST', '/v1/keys/research-agent/delivery');
    expect(again.status).toBe(404);
    expect((again.body.error as { message: string }).message).toMatch(/read already/);
  });

  it('modelcenter keys rotate through the service: a new key, the old one still works in grace; a retry with the same id is the same rotation', async () => {
    const old = values[0]!;
    const out: string[] = [];
    const io = {
      stdout: (t: string) => void out.push(t),
      stderr: (t: string) => void out.push(t),
      cwd: repo,
    };
    const env = { MODELCENTER_URL: api, MODELCENTER_TOKEN: admin };
    const id = `rot_test_${Date.now()}`;
    expect(await runCli(['keys', 'rotate', 'research-agent', '--rotation-id', id], io, env)).toBe(
      0,
    );
    expect(out.join('')).toMatch(
      new RegExp(
        `rotation ${id} of research-agent: grace; new key [0-9a-f]{12}, old key [0-9a-f]{12} works until`,
      ),
    );
    expect(await runCli(['keys', 'rotate', 'research-agent', '--rotation-id', id], io, env)).toBe(
      0,
    );
    const rotations = (await readdir(path.join(repo, '.modelcenter', 'keys', 'rotations'))).length;
    expect(rotations).toBe(2); // the creation and this one rotation
    out.length = 0;
    expect(await runCli(['keys', 'read', 'research-agent'], io, env)).toBe(0);
    const fresh = out.join('').trim();
    values.push(fresh);
    expect(fresh).not.toBe(old);
    expect(await chatStatus(fresh)).toBe(200);
    expect(await chatStatus(old)).toBe(200);
  });

  it('an unknown caller: 404 naming what to declare', async () => {
    const answer = await call('POST', '/v1/keys/nobody/rotate', {});
    expect(answer.status).toBe(404);
    expect((answer.body.error as { message: string }).message).toMatch(
      /caller "nobody" has no key in the policies — declare callers.nobody.key/,
    );
  });

  it('the audit trail has every step, with fingerprints; no key value in answers, logs, audit, journal or git', async () => {
    const audit = await call('GET', '/v1/keys/audit?subject=caller:research-agent');
    const events = audit.body.events as { action: string; step: string; fingerprints?: object }[];
    expect(events.map((e) => `${e.action}:${e.step}`)).toEqual(
      expect.arrayContaining([
        'key.create:started',
        'key.create:created',
        'key.delivered:ok',
        'key.rotate:started',
        'key.rotate:created',
      ]),
    );
    const journal = await Promise.all(
      (await readdir(path.join(repo, '.modelcenter', 'keys', 'rotations'))).map((f) =>
        readFile(path.join(repo, '.modelcenter', 'keys', 'rotations', f), 'utf8'),
      ),
    );
    const history = execFileSync('git', ['log', '-p', '--all'], { cwd: repo, encoding: 'utf8' });
    const places = {
      answers: answers.filter((a) => !a.includes('"key":"sk-')).join('\n'),
      logs: serving.logs() + serving.stderr(),
      audit: JSON.stringify(events),
      journal: journal.join('\n'),
      git: history,
    };
    expect(values).toHaveLength(2);
    for (const value of [...values, masterKey, openaiKey])
      for (const [where, text] of Object.entries(places))
        expect(text.includes(value), `${where} holds a key value`).toBe(false);
    // The one API read is the only answer that ever held the first key, exactly once (the second
    // was read through the CLI).
    expect(answers.filter((a) => a.includes(values[0]!))).toHaveLength(1);
  });
});

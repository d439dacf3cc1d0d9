import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { freePort } from '../../src/litellm/process.js';
import { LiteLLMCredentialClient } from '../../src/litellm/credential-client.js';
import { litellmCredentialName, valueMark } from '../../src/reload/admin-credentials.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, type DbStack } from '../helpers/litellm-db.js';
import { policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { scaled } from '../helpers/timing.js';
import { steadyTraffic, trafficClient } from '../helpers/traffic.js';

vi.setConfig({ testTimeout: scaled(180_000) });

/**
 * Provider credential rotation in database mode: `modelcenter serve` with the admin-api strategy
 * on two real LiteLLM instances sharing one database. The instances do not have the provider's key
 * in their environment: deployments name a LiteLLM credential (`litellm_credential_name`), and the
 * rotation is one `PATCH /credentials/{name}` that every instance picks up from the database.
 */
describe('provider credential rotation through /credentials (database mode, two instances)', () => {
  const masterKey = testKey('sk-master-');
  const oldKey = testKey();
  const newKey = testKey();
  const refused = testKey();
  const admin = testKey('mc-admin-');
  const credentialName = litellmCredentialName('OPENAI_API_KEY');
  let upstream: FakeUpstream;
  let stack: DbStack;
  let repo: string;
  let serving: ServingInProcess;
  let api: string;
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
  const held = () =>
    Promise.all(
      stack.urls.map((url) =>
        new LiteLLMCredentialClient(url, masterKey, 30_000).heldFingerprint(credentialName),
      ),
    );

  beforeAll(async () => {
    upstream = await startOpenAIFake({ name: 'openai', apiKey: oldKey });
    // No OPENAI_API_KEY in the instances' environment: only the credential can supply it.
    stack = await startDbStack({ context: inject('litellmDb'), masterKey, count: 2 });
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
`);
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    serving = serveInProcess(repo, {
      LITELLM_MASTER_KEY: masterKey,
      OPENAI_API_KEY: oldKey,
      MODELCENTER_RELOAD_STRATEGY: 'admin-api',
      MODELCENTER_LITELLM_URLS: stack.urls.join(','),
      MODELCENTER_API_PORT: String(apiPort),
      MODELCENTER_ADMIN_TOKENS: admin,
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

  it('deployments name a LiteLLM credential that both instances hold; requests carry its value', async () => {
    expect(await held()).toEqual([valueMark(oldKey), valueMark(oldKey)]);
    for (const url of stack.urls) {
      const answer = await trafficClient(url, masterKey).chat.completions.create({
        model: 'gpt-mini',
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(answer.choices[0]?.message.content).toContain('reply from openai');
      expect(upstream.generations().at(-1)?.key).toBe(oldKey);
    }
  });

  it('a value the provider refuses changes nothing: both instances keep the old one', async () => {
    upstream.acceptKeys([oldKey, newKey]);
    const answer = await call('POST', '/v1/credentials/openai/rotate', { value: refused });
    expect(answer.status).toBe(422);
    const message = (answer.body.error as { message: string }).message;
    expect(message).toMatch(/provider "openai" refused the new credential/);
    expect(message).toMatch(/answered 401/);
    expect(message).toMatch(/nothing was changed/);
    expect(await held()).toEqual([valueMark(oldKey), valueMark(oldKey)]);
    await trafficClient(stack.urls[1]!, masterKey).chat.completions.create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(upstream.generations().at(-1)?.key).toBe(oldKey);
  });

  it('rotated under steady traffic through both instances: 0 failed requests, then the upstream sees only the new key', async () => {
    const traffic = stack.urls.map((url) =>
      steadyTraffic(trafficClient(url, masterKey), 1, 'gpt-mini'),
    );
    const before = upstream.generations().length;
    let answer;
    try {
      answer = await call('POST', '/v1/credentials/openai/rotate', { value: newKey });
      // Traffic keeps flowing a little after the swap too.
      const mark = upstream.generations().length;
      await until(() => Promise.resolve(upstream.generations().length >= mark + 10 || undefined));
    } finally {
      await Promise.all(traffic.map((t) => t.stop()));
    }
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body).toMatchObject({ swap: 'credentials-api', canary: { outcome: 'ok' } });
    for (const t of traffic) {
      expect(t.outcomes.length).toBeGreaterThan(3);
      expect(t.failures()).toEqual([]);
    }
    expect(
      upstream
        .generations()
        .slice(before)
        .some((r) => r.key === oldKey),
    ).toBe(true);
    expect(await held()).toEqual([valueMark(newKey), valueMark(newKey)]);

    // The provider revokes the old key: every request, through either instance, carries the new one.
    upstream.acceptKeys([newKey]);
    const mark = upstream.generations().length;
    const after = stack.urls.map((url) =>
      steadyTraffic(trafficClient(url, masterKey), 1, 'gpt-mini'),
    );
    await until(() => Promise.resolve(upstream.generations().length >= mark + 10 || undefined));
    await Promise.all(after.map((t) => t.stop()));
    for (const t of after) expect(t.failures()).toEqual([]);
    expect(
      new Set(
        upstream
          .generations()
          .slice(mark)
          .map((r) => r.key),
      ),
    ).toEqual(new Set([newKey]));
  });

  it("no value in an answer, a log line, the audit trail, git, or LiteLLM's credential answers", async () => {
    const audit = await call('GET', '/v1/keys/audit?subject=provider:openai');
    const events = audit.body.events as { step: string; outcome: string }[];
    expect(events.map((e) => `${e.step}:${e.outcome}`)).toEqual([
      'probe:failed',
      'probe:ok',
      'store:ok',
      'swap:ok',
      'canary:ok',
      'grace:ok',
    ]);
    const litellmAnswers = await Promise.all(
      stack.urls.map(async (url) => {
        const response = await fetch(`${url}/credentials`, {
          headers: { authorization: `Bearer ${masterKey}` },
        });
        return response.text();
      }),
    );
    expect(litellmAnswers[0]).toContain(credentialName);
    const places = {
      answers: answers.join('\n'),
      logs: serving.logs() + serving.stderr(),
      audit: JSON.stringify(events),
      git: execFileSync('git', ['log', '-p', '--all'], { cwd: repo, encoding: 'utf8' }),
      litellm: litellmAnswers.join('\n'),
    };
    for (const value of [oldKey, newKey, refused, masterKey])
      for (const [where, text] of Object.entries(places))
        expect(text.includes(value), `${where} holds a key value`).toBe(false);
  });
});

import { rm } from 'node:fs/promises';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { git, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

// serve, LiteLLM, and several verified applies (each a proven LiteLLM start).
vi.setConfig({ testTimeout: scaled(300_000) });

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

describe('self-expansion through the API alone, against the running service', () => {
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  const newKey = testKey('nova-');
  let fakes: Fakes;
  let nova: FakeUpstream;
  let repo: string;
  let service: ServingInProcess;
  let api: string;
  let litellm: string;

  const call = async (method: string, route: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(`${api}${route}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const policyCommits = () => Number(git(repo, 'rev-list', '--count', 'HEAD', '--', 'policies'));
  const generatedCommit = async () =>
    ((await call('GET', '/v1/status')).body.generatedCommit as { commit: string }).commit;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    nova = await startOpenAIFake({
      name: 'nova-fake',
      apiKey: newKey,
      contextWindows: { 'nova-large': 32_000, 'nova-small': 8_000 },
    });
    // A profile that lists its models, preferring the largest context: llama-small (512) today.
    repo = await policyRepo(
      scenarioPolicies(fakes).replace(
        'profiles:\n',
        'profiles:\n  agents:\n    requires: [chat]\n    models: [llama-small]\n    prefer: [context]\n',
      ),
    );
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: `agent-7=${adminToken}` },
      { MODELCENTER_POLL_SECONDS: '0.3', NOVA_API_KEY: newKey },
    );
    service = serveInProcess(repo, env);
    await service.started();
    api = `http://127.0.0.1:${apiPort}`;
    litellm = `http://127.0.0.1:${port}/v1`;
  });
  afterAll(async () => {
    service?.stop();
    await service?.exit;
    await Promise.all([...allFakes(fakes), nova].map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('refuses an invalid definition with the policy problems and commits nothing', async () => {
    const before = git(repo, 'rev-parse', 'HEAD');
    const missingKey = await call('POST', '/v1/providers', {
      name: 'broken',
      provider: { kind: 'groq' },
      reason: 'try',
    });
    expect(missingKey.status).toBe(422);
    expect(missingKey.body.problems).toEqual([
      expect.stringMatching(/providers\.broken.*kind "groq" needs a credential.*env:/),
    ]);
    const unknownKind = await call('POST', '/v1/providers', {
      name: 'broken',
      provider: { kind: 'grok', credential: 'env:NOVA_API_KEY' },
    });
    expect(unknownKind.status).toBe(422);
    expect(String(unknownKind.body.problems)).toMatch(/kind/);
    // A literal key in a definition that is invalid anyway: refused, not stored, not echoed.
    const literal = await call('POST', '/v1/providers', {
      name: 'broken',
      provider: { kind: 'groq', credential: newKey, base_url: 'ftp://nowhere' },
    });
    expect(literal.status).toBe(422);
    expect(JSON.stringify(literal.body)).not.toContain(newKey);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(before);
    expect(git(repo, 'status', '--porcelain')).toBe('');
  });

  it('adds a provider, syncs it and promotes one of its models into a profile: one policy commit each, verified, and the profile answered by the new upstream', async () => {
    const dry = await call('POST', '/v1/providers', {
      name: 'nova',
      provider: {
        kind: 'openai_compatible',
        base_url: `${nova.url}/v1`,
        credential: 'env:NOVA_API_KEY',
      },
      dryRun: true,
    });
    expect(dry.status).toBe(200);
    expect(JSON.stringify(dry.body)).toContain('+  nova:');
    const tested = await call('POST', '/v1/providers/test', {
      provider: {
        kind: 'openai_compatible',
        base_url: `${nova.url}/v1`,
        credential: 'env:NOVA_API_KEY',
      },
    });
    expect(tested.body).toMatchObject({ ok: true, credentialAccepted: true, models: 2 });
    // The key the agent just got, tested as it is before it is saved anywhere; never echoed.
    const literalTest = await call('POST', '/v1/providers/test', {
      provider: { kind: 'openai_compatible', base_url: `${nova.url}/v1`, credential: newKey },
    });
    expect(literalTest.body).toMatchObject({ ok: true, models: 2 });
    expect(JSON.stringify(literalTest.body)).not.toContain(newKey);

    const commits = policyCommits();
    // The agent got a key: sent as a literal, it goes into the secret store, never the repository.
    const added = await call('POST', '/v1/providers', {
      name: 'nova',
      provider: { kind: 'openai_compatible', base_url: `${nova.url}/v1`, credential: newKey },
      reason: 'the agents profile needs more capacity',
    });
    expect(added.status).toBe(200);
    expect(policyCommits()).toBe(commits + 1);
    const commit = added.body.commit as string;
    expect(git(repo, 'log', '-1', '--format=%an', commit)).toBe('agent-7');
    expect(git(repo, 'log', '-1', '--format=%B', commit)).toMatch(
      /providers: add nova[\s\S]*Reason: the agents profile needs more capacity/,
    );
    expect(added.body.apply).toMatchObject({ outcome: 'unchanged' }); // no model uses it yet
    expect(JSON.stringify(added.body)).not.toContain(newKey);
    expect(git(repo, 'show', commit)).toContain('credential: secret:nova');
    expect(git(repo, 'log', '-p', '--all')).not.toContain(newKey);

    const generated = await generatedCommit();
    const synced = await call('POST', '/v1/providers/nova/sync', {});
    expect(synced.body).toMatchObject({ ok: true, added: ['nova/nova-large', 'nova/nova-small'] });
    // Sync changes no routing: no commit, the same generated config.
    expect(policyCommits()).toBe(commits + 1);
    expect(await generatedCommit()).toBe(generated);
    const discovered = await call('GET', '/v1/models?source=discovered');
    expect((discovered.body.models as { id: string }[]).map((m) => m.id)).toEqual(
      expect.arrayContaining(['nova/nova-large', 'nova/nova-small']),
    );

    const promoted = await call('POST', '/v1/models/promote', {
      ids: ['nova/nova-large'],
      profile: 'agents',
      reason: 'larger context for the agents',
    });
    expect(promoted.status).toBe(200);
    expect(policyCommits()).toBe(commits + 2);
    expect(git(repo, 'log', '-1', '--format=%an', promoted.body.commit as string)).toBe('agent-7');
    expect(promoted.body.apply).toMatchObject({ outcome: 'applied', verify: { ok: true } });
    expect((promoted.body.plan as { added: string[] }).added).toEqual(
      expect.arrayContaining(['agents/nova-large', 'nova-large']),
    );
    expect(await generatedCommit()).not.toBe(generated);

    const client = new OpenAI({ baseURL: litellm, apiKey: keys.master, maxRetries: 0 });
    const reply = await client.chat.completions.create({
      model: 'agents',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(reply.choices[0]!.message.content).toContain('reply from nova-fake:nova-large');
    expect(nova.generations().map((r) => r.headers.authorization)).toEqual([`Bearer ${newKey}`]);

    // Disabled: not served any more, again one commit through the apply path.
    const disabled = await call('PUT', '/v1/models/nova-large/enabled', {
      enabled: false,
      reason: 'done with it',
    });
    expect(disabled.status).toBe(200);
    expect(disabled.body.apply).toMatchObject({ outcome: 'applied' });
    expect((disabled.body.plan as { removed: string[] }).removed).toEqual(
      expect.arrayContaining(['agents/nova-large', 'nova-large']),
    );
    const after = await client.chat.completions.create({
      model: 'agents',
      messages: [{ role: 'user', content: 'hello again' }],
    });
    expect(after.choices[0]!.message.content).toContain('reply from ollama-fake');
  });

  it('pulls a model into Ollama with streamed progress (API and CLI), then it is in the discovered pool', async () => {
    const response = await fetch(`${api}/v1/providers/local-ollama/pull`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'phi3:mini' }),
    });
    expect(response.headers.get('content-type')).toContain('ndjson');
    const lines = (await response.text())
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            status?: string;
            completed?: number;
            total?: number;
            sync?: { added: string[] };
          },
      );
    expect(lines.filter((l) => l.total !== undefined).length).toBeGreaterThanOrEqual(4);
    // Its first sync: the models Ollama had before are new to the pool too.
    expect(lines.at(-1)).toMatchObject({ status: 'synced' });
    expect(lines.at(-1)!.sync!.added).toEqual(expect.arrayContaining(['local-ollama/phi3:mini']));

    let stderr = '';
    let stdout = '';
    const code = await runCli(
      ['models', 'pull', 'mistral:7b'],
      { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd: repo },
      { MODELCENTER_URL: api, MODELCENTER_TOKEN: adminToken },
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/pulling 6a0746a1ec1a \[#+\.*\] \d+%/);
    expect(stderr).toContain('100%');
    expect(stdout).toMatch(/pulled mistral:7b; local-ollama: .*1 new \(local-ollama\/mistral:7b\)/);
    const listed = await until(async () => {
      const models = (await call('GET', '/v1/models?source=discovered')).body.models as {
        id: string;
      }[];
      return models.some((m) => m.id === 'local-ollama/mistral:7b') ? models : undefined;
    });
    expect(listed.map((m) => m.id)).toContain('local-ollama/phi3:mini');

    const failed = await call('POST', '/v1/providers/nova/pull', { model: 'x' });
    expect(failed.status).toBe(422); // not an Ollama server
  });

  it('the CLI asks the running service: sync, list, info, a dry-run promotion that commits nothing', async () => {
    const env = { MODELCENTER_URL: api, MODELCENTER_TOKEN: adminToken };
    const run = async (...args: string[]) => {
      let stdout = '';
      let stderr = '';
      const code = await runCli(
        args,
        { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd: repo },
        env,
      );
      return { code, stdout, stderr };
    };
    const synced = await run('models', 'sync', 'nova');
    expect(synced.code).toBe(0);
    expect(synced.stdout).toMatch(/^nova: 2 of 2 listed kept; 0 new; 0 disappeared/);
    const listed = await run('models', 'list', '--source', 'discovered');
    expect(listed.stdout).toMatch(
      /nova\/nova-large\s+discovered\s+nova\s+nova-large\s+32000\s+chat,streaming\s+curated as nova-large/,
    );
    const info = await run('models', 'info', 'nova/nova-small');
    expect(JSON.parse(info.stdout)).toEqual([
      expect.objectContaining({ id: 'nova/nova-small', contextWindow: 8000 }),
    ]);
    const head = git(repo, 'rev-parse', 'HEAD');
    const dry = await run(
      'models',
      'promote',
      'nova/nova-small',
      '--profile',
      'agents',
      '--dry-run',
    );
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('+  nova-small:');
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
    const unknown = await run('models', 'disable', 'no-such-model');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no model "no-such-model" in the catalog');
  });
});

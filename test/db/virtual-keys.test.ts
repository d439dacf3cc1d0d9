import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { fingerprint } from '../../src/keys/audit.js';
import { LiteLLMKeyClient, tokenOf } from '../../src/keys/key-client.js';
import { VirtualKeys, type KeyEvent } from '../../src/keys/virtual-keys.js';
import type { PolicySet } from '../../src/policy/policy-set.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, type DbStack } from '../helpers/litellm-db.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });
const run = promisify(execFile);

/**
 * Callers' virtual keys on a real LiteLLM in database mode: made from the policies, rotated
 * (generate → deliver → grace → delete), recovered after kill -9.
 */

/** Two model groups named like the profiles the callers may use, on a fake OpenAI. */
const groups = (upstream: string) =>
  ['fast', 'deep']
    .map(
      (name) => `  - model_name: ${name}
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: ${upstream}/v1
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      id: ${name}-1`,
    )
    .join('\n');

describe('virtual keys per caller on real database-mode LiteLLM', () => {
  const masterKey = testKey('sk-master-');
  const openaiKey = testKey();
  let upstream: FakeUpstream;
  let stack: DbStack;
  let dir: string;
  let client: LiteLLMKeyClient;
  /** Every value a test saw, to search logs, journal and events for at the end. */
  const values: string[] = [];
  const events: KeyEvent[] = [];

  const policies = (extra = '') => `
providers:
  openai: { kind: openai, credential: env:OPENAI_API_KEY }
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat] }
profiles:
  fast: { requires: [chat] }
  deep: { requires: [chat] }
callers:
  research-agent:
    profiles: [fast]
    key: { grace: 6s, max_budget_usd: 50, budget_period: 30d, duration: 30d, deliver: { file: ${dir}/research-agent.key } }
  batch-job:
    profiles: [fast]
    key: { grace: 6s, deliver: { command: "cat >> ${dir}/batch-job.delivered" } }
  reader:
    profiles: [deep]
    key: { grace: 1h }
${extra}`;
  const set = (text = policies()): PolicySet => {
    const build = buildFromTexts([{ name: 'keys.yaml', text }]);
    expect(build.findings.errors).toEqual([]);
    return build.set;
  };
  const manager = (journal = path.join(dir, 'journal')) =>
    new VirtualKeys({ client, journalDir: journal, onEvent: (e) => void events.push(e) });
  const chat = (key: string, model = 'fast') =>
    new OpenAI({
      baseURL: `${stack.urls[0]}/v1`,
      apiKey: key,
      maxRetries: 0,
    }).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
  const statusOf = (key: string, model = 'fast') =>
    chat(key, model).then(
      () => 200,
      (error: { status?: number }) => error.status ?? 0,
    );
  /** The live keys LiteLLM has for a caller's alias. */
  const aliasTokens = (caller: string) => client.tokensWithAlias(caller);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-vkeys-'));
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey,
      extraModels: groups(upstream.url),
      env: { OPENAI_API_KEY: openaiKey },
    });
    client = new LiteLLMKeyClient(stack.urls[0]!, masterKey, 60_000);
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("creates each caller's key from the policies: its profiles as models, budget, alias, metadata.caller; delivered to a 0600 file", async () => {
    const statuses = await manager().sync(set());
    expect(statuses.map((s) => [s.caller, s.state])).toEqual([
      ['batch-job', 'ok'],
      ['reader', 'ok'],
      ['research-agent', 'ok'],
    ]);
    expect(events.filter((e) => e.action === 'key.create.done').map((e) => e.caller)).toEqual([
      'batch-job',
      'reader',
      'research-agent',
    ]);
    const file = path.join(dir, 'research-agent.key');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const key = (await readFile(file, 'utf8')).trim();
    values.push(key);
    const info = await client.live(tokenOf(key));
    expect(info).toMatchObject({
      key_alias: 'research-agent',
      models: ['fast'],
      max_budget: 50,
      budget_duration: '30d',
      metadata: expect.objectContaining({ caller: 'research-agent' }) as unknown,
    });
    expect(Date.parse(info!.expires!)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect(await statusOf(key)).toBe(200);
    // Its profiles only: another model group is refused (LiteLLM: 403, key not allowed).
    expect(await statusOf(key, 'deep')).toBe(403);
    // A second sync changes nothing: one key per caller.
    const again = await manager().sync(set());
    expect(again.map((s) => s.state)).toEqual(['ok', 'ok', 'ok']);
    for (const caller of ['research-agent', 'batch-job', 'reader'])
      expect(await aliasTokens(caller)).toHaveLength(1);
  });

  it('the API delivery is read once: the key, then nothing', async () => {
    const keys = manager();
    const first = await keys.readDelivery('reader', 'test-token');
    expect(first?.key).toMatch(/^sk-/);
    values.push(first!.key);
    expect(await statusOf(first!.key, 'deep')).toBe(200);
    expect(await keys.readDelivery('reader', 'test-token')).toBeUndefined();
  });

  it('rotation: the hook gets the new key once, the old key works through the grace period and gets 401 after', async () => {
    const keys = manager();
    const delivered = path.join(dir, 'batch-job.delivered');
    const old = (await readFile(delivered, 'utf8')).trim();
    values.push(old);
    expect(await statusOf(old)).toBe(200);

    const rotation = await keys.rotate(set(), 'batch-job', 'test-token');
    expect(rotation.phase).toBe('grace');
    const lines = (await readFile(delivered, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(2);
    const fresh = lines[1]!;
    values.push(fresh);
    expect(fresh).not.toBe(old);
    expect(tokenOf(fresh)).toBe(rotation.newToken);
    // Events name keys by the audit trail's fingerprint of the value.
    expect(
      events
        .filter((e) => e.rotation === rotation.id)
        .every((e) => e.fingerprint === fingerprint(fresh)),
    ).toBe(true);
    // Both work during the grace period; the alias names the new one.
    expect(await statusOf(fresh)).toBe(200);
    expect(await statusOf(old)).toBe(200);
    expect(await aliasTokens('batch-job')).toEqual([tokenOf(fresh)]);

    // Retried with the same id (a lost answer): the same rotation, no second key, no delivery.
    const retried = await keys.rotate(set(), 'batch-job', 'test-token', rotation.id);
    expect(retried.id).toBe(rotation.id);
    expect((await readFile(delivered, 'utf8')).trim().split('\n')).toHaveLength(2);

    // The grace period ends: the tick deletes the old key.
    await vi.waitFor(
      async () => {
        await keys.tick(set());
        expect((await keys.rotations()).find((r) => r.id === rotation.id)?.phase).toBe('done');
      },
      { timeout: scaled(30_000), interval: 500 },
    );
    expect(await statusOf(old)).toBe(401);
    expect(await statusOf(fresh)).toBe(200);
    expect((await readFile(delivered, 'utf8')).trim().split('\n')).toHaveLength(2);
  });

  it('regenerate without an Enterprise licence: the rotation stops saying what to do, the old key keeps working; with the setting off the same rotation carries on', async () => {
    const journal = path.join(dir, 'journal-regenerate');
    const delivered = path.join(dir, 'batch-job.delivered');
    const old = (await readFile(delivered, 'utf8')).trim().split('\n').at(-1)!;
    const failure = await new VirtualKeys({ client, journalDir: journal, useRegenerate: true })
      .rotate(set(), 'batch-job', 'test-token')
      .catch((error: unknown) => error as Error);
    expect((failure as Error).message).toMatch(/Enterprise.*MODELCENTER_KEYS_REGENERATE off/);
    expect(await aliasTokens('batch-job')).toEqual([tokenOf(old)]);
    expect(await statusOf(old)).toBe(200);

    const rotation = await new VirtualKeys({ client, journalDir: journal }).rotate(
      set(),
      'batch-job',
      'test-token',
    );
    expect(rotation).toMatchObject({ method: 'generate', phase: 'grace' });
    const fresh = (await readFile(delivered, 'utf8')).trim().split('\n').at(-1)!;
    values.push(fresh);
    expect(tokenOf(fresh)).toBe(rotation.newToken);
    expect(await statusOf(fresh)).toBe(200);
    expect(await statusOf(old)).toBe(200);
  });

  it('a key about to expire raises a warning; a key older than its rotate_every is rotated by the schedule', async () => {
    const text = policies().replace(
      'reader:\n    profiles: [deep]\n    key: { grace: 1h }',
      'reader:\n    profiles: [deep]\n    key: { grace: 1h, rotate_every: 10d }',
    );
    // 29 days on: research-agent's 30-day key expires tomorrow; reader's key is due.
    const later = new Date(Date.now() + 29 * 86_400_000);
    const keys = new VirtualKeys({
      client,
      journalDir: path.join(dir, 'journal'),
      now: () => later,
      onEvent: (e) => void events.push(e),
    });
    const statuses = await keys.sync(set(text));
    expect(
      events.find((e) => e.action === 'key.expiring' && e.caller === 'research-agent')?.detail,
    ).toMatch(/expires .* rotate it \(modelcenter keys rotate research-agent\)/);
    expect(statuses.find((s) => s.caller === 'reader')?.state).toBe('rotating');
    expect(
      events.some(
        (e) => e.action === 'key.rotate.started' && e.caller === 'reader' && e.by === 'schedule',
      ),
    ).toBe(true);
    // Warned once, not at every tick.
    await keys.sync(set(text));
    expect(
      events.filter((e) => e.action === 'key.expiring' && e.caller === 'research-agent'),
    ).toHaveLength(1);
    const read = await keys.readDelivery('reader', 'test-token');
    values.push(read!.key);
    expect(await statusOf(read!.key, 'deep')).toBe(200);
  });

  it('a policy change updates the key; a key changed by hand is drift, reported and not overwritten', async () => {
    const keys = manager();
    const widened = policies().replace(
      'research-agent:\n    profiles: [fast]',
      'research-agent:\n    profiles: [fast, deep]',
    );
    const statuses = await keys.sync(set(widened));
    expect(statuses.find((s) => s.caller === 'research-agent')?.state).toBe('ok');
    const [token] = await aliasTokens('research-agent');
    expect((await client.live(token!))?.models?.sort()).toEqual(['deep', 'fast']);

    await client.update(token!, { models: ['fast', 'deep', 'gpt-4o'] });
    const drift = (await keys.sync(set(widened))).find((s) => s.caller === 'research-agent');
    expect(drift?.state).toBe('drift');
    expect(drift?.detail).toMatch(
      /changed outside Model Center.*modelcenter keys rotate research-agent/,
    );
    expect((await client.live(token!))?.models).toContain('gpt-4o');
    expect(events.some((e) => e.action === 'key.drift' && e.caller === 'research-agent')).toBe(
      true,
    );
  });

  it.each(['key.rotate.started', 'key.rotate.created'])(
    'kill -9 right after %s: the next start converges to exactly one working new key, the old one in grace',
    async (at) => {
      const journal = path.join(dir, `journal-${at}`);
      const policyFile = path.join(dir, `policies-${at}.yaml`);
      const text = policies().replace(
        'reader:\n    profiles: [deep]\n    key: { grace: 1h }',
        'reader:\n    profiles: [deep]\n    key: { grace: 1h, deliver: { command: "cat >> ' +
          path.join(dir, `reader-${at}.delivered`) +
          '" } }',
      );
      await writeFile(policyFile, text);
      const [oldToken] = await aliasTokens('reader');
      const script = path.join(import.meta.dirname, '..', 'helpers', 'rotate-and-die.ts');
      const died = await run(
        process.execPath,
        ['--import', 'tsx', script, stack.urls[0]!, journal, policyFile, 'reader', at],
        { env: { ...process.env, LITELLM_MASTER_KEY: masterKey } },
      ).then(
        () => 'exited',
        (error: { signal?: string }) => error.signal,
      );
      expect(died).toBe('SIGKILL');

      // The next start: the same journal, the normal run.
      const statuses = await manager(journal).sync(set(text));
      expect(statuses.find((s) => s.caller === 'reader')?.state).toBe('rotating');
      const tokens = await aliasTokens('reader');
      expect(tokens).toHaveLength(1);
      expect(tokens[0]).not.toBe(oldToken);
      const delivered = (await readFile(path.join(dir, `reader-${at}.delivered`), 'utf8'))
        .trim()
        .split('\n');
      expect(delivered).toHaveLength(1);
      values.push(delivered[0]!);
      expect(tokenOf(delivered[0]!)).toBe(tokens[0]);
      expect(await statusOf(delivered[0]!, 'deep')).toBe(200);
      // The old key is in grace: still live, renamed out of the alias.
      expect((await client.live(oldToken!))?.key_alias).toMatch(/^reader@retiring-/);
      const rotations = await manager(journal).rotations();
      expect(rotations).toHaveLength(1);
      expect(rotations[0]).toMatchObject({ phase: 'grace', newToken: tokens[0] });
    },
  );

  it('no key value in the rotation journal or the key events', async () => {
    expect(values.length).toBeGreaterThan(4);
    const texts = [JSON.stringify(events)];
    for (const journal of (await readdir(dir)).filter((d) => d.startsWith('journal'))) {
      for (const file of await readdir(path.join(dir, journal)))
        texts.push(await readFile(path.join(dir, journal, file), 'utf8'));
    }
    for (const value of [...values, masterKey])
      for (const text of texts) expect(text).not.toContain(value);
  });
});

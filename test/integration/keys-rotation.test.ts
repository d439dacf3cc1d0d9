import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { fingerprint } from '../../src/keys/audit.js';
import { hookRuns, leaks, retireHookCommand, withOpenAIRotation } from '../helpers/keys.js';
import { policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';
import { steadyTraffic, underTraffic } from '../helpers/traffic.js';

// Each test starts serve (LiteLLM) and rotates (a reload: one or two LiteLLM starts) under traffic.
vi.setConfig({ testTimeout: scaled(420_000) });

/** The catalog model only the openai fake serves: traffic that carries the rotated key. */
const OPENAI_MODEL = 'gpt-mini';

interface CredentialView {
  provider: string;
  source: string;
  overridesEnv: boolean;
  fingerprint?: string;
  previous?: { fingerprint: string };
  rotation?: { id: string; state: string };
}

describe.each(['blue-green', 'restart'] as const)(
  'rotating a provider credential with the %s strategy (real LiteLLM, real client)',
  (strategy) => {
    const keys = newKeys();
    const adminToken = testKey('mc-admin-');
    const newOpenAI = testKey();
    const refused = testKey();
    let fakes: Fakes;
    let repo: string;
    let hookDir: string;
    let hookLog: string;
    let service: ServingInProcess | undefined;
    const logs: string[] = [];
    /** Every answer the API and the CLI gave, searched for keys at the end. */
    const answers: string[] = [];

    beforeAll(async () => {
      fakes = await startFakes(keys);
      hookDir = await mkdtemp(path.join(tmpdir(), 'mc-retire-'));
      hookLog = path.join(hookDir, 'retire.log');
      // Long enough to look at the rotation in its grace period on a loaded machine.
      // The grace period starts once the new value is live; at least 20 s on a fast machine.
      const grace = `${Math.max(20, Math.ceil(scaled(strategy === 'blue-green' ? 8000 : 20_000) / 1000))}s`;
      repo = await policyRepo(
        withOpenAIRotation(
          scenarioPolicies(fakes),
          `      grace: ${grace}\n      retire: '${retireHookCommand(hookLog)}'\n`,
        ),
      );
    });
    afterAll(async () => {
      if (service) {
        service.stop();
        await service.exit;
      }
      await Promise.all(allFakes(fakes).map((f) => f.close()));
      await rm(repo, { recursive: true, force: true });
      await rm(hookDir, { recursive: true, force: true });
    });

    async function serve(): Promise<{ api: string; client: OpenAI }> {
      const { env, port, apiPort } = await serveEnv(
        keys,
        { admin: adminToken },
        { MODELCENTER_RELOAD_STRATEGY: strategy, MODELCENTER_POLL_SECONDS: '1' },
      );
      service = serveInProcess(repo, env);
      await service.started();
      const client = new OpenAI({
        baseURL: `http://127.0.0.1:${port}/v1`,
        apiKey: keys.master,
        maxRetries: 0,
        timeout: scaled(30_000),
      });
      return { api: `http://127.0.0.1:${apiPort}`, client };
    }

    async function stop(): Promise<void> {
      if (!service) return;
      service.stop();
      expect(await service.exit).toBe(0);
      logs.push(service.logs(), service.stderr());
      service = undefined;
    }

    async function call(
      api: string,
      method: 'GET' | 'POST',
      route: string,
      body?: unknown,
    ): Promise<{ status: number; json: Record<string, unknown> }> {
      const response = await fetch(`${api}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      answers.push(text);
      return { status: response.status, json: JSON.parse(text) as Record<string, unknown> };
    }

    async function openaiCredential(api: string): Promise<CredentialView> {
      const { json } = await call(api, 'GET', '/v1/credentials');
      const found = (json.credentials as CredentialView[]).find((c) => c.provider === 'openai');
      if (!found) throw new Error('no openai credential in status');
      return found;
    }

    it('refused, then rotated under traffic: the provider sees only the new key after the swap, the retire hook runs once after the grace period', async () => {
      let { api, client } = await serve();
      const answer = await client.chat.completions.create({
        model: OPENAI_MODEL,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(answer.choices[0]?.message.content).toContain('reply from openai-fake');
      expect(await openaiCredential(api)).toMatchObject({
        source: 'env',
        overridesEnv: false,
        fingerprint: fingerprint(keys.openai),
      });

      // The provider issued a new key; the old one stays valid until it is revoked.
      fakes.openai.acceptKeys([keys.openai, newOpenAI]);

      // A value the provider refuses: nothing changes, the old key keeps serving.
      const refusal = await underTraffic(
        client,
        () => call(api, 'POST', '/v1/credentials/openai/rotate', { value: refused }),
        OPENAI_MODEL,
      );
      expect(refusal.result.status).toBe(422);
      const message = (refusal.result.json.error as { message: string }).message;
      expect(message).toMatch(/provider "openai" refused the new credential/);
      expect(message).toContain(`GET ${fakes.openai.url}/v1/models`);
      expect(message).toMatch(/answered 401/);
      expect(message).toMatch(/nothing was changed/);
      expect(refusal.failures).toEqual([]);
      expect(await openaiCredential(api)).toMatchObject({
        source: 'env',
        fingerprint: fingerprint(keys.openai),
      });
      expect(fakes.openai.generations().at(-1)?.key).toBe(keys.openai);

      // The rotation, under steady traffic to the provider's model.
      const before = fakes.openai.generations().length;
      let output = '';
      // Restart proves the new environment on a spare LiteLLM beside the live one, then restarts:
      // requests during the restart fail to connect whatever the key (bench/key-rotation.ts
      // counts them), so here it rotates without traffic, which also keeps a loaded machine able
      // to start the spare within its readiness timeout.
      const rotation = await underTraffic(
        client,
        async () => {
          if (strategy === 'blue-green') {
            return call(api, 'POST', '/v1/credentials/openai/rotate', { value: newOpenAI });
          }
          // The CLI, reading the value on stdin as a user pipes it from a password manager.
          const code = await runCli(
            ['credentials', 'rotate', 'openai'],
            {
              stdout: (t) => (output += t),
              stderr: (t) => (output += t),
              cwd: repo,
              readStdin: () => Promise.resolve(`${newOpenAI}\n`),
            },
            { MODELCENTER_URL: api, MODELCENTER_TOKEN: adminToken },
          );
          return { status: code === 0 ? 200 : code, json: { output } };
        },
        OPENAI_MODEL,
        strategy === 'blue-green' ? 2 : 0,
      );
      answers.push(output);
      expect(rotation.result.status, JSON.stringify(rotation.result.json)).toBe(200);
      const during = fakes.openai.generations().slice(before);
      if (strategy === 'blue-green') {
        // The nginx front switched to a LiteLLM started with the new key: nothing failed.
        expect(rotation.sent).toBeGreaterThan(5); // traffic really flowed during the rotation
        expect(rotation.failures).toEqual([]);
        expect(during.some((r) => r.key === keys.openai)).toBe(true);
      } else {
        expect(output).toMatch(/^rotated openai: [0-9a-f]{12} → [0-9a-f]{12}/);
      }
      // The canary went through LiteLLM with the new key.
      expect(during.some((r) => r.key === newOpenAI)).toBe(true);

      // After the swap the upstream sees only the new key.
      const mark = fakes.openai.generations().length;
      const after = steadyTraffic(client, 2, OPENAI_MODEL);
      await until(() =>
        Promise.resolve(fakes.openai.generations().length >= mark + 10 || undefined),
      );
      await after.stop();
      expect(after.failures()).toEqual([]);
      const since = fakes.openai.generations().slice(mark);
      expect(new Set(since.map((r) => r.key))).toEqual(new Set([newOpenAI]));

      const live = await openaiCredential(api);
      expect(live).toMatchObject({
        source: 'store',
        overridesEnv: true,
        fingerprint: fingerprint(newOpenAI),
        previous: { fingerprint: fingerprint(keys.openai) },
        rotation: { state: 'live' },
      });
      expect(await hookRuns(hookLog)).toEqual([]);

      if (strategy === 'restart') {
        // The controller stops during the grace period; the next one retires the old key.
        await stop();
        ({ api, client } = await serve());
        const again = await client.chat.completions.create({
          model: OPENAI_MODEL,
          messages: [{ role: 'user', content: 'hi' }],
        });
        expect(again.choices[0]?.message.content).toContain('reply from openai-fake');
        expect(fakes.openai.generations().at(-1)?.key).toBe(newOpenAI);
      }

      // The grace period ends: the retire hook runs once, with the old value on stdin.
      const old = fingerprint(keys.openai);
      await until(async () => ((await hookRuns(hookLog)).length > 0 ? true : undefined), 120_000);
      await new Promise((resolve) => setTimeout(resolve, 5000));
      expect(await hookRuns(hookLog)).toEqual([`${old} ${old} ${old}`]);
      const retired = await openaiCredential(api);
      expect(retired.rotation?.state).toBe('retired');
      expect(retired.previous).toBeUndefined();
      fakes.openai.acceptKeys([newOpenAI]); // the provider revoked the old key

      // Every step is audited: who, what, outcome, fingerprints.
      const audit = await call(api, 'GET', '/v1/keys/audit?subject=provider:openai');
      const events = audit.json.events as {
        step: string;
        outcome: string;
        actor: string;
        fingerprints?: { old?: string; new?: string };
      }[];
      expect(events.map((e) => `${e.step}:${e.outcome}`)).toEqual([
        'probe:failed',
        'probe:ok',
        'store:ok',
        'swap:ok',
        'canary:ok',
        'grace:ok',
        'retire:ok',
      ]);
      expect(events[1]?.actor).toMatch(/^admin:[0-9a-f]{12}$/);
      expect(events[1]?.fingerprints).toEqual({ old, new: fingerprint(newOpenAI) });
      let auditCli = '';
      expect(
        await runCli(
          ['keys', 'audit', '--since', '1h', '--subject', 'provider:openai'],
          { stdout: (t) => (auditCli += t), stderr: (t) => (auditCli += t), cwd: repo },
          { MODELCENTER_URL: api, MODELCENTER_TOKEN: adminToken },
        ),
      ).toBe(0);
      expect(auditCli).toMatch(/credential\.rotate\s+provider:openai\s+retire\s+ok/);
      answers.push(auditCli);

      await stop();
      // No value used here reached git, the logs, an API answer, an error or the audit.
      expect(
        leaks(
          {
            'old openai key': keys.openai,
            'new openai key': newOpenAI,
            'refused value': refused,
            'master key': keys.master,
            'admin token': adminToken,
          },
          { logs: logs.join('\n'), 'API and CLI answers': answers.join('\n') },
          repo,
        ),
      ).toEqual([]);
    });
  },
);

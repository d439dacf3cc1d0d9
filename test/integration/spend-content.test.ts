import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { SPOOL_CALLBACK, SPOOL_CONTENT_CALLBACK } from '../../src/compile/compile.js';
import { commitPolicies, policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until } from '../helpers/serve.js';
import { payload } from '../helpers/spool.js';
import { spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';

interface CallRecordBody {
  callId: string;
  attempts: {
    status: string;
    profile: string;
    model: string;
    provider: string;
    tokensIn: number;
    content?: { messages: unknown; response: unknown };
  }[];
}

describe('prompt and response content in the spend ledger, as the policies ask', () => {
  let repo: string;
  let fakes: Fakes;
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  const readToken = testKey('mc-read-');

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(spendPolicies(fakes));
  });
  afterAll(async () => {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('policy off: the request is recorded without content; a commit turning spend.keep_content on makes the next prompt and answer readable by call id', async () => {
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: adminToken, read: readToken },
      { MODELCENTER_POLL_SECONDS: '0.5' },
    );
    const service = serveInProcess(repo, env);
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    const api = `http://127.0.0.1:${apiPort}`;
    const admin = { authorization: `Bearer ${adminToken}` };
    const configFile = path.join(repo, 'litellm', 'config.yaml');
    let on = { callId: '', answer: '' };
    try {
      await service.started();
      expect(await readFile(configFile, 'utf8')).toContain(`- ${SPOOL_CALLBACK}\n`);

      /** Sends one prompt; returns its call id and the answer the client got. */
      const ask = async (prompt: string) => {
        const { data, response } = await client.chat.completions
          .create({
            model: 'gpt-mini',
            messages: [{ role: 'user', content: prompt }],
            tags: ['goal:q-report', 'caller:alice'],
          } as OpenAI.ChatCompletionCreateParamsNonStreaming)
          .withResponse();
        return {
          callId: response.headers.get('x-litellm-call-id') ?? '',
          answer: data.choices[0]?.message.content ?? '',
        };
      };
      /** GET /v1/spend/requests/{callId} once the controller has ingested the call. */
      const recorded = (callId: string) =>
        until(async () => {
          const res = await fetch(`${api}/v1/spend/requests/${callId}`, { headers: admin });
          return res.status === 200 ? ((await res.json()) as CallRecordBody) : undefined;
        }, 20_000);

      const off = await ask('policy off: do not keep this prompt');
      const withoutContent = await recorded(off.callId);
      expect(withoutContent.attempts).toHaveLength(1);
      expect(withoutContent.attempts[0]).toMatchObject({
        status: 'success',
        profile: 'gpt-mini',
        model: 'gpt-mini',
        provider: 'openai',
      });
      expect(withoutContent.attempts[0]!.content).toBeUndefined();
      expect(JSON.stringify(withoutContent)).not.toContain('do not keep this prompt');

      // A generic_api sender cannot make the ledger keep content the policies do not ask for.
      const sent = { messages: [{ role: 'user', content: 'sent over http' }], response: 'ok' };
      const postIngest = (callId: string) =>
        fetch(`${api}/v1/spend/ingest`, {
          method: 'POST',
          headers: admin,
          body: JSON.stringify([payload(callId, sent)]),
        });
      expect((await postIngest('http-off')).status).toBe(200);
      expect((await recorded('http-off')).attempts[0]!.content).toBeUndefined();

      // Content is sensitive: a read token is refused; an unknown id is a clear 404.
      const asReader = await fetch(`${api}/v1/spend/requests/${off.callId}`, {
        headers: { authorization: `Bearer ${readToken}` },
      });
      expect(asReader.status).toBe(403);
      const unknown = await fetch(`${api}/v1/spend/requests/no-such-call`, { headers: admin });
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: { message: string } }).error.message).toMatch(
        /no request with call id "no-such-call"/,
      );
      const openapi = (await (await fetch(`${api}/openapi.json`, { headers: admin })).json()) as {
        paths: Record<string, { get?: { 'x-scope'?: string; responses: object } }>;
      };
      expect(openapi.paths['/v1/spend/requests/{callId}']?.get).toMatchObject({
        'x-scope': 'admin',
        responses: { '200': { content: { 'application/json': { schema: { type: 'object' } } } } },
      });

      // The user turns content on in the policies and commits; the controller applies it.
      await commitPolicies(
        repo,
        `${spendPolicies(fakes)}spend:\n  keep_content: true\n`,
        'policies: keep prompts and responses in the ledger',
      );
      await until(async () => {
        const status = (await (await fetch(`${api}/v1/status`, { headers: admin })).json()) as {
          lastApply?: { trigger: string; outcome: string };
        };
        return status.lastApply?.trigger === 'policy-commit' &&
          status.lastApply.outcome === 'applied'
          ? true
          : undefined;
      });
      expect(await readFile(configFile, 'utf8')).toContain(`- ${SPOOL_CONTENT_CALLBACK}\n`);
      on = await ask('policy on: keep this prompt, please');
      const withContent = await until(async () => {
        const record = await recorded(on.callId);
        return record.attempts[0]?.content ? record : undefined;
      }, 20_000);
      expect(withContent.attempts[0]!.content!.messages).toEqual([
        { role: 'user', content: 'policy on: keep this prompt, please' },
      ]);
      expect(on.answer).not.toBe('');
      expect(JSON.stringify(withContent.attempts[0]!.content!.response)).toContain(
        JSON.stringify(on.answer),
      );
      expect((await postIngest('http-on')).status).toBe(200);
      expect((await recorded('http-on')).attempts[0]!.content).toEqual(sent);
      // The request sent before the change stays without content.
      expect((await recorded(off.callId)).attempts[0]!.content).toBeUndefined();
    } finally {
      service.stop();
      expect(await service.exit).toBe(0);
    }

    // The same from the CLI once serve has released the embedded ledger.
    let stdout = '';
    const code = await runCli(
      ['spend', 'show', on.callId],
      { stdout: (t) => (stdout += t), stderr: () => undefined, cwd: repo },
      {},
    );
    expect(code).toBe(0);
    expect(stdout).toContain(`call ${on.callId}: 1 attempt(s)`);
    expect(stdout).toContain('policy on: keep this prompt, please');
    expect(stdout).toContain(on.answer);
  });
});

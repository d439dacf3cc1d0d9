import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LiteLLMKeyClient, tokenOf } from '../../src/keys/key-client.js';
import { LiteLLMCredentialClient } from '../../src/litellm/credential-client.js';
import { LiteLLMHealthClient } from '../../src/litellm/health-client.js';
import { fetchLiteLLMOpenApi } from '../helpers/litellm-openapi.js';
import { checkRequests, type SentRequest } from '../helpers/openapi-contract.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });

/**
 * The clients added after the first contract checks (virtual keys, the master key's re-encryption,
 * credentials, background health) against the real pinned LiteLLM's /openapi.json: every route,
 * method, query parameter and body field they send must be declared there (pydantic drops an
 * unknown field without a word). The clients talk to a recorder that answers like LiteLLM; the
 * behaviour on real database-mode instances is tested in test/db/.
 */
describe('key, credential and health clients against the real pinned LiteLLM /openapi.json', () => {
  const sent: SentRequest[] = [];
  let recorder: Server;
  let url: string;

  beforeAll(async () => {
    recorder = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        const parsed = new URL(req.url ?? '/', 'http://recorder');
        const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        sent.push({
          method: req.method ?? 'GET',
          path: parsed.pathname,
          query: Object.fromEntries(parsed.searchParams),
          ...(body !== undefined && { body }),
        });
        const answer: unknown =
          parsed.pathname === '/key/info'
            ? { info: { key_alias: 'caller:a', models: ['fast'], status: 'active' } }
            : parsed.pathname === '/key/list'
              ? { keys: [] }
              : parsed.pathname === '/key/generate'
                ? { key: body?.key }
                : parsed.pathname.startsWith('/credentials/by_name/')
                  ? { credential_name: 'openai', credential_info: {} }
                  : parsed.pathname === '/health'
                    ? { healthy_endpoints: [], unhealthy_endpoints: [] }
                    : { success: true };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => recorder.close(resolve));
  });

  it('sends only routes, parameters and fields the real document declares', async () => {
    const openapi = fetchLiteLLMOpenApi(testKey('sk-master-'));
    const master = testKey('sk-master-');
    const keys = new LiteLLMKeyClient(url, master);
    const value = testKey();
    await keys.info(tokenOf(value));
    await keys.tokensWithAlias('caller:a');
    await keys.generate(value, {
      key_alias: 'caller:a',
      models: ['fast', 'deep'],
      max_budget: 50,
      budget_duration: '30d',
      duration: '90d',
      metadata: { modelcenter_caller: 'a' },
    });
    await keys.update(tokenOf(value), { models: ['fast'], max_budget: null });
    await keys.regenerate(tokenOf(value), testKey(), '24h');
    await keys.regenerateMaster(master, testKey('sk-master-'));
    await keys.delete(tokenOf(value));
    const credentials = new LiteLLMCredentialClient(url, master);
    await credentials.heldFingerprint('openai');
    await credentials.createCredential('openai', { api_key: testKey() }, 'fp-1');
    await credentials.updateCredential('openai', { api_key: testKey() }, 'fp-2');
    await new LiteLLMHealthClient(url, master).probes();

    const report = checkRequests(await openapi, sent);
    expect(report.problems).toEqual([]);
    expect(report.routes).toEqual(
      expect.arrayContaining([
        'GET /key/info',
        'GET /key/list',
        'POST /key/generate',
        'POST /key/update',
        'POST /key/delete',
        'POST /key/{key}/regenerate',
        'POST /key/regenerate',
        'GET /credentials/by_name/{credential_name}',
        'POST /credentials',
        'PATCH /credentials/{credential_name}',
        'GET /health',
      ]),
    );
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  inject,
  it,
  vi,
} from 'vitest';
import { LiteLLMKeyClient } from '../../src/keys/key-client.js';
import { LiteLLMAdminClient } from '../../src/litellm/admin-client.js';
import { backfillSpendLogs } from '../../src/spend/backfill.js';
import type { DeploymentCatalog } from '../../src/spend/extract.js';
import { ingestOnce } from '../../src/spend/ingest.js';
import { spendReport } from '../../src/spend/report.js';
import type { Database } from '../../src/store/db.js';
import { countRawRows, rowsOfCall } from '../../src/store/ledger.js';
import { openLedger } from '../../src/store/migrate.js';
import { startOpenAIFake } from '../fakes/openai.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startDbStack, type DbStack } from '../helpers/litellm-db.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000) });

/**
 * The spend-log backfill reading real `LiteLLM_SpendLogs` rows: requests sent through a real
 * database-mode LiteLLM to a fake OpenAI, written by LiteLLM's own batch writer, read back through
 * `/spend/logs/v2`. Volumes a test cannot send for real (35,000 rows, a 12,000-request second) and
 * faults (a read failing midway) stay on the emulator in test/integration/spend-backfill.test.ts.
 */

const catalog: DeploymentCatalog = (id) =>
  id === 'cheap/gpt-mini' ? { model: 'gpt-mini', provider: 'openai' } : undefined;

describe('spend-log backfill from a real database-mode LiteLLM', () => {
  const masterKey = testKey('sk-master-');
  const openaiKey = testKey();
  let upstream: FakeUpstream;
  let stack: DbStack;
  let dir: string;
  let spoolDir: string;
  let db: Database;
  let source: LiteLLMAdminClient;
  let started: Date;
  /** Call ids LiteLLM gave the requests, by goal. */
  const sent = new Map<string, string[]>();

  const send = async (apiKey: string, goal: string, stream = false) => {
    const client = new OpenAI({ baseURL: `${stack.urls[0]}/v1`, apiKey, maxRetries: 0 });
    const headers = { 'x-litellm-tags': `goal:${goal}` };
    let callId: string | null;
    if (stream) {
      const { data, response } = await client.chat.completions
        .create(
          { model: 'cheap', messages: [{ role: 'user', content: 'hello' }], stream: true },
          { headers },
        )
        .withResponse();
      for await (const chunk of data) void chunk;
      callId = response.headers.get('x-litellm-call-id');
    } else {
      const { response } = await client.chat.completions
        .create({ model: 'cheap', messages: [{ role: 'user', content: 'hello' }] }, { headers })
        .withResponse();
      callId = response.headers.get('x-litellm-call-id');
    }
    expect(callId).toBeTruthy();
    sent.set(goal, [...(sent.get(goal) ?? []), callId!]);
  };
  const range = () => ({ from: new Date(started.getTime() - 60_000), to: new Date() });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-db-backfill-'));
    spoolDir = path.join(dir, 'spool');
    upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey, replyTokens: 20 });
    stack = await startDbStack({
      context: inject('litellmDb'),
      masterKey,
      spoolDir,
      extraModels: `  - model_name: cheap
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: ${upstream.url}/v1
      api_key: os.environ/OPENAI_API_KEY
      input_cost_per_token: 0.001
      output_cost_per_token: 0.003
    model_info:
      id: cheap/gpt-mini`,
      litellmSettings: '  callbacks: ["modelcenter_spool.proxy_handler_instance"]',
      env: { OPENAI_API_KEY: openaiKey },
    });
    source = new LiteLLMAdminClient(stack.urls[0]!, masterKey, 60_000);
    // A caller's virtual key: its alias is the caller in the spend logs.
    const keys = new LiteLLMKeyClient(stack.urls[0]!, masterKey, 60_000);
    const agentKey = testKey('sk-');
    await keys.generate(agentKey, {
      key_alias: 'research-agent',
      models: ['cheap'],
      metadata: { caller: 'research-agent' },
    });
    started = new Date();
    for (let i = 0; i < 6; i++) await send(agentKey, 'quarterly-report', i === 0);
    for (let i = 0; i < 4; i++) await send(masterKey, 'incident-review');
    // LiteLLM's batch writer lands the rows within proxy_batch_write_at (1 s here).
    await vi.waitFor(
      async () => {
        const page = await source.spendLogs(range().from, range().to, 1, 100);
        expect(page.total).toBe(10);
      },
      { timeout: scaled(30_000), interval: 500 },
    );
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    db = await openLedger({ dataDir: path.join(dir, `ledger-${Date.now()}`) });
  });
  afterEach(async () => {
    await db.close();
  });

  it('reads every request LiteLLM logged: goal, caller, model, provider, tokens and cost; a second run adds nothing', async () => {
    const first = await backfillSpendLogs({ db, source, catalog, ...range() });
    expect(first).toMatchObject({ fetched: 10, inserted: 10, known: 0, rejected: 0, missed: 0 });
    expect(await countRawRows(db)).toBe(10);

    const [row] = await rowsOfCall(db, sent.get('quarterly-report')![1]!);
    expect(row).toMatchObject({
      goal: 'quarterly-report',
      caller: 'research-agent',
      profile: 'cheap',
      model: 'gpt-mini',
      provider: 'openai',
      status: 'success',
      tokens_out: 20,
    });
    const report = await spendReport(db, {
      groupBy: ['goal'],
      since: new Date(started.getTime() - 3_600_000).toISOString(),
    });
    const lines = new Map(report.lines.map((l) => [l.keys.goal, l]));
    expect(lines.get('quarterly-report')?.requests).toBe(6);
    expect(lines.get('incident-review')?.requests).toBe(4);
    // 20 output tokens at 0.003 each, plus the prompt: LiteLLM's own cost, carried over.
    expect(lines.get('incident-review')!.costUsd).toBeGreaterThan(4 * 20 * 0.003 - 1e-9);

    const again = await backfillSpendLogs({ db, source, catalog, ...range() });
    expect(again).toMatchObject({ fetched: 10, inserted: 0, known: 10 });
    expect(await countRawRows(db)).toBe(10);
  });

  it('skips the requests the spool already recorded: each request counted once', async () => {
    const spooled = await ingestOnce({ db, spoolDir, catalog });
    expect(spooled.inserted).toBe(10);
    const result = await backfillSpendLogs({ db, source, catalog, ...range() });
    expect(result).toMatchObject({ fetched: 10, inserted: 0, known: 10 });
    expect(await countRawRows(db)).toBe(10);
  });
});

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { DeadLetterBox } from '../../src/spend/dead-letter.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { startSpendService, type SpendService } from '../../src/spend/service.js';
import { webhookSink } from '../../src/spend/webhook.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { callIdCounts, countRawRows } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { deadLetterEntries } from '../helpers/ledger-suite.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until } from '../helpers/serve.js';
import {
  chat,
  spendPolicies,
  startWebhookReceiver,
  type SentRequest,
  type WebhookReceiver,
} from '../helpers/spend.js';
import { payload } from '../helpers/spool.js';
import { allFakes, newKeys, startFakes, startStack, type Stack } from '../helpers/stack.js';

/** The request of issue 10: one NUL in a tag in the request's metadata. */
async function poisonRequest(client: OpenAI): Promise<string> {
  const { response } = await client.chat.completions
    .create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'poison' }],
      metadata: { tags: ['goal:x\u0000y'] },
    } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming)
    .withResponse();
  return response.headers.get('x-litellm-call-id') ?? '';
}

/** Every alert a webhook receiver got for one budget, as thresholds. */
function thresholds(receiver: WebhookReceiver, budget: string): number[] {
  return receiver.received
    .map((r) => (r as { alert?: { budget?: string; threshold?: number } }).alert)
    .filter((a) => a?.budget === budget)
    .map((a) => a!.threshold!)
    .sort();
}

describe('a request with a NUL in a tag, through the real LiteLLM, into the running spend loop', () => {
  let stack: Stack;
  let db: Database;
  let dir: string;
  let receiver: WebhookReceiver;
  let service: SpendService | undefined;

  beforeAll(async () => {
    stack = await startStack(spendPolicies);
    db = await openDatabase({});
    await migrate(db);
    dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-poison-it-'));
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    await service?.stop();
    await db?.close();
    await receiver?.close();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is cleaned and counted; the 20 requests after it are all recorded and the budget still alerts', async () => {
    const policies = buildFromTexts([{ name: 'p.yaml', text: spendPolicies(stack.fakes) }]).set;
    const box = new DeadLetterBox({ dir: path.join(dir, 'spend-dead-letter') });
    service = startSpendService({
      db,
      spoolDir: stack.spoolDir,
      catalog: deploymentCatalog(stack.config),
      policies: () => policies,
      deadLetters: box,
      sink: webhookSink({ url: receiver.url }),
      spike: false,
      ingestIntervalMs: 200,
      budgetIntervalMs: 500,
    });

    const poison = await poisonRequest(stack.client);
    const sent: SentRequest[] = [];
    // Each costs (3 × 1000 + 16 × 3000) / 1e6 = $0.051; 20 of them pass both thresholds of $0.60.
    for (let i = 0; i < 20; i += 1)
      sent.push(await chat(stack.client, 'gpt-mini', { tags: ['goal:budgeted'] }, 'budget test'));

    await until(async () => ((await countRawRows(db)) >= 21 ? true : undefined), 60_000);
    const counts = await callIdCounts(db);
    for (const request of sent) expect(counts.get(request.callId)).toBe(1);
    // The spool holds the NUL as LiteLLM logged it; the ledger holds the tag without it, flagged.
    const spool = (
      await Promise.all(
        (await readdir(stack.spoolDir)).map((f) => readFile(path.join(stack.spoolDir, f), 'utf8')),
      )
    ).join('');
    expect(spool).toContain('goal:x\\u0000y');
    const [row] = await db.query<{ goal: string; cleaned: string }>(
      'SELECT goal, cleaned FROM spend_requests WHERE call_id = $1',
      [poison],
    );
    expect(row).toEqual({ goal: 'xy', cleaned: 'nul' });
    expect(box.summary()).toMatchObject({ cleaned: { nul: 1 }, deadLettered: {} });
    expect(await deadLetterEntries(path.join(dir, 'spend-dead-letter'))).toEqual([]);

    // Budgets are still checked: both thresholds of the goal's budget fire, once each.
    await until(
      () => Promise.resolve(thresholds(receiver, 'goal:budgeted').length >= 2 ? true : undefined),
      30_000,
    );
    expect(thresholds(receiver, 'goal:budgeted')).toEqual([0.8, 1]);
  }, 120_000);
});

describe('the same through modelcenter serve: the spool, POST /v1/spend/ingest, status and /metrics', () => {
  const keys = newKeys();
  const token = 'mc-admin-token-for-the-poison-test-0123456789';
  let repo: string;
  let fakes: Awaited<ReturnType<typeof startFakes>>;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(spendPolicies(fakes));
  });
  afterAll(async () => {
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('records everything after the poison, answers 400 to a body that is not JSON, and shows what it cleaned and dead-lettered', async () => {
    const { env, port, apiPort } = await serveEnv(keys, { admin: token });
    const serving = serveInProcess(repo, env);
    const api = `http://127.0.0.1:${apiPort}`;
    const headers = { authorization: `Bearer ${token}` };
    try {
      await serving.started();
      const client = new OpenAI({
        baseURL: `http://127.0.0.1:${port}/v1`,
        apiKey: keys.master,
        maxRetries: 0,
      });
      await poisonRequest(client);
      for (let i = 0; i < 20; i += 1)
        await chat(client, 'gpt-mini', { tags: ['goal:q-report'] }, `after ${i}`);
      const report = async (): Promise<{
        total: { requests: number; costUsd: number };
        lines: { keys: { goal: string | null }; requests: number }[];
      }> =>
        (await (
          await fetch(`${api}/v1/spend/report?groupBy=goal&since=1h`, { headers })
        ).json()) as never;
      await until(async () => ((await report()).total.requests >= 21 ? true : undefined), 60_000);
      expect((await report()).lines.map((l) => [l.keys.goal, l.requests])).toEqual(
        expect.arrayContaining([
          ['q-report', 20],
          ['xy', 1],
        ]),
      );

      // generic_api: one NUL, one cost of -1e12 and one start in 1970 among 20 good payloads.
      const now = Date.now() / 1000 - 60;
      const at = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
        payload(id, { startTime: now, endTime: now + 0.2, ...extra });
      const batch = [
        at('http-nul', { request_tags: ['goal:x\u0000y'] }),
        at('http-negative', { response_cost: -1e12, request_tags: ['goal:negative'] }),
        at('http-1970', { startTime: 10, endTime: 11 }),
        ...Array.from({ length: 20 }, (_, i) => at(`http-${i}`, { request_tags: ['goal:api'] })),
      ];
      const ingest = await fetch(`${api}/v1/spend/ingest`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: batch.map((p) => JSON.stringify(p)).join('\n'),
      });
      expect(ingest.status).toBe(200);
      expect(await ingest.json()).toEqual({ inserted: 22, duplicates: 0, rejected: 1, cleaned: 2 });
      const notJson = await fetch(`${api}/v1/spend/ingest`, {
        method: 'POST',
        headers,
        body: 'this is not JSON',
      });
      expect(notJson.status).toBe(400);
      expect(((await notJson.json()) as { error: { message: string } }).error.message).toMatch(
        /not JSON/,
      );
      const after = await report();
      expect(after.total.requests).toBe(43);
      expect(after.total.costUsd).toBeGreaterThan(0);
      expect(after.lines.find((l) => l.keys.goal === 'api')?.requests).toBe(20);

      const status = (await (await fetch(`${api}/v1/status`, { headers })).json()) as {
        spend: { cleaned: Record<string, number>; deadLettered: Record<string, number> };
      };
      expect(status.spend).toMatchObject({
        cleaned: { nul: 2, cost: 1 },
        deadLettered: { 'date-out-of-range': 1 },
        deadLetterFile: path.join(repo, '.modelcenter', 'spend-dead-letter', 'dead-letter.jsonl'),
        lastDeadLetter: { reason: 'date-out-of-range' },
      });
      const metrics = await (await fetch(`${api}/metrics`, { headers })).text();
      expect(metrics).toContain(
        'modelcenter_spend_records_problems_total{outcome="cleaned",reason="nul"} 2',
      );
      expect(metrics).toContain(
        'modelcenter_spend_records_problems_total{outcome="dead-lettered",reason="date-out-of-range"} 1',
      );
      const entries = await deadLetterEntries(path.join(repo, '.modelcenter', 'spend-dead-letter'));
      expect(entries).toEqual([
        expect.objectContaining({ reason: 'date-out-of-range', source: 'api' }),
      ]);
      expect(JSON.parse(entries[0]!.line)).toMatchObject({ litellm_call_id: 'http-1970' });
      // Logged once per kind, not once per record.
      const cleanedLogs = serving.logs().match(/held NUL characters/g) ?? [];
      expect(cleanedLogs).toHaveLength(1);
    } finally {
      serving.stop();
      expect(await serving.exit).toBe(0);
    }
  }, 240_000); // LiteLLM's cold start is inside this test, on a shared machine
});

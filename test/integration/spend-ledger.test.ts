import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { budgetsFromPolicies, checkBudgets } from '../../src/spend/budgets.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import type { IngestOptions } from '../../src/spend/ingest.js';
import { spendReport } from '../../src/spend/report.js';
import { webhookSink } from '../../src/spend/webhook.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { callIdCounts, rowsOfCall } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import {
  chat,
  ingestUntil,
  PRICES,
  spendPolicies,
  startWebhookReceiver,
  type SentRequest,
} from '../helpers/spend.js';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let db: Database;
let ingest: IngestOptions;

beforeAll(async () => {
  stack = await startStack(spendPolicies);
  db = await openDatabase({});
  await migrate(db);
  ingest = { db, spoolDir: stack.spoolDir, catalog: deploymentCatalog(stack.config) };
});

afterAll(async () => {
  await db?.close();
  await stack?.stop();
});

beforeEach(async () => {
  await ingestUntil(ingest, 0, 0); // whatever earlier tests left in the spool
  await db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily, spend_alerts');
  for (const fake of [stack.fakes.openai, stack.fakes.groq, stack.fakes.ollama])
    fake.setFault(undefined);
});

const policies = () => buildFromTexts([{ name: 'p.yaml', text: spendPolicies(stack.fakes) }]).set;

describe('spend ledger through the real LiteLLM', () => {
  it('records N tagged requests as exactly N rows; cost per goal is price × the tokens reported, to the cent', async () => {
    const sent: SentRequest[] = [];
    for (let i = 0; i < 24; i += 1) {
      const goal = i % 3 === 0 ? 'adhoc' : 'q-report';
      const content = `request ${i} ${'x'.repeat(i * 7)}`;
      // Half carry context as tags, half as request metadata: both reach the ledger.
      const context =
        i % 2 === 0
          ? { tags: [`goal:${goal}`, 'caller:alice', `conversation:c${i % 4}`] }
          : { metadata: { goal, caller: 'alice', conversation: `c${i % 4}` } };
      sent.push(await chat(stack.client, 'gpt-mini', context, content));
    }
    expect(await ingestUntil(ingest, 24)).toBe(24);
    const counts = await callIdCounts(db);
    expect(counts.size).toBe(24);
    expect(sent.every((s) => counts.get(s.callId) === 1)).toBe(true);

    const expected = new Map<string, number>();
    for (const s of sent) {
      const price = PRICES['gpt-mini'];
      const cost = (s.promptTokens * price.input + s.completionTokens * price.output) / 1e6;
      expected.set(s.goal!, (expected.get(s.goal!) ?? 0) + cost);
    }
    const report = await spendReport(
      db,
      { groupBy: 'goal,model', since: '1h' },
      { policies: policies() },
    );
    const cents = (usd: number): number => Math.round(usd * 100);
    expect(
      report.lines.map((l) => [
        l.keys.goal,
        l.keys.model,
        l.requests,
        cents(l.costUsd),
        l.goal?.registered,
      ]),
    ).toEqual([
      ['q-report', 'gpt-mini', 16, cents(expected.get('q-report')!), true],
      ['adhoc', 'gpt-mini', 8, cents(expected.get('adhoc')!), false],
    ]);
    expect(report.lines[0]!.costUsd).toBeCloseTo(expected.get('q-report')!, 9);
    const byConversation = await spendReport(db, {
      groupBy: 'conversation,caller',
      since: '1h',
      sort: 'key',
    });
    expect(
      byConversation.lines.map((l) => [l.keys.conversation, l.keys.caller, l.requests]),
    ).toEqual([
      ['c0', 'alice', 6],
      ['c1', 'alice', 6],
      ['c2', 'alice', 6],
      ['c3', 'alice', 6],
    ]);
  });

  it('records failures (500 after fallbacks are exhausted, 429) with their error class and counts them in error rates', async () => {
    stack.fakes.ollama.setFault({ kind: 'status', status: 500 });
    stack.fakes.groq.setFault({ kind: 'status', status: 500 });
    await expect(chat(stack.client, 'fast', { tags: ['goal:q-report'] })).rejects.toThrow(/500/);
    stack.fakes.ollama.setFault(undefined);
    stack.fakes.groq.setFault(undefined);
    stack.fakes.openai.setFault({ kind: 'status', status: 429, times: 1 });
    await expect(chat(stack.client, 'gpt-mini', { tags: ['goal:q-report'] })).rejects.toThrow(
      /429/,
    );
    await chat(stack.client, 'gpt-mini', { tags: ['goal:q-report'] });
    await chat(stack.client, 'fast', { tags: ['goal:q-report'] });

    // LiteLLM 1.104 logs one failure event for a request whose every deployment failed (the
    // first attempt's); Groq was tried too but has no record of its own.
    expect(stack.fakes.groq.generations().at(-1)?.outcome).toBe(500);
    expect(await ingestUntil(ingest, 4)).toBe(4);
    const failures = await db.query<{
      deployment: string;
      error_class: string;
      error_code: string;
    }>(
      `SELECT deployment, error_class, error_code FROM spend_requests WHERE status = 'failure' ORDER BY deployment`,
    );
    expect(failures).toEqual([
      { deployment: 'fast/llama-small', error_class: 'InternalServerError', error_code: '500' },
      { deployment: 'gpt-mini', error_class: 'RateLimitError', error_code: '429' },
    ]);
    const byProvider = await spendReport(db, { groupBy: 'provider', since: '1h', sort: 'key' });
    expect(
      byProvider.lines.map((l) => [l.keys.provider, l.requests, l.errors, l.errorRate]),
    ).toEqual([
      ['local-ollama', 2, 1, 0.5],
      ['openai', 2, 1, 0.5],
    ]);
  });

  it('gives streamed requests a time to first token', async () => {
    stack.fakes.openai.setFault({ kind: 'slow-first-token', delayMs: 300, times: 1 });
    const stream = await stack.client.chat.completions
      .create({
        model: 'gpt-mini',
        stream: true,
        messages: [{ role: 'user', content: 'stream please' }],
        tags: ['goal:q-report'],
      } as never)
      .withResponse();
    const chunks: unknown[] = [];
    for await (const chunk of stream.data as unknown as AsyncIterable<unknown>) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    const callId = stream.response.headers.get('x-litellm-call-id')!;
    expect(await ingestUntil(ingest, 1)).toBe(1);
    const [row] = await rowsOfCall(db, callId);
    expect(row!.ttft_ms as number).toBeGreaterThanOrEqual(290);
    expect(row!.ttft_ms as number).toBeLessThan(row!.latency_ms as number);
    const report = await spendReport(db, { since: '1h' });
    expect(report.total.ttftP50Ms).toBeGreaterThan(250);
  });

  it('raises exactly one alert, delivered to the webhook, when a budget crosses 80%', async () => {
    const receiver = await startWebhookReceiver();
    try {
      const budgets = budgetsFromPolicies(policies());
      const check = () =>
        checkBudgets({ db, budgets, sink: webhookSink({ url: receiver.url }), spike: false });
      // Each request costs (3 × 1000 + 16 × 3000) / 1e6 = $0.051; the budget is $0.60.
      for (let i = 0; i < 9; i += 1)
        await chat(stack.client, 'gpt-mini', { tags: ['goal:budgeted'] }, 'budget test');
      await ingestUntil(ingest, 9);
      expect(await check()).toEqual([]); // 76.5%
      await chat(stack.client, 'gpt-mini', { tags: ['goal:budgeted'] }, 'budget test');
      await ingestUntil(ingest, 10);
      expect((await check()).map((a) => a.type === 'budget' && a.threshold)).toEqual([0.8]); // 85%
      await chat(stack.client, 'gpt-mini', { tags: ['goal:budgeted'] }, 'budget test');
      await ingestUntil(ingest, 11);
      expect(await check()).toEqual([]); // 93.5%: still the same period and threshold
      expect(await check()).toEqual([]);
      expect(receiver.received).toHaveLength(1);
      expect(receiver.received[0]).toMatchObject({
        source: 'modelcenter',
        alert: { type: 'budget', budget: 'goal:budgeted', threshold: 0.8, limitUsd: 0.6 },
      });
      expect((receiver.received[0] as { alert: { spendUsd: number } }).alert.spendUsd).toBeCloseTo(
        0.51,
        6,
      );
    } finally {
      await receiver.close();
    }
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LiteLLMAdminClient } from '../../src/litellm/admin-client.js';
import { backfillSpendLogs, markName, SpendBackfiller } from '../../src/spend/backfill.js';
import { DeadLetterBox } from '../../src/spend/dead-letter.js';
import type { DeploymentCatalog } from '../../src/spend/extract.js';
import { ingestPayloads } from '../../src/spend/ingest.js';
import { spendReport } from '../../src/spend/report.js';
import type { Database } from '../../src/store/db.js';
import { backfillMark, countRawRows, rowsOfCall } from '../../src/store/ledger.js';
import { openLedger } from '../../src/store/migrate.js';
import {
  startDbEmulator,
  type DbEmulator,
  type EmulatedSpendLog,
  type RecordedAdminRequest,
} from '../emulator/litellm-db.js';
import { deadLetterEntries, refusingDatabase } from '../helpers/ledger-suite.js';
import { fetchLiteLLMOpenApi } from '../helpers/litellm-openapi.js';
import { checkRequests, type OpenApiDocument } from '../helpers/openapi-contract.js';
import { testKey } from '../helpers/secrets.js';
import { spendLogFixture } from '../helpers/spend-logs.js';

/**
 * The backfill from LiteLLM's own spend logs (database mode), against the database-mode emulator:
 * volumes no test can send for real (35,000 rows, 12,000 requests in one second), rows written
 * while it reads, a read failing midway, retries and failures in the spool. The same reads of real
 * rows written by real requests run in test/db/spend-backfill.test.ts (npm run test:db). The
 * requests sent here are checked against the OpenAPI document of the real pinned LiteLLM at the end.
 */

const masterKey = testKey('sk-master-');
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const T0 = new Date('2026-11-01T00:00:00Z').getTime();

/** Every request the emulators in this file received, for the contract check. */
const sent: RecordedAdminRequest[] = [];
let openapi: Promise<OpenApiDocument> | undefined;
const realOpenApi = (): Promise<OpenApiDocument> => (openapi ??= fetchLiteLLMOpenApi(masterKey));

/** Deployment ids of the committed config → Model Center's names. */
const catalog: DeploymentCatalog = (id) =>
  id === 'cheap/gpt-mini' ? { model: 'gpt-mini', provider: 'openai' } : undefined;

describe('spend-log backfill (database mode, LiteLLM /spend/logs/v2)', () => {
  let emulator: DbEmulator;
  let client: LiteLLMAdminClient;
  let dir: string;
  let db: Database;

  beforeAll(() => {
    // Overlaps LiteLLM's start-up with the tests; the contract check at the end awaits it.
    realOpenApi().catch(() => undefined);
  });

  beforeEach(async () => {
    emulator = await startDbEmulator({ masterKey, instances: [{}] });
    client = new LiteLLMAdminClient(emulator.urls[0]!, masterKey);
    dir = await mkdtemp(path.join(tmpdir(), 'mc-backfill-'));
    db = await openLedger({ dataDir: path.join(dir, 'ledger') });
  });

  /** One backfill of [from, to] from the emulated LiteLLM into the ledger. */
  const backfill = (from: Date, to: Date) =>
    backfillSpendLogs({ db, source: client, catalog, from, to });

  afterEach(async () => {
    sent.push(...emulator.requests);
    await emulator.close();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads 3 days with a 12,500-request hour completely, each window whole in one query, and a second run adds nothing', async () => {
    // 22,500 requests spread over three days, and 12,500 within one busy hour: more than one
    // /spend/logs query returns.
    for (let i = 0; i < 22_500; i++) emulator.spendLogs.push(spendLogFixture(T0 + i * 11_000));
    const busy = T0 + 30 * HOUR_MS;
    for (let i = 0; i < 12_500; i++)
      emulator.spendLogs.push(
        spendLogFixture(busy + i * 288, {
          request_tags: ['goal:incident-review'],
          spend: 0.02,
        }),
      );

    const first = await backfill(new Date(T0), new Date(T0 + 3 * DAY_MS));
    expect(first.fetched).toBe(35_000);
    expect(first.inserted).toBe(35_000);
    expect(first.missed).toBe(0);
    expect(first.splits).toBeGreaterThan(0);
    expect(await countRawRows(db)).toBe(35_000);
    // Every window was read whole in one query of at most 1,000 rows: no offset paging, where
    // equal start times or late writes could skip a row.
    expect(emulator.requests.every((r) => r.query.page === '1')).toBe(true);
    expect(emulator.requests.every((r) => Number(r.query.page_size) <= 1000)).toBe(true);

    const report = await spendReport(
      db,
      { groupBy: ['goal'], since: '2026-11-01', until: '2026-11-04' },
      { now: new Date(T0 + 4 * DAY_MS) },
    );
    const cost = new Map(report.lines.map((l) => [l.keys.goal, l.costUsd]));
    expect(cost.get('quarterly-report')).toBeCloseTo(225, 6);
    expect(cost.get('incident-review')).toBeCloseTo(250, 6);

    const again = await backfill(new Date(T0), new Date(T0 + 3 * DAY_MS));
    expect(again.inserted).toBe(0);
    expect(again.known).toBe(35_000);
    expect(await countRawRows(db)).toBe(35_000);
  });

  it('skips requests the spool already recorded (every attempt), and keeps their spool rows', async () => {
    const start = T0 + 5 * HOUR_MS;
    const logged = [0, 1, 2].map((i) => spendLogFixture(start + i * 1000));
    emulator.spendLogs.push(...logged, spendLogFixture(start + 5000));
    // The spool logged the same three requests, with microsecond times; the first with a retry.
    const payload = (row: EmulatedSpendLog, offsetS: number, status: string) => ({
      litellm_call_id: row.litellm_call_id,
      status,
      startTime: row.startTime.getTime() / 1000 + offsetS,
      endTime: row.startTime.getTime() / 1000 + offsetS + 0.4,
      model_id: 'cheap/gpt-mini',
      model_group: 'cheap',
      response_cost: status === 'success' ? 0.01 : 0,
      prompt_tokens: 100,
      completion_tokens: 50,
      request_tags: ['goal:quarterly-report'],
      ...(status === 'failure' && { error_information: { error_class: 'RateLimitError' } }),
    });
    await ingestPayloads(
      db,
      [
        payload(logged[0]!, 0.000123, 'failure'),
        payload(logged[0]!, 0.2, 'success'),
        payload(logged[1]!, 0.000456, 'success'),
        payload(logged[2]!, 0.000789, 'success'),
      ],
      catalog,
    );

    const result = await backfill(new Date(start - HOUR_MS), new Date(start + HOUR_MS));
    expect(result).toMatchObject({ fetched: 4, inserted: 1, known: 3 });
    expect(await countRawRows(db)).toBe(5);
    expect((await rowsOfCall(db, logged[0]!.litellm_call_id!)).map((r) => r.status)).toEqual([
      'failure',
      'success',
    ]);
  });

  it('a request the backfill took first is replaced by its spool payloads when they arrive: counted once, attempt by attempt', async () => {
    const start = T0 + 7 * HOUR_MS;
    const early = spendLogFixture(start, { spend: 0.01 });
    emulator.spendLogs.push(early, spendLogFixture(start + 5000, { spend: 0.01 }));
    await backfill(new Date(start - HOUR_MS), new Date(start + HOUR_MS));
    expect(await countRawRows(db)).toBe(2);
    // The spool was behind: its two attempts of the first request arrive now.
    const attempt = (offsetS: number, status: string, cost: number) => ({
      litellm_call_id: early.litellm_call_id,
      status,
      startTime: start / 1000 + offsetS,
      endTime: start / 1000 + offsetS + 0.3,
      model_id: 'cheap/gpt-mini',
      model_group: 'cheap',
      response_cost: cost,
      prompt_tokens: 100,
      completion_tokens: status === 'success' ? 50 : 0,
      request_tags: ['goal:quarterly-report', 'caller:research-agent'],
      ...(status === 'failure' && { error_information: { error_class: 'RateLimitError' } }),
    });
    await ingestPayloads(
      db,
      [attempt(0.000111, 'failure', 0), attempt(0.4, 'success', 0.012)],
      catalog,
    );
    expect((await rowsOfCall(db, early.litellm_call_id!)).map((r) => r.status)).toEqual([
      'failure',
      'success',
    ]);
    expect(await countRawRows(db)).toBe(3);
    // The rollups agree: the backfilled row's figures are gone, the attempts' are in.
    const report = await spendReport(
      db,
      { groupBy: ['goal'], since: '2026-11-01', until: '2026-11-02' },
      { now: new Date(T0 + DAY_MS) },
    );
    expect(report.source).toBe('rollup');
    expect(report.total).toMatchObject({ requests: 3, errors: 1 });
    expect(report.total.costUsd).toBeCloseTo(0.022, 9);
  });

  it('keeps goal, caller and conversation, names model and provider from the config, and records failures and time to first token', async () => {
    const at = T0 + 2 * HOUR_MS;
    emulator.spendLogs.push(
      spendLogFixture(at, {
        litellm_call_id: 'streamed',
        request_tags: ['goal:quarterly-report'],
        metadata: {
          user_api_key_alias: 'research-agent',
          spend_logs_metadata: { conversation: 'thread-7' },
        },
        completionStartTime: new Date(at + 120),
        endTime: new Date(at + 900),
      }),
      spendLogFixture(at + 1000, {
        litellm_call_id: 'failed',
        status: 'failure',
        spend: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        request_tags: JSON.stringify(['goal:quarterly-report', 'caller:batch-job']) as never,
        metadata: {
          status: 'failure',
          error_information: { error_class: 'RateLimitError', error_code: '429' },
        },
      }),
      spendLogFixture(at + 2000, {
        litellm_call_id: 'cached',
        cache_hit: 'True',
        model_id: 'db-added-model',
        model: 'claude-3-haiku',
        custom_llm_provider: 'anthropic',
      }),
    );
    await backfill(new Date(at - 60_000), new Date(at + 60_000));
    const [streamed] = await rowsOfCall(db, 'streamed');
    expect(streamed).toMatchObject({
      goal: 'quarterly-report',
      caller: 'research-agent',
      conversation: 'thread-7',
      profile: 'cheap',
      model: 'gpt-mini',
      provider: 'openai',
      status: 'success',
      ttft_ms: 120,
      latency_ms: 900,
      tokens_in: 100,
      tokens_out: 50,
    });
    const [failed] = await rowsOfCall(db, 'failed');
    expect(failed).toMatchObject({
      status: 'failure',
      caller: 'batch-job',
      error_class: 'RateLimitError',
      error_code: '429',
      ttft_ms: null,
    });
    const [cached] = await rowsOfCall(db, 'cached');
    expect(cached).toMatchObject({
      cache_hit: true,
      model: 'claude-3-haiku',
      provider: 'anthropic',
    });
  });

  it('reads a second with more requests than a page, even more than LiteLLM counts (12,000), completely and once', async () => {
    const second = T0 + 10 * HOUR_MS;
    for (let i = 0; i < 12_000; i++)
      emulator.spendLogs.push(spendLogFixture(second + Math.floor(i / 12)));
    for (let i = 0; i < 50; i++)
      emulator.spendLogs.push(spendLogFixture(second - 60_000 + i * 999));
    const result = await backfill(new Date(second - HOUR_MS), new Date(second + HOUR_MS));
    expect(result).toMatchObject({ fetched: 12_050, inserted: 12_050, missed: 0 });
    expect(await countRawRows(db)).toBe(12_050);
    // Only that one second was paged through.
    const paged = emulator.requests.filter((r) => r.query.page !== '1');
    expect(new Set(paged.map((r) => `${r.query.start_date}/${r.query.end_date}`)).size).toBe(1);
  });

  it('picks up rows LiteLLM writes into the range while the backfill reads it', async () => {
    const start = T0 + 11 * HOUR_MS;
    for (let i = 0; i < 2500; i++) emulator.spendLogs.push(spendLogFixture(start + i * 1000));
    let reads = 0;
    emulator.onSpendLogsRead(() => {
      // LiteLLM's batch writer lands five requests of the last minutes during the second read.
      if (++reads === 2)
        for (let i = 0; i < 5; i++)
          emulator.spendLogs.push(spendLogFixture(start + HOUR_MS - 60_000 + i));
    });
    const result = await backfill(new Date(start), new Date(start + HOUR_MS));
    expect(result.inserted).toBe(2505);
    expect(await countRawRows(db)).toBe(2505);
  });

  it('a run that fails midway keeps its progress; the next catch-up resumes there and ends with every request once', async () => {
    const now = new Date(T0 + 2 * DAY_MS);
    for (let i = 0; i < 4000; i++) emulator.spendLogs.push(spendLogFixture(T0 + i * 40_000));
    // Three requests younger than the settle time (15 min): left for a later run.
    for (let i = 0; i < 3; i++)
      emulator.spendLogs.push(spendLogFixture(now.getTime() - 300_000 + i));
    const backfiller = (): SpendBackfiller =>
      new SpendBackfiller({
        db,
        source: () => client,
        catalog: () => catalog,
        settings: { firstLookbackSeconds: 3 * 86_400, settleSeconds: 900 },
        now: () => now,
      });
    let reads = 0;
    emulator.onSpendLogsRead(() => {
      reads += 1;
      if (reads === 6) emulator.failNextSpendLogs(1);
    });
    const failure: unknown = await backfiller()
      .catchUp()
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/\/spend\/logs\/v2 with 500/);
    const mark = await backfillMark(db, markName(client.baseUrl));
    expect(mark!.getTime()).toBeGreaterThan(T0);
    const partial = await countRawRows(db);
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(4000);

    emulator.onSpendLogsRead(undefined);
    const firstRead = emulator.requests.length;
    const resumed = await backfiller().catchUp();
    // It started at the mark (less the settle time), not at the beginning of the lookback.
    const starts = emulator.requests
      .slice(firstRead)
      .map((r) => Date.parse(`${r.query.start_date!.replace(' ', 'T')}Z`));
    expect(Math.min(...starts)).toBe(Math.floor((mark!.getTime() - 900_000) / 1000) * 1000);
    expect(resumed.inserted).toBe(4000 - partial);
    expect(await countRawRows(db)).toBe(4000);
  });

  it("an odd row in LiteLLM's spend logs is cleaned or dead-lettered and counted; the window and the catch-up go on", async () => {
    const at = (i: number): number => T0 + HOUR_MS + i * 60_000;
    for (let i = 0; i < 20; i++) emulator.spendLogs.push(spendLogFixture(at(i)));
    const odd = [
      // Not a SpendLogs row at all: before, it made the whole page unreadable, for good.
      spendLogFixture(at(30), { request_id: null as never }),
      spendLogFixture(at(31), { spend: 'a lot' as never }),
      // No call id anywhere: not a request record.
      spendLogFixture(at(32), { request_id: '', litellm_call_id: null, metadata: {} }),
      // Storable once cleaned: a NUL in a tag, a lone surrogate, a negative cost and tokens.
      spendLogFixture(at(33), { request_tags: ['goal:x\u0000y'] }),
      spendLogFixture(at(34), { request_tags: ['caller:\ud800lone'] }),
      spendLogFixture(at(35), { spend: -1e12, prompt_tokens: -5 }),
    ];
    emulator.spendLogs.push(...odd);
    const deadDir = path.join(dir, 'spend-dead-letter');
    const box = new DeadLetterBox({ dir: deadDir });
    const run = () =>
      backfillSpendLogs({
        db,
        source: client,
        catalog,
        from: new Date(T0),
        to: new Date(T0 + DAY_MS),
        deadLetters: box,
      });
    expect(await run()).toMatchObject({ inserted: 23, rejected: 3, cleaned: 3, missed: 0 });
    expect(await countRawRows(db)).toBe(23);
    const [nul] = await rowsOfCall(db, odd[3]!.litellm_call_id!);
    expect(nul).toMatchObject({ goal: 'xy', cleaned: 'nul' });
    const [negative] = await rowsOfCall(db, odd[5]!.litellm_call_id!);
    expect(negative).toMatchObject({ cost_usd: 0, tokens_in: 0, cleaned: 'tokens,cost' });
    const report = await spendReport(db, { since: '2026-10-01', until: '2026-12-01' });
    expect(report.total.costUsd).toBeCloseTo(22 * 0.01, 9);
    const entries = await deadLetterEntries(deadDir);
    expect(entries.map((e) => [e.reason, e.source])).toEqual([
      ['not-a-payload', 'spend-logs'],
      ['not-a-payload', 'spend-logs'],
      ['not-a-payload', 'spend-logs'],
    ]);
    const details = (entries as unknown as { detail: string }[]).map((e) => e.detail).join('\n');
    expect(details).toMatch(/request_id/);
    expect(details).toMatch(/spend/);
    expect(details).toMatch(/no litellm_call_id/);
    expect(box.summary()).toMatchObject({
      cleaned: { nul: 1, surrogate: 1, cost: 1, tokens: 1 },
      deadLettered: { 'not-a-payload': 3 },
    });

    // The same range again: nothing new in the ledger, the file or the counts.
    expect(await run()).toMatchObject({ inserted: 0, known: 23, cleaned: 0 });
    expect(await deadLetterEntries(deadDir)).toHaveLength(3);
    expect(box.summary().deadLettered).toEqual({ 'not-a-payload': 3 });
  });

  it('a row the ledger refuses is dead-lettered and the rest of its window stored', async () => {
    for (let i = 0; i < 10; i++) emulator.spendLogs.push(spendLogFixture(T0 + HOUR_MS + i * 1000));
    const refused = spendLogFixture(T0 + HOUR_MS + 500);
    emulator.spendLogs.push(refused);
    const deadDir = path.join(dir, 'spend-dead-letter');
    const box = new DeadLetterBox({ dir: deadDir });
    const result = await backfillSpendLogs({
      db: refusingDatabase(db, refused.litellm_call_id!),
      source: client,
      catalog,
      from: new Date(T0),
      to: new Date(T0 + DAY_MS),
      deadLetters: box,
    });
    expect(result).toMatchObject({ inserted: 10, known: 0, rejected: 1 });
    expect(await countRawRows(db)).toBe(10);
    expect(await deadLetterEntries(deadDir)).toEqual([
      expect.objectContaining({ reason: 'database', source: 'spend-logs' }),
    ]);
    expect(box.summary().deadLettered).toEqual({ database: 1 });
  });

  it('reads the spool before each run, so a request the spool has not delivered yet is not taken from LiteLLM too', async () => {
    const now = new Date(T0 + DAY_MS);
    const row = spendLogFixture(T0 + HOUR_MS);
    emulator.spendLogs.push(row, spendLogFixture(T0 + 2 * HOUR_MS));
    const backfiller = new SpendBackfiller({
      db,
      source: () => client,
      catalog: () => catalog,
      settings: { firstLookbackSeconds: 86_400, settleSeconds: 900 },
      // The service's spool ingestion: this request's spool line arrives just now.
      beforeRun: () =>
        ingestPayloads(
          db,
          [
            {
              litellm_call_id: row.litellm_call_id,
              startTime: row.startTime.getTime() / 1000 + 0.000321,
              endTime: row.endTime.getTime() / 1000,
              model_id: 'cheap/gpt-mini',
            },
          ],
          catalog,
        ),
      now: () => now,
    });
    expect(await backfiller.catchUp()).toMatchObject({ fetched: 2, inserted: 1, known: 1 });
    expect(await countRawRows(db)).toBe(2);
  });

  it('a range asked to end in the future ends now: the mark never passes now, so later catch-ups still run', async () => {
    const now = new Date(T0 + DAY_MS);
    emulator.spendLogs.push(spendLogFixture(now.getTime() - HOUR_MS));
    const backfiller = new SpendBackfiller({
      db,
      source: () => client,
      catalog: () => catalog,
      settings: { firstLookbackSeconds: 86_400, settleSeconds: 900 },
      now: () => now,
    });
    const result = await backfiller.forQuery({ since: '2h', until: '2030-01-01' });
    expect(result).toMatchObject({ to: now.toISOString(), inserted: 1 });
    expect((await backfillMark(db, markName(client.baseUrl)))!.getTime()).toBe(now.getTime());
    // Another LiteLLM (another database) has a mark of its own.
    expect(await backfillMark(db, markName('http://other-litellm:4000'))).toBeUndefined();
  });

  it('says what to do when LiteLLM has no database', async () => {
    await emulator.close();
    emulator = await startDbEmulator({ masterKey, instances: [{}], database: false });
    const error = await backfillSpendLogs({
      db,
      source: new LiteLLMAdminClient(emulator.urls[0]!, masterKey),
      catalog,
      from: new Date(T0),
      to: new Date(T0 + HOUR_MS),
    }).then(
      () => new Error('the backfill succeeded without a database'),
      (e: unknown) => e as Error,
    );
    expect(error.message).toMatch(/refused \/spend\/logs\/v2 \(401\).*database_url/);
    expect(error.message).not.toContain(masterKey);
  });
});

/** Checks what the tests above sent: run it with the whole file. */
describe('spend-log backfill contract with the real pinned LiteLLM', () => {
  it('every route, query parameter and value the backfill sent is declared by the real pinned LiteLLM /openapi.json', async () => {
    expect(sent.length).toBeGreaterThan(0);
    const report = checkRequests(await realOpenApi(), sent);
    expect(report.problems).toEqual([]);
    expect(report.routes).toEqual(['GET /spend/logs/v2']);
  });
});

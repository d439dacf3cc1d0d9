import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { checkBudgets } from '../../src/spend/budgets.js';
import { DeadLetterBox } from '../../src/spend/dead-letter.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { ingestOnce, ingestPayloads } from '../../src/spend/ingest.js';
import { spendReport } from '../../src/spend/report.js';
import type { Database, Queryable } from '../../src/store/db.js';
import {
  attemptsOfCall,
  countRawRows,
  insertRows,
  pruneRawRows,
  rowsOfCall,
  type LedgerRow,
} from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { payload, spoolLine } from './spool.js';

const NOW = new Date('2026-11-20T12:30:00Z');
const HOUR = 3600;
const nowSeconds = NOW.getTime() / 1000;

export function ledgerRowFixture(overrides: Partial<LedgerRow> & { callId: string }): LedgerRow {
  return {
    startedAt: nowSeconds - HOUR,
    endedAt: nowSeconds - HOUR + 0.2,
    status: 'success',
    goal: null,
    caller: null,
    conversation: null,
    profile: 'fast',
    deployment: 'fast/gpt-mini',
    model: 'gpt-mini',
    provider: 'openai',
    tokensIn: 100,
    tokensOut: 50,
    costUsd: 0.001,
    latencyMs: 200,
    ttftMs: null,
    cacheHit: false,
    errorClass: null,
    errorCode: null,
    traceId: null,
    endUser: null,
    keyAlias: null,
    ...overrides,
  };
}

const POLICIES = buildFromTexts([
  {
    name: 'p.yaml',
    text: `
callers:
  research-agent: { description: Research agent }
goals:
  quarterly-report:
    title: Write the quarterly report
    owner: research-agent
    budget: { usd: 20, period: 7d, alert_at: [0.8] }
`,
  },
]).set;

/**
 * The report suite, run unchanged on every ledger database (PGlite and PostgreSQL): the same
 * schema, the same queries, the same answers.
 */
export function ledgerReportSuite(name: string, open: () => Promise<Database>): void {
  describe(`spend reports on ${name}`, () => {
    let db: Database;
    beforeAll(async () => {
      db = await open();
      await migrate(db);
    });
    afterAll(() => db?.close());
    beforeEach(() =>
      db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily, spend_alerts, spend_content'),
    );

    it('answers "what did each goal cost, by model" with registered goals joined', async () => {
      const rows: LedgerRow[] = [];
      for (let i = 0; i < 30; i += 1) {
        rows.push(
          ledgerRowFixture({
            callId: `q${i}`,
            goal: 'quarterly-report',
            caller: 'research-agent',
            model: i % 3 === 0 ? 'claude' : 'gpt-mini',
            costUsd: i % 3 === 0 ? 0.03 : 0.0015,
            startedAt: nowSeconds - (i + 1) * HOUR,
          }),
        );
      }
      rows.push(ledgerRowFixture({ callId: 'x1', goal: 'side-quest', costUsd: 0.5 }));
      rows.push(ledgerRowFixture({ callId: 'x2', costUsd: 0.25 }));
      expect(await insertRows(db, rows)).toBe(32);

      const report = await spendReport(
        db,
        { groupBy: 'goal,model', since: '7d' },
        { policies: POLICIES, now: NOW },
      );
      const byKey = new Map(report.lines.map((l) => [`${l.keys.goal}|${l.keys.model}`, l]));
      expect(byKey.get('quarterly-report|claude')).toMatchObject({ requests: 10 });
      expect(byKey.get('quarterly-report|claude')!.costUsd).toBeCloseTo(0.3, 10);
      expect(byKey.get('quarterly-report|gpt-mini')!.costUsd).toBeCloseTo(0.03, 10);
      expect(byKey.get('quarterly-report|claude')!.goal).toEqual({
        registered: true,
        title: 'Write the quarterly report',
        owner: 'research-agent',
        budgetUsd: 20,
        budgetPeriod: '7d',
      });
      expect(byKey.get('side-quest|gpt-mini')!.goal).toEqual({ registered: false });
      expect(byKey.get('null|gpt-mini')!.costUsd).toBeCloseTo(0.25, 10);
      expect(report.lines[0]!.keys).toEqual({ goal: 'side-quest', model: 'gpt-mini' });
      expect(report.total.requests).toBe(32);
      expect(report.total.costUsd).toBeCloseTo(0.3 + 0.03 + 0.75, 10);
      expect(report.source).toBe('rollup');
    });

    it('counts a request once when its spool attempts arrive after the backfill took it: rows, hourly and daily rollups', async () => {
      const started = nowSeconds - 2 * HOUR;
      await insertRows(db, [
        ledgerRowFixture({
          callId: 'late',
          startedAt: started,
          costUsd: 0.01,
          source: 'spend_logs',
        }),
        ledgerRowFixture({
          callId: 'other',
          startedAt: started,
          costUsd: 0.5,
          source: 'spend_logs',
        }),
      ]);
      await insertRows(db, [
        ledgerRowFixture({
          callId: 'late',
          startedAt: started + 0.000123,
          status: 'failure',
          costUsd: 0,
        }),
        ledgerRowFixture({ callId: 'late', startedAt: started + 0.4, costUsd: 0.012 }),
      ]);
      for (const groupBy of ['model', 'day'] as const) {
        const report = await spendReport(db, { groupBy, since: '7d' }, { now: NOW });
        expect(report.total).toMatchObject({ requests: 3, errors: 1 });
        expect(report.total.costUsd).toBeCloseTo(0.512, 10);
      }
      const raw = await spendReport(db, { groupBy: 'conversation', since: '7d' }, { now: NOW });
      expect(raw.source).toBe('raw');
      expect(raw.total.requests).toBe(3);
    });

    it('answers "which provider was most reliable" with errors and error rates', async () => {
      const rows = Array.from({ length: 40 }, (_, i) => {
        const provider = i < 20 ? 'openai' : 'groq';
        const failed = provider === 'openai' ? i % 10 === 0 : i % 4 === 0;
        return ledgerRowFixture({
          callId: `p${i}`,
          provider,
          status: failed ? 'failure' : 'success',
          errorClass: failed ? 'RateLimitError' : null,
          costUsd: failed ? 0 : 0.001,
        });
      });
      await insertRows(db, rows);
      const report = await spendReport(
        db,
        { groupBy: 'provider', since: '1d', sort: 'error_rate' },
        { now: NOW },
      );
      expect(report.lines.map((l) => [l.keys.provider, l.requests, l.errors, l.errorRate])).toEqual(
        [
          ['groq', 20, 5, 0.25],
          ['openai', 20, 2, 0.1],
        ],
      );
    });

    it('reports latency and time-to-first-token percentiles within the histogram precision', async () => {
      const rows = Array.from({ length: 100 }, (_, i) =>
        ledgerRowFixture({
          callId: `l${i}`,
          latencyMs: (i + 1) * 10,
          ttftMs: i % 2 === 0 ? (i + 1) * 2 : null,
        }),
      );
      await insertRows(db, rows);
      const { total } = await spendReport(db, { since: '1d' }, { now: NOW });
      expect(total.latencyP50Ms! / 500).toBeGreaterThan(0.88);
      expect(total.latencyP50Ms! / 500).toBeLessThan(1.13);
      expect(total.latencyP95Ms! / 950).toBeGreaterThan(0.88);
      expect(total.latencyP95Ms! / 950).toBeLessThan(1.13);
      // TTFT only from the 50 streamed rows: 2, 6, 10, …, 198 ms; median ≈ 98 ms.
      expect(total.ttftP50Ms! / 98).toBeGreaterThan(0.88);
      expect(total.ttftP50Ms! / 98).toBeLessThan(1.13);
    });

    it('gives the same measures from rollups and from raw rows', async () => {
      const rows = Array.from({ length: 200 }, (_, i) =>
        ledgerRowFixture({
          callId: `s${i}`,
          conversation: 'all',
          latencyMs: 0.4 + i * i * 0.7,
          ttftMs: i % 3 === 0 ? 1 + i * 1.5 : null,
          status: i % 9 === 0 ? 'failure' : 'success',
          cacheHit: i % 4 === 0,
          startedAt: nowSeconds - 7200 - i * 60,
        }),
      );
      await insertRows(db, rows);
      const rollup = await spendReport(db, { since: '1d' }, { now: NOW });
      const raw = await spendReport(db, { since: '1d', conversation: 'all' }, { now: NOW });
      expect([rollup.source, raw.source]).toEqual(['rollup', 'raw']);
      expect(raw.total).toEqual(rollup.total);
      expect(rollup.total).toMatchObject({ requests: 200, errors: 23, cacheHitRate: 0.25 });
    });

    it('gives the same totals from daily and hourly rollups over ranges with partial days', async () => {
      const rows = Array.from({ length: 300 }, (_, i) =>
        ledgerRowFixture({
          callId: `m${i}`,
          goal: `g${i % 3}`,
          startedAt: nowSeconds - i * 1800 - 60,
          latencyMs: 50 + i,
        }),
      );
      await insertRows(db, rows);
      for (const since of ['5d', '3d', '30h']) {
        const daily = await spendReport(db, { groupBy: 'goal', since, sort: 'key' }, { now: NOW });
        const hourly = await spendReport(db, { groupBy: 'goal,hour', since }, { now: NOW });
        const perGoal = new Map<string, number>();
        for (const l of hourly.lines)
          perGoal.set(l.keys.goal!, (perGoal.get(l.keys.goal!) ?? 0) + l.requests);
        expect(daily.lines.map((l) => [l.keys.goal, l.requests])).toEqual(
          [...perGoal].sort(([a], [b]) => a.localeCompare(b)),
        );
        expect(daily.total.latencyP95Ms).toBe(hourly.total.latencyP95Ms);
      }
      const all = await spendReport(db, { since: '10d' }, { now: NOW });
      expect(all.total.requests).toBe(300);
    });

    it('groups by caller and day, and keeps requests outside the range out', async () => {
      const day = 24 * HOUR;
      await insertRows(db, [
        ledgerRowFixture({ callId: 'd0', caller: 'research-agent', startedAt: nowSeconds - 600 }),
        ledgerRowFixture({ callId: 'd1', caller: 'research-agent', startedAt: nowSeconds - day }),
        ledgerRowFixture({ callId: 'd2', caller: 'bot', startedAt: nowSeconds - day }),
        ledgerRowFixture({ callId: 'old', caller: 'bot', startedAt: nowSeconds - 10 * day }),
      ]);
      const report = await spendReport(
        db,
        { groupBy: ['caller', 'day'], since: '7d', sort: 'key' },
        { policies: POLICIES, now: NOW },
      );
      expect(report.lines.map((l) => [l.keys.caller, l.keys.day, l.requests, l.caller])).toEqual([
        ['bot', '2026-11-19', 1, { registered: false }],
        ['research-agent', '2026-11-19', 1, { registered: true, title: 'Research agent' }],
        ['research-agent', '2026-11-20', 1, { registered: true, title: 'Research agent' }],
      ]);
    });

    it('filters on any dimension, "-" meaning not set', async () => {
      await insertRows(db, [
        ledgerRowFixture({ callId: 'f1', goal: 'a', provider: 'openai' }),
        ledgerRowFixture({ callId: 'f2', goal: 'b', provider: 'groq' }),
        ledgerRowFixture({ callId: 'f3', goal: null, provider: 'groq' }),
      ]);
      const only = async (query: Record<string, string>): Promise<number> =>
        (await spendReport(db, { since: '1d', ...query }, { now: NOW })).total.requests;
      expect(await only({ provider: 'groq' })).toBe(2);
      expect(await only({ goal: '-' })).toBe(1);
      expect(await only({ goal: 'a,-' })).toBe(2);
      expect(await only({ goal: 'b', provider: 'openai' })).toBe(0);
    });

    it('reads raw rows for conversations, and keeps rollup totals after raw rows are pruned', async () => {
      await insertRows(db, [
        ledgerRowFixture({ callId: 'c1', conversation: 'conv-1', cacheHit: true }),
        ledgerRowFixture({ callId: 'c2', conversation: 'conv-1' }),
        ledgerRowFixture({
          callId: 'c3',
          conversation: 'conv-2',
          startedAt: nowSeconds - 3 * 24 * HOUR,
        }),
      ]);
      const conversations = await spendReport(
        db,
        { groupBy: 'conversation', since: '7d', sort: 'key' },
        { now: NOW },
      );
      expect(conversations.source).toBe('raw');
      expect(
        conversations.lines.map((l) => [l.keys.conversation, l.requests, l.cacheHitRate]),
      ).toEqual([
        ['conv-1', 2, 0.5],
        ['conv-2', 1, 0],
      ]);
      expect(await pruneRawRows(db, new Date(NOW.getTime() - 2 * 24 * 3600_000))).toBe(1);
      const after = await spendReport(db, { groupBy: 'conversation', since: '7d' }, { now: NOW });
      expect(after.total.requests).toBe(2);
      const rollup = await spendReport(db, { since: '7d' }, { now: NOW });
      expect(rollup.total.requests).toBe(3);
    });

    it('keeps content beside the rows that carry it, shows it per attempt, and prunes it with them', async () => {
      const messages = [{ role: 'user', content: 'summarise Q3 ✓' }];
      const response = { choices: [{ message: { content: 'Q3 was good' } }] };
      await insertRows(db, [
        ledgerRowFixture({ callId: 'kept', content: { messages, response } }),
        ledgerRowFixture({ callId: 'plain' }),
        ledgerRowFixture({
          callId: 'old',
          startedAt: nowSeconds - 3 * 24 * HOUR,
          content: { messages, response: null },
        }),
      ]);
      const [kept] = await attemptsOfCall(db, 'kept');
      expect(kept?.content).toEqual({ messages, response });
      expect(kept?.startedAt).toEqual(new Date((nowSeconds - HOUR) * 1000));
      expect((await attemptsOfCall(db, 'plain'))[0]?.content).toBeUndefined();
      expect(await pruneRawRows(db, new Date(NOW.getTime() - 2 * 24 * 3600_000))).toBe(1);
      const left = await db.query<{ call_id: string }>('SELECT call_id FROM spend_content');
      expect(left).toEqual([{ call_id: 'kept' }]);
    });

    it('raises one cost-spike alert for a caller burning tokens, once for that hour', async () => {
      const hourStart = Math.floor(nowSeconds / HOUR) * HOUR - HOUR; // the last full hour
      const rows: LedgerRow[] = [];
      for (let h = 1; h <= 24; h += 1)
        rows.push(
          ledgerRowFixture({
            callId: `base${h}`,
            caller: 'rogue',
            costUsd: 0.1,
            startedAt: hourStart - h * HOUR + 10,
          }),
        );
      for (let i = 0; i < 30; i += 1)
        rows.push(
          ledgerRowFixture({
            callId: `burst${i}`,
            caller: 'rogue',
            costUsd: 0.1,
            startedAt: hourStart + 60 + i,
          }),
        );
      rows.push(
        ledgerRowFixture({
          callId: 'calm',
          caller: 'steady',
          costUsd: 0.2,
          startedAt: hourStart + 5,
        }),
      );
      await insertRows(db, rows);
      const alerts = await checkBudgets({ db, budgets: [], now: NOW });
      expect(alerts).toEqual([
        {
          type: 'cost-spike',
          budget: 'spike:caller:rogue',
          caller: 'rogue',
          hourStart: new Date(hourStart * 1000).toISOString(),
          spendUsd: expect.closeTo(3, 9) as number,
          baselineUsdPerHour: expect.closeTo(0.1, 9) as number,
          factor: 5,
        },
      ]);
      expect(await checkBudgets({ db, budgets: [], now: NOW })).toEqual([]);
    });

    it('never counts the same attempt twice', async () => {
      const row = ledgerRowFixture({ callId: 'same' });
      expect(await insertRows(db, [row])).toBe(1);
      expect(await insertRows(db, [row, ledgerRowFixture({ callId: 'other' })])).toBe(1);
      const retry = { ...row, startedAt: row.startedAt + 0.5, status: 'failure' as const };
      expect(await insertRows(db, [retry])).toBe(1);
      expect((await spendReport(db, { since: '1d' }, { now: NOW })).total.requests).toBe(3);
    });
  });
}

/** A spool line, exactly as given (raw JSON text can hold what JSON.stringify never writes). */
function rawLine(text: string): string {
  return `${text}\n`;
}

/**
 * A database whose spend_requests inserts fail with a data error (SQLSTATE 22P05, as PostgreSQL
 * answers an unstorable escape) whenever the batch holds `marker`: a row the sanitiser let
 * through but the database refuses, which no real value can be made to do any more.
 */
export function refusingDatabase(db: Database, marker: string): Database {
  const refuse = (sql: string, params?: unknown[]): void => {
    if (sql.includes('NULL::spend_requests') && String(params?.[0]).includes(marker))
      throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
  };
  const wrap = (q: Queryable): Queryable => ({
    query: <T>(sql: string, params?: unknown[]) => {
      refuse(sql, params);
      return q.query<T>(sql, params);
    },
    exec: (sql) => q.exec(sql),
  });
  return {
    ...wrap(db),
    kind: db.kind,
    transaction: (work) => db.transaction((tx) => work(wrap(tx))),
    close: () => db.close(),
  };
}

/** Dead-letter file entries (both the current file and the rotated one). */
export async function deadLetterEntries(
  dir: string,
): Promise<{ reason: string; source: string; file?: string; offset?: number; line: string }[]> {
  const text = [
    await readFile(path.join(dir, 'dead-letter.jsonl.1'), 'utf8').catch(() => ''),
    await readFile(path.join(dir, 'dead-letter.jsonl'), 'utf8').catch(() => ''),
  ].join('');
  return text
    .split('\n')
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          reason: string;
          source: string;
          file?: string;
          offset?: number;
          line: string;
        },
    );
}

/**
 * Input no request may use to poison the ledger (issue 10, item 5), run on every ledger database:
 * each kind is cleaned and stored or dead-lettered, and never blocks the lines after it.
 */
export function ledgerPoisonSuite(name: string, open: () => Promise<Database>): void {
  describe(`spool lines and payloads that cannot be stored as they are, on ${name}`, () => {
    let db: Database;
    let dir: string;
    let spoolDir: string;
    let deadDir: string;
    let box: DeadLetterBox;
    beforeAll(async () => {
      db = await open();
      await migrate(db);
    });
    afterAll(() => db?.close());
    beforeEach(async () => {
      await db.exec(
        'TRUNCATE spend_requests, spend_hourly, spend_daily, spend_alerts, spend_content, spend_spool_offsets',
      );
      dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-poison-'));
      spoolDir = path.join(dir, 'spool');
      deadDir = path.join(dir, 'spend-dead-letter');
      await mkdir(spoolDir);
      box = new DeadLetterBox({ dir: deadDir });
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    const ingest = (
      overrides: Partial<Parameters<typeof ingestOnce>[0]> = {},
    ): ReturnType<typeof ingestOnce> =>
      ingestOnce({
        db,
        spoolDir,
        catalog: deploymentCatalog(undefined),
        deadLetters: box,
        ...overrides,
      });
    const good = (n: number, prefix = 'good'): string =>
      Array.from({ length: n }, (_, i) => spoolLine(payload(`${prefix}-${i}`))).join('');
    const stored = async (callId: string): Promise<Record<string, unknown> | undefined> =>
      (await rowsOfCall(db, callId))[0];

    // [what, the spool line, what the ledger must hold afterwards]
    const cleanedCases: [string, string, Record<string, unknown>, string[]][] = [
      [
        'a NUL in a goal tag (the reported request)',
        spoolLine(payload('nul-tag', { request_tags: ['goal:x\u0000y', 'caller:alice'] })),
        { goal: 'xy', caller: 'alice' },
        ['nul'],
      ],
      [
        'NUL in the call id, model, deployment and key alias',
        spoolLine(
          payload('nul\u0000id', {
            model: 'gpt\u0000',
            model_id: 'dep\u0000',
            metadata: { user_api_key_alias: 'k\u0000ey' },
          }),
        ),
        { call_id: 'nulid', model: 'gpt', deployment: 'dep', key_alias: 'key' },
        ['nul'],
      ],
      [
        'a lone surrogate in a caller tag (raw JSON escape)',
        rawLine(
          JSON.stringify(payload('surrogate', { request_tags: ['caller:PLACEHOLDER'] })).replace(
            'PLACEHOLDER',
            'a\\ud800b',
          ),
        ),
        { caller: 'a\ufffdb' },
        ['surrogate'],
      ],
      [
        'a 100,000-character model name and an emoji deployment id',
        spoolLine(payload('long', { model: 'm'.repeat(100_000), model_id: '😀'.repeat(2000) })),
        { model: 'm'.repeat(300), deployment: '😀'.repeat(75) },
        ['long-value'],
      ],
      [
        'a cost of -1e12',
        spoolLine(payload('negative-cost', { response_cost: -1e12 })),
        { cost_usd: 0 },
        ['cost'],
      ],
      [
        'an infinite cost (1e400 in the JSON)',
        rawLine(
          JSON.stringify(payload('inf-cost', { response_cost: 12345 })).replace('12345', '1e400'),
        ),
        { cost_usd: 0 },
        ['cost'],
      ],
      [
        'a cost as a string',
        spoolLine(payload('string-cost', { response_cost: '0.5' })),
        { cost_usd: 0 },
        ['cost'],
      ],
      [
        'token counts negative, beyond an integer column and infinite',
        rawLine(
          JSON.stringify(
            payload('tokens', { prompt_tokens: -5, completion_tokens: 12345 }),
          ).replace('12345', '1e400'),
        ),
        { tokens_in: 0, tokens_out: 0 },
        ['tokens'],
      ],
      [
        'an end time in the year 5000',
        spoolLine(payload('end-time', { endTime: 95_617_584_000 })),
        { latency_ms: 0 },
        ['time'],
      ],
    ];

    it.each(cleanedCases)(
      'cleans %s, stores it flagged, and stores the lines after it',
      async (_what, line, expected, cleaned) => {
        await writeFile(path.join(spoolDir, 'spool-1-1-000000.jsonl'), line + good(3));
        const result = await ingest();
        expect(result).toMatchObject({ lines: 4, inserted: 4, rejected: 0, cleaned: 1 });
        const rows = await db.query<Record<string, unknown>>(
          `SELECT call_id, goal, caller, model, deployment, key_alias, cost_usd, tokens_in,
                  tokens_out, latency_ms, cleaned FROM spend_requests WHERE cleaned IS NOT NULL`,
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ ...expected, cleaned: cleaned.join(',') });
        for (let i = 0; i < 3; i += 1) expect(await stored(`good-${i}`)).toBeDefined();
        expect(box.summary().cleaned).toEqual(Object.fromEntries(cleaned.map((c) => [c, 1])));
        expect(await deadLetterEntries(deadDir)).toEqual([]);
        // The rollups took the cleaned row: no report total goes negative or infinite.
        const [sums] = await db.query<{ cost: number; tokens: number; requests: number }>(
          'SELECT sum(cost_usd) AS cost, sum(tokens_in)::float8 AS tokens, sum(requests)::int AS requests FROM spend_hourly',
        );
        expect(sums!.requests).toBe(4);
        expect(Number(sums!.cost)).toBeGreaterThanOrEqual(0);
        expect(Number.isFinite(Number(sums!.tokens))).toBe(true);
      },
    );

    const deadCases: [string, string, string][] = [
      ['a line that is not JSON', 'not json at all\n', 'not-json'],
      [
        'NaN in the JSON (Python json.dumps writes it)',
        '{"litellm_call_id":"x","startTime":NaN}\n',
        'not-json',
      ],
      ['a raw NUL byte inside a JSON string', '{"litellm_call_id":"a\u0000b"}\n', 'not-json'],
      ['JSON that is not an object', '[1,2,3]\n', 'not-a-payload'],
      [
        'a record without a call id',
        `${JSON.stringify({ startTime: 1_795_279_699 })}\n`,
        'not-a-payload',
      ],
      [
        'a start time of 1e400',
        rawLine(JSON.stringify(payload('t', { startTime: 12345 })).replace('12345', '1e400')),
        'date-out-of-range',
      ],
      ['a start time in 1970', spoolLine(payload('t0', { startTime: 0 })), 'date-out-of-range'],
      [
        'a start time in the year 300000',
        spoolLine(payload('t1', { startTime: 9.4e12 })),
        'date-out-of-range',
      ],
      ['a call id of 10,000 characters', spoolLine(payload('c'.repeat(10_000))), 'too-long'],
    ];

    it.each(deadCases)(
      'dead-letters %s once, with its reason and line, and stores the lines after it',
      async (_what, line, reason) => {
        const file = path.join(spoolDir, 'spool-1-1-000000.jsonl');
        await writeFile(file, good(2, 'before') + line + good(3));
        expect(await ingest()).toMatchObject({ lines: 6, inserted: 5, rejected: 1 });
        expect(await countRawRows(db)).toBe(5);
        const offset = Buffer.byteLength(good(2, 'before'));
        const entries = await deadLetterEntries(deadDir);
        expect(entries).toEqual([
          expect.objectContaining({
            reason,
            source: 'spool',
            file: 'spool-1-1-000000.jsonl',
            offset,
            line: line.slice(0, -1),
          }),
        ]);
        expect(box.summary().deadLettered).toEqual({ [reason]: 1 });
        // Read again (and again after a restart: a new box): nothing new anywhere.
        expect(await ingest()).toMatchObject({ lines: 0, inserted: 0, rejected: 0 });
        await db.query('DELETE FROM spend_spool_offsets');
        box = new DeadLetterBox({ dir: deadDir });
        expect(await ingest()).toMatchObject({ inserted: 0, duplicates: 5 });
        expect(await deadLetterEntries(deadDir)).toHaveLength(1);
      },
    );

    it('keeps content whose keys hold NUL or a lone surrogate (jsonb refuses both), and the row with it', async () => {
      const line = JSON.stringify(
        payload('content-keys', {
          messages: [{ role: 'user', content: 'hi', 'x\u0000': 1, PLACEHOLDER: 2 }],
          response: { 'a\u0000b': 'c\u0000' },
        }),
      ).replace('PLACEHOLDER', '\\udc00');
      await writeFile(path.join(spoolDir, 'spool-1-1-000000.jsonl'), `${line}\n${good(2)}`);
      expect(await ingest({ keepContent: () => true })).toMatchObject({
        inserted: 3,
        rejected: 0,
      });
      const [attempt] = await attemptsOfCall(db, 'content-keys');
      expect(attempt!.content).toEqual({
        messages: [{ role: 'user', content: 'hi', 'x\ufffd': 1, '\ufffd': 2 }],
        response: { 'a\ufffdb': 'c\ufffd' },
      });
    });

    it('dead-letters a line longer than a chunk in part, and goes on after it', async () => {
      const long = spoolLine(payload('huge', { messages: 'x'.repeat(200_000) }));
      await writeFile(path.join(spoolDir, 'spool-1-1-000000.jsonl'), long + good(3));
      const result = await ingest({ chunkBytes: 64 * 1024 });
      expect(result).toMatchObject({ inserted: 3, rejected: 1 });
      const [entry] = await deadLetterEntries(deadDir);
      expect(entry).toMatchObject({ reason: 'too-long', offset: 0 });
      expect(entry!.line.length).toBe(64 * 1024);
    });

    it('stores the rest of a batch when the database refuses one row, dead-lettering that row', async () => {
      const file = path.join(spoolDir, 'spool-1-1-000000.jsonl');
      await writeFile(file, good(3, 'a') + spoolLine(payload('refused-by-db')) + good(3, 'b'));
      const refusing = refusingDatabase(db, 'refused-by-db');
      expect(await ingest({ db: refusing })).toMatchObject({
        lines: 7,
        inserted: 6,
        rejected: 1,
      });
      expect(await stored('refused-by-db')).toBeUndefined();
      expect(await deadLetterEntries(deadDir)).toEqual([
        expect.objectContaining({ reason: 'database', offset: Buffer.byteLength(good(3, 'a')) }),
      ]);
      expect(await ingest({ db: refusing })).toMatchObject({ lines: 0 });
      const [hourly] = await db.query<{ n: number }>(
        'SELECT sum(requests)::int AS n FROM spend_hourly',
      );
      expect(hourly!.n).toBe(6);
    });

    it('after a crash between the dead-letter file and the commit, keeps each line once', async () => {
      const file = path.join(spoolDir, 'spool-1-1-000000.jsonl');
      await writeFile(file, good(2, 'a') + 'not json\n' + good(2, 'b'));
      // The database goes away at the commit (not a data error: retried, nothing dead-lettered).
      const failing: Database = {
        ...db,
        query: (sql, params) => db.query(sql, params),
        exec: (sql) => db.exec(sql),
        transaction: () => Promise.reject(new Error('Connection terminated unexpectedly')),
      };
      await expect(ingest({ db: failing })).rejects.toThrow(/Connection terminated/);
      expect(await countRawRows(db)).toBe(0);
      // The restart: a new process, a new box over the same file.
      box = new DeadLetterBox({ dir: deadDir });
      expect(await ingest()).toMatchObject({ inserted: 4, rejected: 1 });
      expect(await deadLetterEntries(deadDir)).toHaveLength(1);
      expect(box.summary().deadLettered).toEqual({ 'not-json': 1 });
    });

    it('keeps the dead-letter file bounded: one file up to its limit and the previous one', async () => {
      box = new DeadLetterBox({ dir: deadDir, maxBytes: 4096 });
      const lines = Array.from({ length: 100 }, (_, i) => `not json ${i} ${'z'.repeat(100)}\n`);
      await writeFile(path.join(spoolDir, 'spool-1-1-000000.jsonl'), lines.join('') + good(1));
      expect(await ingest({ batchLines: 1 })).toMatchObject({ inserted: 1, rejected: 100 });
      const sizes = await Promise.all(
        ['dead-letter.jsonl', 'dead-letter.jsonl.1'].map(
          async (f) => (await stat(path.join(deadDir, f))).size,
        ),
      );
      for (const size of sizes) expect(size).toBeLessThanOrEqual(4096);
      expect(box.summary().deadLettered).toEqual({ 'not-json': 100 });
    });

    it('ingest payloads: one NUL, a negative cost and an impossible date do not fail the batch', async () => {
      const payloads = [
        payload('api-nul', { request_tags: ['goal:x\u0000y'] }),
        payload('api-negative', { response_cost: -1e12 }),
        payload('api-1970', { startTime: 5 }),
        ...Array.from({ length: 20 }, (_, i) => payload(`api-${i}`, { response_cost: 0.01 })),
      ];
      expect(await ingestPayloads(db, payloads, deploymentCatalog(undefined), false, box)).toEqual({
        inserted: 22,
        duplicates: 0,
        rejected: 1,
        cleaned: 2,
      });
      expect(await stored('api-nul')).toMatchObject({ goal: 'xy' });
      const report = await spendReport(db, { since: '30d' });
      expect(report.total.requests).toBe(22);
      // The fixture's cost for the NUL payload, 20 × $0.01, and nothing for the negative one.
      expect(report.total.costUsd).toBeCloseTo(0.2 + Number(payload('x').response_cost), 9);
      expect(await deadLetterEntries(deadDir)).toEqual([
        expect.objectContaining({ reason: 'date-out-of-range', source: 'api' }),
      ]);
      // A row the database refuses: the other rows of the batch are stored.
      const refusing = refusingDatabase(db, 'api-refused');
      expect(
        await ingestPayloads(
          refusing,
          [payload('api-refused'), payload('api-after')],
          deploymentCatalog(undefined),
          false,
          box,
        ),
      ).toMatchObject({ inserted: 1, rejected: 1 });
      expect(await stored('api-after')).toBeDefined();
    });
  });
}

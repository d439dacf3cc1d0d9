import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { checkBudgets } from '../../src/spend/budgets.js';
import { spendReport } from '../../src/spend/report.js';
import type { Database } from '../../src/store/db.js';
import {
  attemptsOfCall,
  insertRows,
  pruneRawRows,
  type LedgerRow,
} from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';

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

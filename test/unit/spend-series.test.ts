import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketsBetween, MAX_BUCKETS, spendSeries } from '../../src/spend/series.js';
import type { Database } from '../../src/store/db.js';
import { insertRows, type LedgerRow } from '../../src/store/ledger.js';
import { openLedger } from '../../src/store/migrate.js';

const NOW = new Date('2026-11-20T12:30:00Z');

function row(callId: string, at: string, goal: string | null, costUsd: number): LedgerRow {
  const t = new Date(at).getTime() / 1000;
  return {
    callId,
    startedAt: t,
    endedAt: t + 1,
    status: 'success',
    goal,
    caller: 'alice',
    conversation: null,
    profile: 'fast',
    deployment: 'fast/gpt',
    model: 'gpt',
    provider: 'openai',
    tokensIn: 10,
    tokensOut: 5,
    costUsd,
    latencyMs: 100,
    ttftMs: null,
    cacheHit: false,
    errorClass: null,
    errorCode: null,
    traceId: null,
    endUser: null,
    keyAlias: null,
  };
}

describe('bucketsBetween', () => {
  it.each([
    [
      'hour',
      '2026-11-20T09:15:00Z',
      '2026-11-20T12:00:00Z',
      ['09', '10', '11'].map((h) => `2026-11-20T${h}:00Z`),
    ],
    [
      'hour',
      '2026-11-20T09:15:00Z',
      '2026-11-20T12:00:01Z',
      ['09', '10', '11', '12'].map((h) => `2026-11-20T${h}:00Z`),
    ],
    [
      'day',
      '2026-11-18T23:00:00Z',
      '2026-11-20T00:30:00Z',
      ['2026-11-18', '2026-11-19', '2026-11-20'],
    ],
  ] as const)('%s buckets from %s to %s', (bucket, from, to, expected) => {
    expect(bucketsBetween(new Date(from), new Date(to), bucket)).toEqual(expected);
  });
});

describe('spendSeries (the dashboard chart) over the ledger', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openLedger({});
    await insertRows(db, [
      row('a1', '2026-11-20T10:05:00Z', 'q-report', 0.25),
      row('a2', '2026-11-20T10:45:00Z', 'q-report', 0.5),
      row('a3', '2026-11-20T11:10:00Z', 'q-report', 0.125),
      row('b1', '2026-11-20T11:20:00Z', 'side-quest', 2),
      row('c1', '2026-11-19T08:00:00Z', null, 0.0625),
      row('old', '2026-10-01T08:00:00Z', 'q-report', 100),
    ]);
  });
  afterAll(() => db.close());

  it('hourly: every bucket present, one series per goal, largest first, totals that add up', async () => {
    const series = await spendSeries(db, { by: 'goal', bucket: 'hour', since: '4h' }, NOW);
    expect(series.buckets).toEqual(
      ['08', '09', '10', '11', '12'].map((h) => `2026-11-20T${h}:00Z`),
    );
    expect(series.series.map((s) => [s.key, s.costUsd, s.requests])).toEqual([
      ['side-quest', [0, 0, 0, 2, 0], [0, 0, 0, 1, 0]],
      ['q-report', [0, 0, 0.75, 0.125, 0], [0, 0, 2, 1, 0]],
    ]);
    expect(series.totalCostUsd).toBe(2.875);
    expect(series.totalRequests).toBe(4);
  });

  it('daily: requests without a goal are the "-" series; the old request is outside the range', async () => {
    const series = await spendSeries(db, { by: 'goal', bucket: 'day', since: '2d' }, NOW);
    expect(series.buckets).toEqual(['2026-11-18', '2026-11-19', '2026-11-20']);
    expect(Object.fromEntries(series.series.map((s) => [s.key, s.costUsd]))).toEqual({
      'side-quest': [0, 0, 2],
      'q-report': [0, 0, 0.875],
      '-': [0, 0.0625, 0],
    });
  });

  it('by another dimension: one provider series', async () => {
    const series = await spendSeries(db, { by: 'provider', bucket: 'day', since: '2d' }, NOW);
    expect(series.series.map((s) => [s.key, s.totalCostUsd])).toEqual([['openai', 2.9375]]);
  });

  it('refuses a range of more buckets than a chart can show, saying what to do', async () => {
    await expect(
      spendSeries(db, { by: 'goal', bucket: 'hour', since: '365d' }, NOW),
    ).rejects.toThrow(new RegExp(`more than ${MAX_BUCKETS}: use bucket=day or a shorter range`));
    await expect(
      spendSeries(db, { by: 'goal', bucket: 'day', since: '1d', until: '2d' }, NOW),
    ).rejects.toThrow(/must be before until/);
  });
});

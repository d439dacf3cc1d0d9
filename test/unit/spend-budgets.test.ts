import { describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import { budgetsFromPolicies, isSpike, periodWindow } from '../../src/spend/budgets.js';
import { spendSettings } from '../../src/spend/config.js';
import { histogramQuantile, bucketOf, bucketValue } from '../../src/store/histogram.js';

describe('budgets', () => {
  it('names budgets from goals and budget entries, with default thresholds', () => {
    const { set } = buildFromTexts([
      {
        name: 'b.yaml',
        text: `
providers:
  openai: { kind: openai, credential: env:OPENAI_API_KEY }
goals:
  launch: { title: Launch, budget: { usd: 20, period: 7d, alert_at: [1.0, 0.5] } }
budgets:
  - scope: { provider: openai }
    usd: 500
    period: 30d
  - name: everything
    usd: 1000
    period: 30d
  - usd: 5
    period: 1d
`,
      },
    ]);
    expect(
      budgetsFromPolicies(set).map((b) => [b.name, b.scope, b.usd, b.periodSeconds, b.alertAt]),
    ).toEqual([
      ['goal:launch', { goal: 'launch' }, 20, 604_800, [0.5, 1]],
      ['provider:openai', { provider: 'openai' }, 500, 2_592_000, [0.8, 1]],
      ['everything', {}, 1000, 2_592_000, [0.8, 1]],
      ['global', {}, 5, 86_400, [0.8, 1]],
    ]);
  });

  it('uses fixed periods: UTC days, weeks from Monday', () => {
    const now = new Date('2026-11-19T15:00:00Z'); // a Thursday
    expect(periodWindow(86_400, now)).toEqual({
      start: new Date('2026-11-19T00:00:00Z'),
      end: new Date('2026-11-20T00:00:00Z'),
    });
    expect(periodWindow(604_800, now)).toEqual({
      start: new Date('2026-11-16T00:00:00Z'),
      end: new Date('2026-11-23T00:00:00Z'),
    });
  });

  it('calls a spike only above the factor and the minimum amount', () => {
    const options = { factor: 5, minUsd: 1, baselineHours: 24 };
    expect(isSpike(6, 1, options)).toBe(true);
    expect(isSpike(4.9, 1, options)).toBe(false);
    expect(isSpike(0.9, 0, options)).toBe(false);
    expect(isSpike(1, 0, options)).toBe(true);
  });
});

describe('spend settings and histograms', () => {
  it('reads the ledger, spool and webhook settings from the environment', () => {
    expect(spendSettings({}, '/state')).toEqual({
      ledger: { dataDir: '/state/ledger' },
      spoolDir: '/state/spool',
      deadLetterDir: '/state/spend-dead-letter',
      retentionDays: 90,
      spoolFinishedAfterMs: 4_200_000,
      backfill: { firstLookbackSeconds: 7 * 86_400, settleSeconds: 900 },
    });
    expect(
      spendSettings(
        {
          MODELCENTER_LEDGER_URL: 'postgres://db/mc',
          MODELCENTER_ALERT_WEBHOOK: 'http://hooks/x',
          MODELCENTER_SPEND_RETENTION: '2w',
          MODELCENTER_BACKFILL_URL: 'http://litellm:4000',
          MODELCENTER_BACKFILL_SINCE: '30d',
          MODELCENTER_BACKFILL_SETTLE: '1h',
        },
        '/state',
      ),
    ).toMatchObject({
      ledger: { url: 'postgres://db/mc' },
      webhook: { url: 'http://hooks/x' },
      retentionDays: 14,
      backfill: {
        url: 'http://litellm:4000',
        firstLookbackSeconds: 30 * 86_400,
        settleSeconds: 3600,
      },
    });
    expect(() => spendSettings({ MODELCENTER_BACKFILL_SETTLE: 'a while' }, '/s')).toThrow(
      /MODELCENTER_BACKFILL_SETTLE "a while" is not a duration — write e\.g\. 15m/,
    );
    expect(() => spendSettings({ MODELCENTER_SPEND_RETENTION: 'forever' }, '/s')).toThrow(
      /MODELCENTER_SPEND_RETENTION "forever" is not a duration/,
    );
  });

  it('reports a percentile within 12% of the exact value', () => {
    for (const ms of [0.3, 1, 7, 99, 1234, 65_000]) {
      const counts = new Array<number>(64).fill(0);
      counts[bucketOf(ms)] = 1;
      const estimate = histogramQuantile(counts, 0.5)!;
      if (ms >= 1) expect(Math.abs(estimate / ms - 1)).toBeLessThan(0.12);
      expect(bucketOf(estimate)).toBe(bucketOf(ms));
    }
    expect(histogramQuantile(new Array<number>(64).fill(0), 0.5)).toBeUndefined();
    expect(bucketValue(0)).toBe(0.5);
  });
});

import { z } from 'zod';
import type { Queryable } from '../store/db.js';
import { spendPerBucket } from '../store/ledger.js';
import { pointInTime, ReportQueryError, UNSET } from './report.js';

/** A chart of a year of hours is unreadable and slow: at most this many buckets per series. */
export const MAX_BUCKETS = 2000;

/** `GET /v1/spend/series`: spend over time, one series per value of one dimension. */
export const seriesQuerySchema = z.strictObject({
  by: z
    .enum(['goal', 'caller', 'profile', 'model', 'provider', 'deployment'])
    .default('goal')
    .describe('one series per value of this dimension'),
  bucket: z.enum(['hour', 'day']).default('day').describe('the width of one point'),
  since: z.string().default('30d').describe('a duration before now (7d) or a date / UTC time'),
  until: z.string().optional().describe('default: now'),
});
export type SeriesQuery = z.output<typeof seriesQuerySchema>;

export const spendSeriesSchema = z.object({
  from: z.string(),
  to: z.string(),
  by: z.string(),
  bucket: z.enum(['hour', 'day']),
  buckets: z
    .array(z.string())
    .describe('every bucket in the range, oldest first: YYYY-MM-DD or YYYY-MM-DDTHH:00Z (UTC)'),
  series: z
    .array(
      z.object({
        key: z.string().describe(`the dimension's value; "${UNSET}" for requests without one`),
        costUsd: z.array(z.number()).describe('per bucket, aligned with buckets'),
        requests: z.array(z.number()),
        totalCostUsd: z.number(),
        totalRequests: z.number(),
      }),
    )
    .describe('largest total cost first'),
  totalCostUsd: z.number(),
  totalRequests: z.number(),
});
export type SpendSeries = z.infer<typeof spendSeriesSchema>;

const HOUR_MS = 3600_000;
const DAY_MS = 86_400_000;

/**
 * Spend and requests per time bucket and per value of one dimension, from the rollups. Every
 * bucket of the range is present (zero where nothing was spent), so a chart needs no filling.
 */
export async function spendSeries(
  db: Queryable,
  query: SeriesQuery,
  now: Date,
): Promise<SpendSeries> {
  const from = pointInTime(query.since, now, 'since');
  const to = query.until ? pointInTime(query.until, now, 'until') : now;
  if (from.getTime() >= to.getTime())
    throw new ReportQueryError(
      `since (${from.toISOString()}) must be before until (${to.toISOString()})`,
      'since',
    );
  const buckets = bucketsBetween(from, to, query.bucket);
  if (buckets.length > MAX_BUCKETS)
    throw new ReportQueryError(
      `${buckets.length} ${query.bucket}s from ${from.toISOString()} to ${to.toISOString()} is more than ${MAX_BUCKETS}: use bucket=day or a shorter range`,
      'since',
    );
  const rows = await spendPerBucket(db, { bucket: query.bucket, by: query.by, from, to });
  const width = query.bucket === 'hour' ? HOUR_MS : DAY_MS;
  const first = Math.floor(from.getTime() / width) * width;
  const byKey = new Map<string, { costUsd: number[]; requests: number[] }>();
  for (const row of rows) {
    const at = Math.round((row.startMs - first) / width);
    if (at < 0 || at >= buckets.length) continue; // the range widened to whole hours: not drawn
    const key = row.key ?? UNSET;
    let entry = byKey.get(key);
    if (!entry) {
      entry = { costUsd: buckets.map(() => 0), requests: buckets.map(() => 0) };
      byKey.set(key, entry);
    }
    entry.costUsd[at]! += row.costUsd;
    entry.requests[at]! += row.requests;
  }
  const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
  const series = [...byKey.entries()]
    .map(([key, entry]) => ({
      key,
      ...entry,
      totalCostUsd: sum(entry.costUsd),
      totalRequests: sum(entry.requests),
    }))
    .sort((a, b) => b.totalCostUsd - a.totalCostUsd || a.key.localeCompare(b.key));
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    by: query.by,
    bucket: query.bucket,
    buckets,
    series,
    totalCostUsd: sum(series.map((s) => s.totalCostUsd)),
    totalRequests: sum(series.map((s) => s.totalRequests)),
  };
}

/** The bucket labels covering [from, to), as the ledger writes them (UTC). Pure. */
export function bucketsBetween(from: Date, to: Date, bucket: 'hour' | 'day'): string[] {
  const width = bucket === 'hour' ? HOUR_MS : DAY_MS;
  const labels: string[] = [];
  for (
    let t = Math.floor(from.getTime() / width) * width;
    t < to.getTime() && labels.length <= MAX_BUCKETS;
    t += width
  ) {
    const iso = new Date(t).toISOString();
    labels.push(bucket === 'hour' ? `${iso.slice(0, 13)}:00Z` : iso.slice(0, 10));
  }
  return labels;
}

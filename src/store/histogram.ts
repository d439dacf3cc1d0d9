/**
 * Latency histograms kept per hourly rollup row, so percentiles over any range and grouping come
 * from rollups instead of raw rows. 64 log-scale buckets: bucket 0 holds < 1 ms, bucket i > 0
 * holds [1.25^(i-1), 1.25^i) ms, the last one everything from 1.25^62 ms (about 1 h) up. The SQL
 * function mc_bucket (migrations/001_ledger.sql) assigns buckets with the same rule. A percentile
 * is reported as its bucket's geometric midpoint: within ±12% of the exact value.
 */
export const HISTOGRAM_BUCKETS = 64;
export const HISTOGRAM_RATIO = 1.25;

export function bucketOf(ms: number): number {
  if (ms < 1) return 0;
  return Math.min(HISTOGRAM_BUCKETS - 1, Math.floor(Math.log(ms) / Math.log(HISTOGRAM_RATIO)) + 1);
}

/** The value a bucket stands for: its geometric midpoint (0.5 ms for bucket 0). */
export function bucketValue(bucket: number): number {
  if (bucket <= 0) return 0.5;
  const low = HISTOGRAM_RATIO ** (bucket - 1);
  return bucket >= HISTOGRAM_BUCKETS - 1 ? low : Math.sqrt(low * low * HISTOGRAM_RATIO);
}

/** The nearest-rank `p` quantile (0 < p ≤ 1) of a histogram, or undefined when it is empty. */
export function histogramQuantile(counts: readonly number[], p: number): number | undefined {
  const total = counts.reduce((sum, c) => sum + c, 0);
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (let bucket = 0; bucket < counts.length; bucket += 1) {
    seen += counts[bucket] ?? 0;
    if (seen >= rank) return bucketValue(bucket);
  }
  return bucketValue(counts.length - 1);
}

import type { Queryable } from './db.js';

/** What the ledger saw of one provider, model or deployment over a time window. */
export interface WindowStats {
  provider: string;
  /** Undefined on a provider's own line. */
  model?: string;
  /** Undefined on a provider's or model's line. */
  deployment?: string;
  requests: number;
  errors: number;
  /** Successful requests not answered from LiteLLM's cache: what latency and cost are over. */
  measured: number;
  p50LatencyMs?: number;
  p95LatencyMs?: number;
  p50TtftMs?: number;
  p95TtftMs?: number;
  /** Mean cost of a measured request, USD. */
  costPerRequestUsd?: number;
}

/**
 * One read for three levels at once (GROUPING SETS): each provider, each of its models, each of
 * their deployments, for requests that started in [from, to). Exact percentiles from raw rows:
 * the window is minutes to an hour, and the rollups' histograms are only within ±12%.
 */
const WINDOW_STATS = `
  SELECT provider, model, deployment,
         grouping(model)::int AS no_model, grouping(deployment)::int AS no_deployment,
         count(*)::int AS requests,
         (count(*) FILTER (WHERE status = 'failure'))::int AS errors,
         (count(*) FILTER (WHERE status = 'success' AND NOT cache_hit))::int AS measured,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE status = 'success' AND NOT cache_hit) AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
           FILTER (WHERE status = 'success' AND NOT cache_hit) AS p95,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms)
           FILTER (WHERE status = 'success' AND NOT cache_hit) AS ttft50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY ttft_ms)
           FILTER (WHERE status = 'success' AND NOT cache_hit) AS ttft95,
         avg(cost_usd) FILTER (WHERE status = 'success' AND NOT cache_hit) AS cost
  FROM (SELECT coalesce(provider, '') AS provider, coalesce(model, '') AS model,
               coalesce(deployment, '') AS deployment, status, cache_hit, latency_ms, ttft_ms,
               cost_usd
        FROM spend_requests WHERE started_at >= $1 AND started_at < $2) AS w
  GROUP BY GROUPING SETS ((provider), (provider, model), (provider, model, deployment))
  ORDER BY provider, model NULLS FIRST, deployment NULLS FIRST`;

interface Row {
  provider: string;
  model: string | null;
  deployment: string | null;
  no_model: number;
  no_deployment: number;
  requests: number;
  errors: number;
  measured: number;
  p50: number | null;
  p95: number | null;
  ttft50: number | null;
  ttft95: number | null;
  cost: number | null;
}

export async function windowStats(db: Queryable, from: Date, to: Date): Promise<WindowStats[]> {
  const rows = await db.query<Row>(WINDOW_STATS, [from.toISOString(), to.toISOString()]);
  return rows.map((r) => {
    const number = (v: number | null): number | undefined =>
      v === null || v === undefined ? undefined : Number(v);
    const stats: WindowStats = {
      provider: r.provider,
      requests: r.requests,
      errors: r.errors,
      measured: r.measured,
    };
    if (!r.no_model && r.model !== null) stats.model = r.model;
    if (!r.no_deployment && r.deployment !== null) stats.deployment = r.deployment;
    const fields = {
      p50LatencyMs: number(r.p50),
      p95LatencyMs: number(r.p95),
      p50TtftMs: number(r.ttft50),
      p95TtftMs: number(r.ttft95),
      costPerRequestUsd: number(r.cost),
    };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) (stats as unknown as Record<string, number>)[key] = value;
    }
    return stats;
  });
}

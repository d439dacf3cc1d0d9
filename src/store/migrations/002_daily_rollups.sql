-- Daily rollups beside the hourly ones: a 30-day report reads about 30 rows per group instead of
-- 720 (percentile histograms make each rollup row costly to sum). Days are UTC days.

CREATE TABLE spend_daily (
  day           timestamptz      NOT NULL,
  goal          text             NOT NULL,
  caller        text             NOT NULL,
  profile       text             NOT NULL,
  deployment    text             NOT NULL,
  model         text             NOT NULL,
  provider      text             NOT NULL,
  requests      bigint           NOT NULL,
  errors        bigint           NOT NULL,
  tokens_in     bigint           NOT NULL,
  tokens_out    bigint           NOT NULL,
  cost_usd      double precision NOT NULL,
  cache_hits    bigint           NOT NULL,
  latency_hist  integer[]        NOT NULL,
  ttft_hist     integer[]        NOT NULL,
  PRIMARY KEY (day, goal, caller, profile, deployment, model, provider)
);

INSERT INTO spend_daily
SELECT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', goal, caller, profile,
       deployment, model, provider, sum(requests), sum(errors), sum(tokens_in), sum(tokens_out),
       sum(cost_usd), sum(cache_hits), mc_hist_sum(latency_hist), mc_hist_sum(ttft_hist)
FROM spend_hourly
GROUP BY 1, 2, 3, 4, 5, 6, 7;
